"""The report's figures, each saved once: line plots as SVG, image grids as PNG at 150 dpi.

Curves are the mean over seeds with a ± one standard deviation band; one colour per method
label from seaborn's colour-blind palette (`Style`), the highlighted methods drawn thick and
the others thin, so that vanilla against SGDrop reads at a glance.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from pipeline_lib.io import atomic_path  # noqa: E402
from pipeline_lib.reporting.overlay import overlay_grid  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
LINESTYLES = ["-", "--", ":", "-."]


@dataclass
class Style:
    """A fixed colour (and, past the palette's 10 colours, a line style) per method label."""
    labels: list[str]
    highlight: set[str]

    def __post_init__(self):
        palette = sns.color_palette("colorblind", 10)
        self.color = {m: palette[i % 10] for i, m in enumerate(self.labels)}
        self.ls = {m: LINESTYLES[(i // 10) % len(LINESTYLES)] for i, m in enumerate(self.labels)}

    def line(self, m: str) -> dict:
        strong = m in self.highlight or not self.highlight
        return {"color": self.color[m], "ls": self.ls[m], "lw": 2.6 if strong else 1.3,
                "alpha": 1.0 if strong else 0.75, "zorder": 3 if strong else 2}


def save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def bands(ax, data: pd.DataFrame, x: str, y: str, style: Style) -> None:
    """One line per method label: the mean of `y` over seeds at each `x`, with a ± std band."""
    for m in [m for m in style.labels if m in set(data["label"])]:
        g = data[data["label"] == m].groupby(x)[y]
        mean, std, n = g.mean(), g.std(ddof=1).fillna(0.0), int(g.count().max())
        ax.plot(mean.index, mean.values, marker="o", ms=3, label=f"{m} (n = {n})", **style.line(m))
        ax.fill_between(mean.index, mean - std, mean + std, color=style.color[m], alpha=0.18, lw=0)
    if x in ("epoch", "layer"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def panels(setups: list[str], columns: int, width: float = 5.2, height: float = 3.4):
    fig, axes = plt.subplots(len(setups), columns, figsize=(width * columns, height * len(setups)), squeeze=False)
    return fig, axes


def legend(fig, axes) -> None:
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    fig.tight_layout()


def attention_over_epochs(history: pd.DataFrame, style: Style, path: Path) -> Path:
    """history: setup, label, seed, epoch, probe_area_ratio, gap (the paper's Figure 3, with the gap)."""
    setups = list(dict.fromkeys(history["setup"]))
    fig, axes = panels(setups, 2)
    for r, setup in enumerate(setups):
        part = history[history["setup"] == setup]
        bands(axes[r, 0], part, "epoch", "probe_area_ratio", style)
        bands(axes[r, 1], part, "epoch", "gap", style)
        axes[r, 0].set(title=f"{setup}: Grad-CAM area ratio (probe images)", xlabel="epoch", ylabel="area ratio")
        axes[r, 1].set(title=f"{setup}: clean train − val accuracy", xlabel="epoch", ylabel="generalization gap")
    legend(fig, axes)
    return save(fig, path)


def occlusion_curves(curves: pd.DataFrame, style: Style, path: Path) -> Path:
    """curves: setup, label, seed, fraction, relevant, random (accuracies)."""
    setups = list(dict.fromkeys(curves["setup"]))
    fig, axes = panels(setups, 2)
    for r, setup in enumerate(setups):
        part = curves[curves["setup"] == setup]
        for c, kind in enumerate(("relevant", "random")):
            bands(axes[r, c], part, "fraction", kind, style)
            axes[r, c].set(title=f"{setup}: {kind} patches occluded", xlabel="fraction of patches occluded",
                           ylabel="test accuracy")
    legend(fig, axes)
    return save(fig, path)


def band_panels(data: pd.DataFrame, x: str, y: str, style: Style, path: Path, *, title: str, xlabel: str,
                ylabel: str, width: float) -> Path:
    """One panel per setup of `y` against `x`, mean ± std bands over seeds."""
    setups = list(dict.fromkeys(data["setup"]))
    fig, axes = panels(setups, 1, width=width)
    for r, setup in enumerate(setups):
        bands(axes[r, 0], data[data["setup"] == setup], x, y, style)
        axes[r, 0].set(title=f"{setup}: {title}", xlabel=xlabel, ylabel=ylabel)
    legend(fig, axes)
    return save(fig, path)


def coverage_per_layer(per_layer: pd.DataFrame, style: Style, path: Path) -> Path:
    """per_layer: setup, label, seed, layer, coverage (the fraction of the layer's units active per image)."""
    return band_panels(per_layer, "layer", "coverage", style, path, title="neuron coverage per activation layer",
                       xlabel="layer", ylabel="fraction of units active per image", width=7)


def accuracy_vs_rho(points: pd.DataFrame, style: Style, path: Path) -> Path:
    """points: setup, label (the schedule), seed, rho, accuracy; drawn only with two rho values or more."""
    return band_panels(points, "rho", "accuracy", style, path, title="SGDrop test accuracy against rho",
                       xlabel="rho", ylabel="test accuracy", width=6)


def saliency_strip(strips: dict[str, dict], path: Path, max_epochs: int = 8) -> Path:
    """strips: {label: {"cams": (E, K, h, w), "images": (K, 3, S, S)}}; probe image 0 over the epochs
    (the paper's Figure 1), one row per method, its image first."""
    epochs = next(iter(strips.values()))["cams"].shape[0]
    shown = sorted(set(np.linspace(0, epochs - 1, min(max_epochs, epochs)).round().astype(int)))
    images = np.stack([s["images"][0].transpose(1, 2, 0) for s in strips.values()])

    def cams(e: int) -> np.ndarray:
        at_e = torch.from_numpy(np.stack([s["cams"][e, 0] for s in strips.values()])).float()[:, None]
        return F.interpolate(at_e, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0].numpy()

    return overlay_grid(images, {f"epoch {e + 1}": cams(e) for e in shown}, path, titles_left=list(strips))
