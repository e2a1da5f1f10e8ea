"""ResNets: the CIFAR family (He et al. 2016, sec. 4.2: three stages of 16, 32, 64 channels,
n = (depth - 2) / 6 basic blocks each, 1x1 projection shortcuts) built from torchvision's
BasicBlock so that zennit's ResNet canonizer applies; and torchvision's ImageNet ResNets."""
from __future__ import annotations

from torch import nn

from pipeline_lib.models import ARCHITECTURES, FeatureInfo, Head, SplitModel, gap_head, modules_of


def resnet_canonizers() -> list:
    from zennit.torchvision import ResNetCanonizer  # zennit is imported only where LRP runs

    return [ResNetCanonizer()]


def residual_net(encoder: nn.Sequential, head: Head, channels: int) -> SplitModel:
    """A torchvision-block ResNet to the model contract: each block's ReLU (called twice) and the
    stem's; the last block's ReLU, last called on the block's output, is the last conv layer."""
    relus = modules_of((nn.ReLU,), encoder)
    return SplitModel(encoder, head, FeatureInfo(activations=relus, last_conv=relus[-1], stages=list(encoder),
                                                 canonizers=resnet_canonizers), num_features=channels)


def _cifar_resnet(depth: int):
    blocks = (depth - 2) // 6

    def build(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = True) -> SplitModel:
        from torchvision.models.resnet import BasicBlock

        widths = [max(1, round(c * width)) for c in (16, 32, 64)]
        layers = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)]
        c_in = widths[0]
        for stage, c in enumerate(widths):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                down = None
                if stride != 1 or c_in != c:
                    down = nn.Sequential(nn.Conv2d(c_in, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c))
                layers.append(BasicBlock(c_in, c, stride=stride, downsample=down))
                c_in = c
        return residual_net(nn.Sequential(*layers), gap_head(c_in, num_classes), c_in)
    return build


for _depth in (20, 56, 110):
    ARCHITECTURES.register(f"resnet{_depth}")(_cifar_resnet(_depth))


def _torchvision_resnet(name: str):
    def build(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = True) -> SplitModel:
        import torchvision

        if width != 1.0:
            raise ValueError("model.width must be 1.0 for torchvision ResNets")
        net = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                net.layer1, net.layer2, net.layer3, net.layer4)
        head = gap_head(net.fc.in_features, num_classes)
        head.fc = net.fc
        return residual_net(encoder, head, net.fc.in_features)
    return build


for _name in ("resnet18", "resnet50"):
    ARCHITECTURES.register(_name)(_torchvision_resnet(_name))
