"""Attribution maps of one trained run: `python -m stages.attribute --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.attribution.extract import extract_maps, save_maps
from pipeline_lib.config import AttributeParams, RunConfig
from pipeline_lib.data.loader import Normalizer, load_split, with_ground_truth_first
from pipeline_lib.reporting.overlay import overlay_grid
from pipeline_lib.training.loop import load_trained
from stages.common import run_command, run_stage


def attribute_run(cfg: RunConfig, shards: Path, params: AttributeParams) -> None:
    model = load_trained(cfg, shards)
    device = next(model.parameters()).device
    data = with_ground_truth_first(load_split(shards, params.split, cfg.loader.image_size), params.max_images,
                                   seed=cfg.seed)
    maps = extract_maps(model, data.images, data.labels, Normalizer.from_manifest(shards), params.methods,
                        device=device, ig_steps=params.ig_steps)
    save_maps(cfg.run_dir / "attributions.npz", maps, data.keys, data.labels.numpy())
    n = params.grid_images  # one figure, the methods side by side on the same images
    overlay_grid(data.images[:n].permute(0, 2, 3, 1).numpy(), {name: m[:n] for name, m in maps.items()},
                 cfg.run_dir / "attribution_grid.png")
    click.echo(f"{cfg.run_dir}: {len(params.methods)} attribution methods on {len(data)} {params.split} images")


@click.command()
@run_stage("attribute")
def main(cfg: RunConfig, shards: Path, params) -> None:
    attribute_run(cfg, shards, params.attribute)


if __name__ == "__main__":
    run_command(main)
