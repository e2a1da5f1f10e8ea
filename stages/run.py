"""One run of the matrix from start to end, in one process: train (or resume), attribution maps,
metrics and transfer, as `stages.train`, `stages.attribute`, `stages.evaluate` and
`stages.transfer` do one by one:
`python -m stages.run --config configs/<setup>/<method>/seed<k>.json --setup-params configs/<setup> ...`

dvc.yaml runs this rather than four stages per run, because on a 2-core machine each stage costs
about 5 s of Python start-up (torch, and `torch._dynamo`, which any optimizer imports) and 5 s of
DVC bookkeeping (mostly re-reading and rewriting dvc.lock), which with four stages per run was
half of `make repro`. A finished run's checkpoint is found and resumed at once, so a change to the attribute,
evaluate or transfer params reruns their work and not the training. The four stages remain
commands of their own, for a run by hand or a multi-GPU `torchrun` of the training.
"""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import RunConfig, read_stage_params
from pipeline_lib.data.loader import decoded_once
from stages.attribute import attribute_run
from stages.common import run_command, run_stage
from stages.evaluate import evaluate_run
from stages.train import train_run
from stages.transfer import TARGET_OPTION, transfer_run


@click.command()
@run_stage()
@TARGET_OPTION
@click.option("--setup-params", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="configs/<setup>, whose attribute.json, evaluate.json and transfer.json are read")
def main(cfg: RunConfig, shards: Path, target: Path, setup_params: Path) -> None:
    with decoded_once():  # the three steps read the same splits of `shards`
        train_run(cfg, shards)
        attribute = read_stage_params(setup_params / "attribute.json").attribute
        attribute_run(cfg, shards, attribute)
        evaluate_run(cfg, shards, read_stage_params(setup_params / "evaluate.json").evaluate, attribute)
    transfer_run(cfg, shards, target, read_stage_params(setup_params / "transfer.json").transfer)


if __name__ == "__main__":
    run_command(main)
