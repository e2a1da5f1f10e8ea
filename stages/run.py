"""One run of the matrix from start to end, in one process: train (or resume, or find finished),
attribution maps, metrics and transfer, as `stages.train`, `stages.attribute`, `stages.evaluate`
and `stages.transfer` do one by one:
`python -m stages.run --config configs/<setup>/<method>/seed<k>.json --setup-params configs/<setup> ...`

dvc.yaml runs this rather than a stage per step, because on a 2-core machine each stage costs
about 5 s of Python start-up (torch, and `torch._dynamo`, which any optimizer imports) and 5 s of
DVC bookkeeping (mostly re-reading and rewriting dvc.lock). The steps hand the trained run on
(`TrainedRun`: model, method, decoded splits), so no checkpoint is read and no split decoded
twice. A run whose checkpoint has this run's identity (settings, training code, data, starting
weights) is found finished, so a change to the analysis code or params reruns the analysis and
not the training; any change to what shapes the weights retrains it. The four stages remain
commands of their own, for a run by hand or a multi-GPU `torchrun` of the training.
"""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.config.schema import read_stage_params
from stages.attribute import attribute_run
from stages.common import run_command
from stages.evaluate import evaluate_run
from stages.run_options import run_stage
from stages.train import train_run
from stages.transfer import TARGET_OPTION, transfer_run


@click.command()
@run_stage()
@TARGET_OPTION
@click.option("--setup-params", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="configs/<setup>, whose attribute.json, evaluate.json and transfer.json are read")
def main(cfg: RunConfig, shards: Path, target: Path, setup_params: Path) -> None:
    trained = train_run(cfg, shards)
    attribute = read_stage_params(setup_params / "attribute.json").attribute
    maps, keys = attribute_run(trained, attribute)
    evaluate_run(trained, read_stage_params(setup_params / "evaluate.json").evaluate, attribute, maps, keys)
    transfer_run(trained, target, read_stage_params(setup_params / "transfer.json").transfer)


if __name__ == "__main__":
    run_command(main)
