"""Gradient attributions, the hot path of the methods and of the probe batch.

- `latent_gradient`: d s_y / d z by autograd through the head only (the encoder is not
  differentiated), or in closed form when the head is GAP + Linear: W[y, c] / (H W).
- `grad_x_act`: SGDrop's attribution A = ReLU(d s_y / d z) * z.
- `gradcam`: Grad-CAM at z (Selvaraju et al.): ReLU(sum_c mean_hw(d s_y / d z_c) z_c).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def latent_gradient(head: nn.Module, z: torch.Tensor, y: torch.Tensor, closed_form: bool = True) -> torch.Tensor:
    z = z.detach()
    if closed_form and getattr(head, "gap_linear", False):
        h, w = z.shape[-2:]
        weights = head.fc.weight[y].detach().to(z.dtype) / (h * w)
        return weights[:, :, None, None].expand_as(z)
    with torch.enable_grad():
        z = z.to(torch.float32, copy=True).requires_grad_(True)  # a copy: z may be an inference tensor
        score = head(z).float().gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(score, z)
    return grad


def grad_x_act(head: nn.Module, z: torch.Tensor, y: torch.Tensor, closed_form: bool = True) -> torch.Tensor:
    return latent_gradient(head, z, y, closed_form).clamp_min(0) * z.detach()


def gradcam(head: nn.Module, z: torch.Tensor, y: torch.Tensor, closed_form: bool = True) -> torch.Tensor:
    """(B, H, W) Grad-CAM maps at the latent resolution."""
    weights = latent_gradient(head, z, y, closed_form).mean(dim=(2, 3), keepdim=True)
    return (weights * z.detach()).sum(1).clamp_min(0)


def input_gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) gradient of the true-class score with respect to the input."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        score = model(x).gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) maps to (B, size, size), bilinear, as Grad-CAM is shown over the input."""
    return F.interpolate(maps[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0]
