"""Frozen-encoder transfer of one run: `python -m stages.transfer --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import RunConfig, read_stage_params
from pipeline_lib.io import read_json, write_json
from pipeline_lib.training.loop import load_trained
from pipeline_lib.training.transfer import transfer
from stages.common import one_line_errors


@click.command()
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--shards", type=click.Path(exists=True, path_type=Path), required=True,
              help="the setup's shards, data/shards/<setup>/main")
@click.option("--target", type=click.Path(exists=True, path_type=Path), required=True,
              help="the setup's transfer shards, data/shards/<setup>/transfer")
@click.option("--params", "params_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="configs/<setup>/transfer.json, written by stages.configure")
@one_line_errors
def main(config_file: Path, shards: Path, target: Path, params_file: Path) -> None:
    params = read_stage_params(params_file)
    cfg = RunConfig(**read_json(config_file))
    out = cfg.run_dir / "transfer.json"
    if not params.transfer.enabled:
        write_json(out, {"enabled": False})
        click.echo("transfer disabled (transfer.enabled: false)")
        return
    result = transfer(load_trained(cfg, shards), cfg, target, params.transfer)
    write_json(out, result)
    click.echo(f"{cfg.run_dir}: transfer to {result['target']} test accuracy {result['accuracy']['test']:.3f}")


if __name__ == "__main__":
    main()
