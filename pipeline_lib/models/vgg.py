"""Plain convolutional nets: the embedded default `tinyvgg`, the SGDrop paper's `cifarnet`,
and VGG 9/11/16 (torchvision's layer builder and initialisation; no classifier dropout: `vanilla`
means no regularisation, and dropout is a method of its own).

`vgg9` (for STL10, our layout): six 3x3 convolutions 64, M, 128, M, 256, 256, M, 512, 512, M,
then two fully connected layers of 512 units and the output layer.
"""
from __future__ import annotations

from torch import nn

from pipeline_lib.models import ARCHITECTURES, FeatureInfo, Head, SplitModel, flat_size, gap_head, modules_of


def vgg_canonizers() -> list:
    from zennit.torchvision import VGGCanonizer  # zennit is imported only where LRP runs

    return [VGGCanonizer()]


def plain_net(encoder: nn.Sequential, head: Head, channels: int) -> SplitModel:
    """A VGG-style net to the model contract: ReLU activations, the stages are the encoder's layers."""
    relus = modules_of((nn.ReLU,), encoder)
    return SplitModel(encoder, head, FeatureInfo(activations=relus + modules_of((nn.ReLU,), head),
                                                 last_conv=relus[-1], stages=list(encoder),
                                                 canonizers=vgg_canonizers), num_features=channels)


def _scaled(cfg: list, width: float) -> list:
    return [v if v == "M" else max(1, round(v * width)) for v in cfg]


def _mlp_head(in_features: int, hidden: int, num_classes: int, pool: nn.Module | None = None) -> Head:
    body = nn.Sequential(*([pool] if pool else []), nn.Flatten(), nn.Linear(in_features, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True))
    return Head(body, nn.Linear(hidden, num_classes), gap_linear=False)


@ARCHITECTURES.register("tinyvgg")
def tinyvgg(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = False) -> SplitModel:
    """Four 3x3 convolutions (16, M, 32, M, 64, 64, M) and a GAP + Linear head: the small
    architecture of the embedded benchmark, a few seconds an epoch on a CPU."""
    from torchvision.models.vgg import make_layers

    cfg = _scaled([16, "M", 32, "M", 64, 64, "M"], width)
    encoder = make_layers(cfg, batch_norm=batch_norm)
    return plain_net(encoder, gap_head(cfg[-2], num_classes), cfg[-2])


@ARCHITECTURES.register("cifarnet")
def cifarnet(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = False) -> SplitModel:
    layers, c_in = [], 3
    for c in (96, 128, 256):
        c = max(1, round(c * width))
        layers += [nn.Conv2d(c_in, c, 5, stride=1, padding=2)]
        layers += [nn.BatchNorm2d(c)] if batch_norm else []
        layers += [nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2)]
        c_in = c
    encoder = nn.Sequential(*layers)
    return plain_net(encoder, _mlp_head(flat_size(encoder, image_size), max(1, round(2048 * width)), num_classes), c_in)


def init_like_torchvision_vgg(model: nn.Module) -> nn.Module:
    """torchvision's VGG initialisation (its `VGG.__init__`), in the same module order. Without it a
    deep VGG without batch norm starts from PyTorch's default init, whose variance shrinks about
    sixfold per conv layer: the latent map of a fresh VGG16 is then almost independent of the image,
    which slows vanilla training and lets SGDrop's label-chosen mask be the only signal the head
    sees (see reports/results/imagenette224-gpu, run before this init)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return model


def _vgg(cfg: list | str, hidden: int, pool_to: int | None):
    """`cfg`: the layer list, or the key of torchvision's (`cfgs["D"]` is VGG16)."""
    def build(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = False) -> SplitModel:
        from torchvision.models.vgg import cfgs, make_layers

        layers = _scaled(cfgs[cfg] if isinstance(cfg, str) else cfg, width)
        encoder = make_layers(layers, batch_norm=batch_norm)
        pool = nn.AdaptiveAvgPool2d(pool_to) if pool_to else None
        channels = layers[-2]
        features = channels * pool_to * pool_to if pool_to else flat_size(encoder, image_size)
        head = _mlp_head(features, max(1, round(hidden * width)), num_classes, pool)
        return init_like_torchvision_vgg(plain_net(encoder, head, channels))
    return build


ARCHITECTURES.register("vgg9")(_vgg([64, "M", 128, "M", 256, 256, "M", 512, 512, "M"], 512, None))
ARCHITECTURES.register("vgg11")(_vgg("A", 4096, 7))
ARCHITECTURES.register("vgg16")(_vgg("D", 4096, 7))
