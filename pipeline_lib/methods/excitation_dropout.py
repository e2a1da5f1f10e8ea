"""Excitation Dropout (Zunino et al. 2021, "Excitation Dropout: Encouraging Plasticity in Deep
Neural Networks", IJCV).

On the N penultimate neurons h (the input of the output layer W), the saliency of each neuron
for the true class y is its marginal winning probability under Excitation Backprop (MWP, Zhang
et al. 2018), started from a one-hot signal on y:
    P_j = h_j W+_yj / sum_k h_k W+_yk          (uniform when every term is 0).
Retain probability p_j = 1 - (1 - P)(N - 1) P_j / (((1 - P) N - 1) P_j + P), P the base retain
probability: p_j = P when the saliency is uniform, 1 when P_j = 0, 0 when P_j = 1. A Bernoulli
draw with p_j keeps or drops each neuron.

The paper's text is not among the study's papers (shared/papers), so this follows the authors'
public Caffe training script (train_with_Excitation_dropout.py, whose README cites the IJCV
paper) where the two could differ:
- Rescaling: `rescale: sample` (the default) divides each sample's kept neurons by the fraction
  of its neurons kept, one factor per sample, as the script does; it is bounded by N (one neuron
  kept) and near 1 / P in practice. Since the salient neurons are the ones dropped, the true
  class's evidence falls in expectation, which is the method's pressure to find other paths.
  `rescale: neuron` divides each kept neuron by its own retain probability (inverted dropout, as
  third-party reimplementations do, and this pipeline did before): every neuron keeps its expected
  value, but the factor is unbounded as p_j goes to 0, so a rarely kept, highly salient neuron is
  multiplied by up to 1 / p_j. On the embedded benchmark (tinyvgg, whose penultimate neurons are
  its pooled channels) the two differ sharply: see reports/results/excitation-rescale/README.md.
- Saliency: the script backpropagates a one-hot signal in plain Excitation Backprop mode (MWP).
  The contrastive c-MWP of Zhang et al. (MWP for y minus the MWP through the negated weights)
  differs from it only across several layers: through the one output layer, the positive and
  negative parts of W_y fall on disjoint neurons, so clipping the difference at 0 gives MWP back
  exactly. This pipeline computed c-MWP before, which was therefore MWP.
One layer of Excitation Backprop suffices here because the dropped layer is directly below the
output layer (the script drops ip1 under two fully connected layers); saliency is taken from the
online model. The method therefore needs the head split at its output layer: `head.fc` (an
nn.Linear) and a forward that passes fc's input through `penultimate`, as
`pipeline_lib.models.Head` does; built for a head without `fc`, or stepped through a head that
never called `penultimate`, it says so.

Defaults (`Params.defaults`): base_retain 0.5, the paper's base retain probability P, standard
dropout's rate (not checked against its text, which shared/papers lacks); rescale `sample`, the
script's.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from pipeline_lib.methods import METHODS, Method, MethodNeeds, MethodParams


def winning_probability(h: torch.Tensor, weight: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(B, N) MWP saliency of the non-negative penultimate neurons h for the labels y, summing to
    1 per sample (uniform where no neuron has evidence for y)."""
    n = h.shape[1]
    s = h * weight[y].to(h.dtype).clamp_min(0)
    total = s.sum(1, keepdim=True)
    return torch.where(total > 0, s / total.clamp_min(torch.finfo(s.dtype).tiny), torch.full_like(s, 1 / n))


def retain_probability(s: torch.Tensor, base: float) -> torch.Tensor:
    n = s.shape[1]
    return 1 - (1 - base) * (n - 1) * s / (((1 - base) * n - 1) * s + base)


@METHODS.register("excitation_dropout")
class ExcitationDropout(Method):
    logs = ("dropped_fraction",)

    class Params(MethodParams):
        base_retain: float = Field(gt=0, lt=1)
        rescale: Literal["sample", "neuron"]

        defaults = dict(base_retain=0.5, rescale="sample")

    NEEDS = ("excitation_dropout drops the penultimate neurons, the input of the output layer: it needs "
             "model.head.fc (the nn.Linear output layer), and a training step that passes fc's input through "
             "method.penultimate(h, y, model), as the pipeline's step does with the model contract's "
             "head.pre_logits and head.fc (pipeline_lib.models)")

    def __init__(self, params, *, model, **kw):
        super().__init__(params, model=model, **kw)
        if not isinstance(getattr(model.head, "fc", None), torch.nn.Linear):
            raise MethodNeeds(self.NEEDS)

    def features(self, z, x, y, model):
        self.last = {}  # `penultimate` fills it; `after_step` finds it empty when the head never called it
        return z

    def after_step(self, model):
        if not self.last:
            raise MethodNeeds(self.NEEDS)

    def penultimate(self, h, y, model):
        with torch.no_grad():
            s = winning_probability(h.detach().clamp_min(0), model.head.fc.weight, y)
            keep_p = retain_probability(s, self.params.base_retain).clamp(0, 1)
            mask = torch.bernoulli(keep_p)
            kept = mask.mean(1, keepdim=True)
        self.last = {"dropped_fraction": 1 - kept.mean()}
        # the clamps only avoid 0 / 0: a sample with nothing kept stays all zeros, and a neuron
        # with retain probability 0 is never kept
        divisor = kept.clamp_min(1 / mask.shape[1]) if self.params.rescale == "sample" else keep_p.clamp_min(1e-12)
        return h * mask / divisor
