"""The random baselines on the latent map: Dropout, SpatialDropout (whole channels) and
DropBlock (Ghiasi et al. 2018, torchvision's `drop_block2d`), all with inverted scaling."""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from pipeline_lib.strict import Strict
from pipeline_lib.methods import METHODS, Method


class _RateParams(Strict):
    p: float = Field(ge=0, lt=1)


class _LatentDropout(Method):
    """Applies `drop(z, params)` to the latent map in training steps."""

    Params = _RateParams
    logs = ("dropped_fraction",)

    @staticmethod
    def drop(z, params):
        raise NotImplementedError

    def features(self, z, x, y, model):
        out = self.drop(z, self.params)
        # the rate realised, not the nominal p: the mask is independent of z, so the share of the
        # nonzero features it zeroed estimates it (DropBlock's rate depends on the map's size)
        live = z != 0
        self.last = {"dropped_fraction": (live & (out == 0)).sum() / live.sum().clamp_min(1)}
        return out


@METHODS.register("dropout")
class Dropout(_LatentDropout):
    drop = staticmethod(lambda z, p: F.dropout(z, p.p, training=True))


@METHODS.register("spatial_dropout")
class SpatialDropout(_LatentDropout):
    drop = staticmethod(lambda z, p: F.dropout2d(z, p.p, training=True))


@METHODS.register("dropblock")
class DropBlock(_LatentDropout):
    class Params(Strict):
        p: float = Field(ge=0, lt=1)
        block_size: int = Field(ge=1)

    @staticmethod
    def drop(z, p):
        from torchvision.ops import drop_block2d  # not at the top: see pipeline_lib.models

        return drop_block2d(z, p.p, min(p.block_size, z.shape[-1]), training=True)
