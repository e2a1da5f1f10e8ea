"""Regularisation methods, registered by name, all behind one interface (`Method`).

The training loop calls the same hooks for every method, in this order, and has no
method-specific branch:

    method.start_epoch(epoch)                             # each epoch's rates (SGDrop's rho, CamDrop's keep)
    x = method.input(x, y, model)                         # input occlusion (RelDrop)
    z = method.features(model.encoder(x), x, y, model)    # latent-map dropout (SGDrop, ...)
    h = method.penultimate(model.head.pre_logits(z), y, model)  # penultimate neurons (Excitation Dropout)
    logits = model.head.fc(h)
    loss = CE(logits, y) + method.extra_loss(...)         # extra terms (saliency training, SGQN)
    with method.step_context(optimizer): optimizer.step() # optimizer tweaks (FocusedDropout)
    method.after_step(model)                              # EMA update (SGDrop)

Hooks run only in training steps: evaluation calls `model(x)` and nothing is dropped.

Outside the pipeline, in a loop of one's own, `build_method("sgdrop", model, rho=0.05)` builds a
method with its paper's values (`Params.defaults`, each with its source) and the keywords given
over them; examples/own_loop.py calls the hooks above itself. In the pipeline a model follows the
model contract of `pipeline_lib.models` (encoder, head with pre_logits and fc, feature_info); in a
loop of one's own, a model is any module with an `encoder` (image -> B x C x H x W latent map)
and a `head` (latent map -> logits) whose forward is `head(encoder(x))`, and a method that needs
more of it (Excitation Dropout's output layer, CamDrop's class weights at shallow layers) says so
when it is built (`MethodNeeds`).
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from pipeline_lib.errors import ClearError
from pipeline_lib.strict import Strict
from pipeline_lib.registry import Registry, import_submodules


class MethodNeeds(ClearError, ValueError):
    """A method built without something it acts on (a setting, a part of the model, a call to
    `start_epoch`): the message says what to give."""


class MethodParams(Strict):
    """A method's settings. Every field is required: params.yaml stays the one home of the values
    the pipeline runs with, and a key left out there is named, never filled in. `defaults` holds the
    values of the method's paper for use outside the pipeline (`with_defaults`, `build_method` by
    name); the method's module docstring gives the source of each. tests/test_method_library.py
    checks that params.yaml agrees with them, or lists why it differs."""

    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def with_defaults(cls, **overrides: Any) -> "MethodParams":
        return cls(**{**cls.defaults, **overrides})


def needs(value: Any, method: str, keyword: str, why: str) -> Any:
    """`value`, or a `MethodNeeds` naming the keyword of `build_method` that gives it."""
    if value is None:
        raise MethodNeeds(f"{method} needs {keyword}= ({why}): give it to build_method")
    return value


class Method:
    """The base method: no regularisation (`vanilla`)."""

    class Params(MethodParams):
        pass

    shared_params: tuple[str, ...] = ()  # top-level params.yaml keys this method reads
    # The per-step statistics the method records in `self.last` (numbers or device tensors, never
    # read back to the host in the step); the loop logs each one's epoch mean, and nothing else.
    logs: tuple[str, ...] = ()
    # Whether `features` masks the latent map by the label: such a method gets the per-epoch
    # label-leakage diagnostic (pipeline_lib.metrics.leakage), in training and at evaluation.
    label_mask: bool = False

    @classmethod
    def check_latent(cls, params: "Method.Params", shape: tuple[int, int, int]) -> list[str]:
        """What these params come to on a latent map of `shape` (C, H, W), said before training:
        warnings where the method adapts or does nothing (`stages.check` prints them); a
        `MethodNeeds` where it cannot run."""
        return []

    @classmethod
    def unused_params(cls, params: "Method.Params") -> set[str]:
        """Settings that these params make irrelevant: left out of the run's config, so that
        changing them retrains nothing."""
        return set()

    def __init__(self, params: "Method.Params", *, model: nn.Module, num_classes: int | None = None,
                 image_size: int | None = None, epochs: int | None = None):
        self.params = params
        self.epochs, self.num_classes = epochs, num_classes
        self.last: dict[str, float | torch.Tensor] = {}  # this step's values of `logs`
        self.extra_modules = nn.ModuleDict()  # trained with the model (SGQN's auxiliary head)

    def to(self, device: torch.device) -> "Method":
        self.extra_modules.to(device)
        return self

    def start_epoch(self, epoch: int) -> None:
        pass

    def input(self, x: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return x

    def features(self, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return z

    def penultimate(self, h: torch.Tensor, y: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return h

    def extra_loss(self, x, y, model, logits, z) -> torch.Tensor | None:
        return None

    @contextlib.contextmanager
    def step_context(self, optimizer: torch.optim.Optimizer) -> Iterator[None]:
        yield

    def after_step(self, model: nn.Module) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"extra_modules": self.extra_modules.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.extra_modules.load_state_dict(state["extra_modules"])


@contextlib.contextmanager
def frozen_norm_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave batch norm's running statistics as they were (they still
    normalise with the batch's own statistics in training mode): a method's extra pass on masked
    or occluded inputs must not skew the statistics evaluation uses. The passes update copies,
    swapped out afterwards: autograd keeps the tensors batch norm saw, so they are never
    written back in place."""
    names = ("running_mean", "running_var", "num_batches_tracked")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [[getattr(m, n) for n in names] for m in norms]
    for m in norms:
        for n in names:
            setattr(m, n, getattr(m, n).clone())
    try:
        yield
    finally:
        for m, tensors in zip(norms, saved):
            for n, t in zip(names, tensors):
                setattr(m, n, t)


METHODS: Registry[type[Method]] = Registry("method", "pipeline_lib/methods")
METHODS.register("vanilla")(Method)


def build_method(method, model: nn.Module, *, num_classes: int | None = None, image_size: int | None = None,
                 epochs: int | None = None, **params: Any) -> Method:
    """The method for `model`.

    `method` is a registered name, whose params are its paper's values with `params` over them
    (`build_method("sgdrop", model, rho=0.05)`), or the pipeline's resolved `MethodSpec` (type and
    every param, from params.yaml), which takes no `params`. num_classes, image_size and epochs are
    needed by some methods only (SGDrop's curriculum spreads rho over the epochs, SGQN sizes its
    auxiliary head on the encoder's output); one missing is named when the method is built."""
    if isinstance(method, str):
        cls = METHODS.get(method)
        settings = cls.Params.with_defaults(**params)
    else:
        if params:
            raise TypeError(f"build_method: a MethodSpec holds every param of {method.name!r}; "
                            f"{', '.join(params)} given besides")
        cls = METHODS.get(method.type)
        settings = cls.Params(**method.params)
    return cls(settings, model=model, num_classes=num_classes, image_size=image_size, epochs=epochs)


import_submodules(__name__)  # every module of this package registers its methods
