"""The options every per-run stage (train, attribute, evaluate, transfer, run) shares."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.io import read_json
from stages.common import one_line_errors, stage_params_option


def run_stage(params_file: str | None = None):
    """The options every per-run stage shares, parsed: `--config` (the run's config, a RunConfig),
    `--shards` (its setup's shards) and, with `params_file` (the stage's file name under
    configs/<setup>/), `--params` (the sections the stage reads); then `one_line_errors`."""
    def decorate(command):
        command = one_line_errors(command)
        if params_file:
            command = stage_params_option(f"{params_file}.json")(command)
        command = click.option("--shards", type=click.Path(exists=True, path_type=Path), required=True,
                               help="the setup's shards, data/shards/<setup>/main")(command)
        return click.option("--config", "cfg", type=click.Path(exists=True, path_type=Path), required=True,
                            callback=lambda ctx, opt, path: _run_config(path),
                            help="the run's config, configs/<setup>/<method>/seed<k>.json")(command)
    return decorate


def _run_config(path: Path) -> RunConfig:
    return RunConfig(**read_json(path, fix="rerun the configure stage (dvc repro configure)"))
