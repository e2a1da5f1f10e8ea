"""Architectures, registered by name, all split into `encoder` (image -> B x C x H x W latent map)
and `head` (latent map -> logits) so that methods can act on the latent map.

The architectures import torchvision inside their builders, as the DropBlock method and the JPEG
decoder do: its import costs about 2.5 s (it imports `torch._dynamo`), which the stages that only
validate params or draw the report (check, configure, shard, report) would pay for nothing.

A head is `body` (latent map -> penultimate vector) then `fc` (the output layer), so that
Excitation Dropout can act on the penultimate neurons and the closed-form attribution can tell
a global-average-pooling + Linear head (`gap_linear`) from any other.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from pipeline_lib.errors import ClearError
from pipeline_lib.registry import Registry


class WeightsError(ClearError):
    pass


class Head(nn.Module):
    def __init__(self, body: nn.Module, fc: nn.Linear, gap_linear: bool):
        super().__init__()
        self.body, self.fc, self.gap_linear = body, fc, gap_linear

    def forward(self, z: torch.Tensor, penultimate: Callable | None = None) -> torch.Tensor:
        h = self.body(z)
        if penultimate is not None:
            h = penultimate(h)
        return self.fc(h)


def gap_head(channels: int, num_classes: int) -> Head:
    return Head(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
                nn.Linear(channels, num_classes), gap_linear=True)


class SplitModel(nn.Module):
    def __init__(self, encoder: nn.Module, head: Head):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


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


from pipeline_lib.models import vgg, resnet, convnext  # noqa: E402,F401  (registration)
