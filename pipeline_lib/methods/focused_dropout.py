"""FocusedDropout (Xie et al. 2020, "FocusedDropout for Convolutional Neural Network").

On a participating batch (probability `participation`, 0.1), per sample: the reference
channel is the argmax of global average pooling of z; the units whose reference-channel
activation exceeds r * its max, r ~ U(low, high), are kept and all others zeroed, the same
spatial mask for every channel, without rescaling. On exactly those batches the weight decay
is multiplied by `weight_decay_factor`.

The paper's text gives r ~ U(0.3, 0.6) but its Algorithm 1 uses U(0.6, 0.9); we follow the
algorithm by default (0.6-0.9), and both are a params change away.
"""
from __future__ import annotations

import contextlib

import torch
from pydantic import Field, model_validator

from pipeline_lib.strict import Strict
from pipeline_lib.methods import METHODS, Method


def focused_mask(z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool: where the max-mean channel exceeds r times its max."""
    ref_channel = z.mean(dim=(2, 3)).argmax(1)
    ref = z[torch.arange(z.shape[0]), ref_channel]
    peak = ref.flatten(1).max(1).values
    return (ref > r[:, None, None] * peak[:, None, None])[:, None]


@METHODS.register("focused_dropout")
class FocusedDropout(Method):
    class Params(Strict):
        participation: float = Field(0.1, ge=0, le=1)
        low: float = Field(0.6, ge=0, le=1)
        high: float = Field(0.9, ge=0, le=1)
        weight_decay_factor: float = Field(10.0, ge=1)

        @model_validator(mode="after")
        def _ordered(self):
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            return self

    participating = False

    def features(self, z, x, y, model):
        self.participating = bool(torch.rand(()) < self.p.participation)
        if not self.participating:
            self.last = {"dropped_fraction": 0.0, "participating": 0.0}
            return z
        r = torch.empty(z.shape[0], device=z.device).uniform_(self.p.low, self.p.high)
        keep = focused_mask(z.detach(), r)
        self.last = {"dropped_fraction": float(1 - keep.float().mean()), "participating": 1.0}
        return z * keep.to(z.dtype)

    @contextlib.contextmanager
    def step_context(self, optimizer):
        if not self.participating:
            yield
            return
        saved = [g["weight_decay"] for g in optimizer.param_groups]
        for g in optimizer.param_groups:
            g["weight_decay"] *= self.p.weight_decay_factor
        try:
            yield
        finally:
            for g, wd in zip(optimizer.param_groups, saved):
                g["weight_decay"] = wd
