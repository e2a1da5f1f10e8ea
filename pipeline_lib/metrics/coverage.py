"""Neuron coverage, after Pei et al. 2017 (DeepXplore, Sec. 4.1 / Definition 1).

Layers are the outputs of the activation modules that the architecture declares
(`model.feature_info.activations`, the model contract of `pipeline_lib.models`), each call counted
as a layer (torchvision's ResNet blocks call one ReLU twice). Three readings:

- `per_image` (the SGDrop paper's, Sec. 4.2 and Table 4): every C x H x W unit of a layer is a
  neuron, active on an image when its raw activation exceeds `threshold` (0 by default); the
  coverage is the fraction of units active on an image, averaged over the images.
- `unit`: the same units, covered when active on at least one image of the set (a union).
- `scaled` (DeepXplore's own code, their `utils.py`): per image, the layer's output is min-max
  scaled over the whole layer to [0, 1], then averaged over H x W; each channel is a neuron,
  covered when that mean exceeds `scaled_threshold` for at least one image (DeepXplore reports
  thresholds from 0 to 0.75). A channel then counts only when, for some image, it carries a
  large share of its layer's activity, which can differ between a net that spreads its activity
  and one that concentrates it. The default 0.25 was chosen on vanilla runs of the embedded
  benchmark, where it sits mid-range (0.1 covers every channel, 0.5 almost none).

Why the SGDrop paper's numbers are the per-image reading. DeepXplore's prose defines coverage
over a set ("the ratio of the number of unique activated neurons for all test inputs and the
total number of neurons in the DNN"), a union, while its formula, NCov(T, x) =
|{n | forall x in T, out(n, x) > t}| / |N|, reads literally as an intersection. The SGDrop paper
(Sec. 4.2) measures "on 10 random batches of 64 samples from the ImageNet test set", defines
coverage as "the proportion of activated neurons in a neural network, computed by assessing
whether the activation of each neuron exceeds a specified threshold during the inference of a
set of inputs", with "our neuron activation threshold at 0", and reports (Table 4) 0.40 / 0.38 /
0.39 globally and 0.09 / 0.13 / 0.58 at the last convolution (vanilla / dropout / SGDrop), "up to
4.5 times more activated neurons". For any set, union >= mean per image >= intersection. At
threshold 0 the union saturates (about 100% for every run and layer here, with 256 images of the
embedded benchmark), so it cannot give 0.09. The intersection would need 58% of SGDrop's
last-convolution units to fire on every one of 640 images of a thousand classes, class-blind
units, where the paper reads the gain as "mobilizing a more diverse set of neurons for
decision-making". The mean fraction of units above 0 per image is what "the proportion of
activated neurons ... during the inference" describes, and it is what `(activation > 0).float()
.mean()` over each batch gives, averaged over the 10 batches. So `*_per_image` is the reading to
set beside Table 4; `unit` and `scaled` stay beside it as the set readings.

Each reading is given over all layers pooled (`global_*`: every unit of every layer counts once,
as in |N|), per layer (`per_layer_*`), for the last convolution's post-activation map
(`last_conv_*`: the last call, inside the encoder, of the activation the architecture declares as
its last convolution's, `feature_info.last_conv`; for VGG it comes before the final max-pool, as
in the SGDrop paper; with none declared, the encoder's output), and for the encoder output (`encoder_output_*`: the latent map
the methods act on, after VGG's final max-pool).
"""
from __future__ import annotations

import torch

from pipeline_lib.models import eval_mode


def covered(out: torch.Tensor, threshold: float, scaled_threshold: float
            ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(units, scaled channels) covered by a batch of one layer's outputs (B, C, H, W) or (B, N),
    and the batch's sum over images of the fraction of units active on each."""
    out = out.detach().float()
    active = (out > threshold).flatten(1)
    units = active.any(0)
    flat = out.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(out)
    channel_mean = scaled.flatten(2).mean(2) if out.dim() > 2 else scaled
    return units, (channel_mean > scaled_threshold).any(0), float(active.double().mean(1).sum())


class _Layers:
    """Per layer: the union of covered neurons over batches, and the sum over images of the
    fraction of units active on each."""

    def __init__(self, threshold: float, scaled_threshold: float):
        self.thresholds = threshold, scaled_threshold
        self.units: list[torch.Tensor] = []
        self.scaled: list[torch.Tensor] = []
        self.active_sum: list[float] = []
        self.images = 0

    def add(self, index: int, out: torch.Tensor) -> None:
        units, scaled, active = covered(out, *self.thresholds)
        if index == 0:
            self.images += len(out)
        if index < len(self.units):
            self.units[index] |= units
            self.scaled[index] |= scaled
            self.active_sum[index] += active
        else:
            self.units.append(units)
            self.scaled.append(scaled)
            self.active_sum.append(active)

    def per_image(self) -> list[float]:
        return [a / self.images for a in self.active_sum]

    def fractions(self, prefix: str, layers: slice = slice(None)) -> dict[str, float]:
        sizes = [u.numel() for u in self.units[layers]]
        # pooled over the layers' units (|N| of Definition 1), not a mean of the layers' fractions
        pooled = sum(f * n for f, n in zip(self.per_image()[layers], sizes)) / sum(sizes)
        return {**{f"{prefix}_{kind}": float(torch.cat(masks[layers]).float().mean())
                   for kind, masks in (("unit", self.units), ("scaled", self.scaled))},
                f"{prefix}_per_image": pooled}


@torch.no_grad()
def neuron_coverage(model, batches, threshold: float = 0.0, scaled_threshold: float = 0.25) -> dict:
    layers, encoder_output = _Layers(threshold, scaled_threshold), _Layers(threshold, scaled_threshold)
    info = model.feature_info
    calls, last_conv, in_encoder = [0], [None], [True]

    def hook(module, inputs, output):
        if module is info.last_conv and in_encoder[0]:
            last_conv[0] = calls[0]
        layers.add(calls[0], output)
        calls[0] += 1

    activations = list({id(m): m for m in info.activations}.values())
    handles = [m.register_forward_hook(hook) for m in activations]
    try:
        with eval_mode(model):
            for x in batches:
                calls[0], in_encoder[0] = 0, True
                z = model.encoder(x)
                in_encoder[0] = False
                encoder_output.add(0, z)
                model.head(z)
    finally:
        for h in handles:
            h.remove()
    if info.last_conv is not None and last_conv[0] is None:
        raise ValueError("the declared last-convolution activation (feature_info.last_conv) never ran in the "
                         "encoder: the architecture's declaration is wrong")
    last = (layers.fractions("last_conv", slice(last_conv[0], last_conv[0] + 1)) if info.last_conv is not None
            else encoder_output.fractions("last_conv"))
    return {**layers.fractions("global"), **last,
            **encoder_output.fractions("encoder_output"),
            "per_layer_unit": [float(u.float().mean()) for u in layers.units],
            "per_layer_scaled": [float(c.float().mean()) for c in layers.scaled],
            "per_layer_per_image": layers.per_image(),
            "threshold": threshold, "scaled_threshold": scaled_threshold}
