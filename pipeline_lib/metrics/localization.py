"""How broad an attribution map is and whether it lands on the object.

- area ratio (the SGDrop paper): max-normalise each map, then the fraction of pixels > 0.5;
- hit ratio: the box around the pixels >= 0.5 of the normalised map (the whole region, and its
  largest 8-connected component), a hit when IoU >= 0.5 with any ground-truth box. The IoU is
  computed on integer pixel boxes at the map's resolution (`pixel_box`), so that an IoU of
  exactly 0.5 counts as a hit: on fractional boxes float rounding turns many of those into
  0.49999999999999994.
Maps are (N, H, W); boxes are [x1, y1, x2, y2] as fractions of the side, x2 and y2 exclusive.

A map with a non-finite value (NaN or inf: an attribution that overflowed or divided by zero) has
no maximum to normalise by: max() returns NaN, and dividing by it, or skipping the division as
for an empty map, would leave the map at its own scale, so that its area and hit would depend
on the units of the attribution. Such a map is not measured: its area ratio is NaN, the hit
ratio leaves it out (`non_finite` counts how many it left out) and so does harmonization;
`pipeline_lib.metrics.run_metrics` reports the count per attribution method.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage


def finite_maps(maps: torch.Tensor) -> torch.Tensor:
    """(N,) whether each map is finite everywhere, the maps that can be measured."""
    return maps.flatten(1).isfinite().all(1)


def max_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Each map divided by its maximum (a map with no positive value stays 0; a map with a
    non-finite value becomes NaN everywhere, so that nothing read from it passes for a number)."""
    finite = finite_maps(maps)[:, None, None]
    maps = torch.where(finite, maps, torch.zeros_like(maps))
    peak = maps.flatten(1).max(1).values.clamp_min(0)
    norm = maps.clamp_min(0) / torch.where(peak > 0, peak, torch.ones_like(peak))[:, None, None]
    return torch.where(finite, norm, torch.full_like(norm, float("nan")))


def area_ratio(maps: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """(N,) fraction of pixels above threshold after max-normalisation; NaN for a map with a
    non-finite value (a comparison with NaN is False, which would read as an empty map)."""
    area = (max_normalize(maps) > threshold).float().flatten(1).mean(1)
    return torch.where(finite_maps(maps), area, torch.full_like(area, float("nan")))


def pixel_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """A fractional [x1, y1, x2, y2] box as the pixels it overlaps (x2, y2 exclusive), at least one
    pixel wide; a tolerance absorbs the float error of fractions such as 29 / 100."""
    x1, y1 = math.floor(box[0] * width + 1e-6), math.floor(box[1] * height + 1e-6)
    return (x1, y1, max(x1 + 1, math.ceil(box[2] * width - 1e-6)), max(y1 + 1, math.ceil(box[3] * height - 1e-6)))


def region_box(region: np.ndarray, largest_component: bool) -> tuple[int, int, int, int] | None:
    """Pixel box around a boolean region, or around its largest 8-connected component."""
    if not region.any():
        return None
    if largest_component:
        labels, n = ndimage.label(region, structure=np.ones((3, 3)))
        sizes = ndimage.sum(region, labels, index=range(1, n + 1))
        region = labels == (1 + int(np.argmax(sizes)))
    ys, xs = np.nonzero(region)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def hit_ratio(maps: torch.Tensor, boxes: list, threshold: float = 0.5, iou_threshold: float = 0.5) -> dict:
    """Hit ratios over the images that have boxes and a finite map; `n` says how many that was,
    `non_finite` how many images with boxes were left out for a non-finite map."""
    norm = max_normalize(maps).cpu().numpy()
    hits = {"whole": [], "largest_component": []}
    non_finite = 0
    for m, ok, gt in zip(norm, finite_maps(maps).tolist(), boxes):
        if not gt:
            continue
        if not ok:
            non_finite += 1
            continue
        h, w = m.shape
        gt = [pixel_box(g, w, h) for g in gt]
        for kind, largest in (("whole", False), ("largest_component", True)):
            box = region_box(m >= threshold, largest)
            hits[kind].append(box is not None and max(iou(box, g) for g in gt) >= iou_threshold)
    n = len(hits["whole"])
    return {"n": n, "non_finite": non_finite, **{k: (float(np.mean(v)) if n else None) for k, v in hits.items()}}
