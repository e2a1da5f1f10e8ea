"""Neuron coverage, after Pei et al. 2017 (DeepXplore).

Over the given batches, a neuron is covered when its activation exceeds the threshold for at
least one image. Layers are the outputs of every activation module (ReLU, GELU), each call
counted as a layer (torchvision's ResNet blocks call one ReLU twice). Two granularities:
- unit: every C x H x W unit of a layer is a neuron;
- channel (DeepXplore's own): per image, the layer's output is min-max scaled over the whole
  layer, then averaged over H x W; each channel is a neuron.
Reported globally (all layers pooled) and for the last conv layer (the encoder output).
The report's table uses the unit level, the SGDrop paper's reading.
"""
from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = (nn.ReLU, nn.GELU)


def covered(out: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(units, channels) covered by a batch of one layer's outputs (B, C, H, W) or (B, N)."""
    out = out.detach().float()
    units = (out > threshold).any(0).flatten()
    flat = out.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(out)
    channel_mean = scaled.flatten(2).mean(2) if out.dim() > 2 else scaled
    return units, (channel_mean > threshold).any(0)


class _Union:
    """Per-layer union of covered neurons over batches."""

    def __init__(self):
        self.units: list[torch.Tensor] = []
        self.channels: list[torch.Tensor] = []

    def add(self, index: int, out: torch.Tensor, threshold: float) -> None:
        units, channels = covered(out, threshold)
        if index < len(self.units):
            self.units[index] |= units
            self.channels[index] |= channels
        else:
            self.units.append(units)
            self.channels.append(channels)

    def fractions(self) -> tuple[float, float]:
        return float(torch.cat(self.units).float().mean()), float(torch.cat(self.channels).float().mean())

    def per_layer(self) -> list[float]:
        return [float(u.float().mean()) for u in self.units]


@torch.no_grad()
def neuron_coverage(model, batches, threshold: float = 0.0) -> dict[str, float]:
    layers, last = _Union(), _Union()
    calls = [0]

    def hook(module, inputs, output):
        layers.add(calls[0], output, threshold)
        calls[0] += 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            calls[0] = 0
            z = model.encoder(x)
            last.add(0, z, threshold)
            model.head(z)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    global_unit, global_channel = layers.fractions()
    last_unit, last_channel = last.fractions()
    return {"global_unit": global_unit, "global_channel": global_channel,
            "last_conv_unit": last_unit, "last_conv_channel": last_channel,
            "per_layer_unit": layers.per_layer()}
