"""torchvision's ConvNeXt-Tiny; its head (pool, LayerNorm, Linear) is not GAP + Linear, so
SGDrop uses autograd through it."""
from __future__ import annotations

from torch import nn

from pipeline_lib.models import ARCHITECTURES, FeatureInfo, Head, SplitModel, modules_of


@ARCHITECTURES.register("convnext_tiny")
def convnext_tiny(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = False) -> SplitModel:
    if width != 1.0:
        raise ValueError("model.width must be 1.0 for convnext_tiny")
    from torchvision.models import convnext_tiny as tv_convnext_tiny

    net = tv_convnext_tiny(weights=None, num_classes=num_classes)
    norm, flatten, fc = net.classifier
    gelus = modules_of((nn.GELU,), net.features)
    # no batch norm to merge and no canonizer of zennit's for its blocks: LRP's rules apply as they are
    info = FeatureInfo(activations=gelus, last_conv=gelus[-1], stages=list(net.features))
    return SplitModel(net.features, Head(nn.Sequential(net.avgpool, norm, flatten), fc, gap_linear=False), info,
                      num_features=fc.in_features)
