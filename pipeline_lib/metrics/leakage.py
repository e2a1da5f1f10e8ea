"""Label leakage through a label-guided feature mask.

SGDrop chooses the features to drop from the true label's attribution, so *where* the zeros are
carries the label. A head that sees every feature position (VGG's classifier reads all
512 x 7 x 7 of them) can learn to decode the label from the mask instead of the image: training
accuracy (masked) climbs while evaluation (nothing dropped) collapses to one class. The training
curves alone cannot tell this from overfitting, so we measure it on held-out images, with the
trained model and the method's own training-time `features` hook:

- `unmasked`: accuracy as evaluation sees it;
- `masked_true`: accuracy with features masked for the true label, as in training;
- `follows_wrong`: how often the prediction is a random wrong label when the mask is computed
  for that label. Chance is about 1 / classes for a model that reads the image; near 1 means the
  model reads the mask.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def mask_leakage(model, method, images: torch.Tensor, labels: torch.Tensor, normalize, *,
                 num_classes: int, batch_size: int, seed: int = 0) -> dict[str, float]:
    """Seeded on its own, so a random method's masks (dropout) do not depend on what the process
    drew before: the same run gives the same numbers wherever its stage runs."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _leakage(model, method, images, labels, normalize, num_classes, batch_size, seed, device)


def _leakage(model, method, images, labels, normalize, num_classes, batch_size, seed, device) -> dict[str, float]:
    gen = torch.Generator().manual_seed(seed)
    wrong = (labels + torch.randint(1, num_classes, labels.shape, generator=gen)) % num_classes
    model.eval()
    hits = {"unmasked": 0, "masked_true": 0, "follows_wrong": 0}
    for i in range(0, len(images), batch_size):
        x = normalize(images[i : i + batch_size].to(device))
        y, w = labels[i : i + batch_size].to(device), wrong[i : i + batch_size].to(device)
        z = model.encoder(x)
        hits["unmasked"] += (model.head(z).argmax(1) == y).sum().item()
        hits["masked_true"] += (model.head(method.features(z, x, y, model)).argmax(1) == y).sum().item()
        hits["follows_wrong"] += (model.head(method.features(z, x, w, model)).argmax(1) == w).sum().item()
    return {k: v / len(images) for k, v in hits.items()}
