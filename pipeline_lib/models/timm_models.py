"""Any timm CNN by name, `model.architecture: timm/<name>` (e.g. `timm/resnet18d`,
`timm/convnext_atto`, `timm/efficientnet_b0`), built to the model contract of `pipeline_lib.models`
from timm's own API: the encoder is `forward_features`, the head's `pre_logits` is
`forward_head(pre_logits=True)` and its `fc` is `get_classifier()`; `num_features` and the stages
(`feature_info`) are timm's. Random init (`pretrained=False`: nothing is downloaded);
`model.weights` loads a local state dict as for every architecture. A timm model is built at its
own width and with its own norms: `model.width` and `model.batch_norm` do not apply (stages.check
says so), so that `-S model.architecture=timm/<name>` runs the embedded default as it is.

What timm does not declare, we read off the model: the activations are its modules of PyTorch's
and timm's activation classes (coverage's units); the last convolution's layer is the encoder's
output (`forward_features` ends at the last convolution's activation for ResNets and
EfficientNets, and at a norm for ConvNeXts); the head is GAP + Linear when `pre_logits` computes
exactly the spatial mean (checked once, numerically), which enables the closed-form latent
gradient. LRP gets zennit's sequential batch-norm merge only: zennit has no canonizer for timm's
blocks (residual sums, BatchNormAct, squeeze-excitation), so LRP is approximate there, and far
from conservation on some (regnetx_002's relevance sums to a million times its logit at random
init); `stages.check` says so when `lrp` is among attribute.methods. A model whose features are
not an NCHW map (a vision transformer's tokens) is refused, since every method here acts on a
convolutional latent map.
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline_lib.models import ARCHITECTURES, FeatureInfo, Head, SplitModel


class _Features(nn.Module):
    """The encoder: timm's `forward_features` (the whole timm model is its child)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)


class _PreLogits(nn.Module):
    """timm's `forward_head(pre_logits=True)`: its modules are the encoder's child's, so they are
    saved and trained once, with the encoder."""

    def __init__(self, net: nn.Module):
        super().__init__()
        object.__setattr__(self, "net", net)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(z, pre_logits=True)


def _is_activation(module: nn.Module) -> bool:
    return type(module).__module__.startswith(("torch.nn.modules.activation", "timm.layers.activations"))


def _merge_batch_norm() -> list:
    from zennit.canonizers import SequentialMergeBatchNorm  # zennit is imported only where LRP runs

    return [SequentialMergeBatchNorm()]


def _gap_linear(body: nn.Module, channels: int) -> bool:
    z = torch.randn(2, channels, 3, 3)
    try:
        with torch.no_grad():
            return torch.allclose(body(z), z.mean((2, 3)), atol=1e-6)
    except (RuntimeError, NotImplementedError):  # parameters on the meta device (the params check)
        return False


@ARCHITECTURES.register_family("timm/")
def timm_architecture(name: str):
    def build(num_classes: int, image_size: int, width: float = 1.0, batch_norm: bool = True) -> SplitModel:
        import timm

        try:
            net = timm.create_model(name, pretrained=False, num_classes=num_classes)
        except RuntimeError as err:  # timm: "Unknown model (...)"
            raise ValueError(f"timm has no model {name!r} ({err}); timm.list_models() lists them") from None
        net.eval()
        try:
            with torch.no_grad():
                shape = net.forward_features(torch.zeros(1, 3, image_size, image_size)).shape
        except AssertionError as err:  # timm's fixed-size models assert on the input's size
            raise ValueError(str(err)) from None
        if len(shape) != 4:
            raise ValueError(f"timm/{name}'s features are {tuple(shape)}, not an NCHW map (a vision transformer's "
                             "tokens?): the methods act on a convolutional latent map; choose a CNN")
        fc = net.get_classifier()
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"timm/{name}'s classifier is a {type(fc).__name__}, not an nn.Linear (the model "
                             "contract's head.fc); choose another model")
        body = _PreLogits(net)
        head = Head(body, fc, gap_linear=_gap_linear(body, net.num_features))
        net.train()
        info = FeatureInfo(activations=[m for m in net.modules() if _is_activation(m)], last_conv=None,
                           stages=[net.get_submodule(i["module"]) for i in net.feature_info],
                           canonizers=_merge_batch_norm)
        return SplitModel(_Features(net), head, info, num_features=net.num_features)
    return build
