"""Attribution maps of one trained run: `python -m stages.attribute --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pipeline_lib.attribution.extract import extract_maps, save_maps
from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.config.schema import AttributeParams
from pipeline_lib.data.loader import with_ground_truth_first
from pipeline_lib.reporting.overlay import overlay_grid
from pipeline_lib.training.loop import TrainedRun, load_finished
from stages.common import run_command
from stages.run_options import run_stage


def attribute_run(trained: TrainedRun, params: AttributeParams) -> tuple[dict[str, np.ndarray], list[str]]:
    """Writes the run's attributions.npz (the maps, and the first `grid_images` images, which the
    report shows) and attribution_grid.png; returns the maps and their images' keys."""
    cfg = trained.cfg
    data = with_ground_truth_first(trained.splits[params.split], params.max_images, seed=cfg.seed)
    maps = extract_maps(trained.model, data.images, data.labels, trained.splits.normalize, params.methods,
                        device=trained.device, ig_steps=params.ig_steps)
    n = params.grid_images  # one figure, the methods side by side on the same images
    images = data.images[:n].permute(0, 2, 3, 1).numpy()
    save_maps(cfg.run_dir / "attributions.npz", maps, data.keys, data.labels.numpy(), images)
    overlay_grid(images, {name: m[:n] for name, m in maps.items()}, cfg.run_dir / "attribution_grid.png")
    click.echo(f"{cfg.run_dir}: {len(params.methods)} attribution methods on {len(data)} {params.split} images")
    return maps, data.keys


@click.command()
@run_stage("attribute")
def main(cfg: RunConfig, shards: Path, params) -> None:
    attribute_run(load_finished(cfg, shards), params.attribute)


if __name__ == "__main__":
    run_command(main)
