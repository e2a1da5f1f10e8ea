"""CamDrop (Wang et al. 2019, "CamDrop: A New Explanation of Dropout and A Guided
Regularization Method for Deep Neural Networks", CIKM; the method as its slides give it).

(0) The class activation map for the true class y: at the latent map z (the GAP layer),
    J = sum_c alpha_c z_c with alpha the output layer's row W[y] for a GAP + Linear head (CAM;
    for another head, Grad-CAM's mean gradients, our reading). At a shallow layer X with
    C'' <= C' channels the slides' channel-grouped CAM weighs channel c by the sum of alpha over
    the c-th group of floor(C' / C'') consecutive latent channels: J = sum_c (sum_j alpha_j) X_c.
(1) Spatial candidates: the n = `spatial_top` * H * W positions of largest J.
(2) Channel candidates: the n' = `channel_fraction` * C channels of largest weight (C / 8,
    the slides' best of C/16 .. C/2).
(3) Seeds: units in both candidate sets where a Bernoulli(keep) draw fails, i.e. with
    probability 1 - keep (the slides' psi ~ Bernoulli(gamma), gamma the retaining rate).
(4) Each seed grows to a `block_size` square block in its channel (clipped at the border), and
    the mask M is normalised per sample, M * C H W / sum(M) (the slides' normaliser).

`shallow_layers`: indices into the encoder's stages (`model.feature_info.stages`, the model
contract's declaration: for VGG, its layers) whose outputs get CamDrop too, with the
channel-grouped CAM (the slides apply it at shallow layers as well as at the GAP layer; which
layers is per architecture, so the default is the latent map only). Shallow layers need the
class weights before the forward, hence a GAP + Linear head (`head.fc`, `head.gap_linear`). At
the latent map any head works (Grad-CAM's weights where it is not GAP + Linear).
`schedule: linear` lowers the keep probability from 1 to `keep_prob` over the epochs, as
DropBlock's schedule (Ghiasi et al. 2018, Sec. 3); stepping before its first `start_epoch` is an
error. A constant keep probability is set at construction.

Defaults (`Params.defaults`): channel_fraction 1/8, the slides' ablation ("Proportion of
dominant visual patterns": n' = C/8 beats C/16, C/4 and C/2). The slides give no value for the
others: ours keep_prob 0.9 (DropBlock's keep_prob, Ghiasi et al. Sec. 4.1), block_size 3,
spatial_top 0.25, schedule `constant`, shallow_layers [] (the latent map only).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from pipeline_lib.attribution.latent import latent_gradient
from pipeline_lib.methods import METHODS, Method, MethodNeeds, MethodParams, needs


def candidate_masks(z, weights, spatial_top: float, channel_fraction: float):
    """(B, H, W) spatial and (B, C) channel candidate sets, bool."""
    b, c, h, w = z.shape
    cam = (weights[:, :, None, None] * z).sum(1).flatten(1)
    n_pos = max(1, round(spatial_top * h * w))
    spatial = torch.zeros_like(cam, dtype=torch.bool)
    spatial.scatter_(1, torch.topk(cam, n_pos, dim=1).indices, True)
    channels = torch.zeros(b, c, dtype=torch.bool, device=z.device)
    channels.scatter_(1, torch.topk(weights, max(1, round(channel_fraction * c)), dim=1).indices, True)
    return spatial.view(b, h, w), channels


def grouped_weights(alpha: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C'') weights of a shallow layer's channels: the sums of alpha (B, C') over C''
    groups of floor(C' / C'') consecutive latent channels (the slides' channel-grouped CAM)."""
    group = alpha.shape[1] // channels
    if group == 0:
        raise ValueError(f"camdrop.shallow_layers: a layer has {channels} channels, more than the "
                         f"latent map's {alpha.shape[1]}; choose shallower-channel layers")
    return alpha[:, : group * channels].reshape(alpha.shape[0], channels, group).sum(2)


