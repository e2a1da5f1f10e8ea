"""Saliency maps drawn over their images, as grids (one row per image)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline_lib.io import atomic_path  # noqa: E402


def overlay_grid(images: np.ndarray, columns: dict[str, np.ndarray], path: Path, titles_left: list[str] | None = None) -> None:
    """images: (N, H, W, 3) uint8; columns: {title: (N, H, W) maps}, drawn max-normalised."""
    n, k = len(images), len(columns)
    fig, axes = plt.subplots(n, k + 1, figsize=(1.6 * (k + 1), 1.6 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        if titles_left:
            axes[i, 0].set_ylabel(titles_left[i], fontsize=9)
        for j, (title, maps) in enumerate(columns.items(), start=1):
            m = maps[i].astype(np.float32)
            m = np.clip(m, 0, None) / max(float(m.max()), 1e-12)
            axes[i, j].imshow(images[i])
            axes[i, j].imshow(m, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if i == 0:
                axes[i, j].set_title(title, fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=100)
    plt.close(fig)
