"""The random baselines on the latent map: Dropout, SpatialDropout (whole channels) and
DropBlock (Ghiasi et al. 2018, torchvision's `drop_block2d`), all with inverted scaling."""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field
from torchvision.ops import drop_block2d

from pipeline_lib.config import Strict
from pipeline_lib.methods import METHODS, Method


class _RateParams(Strict):
    p: float = Field(0.5, ge=0, lt=1)


@METHODS.register("dropout")
class Dropout(Method):
    Params = _RateParams

    def features(self, z, x, y, model):
        self.last = {"dropped_fraction": self.p.p}
        return F.dropout(z, self.p.p, training=True)


@METHODS.register("spatial_dropout")
class SpatialDropout(Method):
    Params = _RateParams

    def features(self, z, x, y, model):
        self.last = {"dropped_fraction": self.p.p}
        return F.dropout2d(z, self.p.p, training=True)


@METHODS.register("dropblock")
class DropBlock(Method):
    class Params(Strict):
        p: float = Field(0.1, ge=0, lt=1)
        block_size: int = Field(3, ge=1)

    def features(self, z, x, y, model):
        self.last = {"dropped_fraction": self.p.p}
        return drop_block2d(z, self.p.p, min(self.p.block_size, z.shape[-1]), training=True)