def camdrop_masks(z, weights, *, keep_prob: float, block_size: int, spatial_top: float,
                  channel_fraction: float):
    """(seeds, mask): seeds lie only in both candidate sets; blocks grow from seeds; the mask is
    normalised per sample to keep the sum of the map's units."""
    _, c, h, w = z.shape
    block = min(block_size, h, w)
    spatial, channels = candidate_masks(z, weights, spatial_top, channel_fraction)
    seeds = (torch.rand_like(z) >= keep_prob) & spatial[:, None] & channels[:, :, None, None]
    dropped = F.max_pool2d(seeds.float(), block, stride=1, padding=block // 2)[..., :h, :w]
    keep = 1 - dropped
    return seeds, keep * (c * h * w / keep.flatten(1).sum(1).clamp_min(1))[:, None, None, None]


@METHODS.register("camdrop")
class CamDrop(Method):
    class Params(MethodParams):
        keep_prob: float = Field(gt=0, le=1)
        block_size: int = Field(ge=1)
        spatial_top: float = Field(gt=0, le=1)
        channel_fraction: float = Field(gt=0, le=1)
        schedule: Literal["constant", "linear"]
        shallow_layers: list[int]

        defaults = dict(keep_prob=0.9, block_size=3, spatial_top=0.25, channel_fraction=0.125, schedule="constant",
                        shallow_layers=[])

    label_mask = True
    logs = ("dropped_fraction",)

    @classmethod
    def check_latent(cls, params, shape) -> list[str]:
        block = min(params.block_size, shape[1], shape[2])
        if block == params.block_size:
            return []
        return [f"camdrop.block_size {params.block_size} does not fit the {shape[1]}x{shape[2]} latent map: "
                f"blocks of {block} are dropped"]

    def __init__(self, params, *, model, **kw):
        super().__init__(params, model=model, **kw)
        self.y = None  # the batch's labels, from `input` to `features`, for the shallow-layer hooks
        if params.shallow_layers and not (getattr(model.head, "gap_linear", False)
                                          and isinstance(getattr(model.head, "fc", None), torch.nn.Linear)):
            raise MethodNeeds("camdrop.shallow_layers weighs shallow channels by the class weights of the output "
                              "layer, known before the forward only for a global-average-pooling + Linear head: "
                              "it needs model.head.fc (the nn.Linear output layer) and model.head.gap_linear = True "
                              "(pipeline_lib.models.gap_head builds such a head); or leave shallow_layers empty")
        stages = getattr(getattr(model, "feature_info", None), "stages", None)
        if params.shallow_layers and stages is None:
            raise MethodNeeds("camdrop.shallow_layers indexes the encoder's stages, which the model declares as "
                              "model.feature_info.stages (the model contract of pipeline_lib.models)")
        for i in params.shallow_layers:
            if not 0 <= i < len(stages) - 1:
                raise MethodNeeds(f"camdrop.shallow_layers: {i} is not a shallow stage of this model, whose "
                                  f"encoder has {len(stages)} stages (feature_info.stages); use 0 to {len(stages) - 2}")
            stages[i].register_forward_hook(self._shallow_hook(model))
        self.keep = None
        if params.schedule == "linear":
            needs(self.epochs, "camdrop", "epochs", "schedule: linear lowers the keep probability over them")
        else:
            self.start_epoch(0)

    def start_epoch(self, epoch):
        t = 1.0 if self.params.schedule == "constant" or self.epochs <= 1 else epoch / (self.epochs - 1)
        self.keep = 1 - t * (1 - self.params.keep_prob)

    def _drop(self, z, alpha):
        if self.keep is None:
            raise MethodNeeds("camdrop: call method.start_epoch(epoch) at the start of every epoch: schedule: linear "
                              "lowers its keep probability over the epochs")
        with torch.no_grad():
            _, mask = camdrop_masks(z.detach(), alpha, keep_prob=self.keep, block_size=self.params.block_size,
                                    spatial_top=self.params.spatial_top, channel_fraction=self.params.channel_fraction)
        return z * mask.to(z.dtype), mask

    def _shallow_hook(self, model):
        def hook(module, inputs, out):
            if self.y is None or not module.training:
                return out
            alpha = model.head.fc.weight[self.y].detach()
            return self._drop(out, grouped_weights(alpha, out.shape[1]).to(out.dtype))[0]
        return hook

    def input(self, x, y, model):
        self.y = y
        return x

    def features(self, z, x, y, model):
        self.y = None
        weights = latent_gradient(model.head, z, y).mean(dim=(2, 3))
        out, mask = self._drop(z, weights)
        self.last = {"dropped_fraction": (mask == 0).float().mean()}
        return out
