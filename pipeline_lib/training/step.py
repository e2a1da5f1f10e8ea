"""One optimisation step through the method's hooks (see `pipeline_lib.methods` for their order).

The forward of the step is a module, `MethodStep`, whose forward runs the hooks and returns the
loss: wrapped in DistributedDataParallel, its bucketed gradient all-reduce then overlaps the
backward pass, and it covers the method's own trained modules (SGQN's auxiliary head) as well as
the model's. Nothing in the step reads a value back to the host: the loss and the logits stay on
the device, and the loop reads its epoch sums once at the end of the epoch.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class MethodStep(nn.Module):
    """forward(x, y) -> (loss, logits) of a training step, the method's hooks included."""

    def __init__(self, model: nn.Module, method):
        super().__init__()
        self.model, self.extra_modules = model, method.extra_modules
        self.method = method  # not a module: its state (SGDrop's EMA) is not trained by the optimiser

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model, method = self.model, self.method
        x = method.input(x, y, model)
        z = method.features(model.encoder(x), x, y, model)
        logits = model.head.fc(method.penultimate(model.head.pre_logits(z), y, model))
        loss = F.cross_entropy(logits.float(), y)
        extra = method.extra_loss(x, y, model, logits, z)
        return (loss if extra is None else loss + extra), logits


def train_step(run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step of `run` (its `step` module, DDP-wrapped under torchrun); returns the
    detached (loss, logits), still on the device."""
    autocast = torch.autocast(run.device.type, dtype=torch.bfloat16) if run.bf16 else contextlib.nullcontext()
    with autocast:
        loss, logits = run.step(x, y)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with run.method.step_context(run.optimizer):
        run.optimizer.step()
    run.method.after_step(run.model)
    return loss.detach(), logits.detach()
