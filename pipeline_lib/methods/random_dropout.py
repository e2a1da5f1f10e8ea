"""The random baselines on the latent map: Dropout, SpatialDropout (whole channels) and
DropBlock (Ghiasi et al. 2018, torchvision's `drop_block2d`), all with inverted scaling.

Defaults (`Params.defaults`):
- dropout p 0.5: Srivastava et al. (JMLR 2014), Appendix A.4, a retention probability of 0.5 to
  0.8 for hidden units, 0.5 the usual one (the SGDrop paper does not state its dropout's rate).
- spatial_dropout p 0.2: ours; Tompson et al. (CVPR 2015) is not among shared/papers, and none of
  the study's papers states a rate for it.
- dropblock p 0.1, block_size 7: Ghiasi et al. Sec. 4.1 (ResNet-50 on ImageNet: keep_prob 0.9,
  block_size 7).
"""
from __future__ import annotations

import torch.nn.functional as F
from pydantic import Field

from pipeline_lib.methods import METHODS, Method, MethodParams


class _RateParams(MethodParams):
    p: float = Field(ge=0, lt=1)


class _LatentDropout(Method):
    """Applies `drop(z, params)` to the latent map in training steps."""

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
    class Params(_RateParams):
        defaults = dict(p=0.5)

    drop = staticmethod(lambda z, p: F.dropout(z, p.p, training=True))


@METHODS.register("spatial_dropout")
class SpatialDropout(_LatentDropout):
    class Params(_RateParams):
        defaults = dict(p=0.2)

    drop = staticmethod(lambda z, p: F.dropout2d(z, p.p, training=True))


@METHODS.register("dropblock")
class DropBlock(_LatentDropout):
    class Params(_RateParams):
        block_size: int = Field(ge=1)

        defaults = dict(p=0.1, block_size=7)

    @staticmethod
    def block(block_size: int, shape) -> int:
        """torchvision takes odd blocks only: the largest odd one within the map."""
        side = min(shape[-2:])
        return min(block_size, side if side % 2 else side - 1)

    @classmethod
    def check_latent(cls, params, shape) -> list[str]:
        block = cls.block(params.block_size, shape)
        if block == params.block_size:
            return []
        return [f"dropblock.block_size {params.block_size} does not fit the {shape[1]}x{shape[2]} latent map: "
                f"blocks of {block} are dropped (the largest odd size within it)"]

    @staticmethod
    def drop(z, p):
        from torchvision.ops import drop_block2d  # not at the top: see pipeline_lib.models

        return drop_block2d(z, p.p, DropBlock.block(p.block_size, z.shape), training=True)
