"""Saliency-guided training (Ismail et al. 2021, "Improving Deep Learning Interpretability by
Saliency Guided Training", NeurIPS).

Sec. 3, Algorithm 1 and Eq. 2: the `mask_fraction` (k) features of lowest saliency are
masked, and the loss is
    CE(f(x), y) + lambda * KL(softmax f(x) || softmax f(x_masked)),
the KL divergence of the masked input's prediction from the clean input's (Eq. 2's order,
which the authors' code, `KLDivLoss(log_softmax(masked), softmax(output))`, also computes),
with gradients through both terms as in that code.

The saliency pass runs in evaluation mode (their code calls `model.eval()` around it: batch
norm on its running statistics, dropout off); the masked forward runs in training mode, as
theirs, but leaves batch norm's running statistics untouched (`frozen_norm_stats`: masked
inputs must not skew the statistics evaluation uses; their code lets them update).

Our readings where paper and code differ or say nothing: saliency is |d s_y / d x| summed
over colour channels, and a position is masked in all its channels (their code takes the
channel mean of the signed gradient, with the absolute value behind an `--abs` flag, and masks
the flattened features); masked positions take values drawn uniformly from the sample's own
[min, max] range, per channel (the paper's random masking).

Defaults (`Params.defaults`): mask_fraction 0.1 and kl_weight 1.0, the authors' code
(Scripts/train_CIFAR.py: `--featuresDroped 0.1`; interpretable.py adds the KL term unweighted,
Eq. 2's lambda = 1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from pipeline_lib.attribution.latent import input_gradient
from pipeline_lib.methods import METHODS, Method, MethodParams, frozen_norm_stats
from pipeline_lib.models import eval_mode


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
    logs = ("masked_fraction", "kl")

    class Params(MethodParams):
        mask_fraction: float = Field(gt=0, lt=1)
        kl_weight: float = Field(ge=0)

        defaults = dict(mask_fraction=0.1, kl_weight=1.0)

    def extra_loss(self, x, y, model, logits, z):
        with eval_mode(model):
            saliency = input_gradient(model, x, y).abs().sum(1)
        mask = lowest_saliency_mask(saliency, self.params.mask_fraction)
        with frozen_norm_stats(model):
            masked_logits = model(fill_from_range(x.detach(), mask))
        # F.kl_div(input, target) is KL(target || input): here KL(p(x) || p(x_masked))
        kl = F.kl_div(F.log_softmax(masked_logits.float(), 1), F.log_softmax(logits.float(), 1), log_target=True,
                      reduction="batchmean")
        self.last = {"masked_fraction": mask.float().mean(), "kl": kl.detach()}
        return self.params.kl_weight * kl
