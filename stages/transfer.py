"""Frozen-encoder transfer of one run: `python -m stages.transfer --config configs/...json`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.config.schema import TransferParams
from pipeline_lib.io import write_json
from pipeline_lib.training.loop import TrainedRun, load_finished
from pipeline_lib.training.transfer import transfer
from stages.common import run_command
from stages.run_options import run_stage


TARGET_OPTION = click.option("--target", type=click.Path(exists=True, path_type=Path), required=True,
                             help="the setup's transfer shards, data/shards/<setup>/transfer")


def transfer_run(trained: TrainedRun, target: Path, params: TransferParams) -> None:
    out = trained.run_dir / "transfer.json"
    if not params.enabled:
        write_json(out, {"enabled": False, "identity": trained.identity.digest})
        click.echo("transfer disabled (transfer.enabled: false)")
        return
    result = transfer(trained, target, params)
    write_json(out, result)
    click.echo(f"{trained.run_dir}: transfer to {result['target']} test accuracy {result['accuracy']['test']:.3f}")


@click.command()
@run_stage("transfer")
@TARGET_OPTION
def main(cfg: RunConfig, shards: Path, target: Path, params) -> None:
    transfer_run(load_finished(cfg, shards), target, params.transfer)


if __name__ == "__main__":
    run_command(main)
