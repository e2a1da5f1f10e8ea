"""Attribution maps of one trained run: `python -m stages.attribute --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.attribution.extract import extract_maps, save_maps
from pipeline_lib.config import RunConfig
from pipeline_lib.data.loader import Normalizer, load_split, with_ground_truth_first
from pipeline_lib.reporting.overlay import overlay_grid
from pipeline_lib.training.loop import load_trained
from stages.common import run_stage


@click.command()
@run_stage("attribute")
def main(cfg: RunConfig, shards: Path, params) -> None:
    params = params.attribute
    model = load_trained(cfg, shards)
    device = next(model.parameters()).device
    data = with_ground_truth_first(load_split(shards, params.split, cfg.loader.image_size), params.max_images,
                                   seed=cfg.seed)
    maps = extract_maps(model, data.images, data.labels, Normalizer.from_manifest(shards), params.methods,
                        device=device, ig_steps=params.ig_steps)
    save_maps(cfg.run_dir / "attributions.npz", maps, data.keys, data.labels.numpy())
    n = params.grid_images
    images = data.images[:n].permute(0, 2, 3, 1).numpy()
    for name, m in maps.items():
        overlay_grid(images, {name: m[:n]}, cfg.run_dir / "attribution_grids" / f"{name}.png")
    click.echo(f"{cfg.run_dir}: {len(params.methods)} attribution methods on {len(data)} {params.split} images")


if __name__ == "__main__":
    main()
