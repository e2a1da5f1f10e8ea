"""Occlusion robustness, RelDrop style: accuracy as the most relevant input patches (by the
model's own Grad-CAM, averaged per patch) are replaced by the mean (0 after normalisation),
for fractions of the patches from 0 to 50%; the area under that curve (trapezoid, divided by
the fraction range); and the same curve with patches chosen at random, as the reference."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def occlude(x: torch.Tensor, scores: torch.Tensor, patch: int, fraction: float) -> torch.Tensor:
    """Zero the `fraction` of patches with the highest scores (B, H/patch, W/patch) in x."""
    b, gh, gw = scores.shape
    k = round(fraction * gh * gw)
    if k == 0:
        return x
    order = torch.sort(scores.flatten(1), dim=1, descending=True, stable=True).indices[:, :k]
    grid = torch.ones(b, gh * gw, device=x.device)
    grid.scatter_(1, order, 0.0)
    mask = F.interpolate(grid.view(b, 1, gh, gw), scale_factor=patch, mode="nearest")
    return x * mask


@torch.no_grad()
def occlusion_curves(model, x: torch.Tensor, y: torch.Tensor, cam: torch.Tensor, *, patch: int,
                     fractions: list[float], seed: int = 0) -> dict:
    """cam: (B, H, W) Grad-CAM at the input resolution. Returns accuracies and AUCs."""
    model.eval()
    patch_scores = F.avg_pool2d(cam[:, None], patch)[:, 0]
    random_scores = torch.rand(patch_scores.shape, generator=torch.Generator().manual_seed(seed)).to(x.device)
    curves = {}
    for name, scores in (("relevant", patch_scores), ("random", random_scores)):
        accs = [float((model(occlude(x, scores, patch, f)).argmax(1) == y).float().mean()) for f in fractions]
        span = fractions[-1] - fractions[0]
        auc = float(np.trapezoid(accs, fractions) / span) if span > 0 else accs[0]
        curves[name] = {"accuracy": accs, "auc": auc}
    return {"fractions": fractions, **curves}
