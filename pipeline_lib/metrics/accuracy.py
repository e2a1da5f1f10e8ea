"""Top-1 accuracy and mean cross-entropy of a model on a split held in memory."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline_lib.models import eval_mode


@torch.no_grad()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, normalize, *, batch_size: int,
             device: torch.device) -> dict[str, float]:
    loss_sum, correct = 0.0, 0
    with eval_mode(model):
        for i in range(0, len(labels), batch_size):
            x = normalize(images[i : i + batch_size].to(device))
            y = labels[i : i + batch_size].to(device)
            logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
    return {"loss": loss_sum / len(labels), "acc": correct / len(labels)}
