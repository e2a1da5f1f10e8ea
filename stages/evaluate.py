"""Every metric of one trained run: `python -m stages.evaluate --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pipeline_lib.attribution.extract import load_maps
from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.config.schema import AttributeParams, EvaluateParams
from pipeline_lib.io import write_json
from pipeline_lib.metrics.run_metrics import run_metrics
from pipeline_lib.training.loop import TrainedRun, load_finished
from stages.common import run_command
from stages.run_options import run_stage


def evaluate_run(trained: TrainedRun, params: EvaluateParams, attribute: AttributeParams,
                 maps: dict[str, np.ndarray], keys: list[str]) -> None:
    """`attribute`: the attributed split and image count; `maps`, `keys`: the attribute step's maps."""
    run_dir = trained.run_dir
    metrics = run_metrics(trained, params, attribute.split, attribute.max_images, maps, keys)
    write_json(run_dir / "metrics.json", metrics)
    acc = metrics["accuracy"]
    splits = ", ".join(f"{s} {a:.3f}" for s, a in acc.items() if s.startswith("test"))
    click.echo(f"{run_dir}: {splits}, gap {metrics['gap']:+.3f}, Grad-CAM area ratio "
               f"{metrics['attribution'].get('gradcam', {}).get('area_ratio', float('nan')):.3f}")


@click.command()
@run_stage("evaluate")
def main(cfg: RunConfig, shards: Path, params) -> None:
    evaluate_run(load_finished(cfg, shards), params.evaluate, params.attribute,
                 *load_maps(cfg.run_dir / "attributions.npz"))


if __name__ == "__main__":
    run_command(main)
