"""The attribution maps of the `attribute` stage, each (B, H, W) at the input resolution:

- `gradcam`: Grad-CAM at the encoder output, upsampled bilinearly;
- `grad_x_act`: SGDrop's map, ReLU(d s_y / d z) * z summed over channels, upsampled;
- `input_grad`: |d s_y / d x| summed over colour channels;
- `integrated_gradients`: captum's IntegratedGradients from a zero (mean) baseline, |.| summed
  over channels;
- `lrp`: zennit's epsilon/flat LRP relevance summed over channels (signed).
"""
from __future__ import annotations

import torch

from pipeline_lib.attribution import ATTRIBUTIONS
from pipeline_lib.attribution.latent import grad_x_act, gradcam, input_gradient, upsample


@ATTRIBUTIONS.register("gradcam")
def gradcam_map(model, x, target, **_):
    with torch.no_grad():
        z = model.encoder(x)
    return upsample(gradcam(model.head, z, target), x.shape[-1])


@ATTRIBUTIONS.register("grad_x_act")
def grad_x_act_map(model, x, target, **_):
    with torch.no_grad():
        z = model.encoder(x)
    return upsample(grad_x_act(model.head, z, target).sum(1), x.shape[-1])


@ATTRIBUTIONS.register("input_grad")
def input_grad_map(model, x, target, **_):
    return input_gradient(model, x, target).abs().sum(1)


@ATTRIBUTIONS.register("integrated_gradients")
def integrated_gradients_map(model, x, target, ig_steps: int = 16, **_):
    from captum.attr import IntegratedGradients  # imported here: it costs every stage a second

    ig = IntegratedGradients(model)
    with torch.enable_grad():
        attr = ig.attribute(x.detach(), baselines=torch.zeros_like(x), target=target, n_steps=ig_steps,
                            internal_batch_size=x.shape[0])
    return attr.abs().sum(1).detach()


@ATTRIBUTIONS.register("lrp")
def lrp_map(model, x, target, **_):
    from pipeline_lib.attribution.lrp import lrp_relevance

    return lrp_relevance(model, x, target).sum(1).detach()
