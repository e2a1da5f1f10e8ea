"""LRP relevance of the input with zennit: the epsilon rule on every convolution and linear
layer, the flat rule on the first layer, and canonizers that merge batch norm (VGG) and make
ResNet's residual sums explicit (torchvision's BasicBlock and Bottleneck)."""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite, layer_map_base
from zennit.rules import Epsilon, Flat
from zennit.torchvision import ResNetCanonizer, VGGCanonizer
from zennit.types import Convolution, Linear


def lrp_composite(model: nn.Module, epsilon: float = 1e-6) -> SpecialFirstLayerMapComposite:
    is_resnet = any(isinstance(m, (BasicBlock, Bottleneck)) for m in model.modules())
    layer_map = layer_map_base() + [(Convolution, Epsilon(epsilon)), (Linear, Epsilon(epsilon))]
    return SpecialFirstLayerMapComposite(
        layer_map=layer_map, first_map=[(Convolution, Flat()), (Linear, Flat())],
        canonizers=[ResNetCanonizer() if is_resnet else VGGCanonizer()],
    )


def target_logit(target: torch.Tensor):
    """The initial relevance: the target's logit f_y(x) (standard LRP), zero for other classes."""
    return lambda output: output * torch.eye(output.shape[1], device=output.device)[target]


def lrp_relevance(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) relevance of the input for the target class, summing to about its logit.
    The model is attributed in evaluation mode (batch norm merged with its running statistics)
    and left in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), Gradient(model, lrp_composite(model)) as attributor:
            _, relevance = attributor(x.detach().float().requires_grad_(True), target_logit(target))
    finally:
        model.train(was_training)
    return relevance
