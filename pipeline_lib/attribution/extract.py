"""Attribution maps of a trained run on an evaluation split, stored compactly (float16 npz)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline_lib.attribution import attribute
from pipeline_lib.io import atomic_path


FLOAT16_MAX = float(np.finfo(np.float16).max)


def as_float16(maps: torch.Tensor) -> np.ndarray:
    """(N, H, W) maps as float16. A map beyond float16's range (LRP far from conservation reaches
    1e8) is divided by its largest magnitude first rather than stored as inf: every metric reads a
    map's shape, not its scale (max-normalised area and hit ratio, rank correlations)."""
    peak = maps.abs().flatten(1).amax(1)
    over = torch.isfinite(peak) & (peak > FLOAT16_MAX)
    maps = torch.where(over[:, None, None], maps / peak.clamp_min(1)[:, None, None], maps)
    return maps.numpy().astype(np.float16)


def extract_maps(model, images: torch.Tensor, labels: torch.Tensor, normalize, methods: list[str], *,
                 device: torch.device, batch_size: int = 64, **kw) -> dict[str, np.ndarray]:
    """{method: (N, H, W) float16} for the true labels."""
    maps = {m: [] for m in methods}
    for i in range(0, len(labels), batch_size):
        x = normalize(images[i : i + batch_size].to(device))
        y = labels[i : i + batch_size].to(device)
        for m in methods:
            maps[m].append(attribute(m, model, x, y, **kw).float().cpu())
    return {m: as_float16(torch.cat(v)) for m, v in maps.items()}


NOT_MAPS = ("keys", "labels", "images")


def save_maps(path: Path, maps: dict[str, np.ndarray], keys: list[str], labels: np.ndarray,
              images: np.ndarray) -> None:
    """`images`: the first images of `keys` as (n, H, W, 3) uint8, for the report's figures."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, keys=np.array(keys), labels=labels, images=images, **maps)


def load_maps(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    with np.load(path) as data:
        keys = [str(k) for k in data["keys"]]
        return {k: data[k] for k in data.files if k not in NOT_MAPS}, keys
