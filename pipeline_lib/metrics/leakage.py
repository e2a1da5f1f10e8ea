"""Label leakage through a label-guided feature mask.

SGDrop chooses the features to drop from the true label's attribution, so *where* the zeros are
carries the label. A head that sees every feature position (VGG's classifier reads all
512 x 7 x 7 of them) can learn to decode the label from the mask instead of the image: training
accuracy (masked) climbs while evaluation (nothing dropped) collapses to one class. The training
curves alone cannot tell this from overfitting, so we measure it on held-out images, with the
model and the method's own training-time `features` hook (the mask as in training, for the
label given), every epoch in training and once at evaluation:

- `unmasked`: accuracy as evaluation sees it;
- `masked_true`: accuracy with features masked for the true label, as in training;
- `follows_wrong`: how often the prediction is a random wrong label w when the mask is computed
  for w;
- `wrong_chance`: how often the unmasked prediction is w, the chance level of `follows_wrong`
  (not 1 / classes: a collapsed model predicts one class, whatever the mask);
- `follows_wrong_excess`: `follows_wrong - wrong_chance`, near 0 for a model that reads the
  image, near 1 for one that reads the mask.
"""
from __future__ import annotations

import torch

from pipeline_lib.models import eval_mode

# Accuracy points by which the mask may help before we say the head reads it: masks seen in
# training can make masked inputs slightly easier, and 256 images give about +-3 points of noise.
LEAK_MARGIN = 0.1


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
    hits = {"unmasked": 0, "masked_true": 0, "follows_wrong": 0, "wrong_chance": 0}
    with eval_mode(model):
        for i in range(0, len(images), batch_size):
            x = normalize(images[i : i + batch_size].to(device))
            y, w = labels[i : i + batch_size].to(device), wrong[i : i + batch_size].to(device)
            z = model.encoder(x)
            pred = model.head(z).argmax(1)
            hits["unmasked"] += (pred == y).sum().item()
            hits["wrong_chance"] += (pred == w).sum().item()
            hits["masked_true"] += (model.head(method.features(z, x, y, model)).argmax(1) == y).sum().item()
            hits["follows_wrong"] += (model.head(method.features(z, x, w, model)).argmax(1) == w).sum().item()
    result = {k: v / len(images) for k, v in hits.items()}
    result["follows_wrong_excess"] = result["follows_wrong"] - result["wrong_chance"]
    return result


def reads_the_mask(leak: dict[str, float]) -> bool:
    """Whether the head decodes the label from the mask: masked-true accuracy far above the
    unmasked one, or predictions that follow a wrong-label mask far above chance."""
    return (leak["masked_true"] - leak["unmasked"] > LEAK_MARGIN
            or leak["follows_wrong_excess"] > LEAK_MARGIN)


def leakage_warning(history: list[dict], prefix: str = "leak_") -> list[str]:
    """The run's warnings from its per-epoch records (keys `prefix` + the names above)."""
    flagged = [r for r in history if f"{prefix}unmasked" in r
               and reads_the_mask({k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)})]
    if not flagged:
        return []
    last = flagged[-1]
    epochs = ", ".join(str(r["epoch"]) for r in flagged)
    return [f"label leakage through the training mask at epoch(s) {epochs}: at epoch {last['epoch']}, "
            f"val accuracy {last[prefix + 'unmasked']:.3f} unmasked but {last[prefix + 'masked_true']:.3f} "
            f"with the true-label mask, and predictions follow a wrong-label mask "
            f"{last[prefix + 'follows_wrong']:.3f} of the time against a chance of {last[prefix + 'wrong_chance']:.3f}: "
            "the head reads the label from where the mask is, so evaluation accuracy does not measure "
            "the method"]
