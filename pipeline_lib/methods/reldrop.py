"""RelDrop (Gururaj et al., "Relevance-driven input dropout"): occlude the input where the
model's LRP relevance is high, so that it learns to use the rest of the object.

R: LRP relevance of the input for the true class (zennit, epsilon rules with RelDrop's best
epsilon 1e-3, flat first layer, canonizers, fp32), summed over colour channels and min-max
normalised per image. The relevance starts from the true class's logit (textbook LRP, which
conserves f_y); `lrp_start: one_hot` starts from a one-hot output as RelDrop's official code
does, which divides the map by f_y and so inverts it when the logit is negative.
- pixel variant: drop position (i, j) where alpha * U(0, 1) + (1 - alpha) R_ij >= 1 - beta;
- block variant: one erasing box centred on a pixel drawn uniformly from the `top_k` most
  relevant ones, of area U(0.02, 0.4) H W and aspect ratio log-uniform in [0.3, 3.33],
  clipped to the image.
Dropped positions take the dataset mean, which is 0 after the loader's normalisation by that
mean. Each sample is occluded with probability p.

Defaults (`Params.defaults`): the extracted text (shared/papers) gives epsilon 1e-3 as the best
LRP epsilon (its Fig. 2); the rest follows the authors' configuration for images
(2D_Images/run_scripts/training_config.json): the block variant with p 0.5 and its box centred on
the single most relevant pixel (top_k 1); alpha 0.3 and beta 0.5 for the pixel variant, whose p
there is 0.3. lrp_start `logit`: textbook LRP (above); the authors' code starts from a one-hot
output (`one_hot`).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from pipeline_lib.methods import METHODS, Method, MethodParams


def minmax(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def pixel_mask(relevance: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """(B, H, W) bool drop mask of the pixel variant, from min-max normalised relevance."""
    return alpha * torch.rand_like(relevance) + (1 - alpha) * relevance >= 1 - beta


def block_mask(relevance: torch.Tensor, top_k: int, area=(0.02, 0.4), ratio=(0.3, 3.33)) -> torch.Tensor:
    b, h, w = relevance.shape
    top = torch.topk(relevance.flatten(1), min(top_k, h * w), dim=1).indices
    centre = top[torch.arange(b), torch.randint(0, top.shape[1], (b,))]
    cy, cx = (centre // w).float(), (centre % w).float()
    s = torch.empty(b).uniform_(*area) * h * w
    r = torch.exp(torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    bh, bw = (s * r).sqrt(), (s / r).sqrt()
    ys = torch.arange(h, device=relevance.device)[None, :, None].float()
    xs = torch.arange(w, device=relevance.device)[None, None, :].float()
    to = lambda t: t.to(relevance.device)[:, None, None]  # noqa: E731
    return ((ys - to(cy)).abs() <= to(bh) / 2) & ((xs - to(cx)).abs() <= to(bw) / 2)


@METHODS.register("reldrop")
class RelDrop(Method):
    logs = ("dropped_fraction",)

    class Params(MethodParams):
        variant: Literal["pixel", "block"]
        alpha: float = Field(ge=0, le=1)
        beta: float = Field(ge=0, le=1)
        p: float = Field(ge=0, le=1)
        top_k: int = Field(ge=1)
        lrp_start: Literal["logit", "one_hot"]
        lrp_epsilon: float = Field(gt=0)

        defaults = dict(variant="block", alpha=0.3, beta=0.5, p=0.5, top_k=1, lrp_start="logit",
                        lrp_epsilon=1e-3)

    def input(self, x, y, model):
        from pipeline_lib.attribution.lrp import lrp_relevance  # zennit only where LRP is used

        relevance = minmax(lrp_relevance(model, x, y, start=self.params.lrp_start, epsilon=self.params.lrp_epsilon).sum(1))
        if self.params.variant == "pixel":
            drop = pixel_mask(relevance, self.params.alpha, self.params.beta)
        else:
            drop = block_mask(relevance, self.params.top_k)
        drop &= (torch.rand(x.shape[0], device=x.device) < self.params.p)[:, None, None]
        self.last = {"dropped_fraction": drop.float().mean()}
        return x.masked_fill(drop[:, None], 0.0)
