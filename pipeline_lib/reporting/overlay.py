"""Saliency maps drawn over their images, as grids (one row per image)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline_lib.io import atomic_path  # noqa: E402

OPACITY = 0.5  # of the jet-coloured map over its image


def blend(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 images and (N, H, W) maps to (N, H, W, 3) floats in [0, 1]: each map's
    positive part, divided by its maximum, in jet at OPACITY over its image."""
    m = maps.astype(np.float32)
    peak = np.maximum(m.reshape(len(m), -1).max(axis=1), 1e-12)[:, None, None]
    colour = matplotlib.colormaps["jet"](np.clip(m, 0, None) / peak)[..., :3]
    return (1 - OPACITY) * images / 255.0 + OPACITY * colour


def overlay_grid(images: np.ndarray, columns: dict[str, np.ndarray], path: Path,
                 titles_left: list[str] | None = None) -> Path:
    """images: (N, H, W, 3) uint8; columns: {title: (N, H, W) maps}, blended as `blend` says.

    The grid is composed here and drawn as one image: with one axes instead of N x (K+1), 8 x 6
    cells take 0.5 s to lay out and save instead of 1.8 s (one CPU core), and every run's stage
    draws one (so does the report's saliency strip: 0.9 s instead of 5.3 s for 12 x 7 cells)."""
    n, h, w, _ = images.shape
    for title, maps in columns.items():
        if maps.shape != (n, h, w):
            raise ValueError(f"maps {title!r} are {maps.shape}, their images {images.shape[:3]}: "
                             "upsample the maps to the images first")
    cells = [images / 255.0] + [blend(images, maps) for maps in columns.values()]
    gap = max(1, w // 16)
    mosaic = np.ones((n * (h + gap) - gap, len(cells) * (w + gap) - gap, 3))
    for j, cell in enumerate(cells):
        for i in range(n):
            mosaic[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = cell[i]
    fig, ax = plt.subplots(figsize=(1.6 * len(cells), 1.6 * n))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([j * (w + gap) + w / 2 for j in range(len(cells))], ["image", *columns], fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks([i * (h + gap) + h / 2 for i in range(n)] if titles_left else [], titles_left or [], fontsize=9)
    ax.tick_params(length=0)
    ax.grid(False)  # the ticks mark cell centres; a style's grid would draw lines through the cells
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # row titles narrow the image, which then leaves bands above and below it: cropped (0.3 s)
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=100, bbox_inches="tight" if titles_left else None)
    plt.close(fig)
    return path
