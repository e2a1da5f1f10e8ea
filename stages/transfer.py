"""Frozen-encoder transfer of one run: `python -m stages.transfer --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import RunConfig, TransferParams
from pipeline_lib.io import write_json
from pipeline_lib.training.loop import load_trained
from pipeline_lib.training.transfer import transfer
from stages.common import run_command, run_stage


TARGET_OPTION = click.option("--target", type=click.Path(exists=True, path_type=Path), required=True,
                             help="the setup's transfer shards, data/shards/<setup>/transfer")


def transfer_run(cfg: RunConfig, shards: Path, target: Path, params: TransferParams) -> None:
    out = cfg.run_dir / "transfer.json"
    if not params.enabled:
        write_json(out, {"enabled": False})
        click.echo("transfer disabled (transfer.enabled: false)")
        return
    result = transfer(load_trained(cfg, shards), cfg, target, params)
    write_json(out, result)
    click.echo(f"{cfg.run_dir}: transfer to {result['target']} test accuracy {result['accuracy']['test']:.3f}")


@click.command()
@run_stage("transfer")
@TARGET_OPTION
def main(cfg: RunConfig, shards: Path, target: Path, params) -> None:
    transfer_run(cfg, shards, target, params.transfer)


if __name__ == "__main__":
    run_command(main)
