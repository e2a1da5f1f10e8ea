"""The report's figures, each saved as PNG and SVG (seaborn/matplotlib)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pipeline_lib.io import atomic_path  # noqa: E402

sns.set_theme(style="whitegrid", context="paper")


def save(fig, stem: Path) -> list[Path]:
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=120, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def attention_over_epochs(history: pd.DataFrame, stem: Path) -> list[Path]:
    """history: columns method, epoch, probe_area_ratio, gap (Figure 3)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(history, x="epoch", y="probe_area_ratio", hue="method", ax=axes[0], marker="o", legend=False)
    sns.lineplot(history, x="epoch", y="gap", hue="method", ax=axes[1], marker="o")
    axes[0].set(title="Attribution area ratio (Grad-CAM, probe batch)", ylabel="area ratio")
    axes[1].set(title="Generalization gap (train - val accuracy)", ylabel="gap")
    axes[1].legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    return save(fig, stem)


def saliency_strip(strips: dict[str, dict], stem: Path, max_epochs: int = 8) -> list[Path]:
    """strips: {method: {"cams": (E, K, h, w), "images": (K, 3, S, S)}}; image 0 over epochs (Figure 1)."""
    epochs = next(iter(strips.values()))["cams"].shape[0]
    shown = sorted(set(np.linspace(0, epochs - 1, min(max_epochs, epochs)).round().astype(int)))
    fig, axes = plt.subplots(len(strips), len(shown), figsize=(1.5 * len(shown), 1.6 * len(strips)), squeeze=False)
    for r, (method, s) in enumerate(strips.items()):
        image = s["images"][0].transpose(1, 2, 0)
        for c, e in enumerate(shown):
            cam = F.interpolate(torch.from_numpy(s["cams"][e, :1]).float()[None], size=image.shape[:2],
                                mode="bilinear", align_corners=False)[0, 0].numpy()
            axes[r, c].imshow(image)
            axes[r, c].imshow(cam / max(cam.max(), 1e-12), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"epoch {e + 1}", fontsize=7)
        axes[r, 0].set_ylabel(method, fontsize=7)
    return save(fig, stem)


def occlusion_curves(curves: dict[str, dict], stem: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    palette = sns.color_palette(n_colors=len(curves))
    for color, (method, c) in zip(palette, curves.items()):
        ax.plot(c["fractions"], c["relevant"]["accuracy"], marker="o", color=color, label=method)
        ax.plot(c["fractions"], c["random"]["accuracy"], ls=":", color=color)
    ax.set(xlabel="fraction of patches occluded", ylabel="accuracy",
           title="Occlusion by Grad-CAM relevance (solid) and at random (dotted)")
    ax.legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    return save(fig, stem)


def accuracy_vs_rho(points: pd.DataFrame, stem: Path) -> list[Path]:
    """points: columns rho, accuracy, variant."""
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    sns.lineplot(points, x="rho", y="accuracy", hue="variant", marker="o", ax=ax, errorbar="sd")
    ax.set(title="Test accuracy against rho (SGDrop runs)", xlabel="rho", ylabel="test accuracy")
    return save(fig, stem)


def coverage_per_layer(per_layer: dict[str, list[float]], stem: Path) -> list[Path]:
    rows = [{"method": m, "layer": i + 1, "coverage": v} for m, vals in per_layer.items() for i, v in enumerate(vals)]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    sns.lineplot(pd.DataFrame(rows), x="layer", y="coverage", hue="method", marker="o", ax=ax)
    ax.set(title="Neuron coverage per activation layer (unit level)", ylabel="fraction of units covered")
    ax.legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    return save(fig, stem)
