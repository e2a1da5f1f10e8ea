"""CamDrop (Wang et al. 2019, "CamDrop: A New Explanation of Dropout and A Guided
Regularization Method for Deep Neural Networks", CIKM).

At the latent map z, the class weights w_c of the true class are the output layer's row W[y]
for a GAP + Linear head (CAM), else Grad-CAM's mean gradients (our reading for other heads).
CAM = ReLU(sum_c w_c z_c). Candidates: the `spatial_top` fraction of positions with the
highest CAM, and the top C/8 channels by w_c (`channel_fraction`). DropBlock seeds are drawn
with gamma = (1 - keep) / b^2 * HW / ((H - b + 1)(W - b + 1)) but kept only where a unit lies
in both candidate sets; each seed expands to a b x b block in its own channel. Survivors are
rescaled by numel / kept. `schedule: linear` lowers the keep probability from 1 to `keep_prob`
over the epochs.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from pipeline_lib.attribution.latent import latent_gradient
from pipeline_lib.config import Strict
from pipeline_lib.methods import METHODS, Method


def candidate_masks(z, weights, spatial_top: float, channel_fraction: float):
    """(B, H, W) spatial and (B, C) channel candidate sets, bool."""
    b, c, h, w = z.shape
    cam = (weights[:, :, None, None] * z).sum(1).clamp_min(0).flatten(1)
    n_pos = max(1, round(spatial_top * h * w))
    spatial = torch.zeros_like(cam, dtype=torch.bool)
    spatial.scatter_(1, torch.topk(cam, n_pos, dim=1).indices, True)
    channels = torch.zeros(b, c, dtype=torch.bool, device=z.device)
    channels.scatter_(1, torch.topk(weights, max(1, round(channel_fraction * c)), dim=1).indices, True)
    return spatial.view(b, h, w), channels


def camdrop_masks(z, weights, *, keep_prob: float, block_size: int, spatial_top: float,
                  channel_fraction: float):
    """(seeds, keep mask): seeds lie only in both candidate sets; blocks grow from seeds."""
    _, _, h, w = z.shape
    block = min(block_size, h, w)
    spatial, channels = candidate_masks(z, weights, spatial_top, channel_fraction)
    gamma = (1 - keep_prob) / block**2 * (h * w) / ((h - block + 1) * (w - block + 1))
    seeds = (torch.rand_like(z) < gamma) & spatial[:, None] & channels[:, :, None, None]
    dropped = F.max_pool2d(seeds.float(), block, stride=1, padding=block // 2)[..., :h, :w]
    return seeds, 1 - dropped


@METHODS.register("camdrop")
class CamDrop(Method):
    class Params(Strict):
        keep_prob: float = Field(0.9, gt=0, le=1)
        block_size: int = Field(3, ge=1)
        spatial_top: float = Field(0.25, gt=0, le=1)
        channel_fraction: float = Field(0.125, gt=0, le=1)
        schedule: Literal["constant", "linear"] = "constant"

    keep = 1.0
    label_mask = True

    def start_epoch(self, epoch):
        t = 1.0 if self.p.schedule == "constant" or self.epochs <= 1 else epoch / (self.epochs - 1)
        self.keep = 1 - t * (1 - self.p.keep_prob)

    def features(self, z, x, y, model):
        weights = latent_gradient(model.head, z, y).mean(dim=(2, 3))
        with torch.no_grad():
            _, mask = camdrop_masks(z.detach(), weights, keep_prob=self.keep, block_size=self.p.block_size,
                                    spatial_top=self.p.spatial_top, channel_fraction=self.p.channel_fraction)
            kept = mask.sum().clamp_min(1)
        self.last = {"dropped_fraction": float(1 - mask.mean())}
        return z * (mask * (mask.numel() / kept)).to(z.dtype)
