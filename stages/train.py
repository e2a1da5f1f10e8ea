"""Train one run of the matrix: `python -m stages.train --config configs/.../seed0.json`."""
from __future__ import annotations

from pathlib import Path

import click
import torch

from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.training.loop import TrainedRun, train
from stages.common import run_command, show_progress
from stages.run_options import run_stage


def train_run(cfg: RunConfig, shards: Path) -> TrainedRun:
    try:
        trained = train(cfg, shards, cfg.run_dir, progress=show_progress())
    except torch.OutOfMemoryError:
        raise click.ClickException(
            f"{cfg.run_dir}: out of GPU memory; lower loader.batch_size (or loader.image_size, model.width). "
            "The last checkpoint is kept: `dvc repro` resumes from it.") from None
    final = trained.summary
    click.echo(f"{cfg.run_dir}: val acc {final['val_acc']:.3f}, gap {final['gap']:+.3f}, "
               f"probe area ratio {final['probe_area_ratio']:.3f}")
    for warning in final["warnings"]:
        click.echo(f"WARNING: {cfg.run_dir}: {warning}", err=True)
    return trained


@click.command()
@run_stage()
def main(cfg: RunConfig, shards: Path) -> None:
    train_run(cfg, shards)


if __name__ == "__main__":
    run_command(main)
