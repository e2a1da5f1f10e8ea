"""Every metric of one trained run: `python -m stages.evaluate --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import AttributeParams, EvaluateParams, RunConfig
from pipeline_lib.io import write_json
from pipeline_lib.metrics.run_metrics import run_metrics
from pipeline_lib.training.loop import load_trained
from stages.common import run_command, run_stage


def evaluate_run(cfg: RunConfig, shards: Path, params: EvaluateParams, attribute: AttributeParams) -> None:
    """`attribute`: the attributed split and image count, whose maps the metrics read."""
    model, method = load_trained(cfg, shards, with_method=True)
    metrics = run_metrics(model, cfg, shards, params, attribute.split, attribute.max_images, method)
    write_json(cfg.run_dir / "metrics.json", metrics)
    acc = metrics["accuracy"]
    splits = ", ".join(f"{s} {a:.3f}" for s, a in acc.items() if s.startswith("test"))
    click.echo(f"{cfg.run_dir}: {splits}, gap {metrics['gap']:+.3f}, Grad-CAM area ratio "
               f"{metrics['attribution'].get('gradcam', {}).get('area_ratio', float('nan')):.3f}")


@click.command()
@run_stage("evaluate")
def main(cfg: RunConfig, shards: Path, params) -> None:
    evaluate_run(cfg, shards, params.evaluate, params.attribute)


if __name__ == "__main__":
    run_command(main)
