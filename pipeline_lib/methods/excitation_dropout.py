"""Excitation Dropout (Zunino et al. 2021, "Excitation Dropout: Encouraging Plasticity in Deep
Neural Networks", IJCV).

On the N penultimate neurons h (the input of the output layer), the saliency of each neuron
for the true class y is its contrastive marginal winning probability (c-MWP, Zhang et al.
2016) through the output layer W:
    P_j = h_j W+_yj / sum_k h_k W+_yk,   P~_j = h_j (-W_yj)+ / sum_k h_k (-W_yk)+,
    s_j = max(P_j - P~_j, 0), then normalised to sum to 1 (uniform when all are 0).
Retain probability p_j = 1 - (1 - P)(N - 1) s_j / (((1 - P) N - 1) s_j + P), P the base
retain probability: p_j = P when s is uniform, 1 when s_j = 0, 0 when s_j = 1.
Kept neurons are divided by p_j (inverted dropout), which keeps each neuron's expected value
but is unbounded as p_j goes to 0: a rarely kept, highly salient neuron is then multiplied by
up to 1 / p_j. `max_scale` caps that factor (null: uncapped). The paper's text is not among the
study's papers (shared/papers), so where the paper bounds the rescaling is unchecked; the
default stays uncapped until it is. Our reading: one layer of Excitation Backprop suffices
because the dropped layer is directly below the output layer, as in the paper's fc6/fc7
placement; saliency is taken from the online model.
"""
from __future__ import annotations

import torch
from pydantic import Field

from pipeline_lib.strict import Strict
from pipeline_lib.methods import METHODS, Method


def contrastive_mwp(h: torch.Tensor, weight: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, N) c-MWP saliency of the penultimate neurons, summing to 1 per sample."""
    w = weight[y].to(h.dtype)
    pos = h * w.clamp_min(0)
    neg = h * (-w).clamp_min(0)
    tiny = torch.finfo(h.dtype).tiny
    s = (pos / pos.sum(1, keepdim=True).clamp_min(tiny) - neg / neg.sum(1, keepdim=True).clamp_min(tiny)).clamp_min(0)
    total = s.sum(1, keepdim=True)
    uniform = torch.full_like(s, 1.0 / s.shape[1])
    return torch.where(total > 0, s / total.clamp_min(tiny), uniform)


def retain_probability(s: torch.Tensor, base: float) -> torch.Tensor:
    n = s.shape[1]
    return 1 - (1 - base) * (n - 1) * s / (((1 - base) * n - 1) * s + base)


@METHODS.register("excitation_dropout")
class ExcitationDropout(Method):
    logs = ("dropped_fraction",)

    class Params(Strict):
        base_retain: float = Field(gt=0, lt=1)
        max_scale: float | None = Field(ge=1)

    def penultimate(self, h, y, model):
        with torch.no_grad():
            keep_p = retain_probability(contrastive_mwp(h.detach().clamp_min(0), model.head.fc.weight, y),
                                        self.params.base_retain).clamp(0, 1)
            mask = torch.bernoulli(keep_p)
        self.last = {"dropped_fraction": 1 - mask.mean()}
        scale = 1 / keep_p.clamp_min(1e-12)
        if self.params.max_scale is not None:
            scale = scale.clamp_max(self.params.max_scale)
        return torch.where(mask > 0, h * scale, torch.zeros_like(h))
