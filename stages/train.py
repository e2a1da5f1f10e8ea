"""Train one run of the matrix: `python -m stages.train --config configs/.../seed0.json`."""
from __future__ import annotations

from pathlib import Path

import click
import torch

from pipeline_lib.config import RunConfig
from pipeline_lib.training.loop import train
from stages.common import run_command, run_stage, show_progress


def train_run(cfg: RunConfig, shards: Path) -> None:
    try:
        final = train(cfg, shards, cfg.run_dir, progress=show_progress())
    except torch.OutOfMemoryError:
        raise click.ClickException(
            f"{cfg.run_dir}: out of GPU memory; lower loader.batch_size (or loader.image_size, model.width). "
            "The last checkpoint is kept: `dvc repro` resumes from it.") from None
    click.echo(f"{cfg.run_dir}: val acc {final['val_acc']:.3f}, gap {final['gap']:+.3f}, "
               f"probe area ratio {final['probe_area_ratio']:.3f}")
    for warning in final["warnings"]:
        click.echo(f"WARNING: {cfg.run_dir}: {warning}", err=True)


@click.command()
@run_stage()
def main(cfg: RunConfig, shards: Path) -> None:
    train_run(cfg, shards)


if __name__ == "__main__":
    run_command(main)
