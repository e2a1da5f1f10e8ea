"""LRP relevance of the input with zennit: the epsilon rule on every convolution and linear
layer, the flat rule on the first layer, and the canonizers the architecture declares (merged
batch norm for VGG, explicit residual sums for torchvision's BasicBlock and Bottleneck).

- epsilon 1e-3: RelDrop's best setting (its Figure 2: 0.001 best, 0.8 worst);
- the relevance starts from the target's logit f_y(x) (`start: logit`, textbook LRP), so the
  input relevance sums to about f_y(x) (conservation). RelDrop's official code starts from a
  one-hot output instead (`start: one_hot`): the same map divided by f_y(x), which sums to
  about 1 and, for a negative logit, inverts the map's sign;
- always in fp32, whatever autocast context the caller is in (bf16 ratios z_j / (z + eps)
  lose the small contributions that LRP is about).
"""
from __future__ import annotations

import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite, layer_map_base
from zennit.rules import Epsilon, Flat
from zennit.types import Convolution, Linear

from pipeline_lib.models import eval_mode

EPSILON = 1e-3


def lrp_composite(model: nn.Module, epsilon: float = EPSILON) -> SpecialFirstLayerMapComposite:
    """The canonizers are those the model's architecture declares (`feature_info.canonizers`, the
    model contract of `pipeline_lib.models`); a model of one's own without the declaration gets
    none, and its LRP is exact only where it has no batch norm or residual sum."""
    info = getattr(model, "feature_info", None)
    layer_map = layer_map_base() + [(Convolution, Epsilon(epsilon)), (Linear, Epsilon(epsilon))]
    return SpecialFirstLayerMapComposite(
        layer_map=layer_map, first_map=[(Convolution, Flat()), (Linear, Flat())],
        canonizers=info.canonizers() if info is not None else [],
    )


def initial_relevance(target: torch.Tensor, start: str = "logit"):
    """The relevance put on the output: the target's logit f_y(x) (`logit`) or 1 (`one_hot`),
    zero for the other classes."""
    if start == "one_hot":
        return lambda output: torch.eye(output.shape[1], device=output.device)[target]
    return lambda output: output * torch.eye(output.shape[1], device=output.device)[target]


def lrp_relevance(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, start: str = "logit",
                  epsilon: float = EPSILON) -> torch.Tensor:
    """(B, C, H, W) relevance of the input for the target class, summing to about its logit
    (about 1 with `start: one_hot`). The model is attributed in evaluation mode (batch norm
    merged with its running statistics), in fp32, and left in the mode it was in."""
    with eval_mode(model), torch.enable_grad(), torch.autocast(x.device.type, enabled=False), \
            Gradient(model, lrp_composite(model, epsilon)) as attributor:
        _, relevance = attributor(x.detach().float().requires_grad_(True), initial_relevance(target, start))
    return relevance
