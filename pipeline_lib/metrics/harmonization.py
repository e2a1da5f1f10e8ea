"""Harmonization with human importance maps, after Fel et al. 2022 ("Harmonizing the object
recognition strategies of deep neural networks with humans").

Per image: the Spearman rank correlation between the model's saliency map and the human map,
both at the input resolution. The human map is processed as in their ClickMe evaluation code
(`parse_clickme_prototype`): resized to 64 x 64 (bilinear), blurred with a normalised 10 x 10
Gaussian kernel of sigma 10 (TensorFlow's 'SAME' zero padding: 4 pixels before, 5 after), and
resized back (bilinear, half-pixel centres as `tf.image.resize`). The score is the mean over
images divided by the human ceiling 0.65753. Also the Dice and IoU of the top-10% regions.

A constant saliency map (a dead network, or an attribution that is zero everywhere) ranks
nothing: its Spearman correlation is taken as 0 and counted in the mean, rather than NaN and
left out, so that a method cannot raise its score by producing empty maps. A saliency map with a
non-finite value is another matter: it has no ranking to compare (pandas ranks NaN as NaN, and
the mean over images turns NaN), so it is left out and counted (`non_finite`), as the area and
hit ratios do (`pipeline_lib.metrics.localization`); with no finite map, the scores are None.
Where ClickMe is not available, the human map is a ground-truth proxy (object masks for the
synthetic set, box masks for Imagenette); the report says which.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipeline_lib.metrics.localization import finite_maps, pixel_box

HUMAN_CEILING = 0.65753


BLUR_SIZE, BLUR_AT = 10, 64  # Fel et al.'s kernel size and the resolution it is applied at


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x**2 / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


def blurred(human: torch.Tensor, sigma: float) -> np.ndarray:
    """(N, H, W) human maps processed as harmonization compares them (resize to 64, blur, resize
    back; sigma 0: unchanged); compute once, reuse per method."""
    maps = human.float().cpu()[:, None].double()
    if sigma <= 0:
        return maps[:, 0].numpy()
    size = maps.shape[-2:]
    small = F.interpolate(maps, size=(BLUR_AT, BLUR_AT), mode="bilinear", align_corners=False)
    pad_before = (BLUR_SIZE - 1) // 2
    small = F.conv2d(F.pad(small, (pad_before, BLUR_SIZE - 1 - pad_before) * 2),
                     gaussian_kernel(BLUR_SIZE, sigma)[None, None])
    return F.interpolate(small, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps: Pearson on average ranks (ties share their mean rank). The ranks
    are pandas', the same as `scipy.stats.rankdata`'s (tests/test_metrics.py): importing
    scipy.stats would add 1.7 s to every run's process, and dvclive imports pandas anyway."""
    ra, rb = pd.Series(a.ravel()).rank().to_numpy(), pd.Series(b.ravel()).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return 0.0  # a constant map carries no ranking: no agreement
    return float(np.corrcoef(ra, rb)[0, 1])


def top_region(m: np.ndarray, fraction: float) -> np.ndarray:
    k = max(1, round(fraction * m.size))
    region = np.zeros(m.size, dtype=bool)
    region[np.argsort(-m.ravel(), kind="stable")[:k]] = True
    return region.reshape(m.shape)


def harmonization(saliency: torch.Tensor, human: torch.Tensor | np.ndarray, *, sigma: float = 10.0,
                  top_fraction: float = 0.1, already_blurred: bool = False) -> dict[str, float | None]:
    """Maps are (N, H, W) at the same resolution; `n` counts the maps compared, `non_finite` the
    saliency maps left out."""
    rhos, dices, ious = [], [], []
    human = human if already_blurred else blurred(torch.as_tensor(human), sigma)
    saliency = saliency.float().cpu()
    finite = finite_maps(saliency).tolist()
    for s, h, ok in zip(saliency.numpy(), human, finite):
        if not ok:
            continue
        rhos.append(spearman(s, h))
        a, b = top_region(s, top_fraction), top_region(h, top_fraction)
        inter = (a & b).sum()
        dices.append(2 * inter / (a.sum() + b.sum()))
        ious.append(inter / (a | b).sum())
    means = {k: (float(np.mean(v)) if v else None) for k, v in (("spearman", rhos), ("dice_top", dices), ("iou_top", ious))}
    return {**means, "score": means["spearman"] / HUMAN_CEILING if rhos else None, "n": len(rhos),
            "non_finite": finite.count(False)}


def box_masks(boxes: list, size: int) -> torch.Tensor:
    """(N, size, size) masks of the union of each image's boxes (the Imagenette proxy)."""
    masks = torch.zeros(len(boxes), size, size)
    for i, image_boxes in enumerate(boxes):
        for box in image_boxes or []:
            x1, y1, x2, y2 = pixel_box(box, size, size)  # the pixels the hit ratio counts
            masks[i, y1:y2, x1:x2] = 1
    return masks
