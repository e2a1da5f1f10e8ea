"""Frozen-encoder transfer of one run: `python -m stages.transfer --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import RunConfig
from pipeline_lib.io import read_json, write_json
from pipeline_lib.training.loop import load_trained
from pipeline_lib.training.transfer import transfer
from stages.common import one_line_errors, params_or_exit


@click.command()
@click.option("--config", "config_file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--shards", type=click.Path(exists=True, path_type=Path), default=Path("data/shards/main"))
@click.option("--target", type=click.Path(exists=True, path_type=Path), default=Path("data/shards/transfer"))
@one_line_errors
def main(config_file: Path, shards: Path, target: Path) -> None:
    params = params_or_exit()
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
