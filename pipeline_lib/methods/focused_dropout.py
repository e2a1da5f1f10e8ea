"""FocusedDropout (Xie et al. 2020, "FocusedDropout for Convolutional Neural Network").

On a participating batch (probability `participation`, 0.1), per sample: the reference
channel is the argmax of global average pooling of z; the units whose reference-channel
activation exceeds r * its max, r ~ U(low, high), are kept and all others zeroed, the same
spatial mask for every channel, without rescaling (Sec. 4, Eqs. 4-5).

r ~ U(0.3, 0.6) by default: the paper's text (Sec. 4, "a random ratio between 0.3 and 0.6")
and its experiments (Sec. 5.1.1; Sec. 5.2.2 finds ratios above 0.3 drop far more units than
dropout) use it; its Algorithm 1 writes random(0.6, 0.9), which `low: 0.6, high: 0.9` gives.

Magnifying weight decay (MWD, Sec. 4 and 5.2.3): on exactly the participating batches the
weight decay is `weight_decay_factor` times the base decay. Our reading, so that it acts
whatever the optimizer: the extra (factor - 1) * base is applied after the optimizer's step as
a decoupled decay, p <- p - lr * (factor - 1) * base * p (the paper trains with SGD, where
this equals the coupled L2 term; under Adam a coupled term is rescaled by the adaptive step
and nearly vanishes). The base is the method's own `weight_decay`, or the optimizer's when it
is null; with a base of 0, MWD does nothing, as in the paper.

Defaults (`Params.defaults`): participation 0.1 (Sec. 4, and Sec. 5.2.1: best of 0 to 0.4), low
0.3 and high 0.6 (above). MWD: the paper names the magnified decay, best at 0.001 (Sec. 5.2.3,
Fig. 6c), not its base or factor; ours weight_decay_factor 10 over the optimizer's decay
(weight_decay null), which gives 0.001 over a base of 1e-4.
"""
from __future__ import annotations

import contextlib

import torch
from pydantic import Field, model_validator

from pipeline_lib.methods import METHODS, Method, MethodParams


def focused_mask(z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool: where the max-mean channel exceeds r times its max."""
    ref_channel = z.mean(dim=(2, 3)).argmax(1)
    ref = z[torch.arange(z.shape[0]), ref_channel]
    peak = ref.flatten(1).max(1).values
    return (ref > r[:, None, None] * peak[:, None, None])[:, None]


@METHODS.register("focused_dropout")
class FocusedDropout(Method):
    logs = ("dropped_fraction", "participating")

    class Params(MethodParams):
        participation: float = Field(ge=0, le=1)
        low: float = Field(ge=0, le=1)
        high: float = Field(ge=0, le=1)
        weight_decay_factor: float = Field(ge=1)
        weight_decay: float | None = Field(ge=0)  # MWD's base decay; null: the optimizer's

        defaults = dict(participation=0.1, low=0.3, high=0.6, weight_decay_factor=10.0,
                        weight_decay=None)

        @model_validator(mode="after")
        def _ordered(self):
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            return self

    participating = False

    def features(self, z, x, y, model):
        self.participating = bool(torch.rand(()) < self.params.participation)
        if not self.participating:
            self.last = {"dropped_fraction": 0.0, "participating": 0.0}
            return z
        r = torch.empty(z.shape[0], device=z.device).uniform_(self.params.low, self.params.high)
        keep = focused_mask(z.detach(), r)
        self.last = {"dropped_fraction": 1 - keep.float().mean(), "participating": 1.0}
        return z * keep.to(z.dtype)

    @contextlib.contextmanager
    def step_context(self, optimizer):
        yield
        if not self.participating:
            return
        with torch.no_grad():
            for g in optimizer.param_groups:
                base = g["weight_decay"] if self.params.weight_decay is None else self.params.weight_decay
                shrink = 1 - g["lr"] * (self.params.weight_decay_factor - 1) * base
                if shrink != 1:
                    torch._foreach_mul_(list(g["params"]), shrink)
