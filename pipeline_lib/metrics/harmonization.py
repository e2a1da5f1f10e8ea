"""Harmonization with human importance maps, after Fel et al. 2022 ("Harmonizing the object
recognition strategies of deep neural networks with humans").

Per image: the Spearman rank correlation between the model's saliency map and the human map,
both at the input resolution, the human map blurred with a Gaussian (their ClickMe code blurs
with sigma 10 at 224 pixels; we scale sigma to the image size). The score is the mean over
images divided by the human ceiling 0.65753. Also the Dice and IoU of the top-10% regions.
Where ClickMe is not available, the human map is a ground-truth proxy (object masks for the
synthetic set, box masks for Imagenette); the report says which.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage, stats

from pipeline_lib.metrics.localization import pixel_box

HUMAN_CEILING = 0.65753


def blur(human: np.ndarray, sigma_at_224: float) -> np.ndarray:
    sigma = sigma_at_224 * human.shape[-1] / 224
    return ndimage.gaussian_filter(human.astype(np.float64), sigma) if sigma > 0 else human.astype(np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps: Pearson on average ranks (ties share their mean rank)."""
    ra, rb = stats.rankdata(a.ravel()), stats.rankdata(b.ravel())
    if ra.std() == 0 or rb.std() == 0:
        return 0.0  # a constant map carries no ranking: no agreement
    return float(np.corrcoef(ra, rb)[0, 1])


def top_region(m: np.ndarray, fraction: float) -> np.ndarray:
    k = max(1, round(fraction * m.size))
    region = np.zeros(m.size, dtype=bool)
    region[np.argsort(-m.ravel(), kind="stable")[:k]] = True
    return region.reshape(m.shape)


def blurred(human: torch.Tensor, sigma_at_224: float) -> np.ndarray:
    """(N, H, W) human maps blurred as harmonization compares them; compute once, reuse per method."""
    return np.stack([blur(h, sigma_at_224) for h in human.float().cpu().numpy()])


def harmonization(saliency: torch.Tensor, human: torch.Tensor | np.ndarray, *, sigma_at_224: float = 10.0,
                  top_fraction: float = 0.1, already_blurred: bool = False) -> dict[str, float]:
    """Maps are (N, H, W) at the same resolution."""
    rhos, dices, ious = [], [], []
    human = human if already_blurred else blurred(torch.as_tensor(human), sigma_at_224)
    for s, h in zip(saliency.float().cpu().numpy(), human):
        rhos.append(spearman(s, h))
        a, b = top_region(s, top_fraction), top_region(h, top_fraction)
        inter = (a & b).sum()
        dices.append(2 * inter / (a.sum() + b.sum()))
        ious.append(inter / (a | b).sum())
    return {"spearman": float(np.mean(rhos)), "score": float(np.mean(rhos) / HUMAN_CEILING),
            "dice_top": float(np.mean(dices)), "iou_top": float(np.mean(ious)), "n": len(rhos)}


def box_masks(boxes: list, size: int) -> torch.Tensor:
    """(N, size, size) masks of the union of each image's boxes (the Imagenette proxy)."""
    masks = torch.zeros(len(boxes), size, size)
    for i, image_boxes in enumerate(boxes):
        for box in image_boxes or []:
            x1, y1, x2, y2 = pixel_box(box, size, size)  # the pixels the hit ratio counts
            masks[i, y1:y2, x1:x2] = 1
    return masks
