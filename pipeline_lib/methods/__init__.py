"""Regularisation methods, registered by name, all behind one interface (`Method`).

The training loop calls the same hooks for every method, in this order, and has no
method-specific branch:

    x = method.input(x, y, model)                         # input occlusion (RelDrop)
    z = method.features(model.encoder(x), x, y, model)    # latent-map dropout (SGDrop, ...)
    logits = model.head(z, penultimate=...)               # penultimate neurons (Excitation Dropout)
    loss = CE(logits, y) + method.extra_loss(...)         # extra terms (saliency training, SGQN)
    with method.step_context(optimizer): optimizer.step() # optimizer tweaks (FocusedDropout)
    method.after_step(model)                              # EMA update (SGDrop)

Hooks run only in training steps: evaluation calls `model(x)` and nothing is dropped.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from pipeline_lib.strict import Strict
from pipeline_lib.registry import Registry


class Method:
    """The base method: no regularisation (`vanilla`)."""

    class Params(Strict):
        pass

    shared_params: tuple[str, ...] = ()  # top-level params.yaml keys this method reads
    # The per-step statistics the method records in `self.last` (numbers or device tensors, never
    # read back to the host in the step); the loop logs each one's epoch mean, and nothing else.
    logs: tuple[str, ...] = ()
    # Whether `features` masks the latent map by the label: such a method gets the per-epoch
    # label-leakage diagnostic (pipeline_lib.metrics.leakage), in training and at evaluation.
    label_mask: bool = False

    @classmethod
    def unused_params(cls, params: "Method.Params") -> set[str]:
        """Settings that these params make irrelevant: left out of the run's config, so that
        changing them retrains nothing."""
        return set()

    def __init__(self, params: "Method.Params", *, model: nn.Module, num_classes: int,
                 image_size: int, epochs: int):
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


def build_method(spec, *, model, num_classes: int, image_size: int, epochs: int) -> Method:
    """`spec` is a resolved `MethodSpec` (type and validated params) from the run config."""
    cls = METHODS.get(spec.type)
    return cls(cls.Params(**spec.params), model=model, num_classes=num_classes,
               image_size=image_size, epochs=epochs)


from pipeline_lib.methods import (  # noqa: E402,F401  (registration)
    random_dropout, sgdrop, excitation_dropout, saliency_training, sgqn, reldrop, camdrop,
    focused_dropout,
)
