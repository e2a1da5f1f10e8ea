"""Every metric of one trained run: `python -m stages.evaluate --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import RunConfig, read_stage_params
from pipeline_lib.io import read_json, write_json
from pipeline_lib.metrics.run_metrics import run_metrics
from pipeline_lib.training.loop import load_trained
from stages.common import one_line_errors


@click.command()
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--shards", type=click.Path(exists=True, path_type=Path), required=True,
              help="the setup's shards, data/shards/<setup>/main")
@click.option("--params", "params_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="configs/<setup>/evaluate.json, written by stages.configure")
@one_line_errors
def main(config_file: Path, shards: Path, params_file: Path) -> None:
    params = read_stage_params(params_file)
    cfg = RunConfig(**read_json(config_file))
    model, method = load_trained(cfg, shards, with_method=True)
    metrics = run_metrics(model, cfg, shards, params.evaluate, params.attribute.split,
                          params.attribute.max_images, method)
    write_json(cfg.run_dir / "metrics.json", metrics)
    acc = metrics["accuracy"]
    splits = ", ".join(f"{s} {a:.3f}" for s, a in acc.items() if s.startswith("test"))
    click.echo(f"{cfg.run_dir}: {splits}, gap {metrics['gap']:+.3f}, Grad-CAM area ratio "
               f"{metrics['attribution'].get('gradcam', {}).get('area_ratio', float('nan')):.3f}")


if __name__ == "__main__":
    main()
