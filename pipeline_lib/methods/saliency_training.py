"""Saliency-guided training (Ismail et al. 2021, "Improving Deep Learning Interpretability by
Saliency Guided Training", NeurIPS).

Saliency: |d s_y / d x| summed over colour channels (a position covers all its channels).
The `mask_fraction` (k = 10%) lowest-saliency positions of each input are replaced by values
drawn uniformly from the sample's own [min, max] range, per channel. Loss:
    CE(f(x), y) + lambda * KL(softmax f(x_masked) || softmax f(x)),
with gradients through both terms as in the paper's code.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from pipeline_lib.attribution.latent import input_gradient
from pipeline_lib.strict import Strict
from pipeline_lib.methods import METHODS, Method


def lowest_saliency_mask(saliency: torch.Tensor, fraction: float) -> torch.Tensor:
    """(B, H, W) bool: exactly round(fraction * H * W) lowest positions per sample (stable ties)."""
    flat = saliency.flatten(1)
    k = round(fraction * flat.shape[1])
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k:
        mask.scatter_(1, torch.sort(flat, dim=1, stable=True).indices[:, :k], True)
    return mask.view_as(saliency)


def fill_from_range(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    noise = lo + (hi - lo) * torch.rand_like(x)
    return torch.where(mask[:, None], noise, x)


@METHODS.register("saliency_training")
class SaliencyTraining(Method):
    class Params(Strict):
        mask_fraction: float = Field(0.1, gt=0, lt=1)
        kl_weight: float = Field(1.0, ge=0)

    def extra_loss(self, x, y, model, logits, z):
        saliency = input_gradient(model, x, y).abs().sum(1)
        mask = lowest_saliency_mask(saliency, self.p.mask_fraction)
        masked_logits = model(fill_from_range(x.detach(), mask))
        kl = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(masked_logits, 1), log_target=True,
                      reduction="batchmean")
        self.last = {"masked_fraction": float(mask.float().mean()), "kl": kl.item()}
        return self.p.kl_weight * kl
