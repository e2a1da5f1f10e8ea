"""Architectures, registered by name, each built to the model contract below (`SplitModel`).

The model contract, what every method, attribution map and metric uses of a model, and nothing
else (timm's names in brackets, for the same parts of its models):
- `encoder`: image -> latent map (B, C, H, W), the map the methods act on [`forward_features`];
- `head`: latent map -> logits, in two parts: `head.pre_logits(z)`, the penultimate vector
  [`forward_head(pre_logits=True)`], and `head.fc`, the output `nn.Linear` [`get_classifier()`];
  `head.gap_linear` says whether `pre_logits` is a global average pool alone, which lets the
  latent gradient take its closed form;
- `num_features`: C, the latent map's channels [`num_features`];
- `feature_info` (`FeatureInfo`): the layers that measurement reads, declared by the architecture
  rather than guessed from module types [`feature_info`]: the activations whose outputs are
  neuron coverage's units, the last convolution's activation, the encoder's stages (CamDrop's
  shallow layers index them) and the canonizers that make LRP exact.
`pipeline_lib.models.timm` builds any timm CNN to this contract (`model.architecture: timm/<name>`).

The architectures import torchvision inside their builders, as the DropBlock method and the JPEG
decoder do: its import costs about 2.5 s (it imports `torch._dynamo`), which the stages that only
validate params or draw the report (check, configure, shard, report) would pay for nothing.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from pipeline_lib.errors import ClearError
from pipeline_lib.registry import Registry, import_submodules


class WeightsError(ClearError):
    pass


class Head(nn.Module):
    """`pre_logits` then `fc`. The training step calls the two apart, so that a method can act on
    the penultimate vector (Excitation Dropout)."""

    def __init__(self, body: nn.Module, fc: nn.Linear, gap_linear: bool):
        super().__init__()
        self.body, self.fc, self.gap_linear = body, fc, gap_linear

    def pre_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(z))


def gap_head(channels: int, num_classes: int) -> Head:
    return Head(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                nn.Linear(channels, num_classes), gap_linear=True)


@dataclass
class FeatureInfo:
    """The layers an architecture declares for measurement (see the module's docstring).

    `activations`: every activation module, encoder's and head's, in forward order (a module
    called twice, as torchvision's BasicBlock calls its ReLU, counts once per call); `last_conv`:
    the activation of the encoder's last convolution (its last call), or None when the encoder's
    output is that layer; `stages`: the encoder's blocks, in order; `canonizers`: a function
    giving zennit's canonizers for this model (batch norm merged, residual sums explicit)."""

    activations: list[nn.Module]
    last_conv: nn.Module | None
    stages: list[nn.Module]
    canonizers: Callable[[], list] = field(default=lambda: [])


class SplitModel(nn.Module):
    """The model contract (see the module's docstring)."""

    def __init__(self, encoder: nn.Module, head: Head, feature_info: FeatureInfo, num_features: int):
        super().__init__()
        self.encoder, self.head = encoder, head
        self.num_features = num_features
        object.__setattr__(self, "feature_info", feature_info)  # references to submodules, not children

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def new_head(self, num_classes: int) -> Head:
        """A fresh head for another task (transfer learning): a new output layer and, where the
        head's body has parameters of its own (VGG's fully connected layers), a re-initialised copy
        of it; a body without (a pool, or timm's `forward_head`, whose few parameters belong to the
        encoder) is shared."""
        body = self.head.body
        if any(True for _ in body.parameters()):
            body = copy.deepcopy(body)
            for m in body.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        return Head(body, nn.Linear(self.head.fc.in_features, num_classes), self.head.gap_linear)


def modules_of(types: tuple[type, ...], *parts: nn.Module) -> list[nn.Module]:
    """The modules of these types within `parts`, in definition order (what a builder that knows
    its own layers declares as its activations)."""
    return [m for part in parts for m in part.modules() if isinstance(m, types)]


ARCHITECTURES: Registry[Callable[..., SplitModel]] = Registry("architecture", "pipeline_lib/models")


def build_model(arch: str, num_classes: int, image_size: int, params) -> SplitModel:
    """`params` is the `model` section of params.yaml: width, batch_norm, init, weights."""
    model = ARCHITECTURES.get(arch)(num_classes=num_classes, image_size=image_size,
                                    width=params.width, batch_norm=params.batch_norm)
    if params.init == "pytorch":
        for m in model.modules():
            if m is not model and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    if params.weights:
        path = Path(params.weights)
        if not path.exists():
            raise FileNotFoundError(f"model.weights: {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state.get("model", state))
        except Exception as err:  # damaged file (zip, pickle, EOF) or another architecture's state
            first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            raise WeightsError(f"params.yaml key 'model.weights': {path} cannot start a {arch} ({first}); give a "
                               f"state dict of this architecture, or null") from None
    return model


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """The model in evaluation mode (batch norm on running statistics, dropout off), then back in
    the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def latent_shape(encoder: nn.Module, image_size: int) -> torch.Size:
    """(C, H, W) of the encoder's output, probed in evaluation mode (batch norm needs it at 1 x 1)."""
    with eval_mode(encoder), torch.no_grad():
        device = next(encoder.parameters()).device
        return encoder(torch.zeros(1, 3, image_size, image_size, device=device))[0].shape


def flat_size(encoder: nn.Module, image_size: int) -> int:
    return latent_shape(encoder, image_size).numel()


import_submodules(__name__)  # every module of this package registers its architectures
