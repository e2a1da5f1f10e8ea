"""Attribution maps behind one verb, as in captum: `attribute(name, model, x, target)` returns
(B, H, W) maps at the input resolution for every registered method."""
from __future__ import annotations

from typing import Callable

import torch

from pipeline_lib.registry import Registry

ATTRIBUTIONS: Registry[Callable[..., torch.Tensor]] = Registry("attribution", "pipeline_lib/attribution")


def attribute(name: str, model, x: torch.Tensor, target: torch.Tensor, **kw) -> torch.Tensor:
    return ATTRIBUTIONS.get(name)(model, x, target, **kw)


from pipeline_lib.attribution import maps  # noqa: E402,F401  (registration)
