"""Attribution metrics of maps that know nothing of the image, to read the methods' numbers against.

A larger map hits more boxes and ranks more of an object above its background, whatever the
network learnt: a hit ratio or harmonization gain that only restates a larger area says nothing
of where the network looks. So the attributed images are also measured, by the very function
that measures the methods' maps (`run_metrics.attribution_metrics`: the same images, ground
truth, human-map proxy, blur and thresholds), with three kinds of reference map:

- `uniform`: every pixel 1 (area ratio 1, Spearman 0: a constant map ranks nothing);
- `centred_gaussian`: one map for every image, centred, whose area ratio is the mean object
  size of the images' ground truth (object masks, or the union of the boxes; `object_area`);
- `same_area.<method>`: per image, a blob with exactly the area ratio of that method's map,
  centred at a random point (seeded; the same points for every method, so that two methods'
  blobs differ only by their areas). A non-finite map gets a non-finite blob, so that both
  leave out the same images.

The maps are drawn by `ranked_blob`: pixel values fall with the pixel's distance rank from the
centre, strictly, and cross the area threshold after exactly k pixels. Every metric here reads
a map only through its ranks (Spearman, top regions) and its pixels above the threshold after
max-normalisation (area, hit), so such a map measures as a Gaussian at that centre would, up to
the order of equidistant pixels (raster order, where a sampled Gaussian ties them); unlike a
sampled Gaussian, its area is exact and no value lies within float32 rounding of the threshold.
Near a border the blob is clipped and grows along it, keeping its area.
"""
from __future__ import annotations

import numpy as np
import torch

from pipeline_lib.metrics.harmonization import box_masks
from pipeline_lib.metrics.localization import area_ratio


def ranked_blob(centre: tuple[float, float], k: int, h: int, w: int, threshold: float) -> np.ndarray:
    """(h, w) map whose k pixels nearest `centre` (x, y in pixels, pixel centres at +0.5) lie above
    `threshold` and the others below, the nearest at 1 (module docstring)."""
    if k <= 0:
        return np.zeros((h, w), dtype=np.float32)  # what an area ratio of 0 is: a map with no positive value
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    order = np.argsort(((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2).ravel(), kind="stable")
    rank = np.empty(h * w)
    rank[order] = np.arange(h * w)
    inside = 1 - (1 - threshold) * rank / k  # 1 at rank 0, above threshold up to rank k - 1
    outside = threshold * (1 - (rank - k + 1) / (h * w - k + 1))  # below threshold from rank k, above 0
    return np.where(rank < k, inside, outside).reshape(h, w).astype(np.float32)


def uniform_maps(n: int, h: int, w: int) -> np.ndarray:
    return np.ones((n, h, w), dtype=np.float32)


def centred_gaussian(n: int, h: int, w: int, area: float, threshold: float) -> np.ndarray:
    """n copies of the centred map whose area ratio is `area` (to the nearest pixel)."""
    return np.repeat(ranked_blob((w / 2, h / 2), round(area * h * w), h, w, threshold)[None], n, axis=0)


def same_area_blobs(areas: np.ndarray, centres: np.ndarray, h: int, w: int, threshold: float) -> np.ndarray:
    """Per image, a blob at `centres[i]` (x, y) with the area ratio `areas[i]`, NaN where that is NaN."""
    return np.stack([np.full((h, w), np.nan, dtype=np.float32) if np.isnan(a)
                     else ranked_blob(tuple(c), round(float(a) * h * w), h, w, threshold)
                     for a, c in zip(areas, centres)])


def object_area(data, keys: list[str]) -> float | None:
    """Mean fraction of the image the object covers, over the images of `keys` with ground truth."""
    index = {k: i for i, k in enumerate(data.keys)}
    rows = [index[k] for k in keys]
    if data.masks is not None:
        return float(data.masks[rows].float().flatten(1).mean(1).mean())
    boxed = [i for i in rows if data.boxes[i]]
    if not boxed:
        return None
    return float(box_masks([data.boxes[i] for i in boxed], data.images.shape[-1]).flatten(1).mean(1).mean())


def reference_metrics(maps: dict[str, np.ndarray], keys: list[str], data, p, seed: int) -> dict:
    """`attribution_metrics` of the reference maps over the images of `keys` (module docstring);
    `maps`: the methods' maps of those images, as `attribution_metrics` takes them."""
    # imported here, as run_metrics imports this module: the references are measured by its own function
    from pipeline_lib.metrics.run_metrics import attribution_metrics

    if not keys:  # no attributed image: no area to match and nothing to measure the maps on
        return {}
    n, (h, w) = len(keys), data.images.shape[-2:]
    centres = np.random.default_rng(seed).random((n, 2)) * (w, h)
    target = object_area(data, keys)
    references = {"uniform": uniform_maps(n, h, w)}
    if target is not None:
        references["centred_gaussian"] = centred_gaussian(n, h, w, target, p.area_threshold)
    for name, m in maps.items():
        areas = area_ratio(torch.from_numpy(m.astype(np.float32)), p.area_threshold).numpy()
        references[f"same_area:{name}"] = same_area_blobs(areas, centres, h, w, p.area_threshold)
    measured, _ = attribution_metrics(references, keys, data, p)
    return {"uniform": measured["uniform"], "centred_gaussian": measured.get("centred_gaussian"),
            "object_area": target, "same_area": {name: measured[f"same_area:{name}"] for name in maps}}
