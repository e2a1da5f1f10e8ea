"""SGQN, Saliency-Guided Q-Networks (Bertoin et al. 2022), adapted from Q-learning to
classification.

Our adaptation: the Q-value of the taken action becomes the score of the true class. The
attribution is |d s_y / d x| summed over channels (the paper uses the same gradient, with
guided backprop as an option). M = the positions at or above the per-sample `quantile`
(0.95: the top 5%). Two terms are added to the cross-entropy:
- consistency: KL(softmax f(x) || softmax f(x * M)), the prediction on the input kept to its
  salient pixels (others set to 0, the dataset mean after normalisation) must match the
  prediction on the whole input, which is the target (no gradient), as SGQN regresses
  Q(s * M) on Q(s);
- self-supervision: an auxiliary head (a 1x1 convolution on the encoder output, upsampled)
  predicts M, with binary cross-entropy; its gradient shapes the encoder, as in SGQN.
The attribution pass and the masked forward (inputs 95% zeros) leave batch norm's running
statistics untouched (`frozen_norm_stats`), so that evaluation normalises with clean-image
statistics (SGQN's Q-networks have no batch norm, so the paper says nothing about it).

Defaults (`Params.defaults`): none is the paper's for classification. quantile: set per task in
SGQN (its code's default 0.90, DMC/src/arguments.py; 0.98 in its cartpole script); ours 0.95.
consistency_weight 0.5: the code's weight of its consistency term (0.5 over the two critics'
errors). aux_weight: the code trains the mask predictor with an optimiser of its own, no weight;
ours 0.5. The auxiliary head is sized on the encoder's output, probed at `image_size`, which
`build_method` therefore needs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from pipeline_lib.attribution.latent import input_gradient
from pipeline_lib.methods import METHODS, Method, MethodParams, frozen_norm_stats, needs
from pipeline_lib.models import latent_shape


def top_quantile_mask(attribution: torch.Tensor, quantile: float) -> torch.Tensor:
    """(B, H, W) bool: positions at or above the per-sample quantile of the attribution."""
    threshold = torch.quantile(attribution.flatten(1).float(), quantile, dim=1)
    return attribution >= threshold[:, None, None]


@METHODS.register("sgqn")
class SGQN(Method):
    logs = ("consistency", "aux_bce")

    class Params(MethodParams):
        quantile: float = Field(gt=0, lt=1)
        consistency_weight: float = Field(ge=0)
        aux_weight: float = Field(ge=0)

        defaults = dict(quantile=0.95, consistency_weight=0.5, aux_weight=0.5)

    def __init__(self, params, *, model, image_size, **kw):
        super().__init__(params, model=model, image_size=image_size, **kw)
        needs(image_size, "sgqn", "image_size", "its auxiliary head is sized on the encoder's output at that size")
        channels = latent_shape(model.encoder, image_size)[0]
        self.extra_modules["aux_head"] = nn.Conv2d(channels, 1, kernel_size=1)

    def extra_loss(self, x, y, model, logits, z):
        with frozen_norm_stats(model):
            mask = top_quantile_mask(input_gradient(model, x, y).abs().sum(1), self.params.quantile)
            salient_logits = model(x.detach() * mask[:, None])
        consistency = F.kl_div(F.log_softmax(salient_logits, 1), F.log_softmax(logits.detach(), 1),
                               log_target=True, reduction="batchmean")
        predicted = F.interpolate(self.extra_modules["aux_head"](z), size=x.shape[-2:], mode="bilinear",
                                  align_corners=False)[:, 0]
        aux = F.binary_cross_entropy_with_logits(predicted.float(), mask.float())
        self.last = {"consistency": consistency.detach(), "aux_bce": aux.detach()}
        return self.params.consistency_weight * consistency + self.params.aux_weight * aux
