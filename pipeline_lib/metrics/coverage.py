"""Neuron coverage, after Pei et al. 2017 (DeepXplore, Sec. 4.1 / Definition 1).

Over the given batches, a neuron is covered when its activation exceeds a threshold for at
least one image. Layers are the outputs of every activation module (ReLU, GELU), each call
counted as a layer (torchvision's ResNet blocks call one ReLU twice). Two readings:

- `unit` (the SGDrop paper's, Sec. 4.2 and Table 4): every C x H x W unit of a layer is a
  neuron, covered when its raw activation exceeds `threshold` (0 by default). At the embedded
  benchmark's size nearly every unit fires for some image, so this reading is saturated (about
  100% for every method) and cannot tell methods apart.
- `scaled` (DeepXplore's own, their `utils.py`): per image, the layer's output is min-max
  scaled over the whole layer to [0, 1], then averaged over H x W; each channel is a neuron,
  covered when that mean exceeds `scaled_threshold` (DeepXplore reports thresholds from 0 to
  0.75). A channel then counts only when, for some image, it carries a large share of its
  layer's activity, which can differ between a net that spreads its activity and one that
  concentrates it. The default 0.25 was chosen on vanilla runs of the embedded benchmark, where
  it sits mid-range (0.1 covers every channel, 0.5 almost none).

Each reading is given over all layers pooled (`global_*`), per layer, for the last convolution's
post-activation map (`last_conv_*`: the last activation call inside the encoder, which for VGG
comes before the final max-pool, as in the SGDrop paper), and for the encoder output
(`encoder_output_*`: the latent map the methods act on, after VGG's final max-pool).
"""
from __future__ import annotations

import torch
from torch import nn

from pipeline_lib.models import eval_mode

ACTIVATIONS = (nn.ReLU, nn.GELU)


def covered(out: torch.Tensor, threshold: float, scaled_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(units, scaled channels) covered by a batch of one layer's outputs (B, C, H, W) or (B, N)."""
    out = out.detach().float()
    units = (out > threshold).any(0).flatten()
    flat = out.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(out)
    channel_mean = scaled.flatten(2).mean(2) if out.dim() > 2 else scaled
    return units, (channel_mean > scaled_threshold).any(0)


class _Union:
    """Per-layer union of covered neurons over batches."""

    def __init__(self, threshold: float, scaled_threshold: float):
        self.thresholds = threshold, scaled_threshold
        self.units: list[torch.Tensor] = []
        self.scaled: list[torch.Tensor] = []

    def add(self, index: int, out: torch.Tensor) -> None:
        units, scaled = covered(out, *self.thresholds)
        if index < len(self.units):
            self.units[index] |= units
            self.scaled[index] |= scaled
        else:
            self.units.append(units)
            self.scaled.append(scaled)

    def fractions(self, prefix: str, layers: slice = slice(None)) -> dict[str, float]:
        return {f"{prefix}_{kind}": float(torch.cat(masks[layers]).float().mean())
                for kind, masks in (("unit", self.units), ("scaled", self.scaled))}


@torch.no_grad()
def neuron_coverage(model, batches, threshold: float = 0.0, scaled_threshold: float = 0.25) -> dict:
    layers, encoder_output = _Union(threshold, scaled_threshold), _Union(threshold, scaled_threshold)
    calls, in_encoder = [0], [0]

    def hook(module, inputs, output):
        layers.add(calls[0], output)
        calls[0] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with eval_mode(model):
            for x in batches:
                calls[0] = 0
                z = model.encoder(x)
                in_encoder[0] = calls[0]
                encoder_output.add(0, z)
                model.head(z)
    finally:
        for h in handles:
            h.remove()
    if in_encoder[0] == 0:
        raise ValueError("the encoder has no activation module (ReLU, GELU): no last conv layer to cover")
    last = slice(in_encoder[0] - 1, in_encoder[0])
    return {**layers.fractions("global"), **layers.fractions("last_conv", last),
            **encoder_output.fractions("encoder_output"),
            "per_layer_unit": [float(u.float().mean()) for u in layers.units],
            "per_layer_scaled": [float(c.float().mean()) for c in layers.scaled],
            "threshold": threshold, "scaled_threshold": scaled_threshold}
