"""Validate params.yaml and write what every per-setup stage reads:
configs/<setup>/<method>/seed<k>.json for each training run, and configs/<setup>/<step>.json
for the shard stages and the attribute, evaluate and transfer steps of each setup's runs; and
link each setup's external inputs (data roots, box files, starting weights, ClickMe maps) under
data/inputs/<setup>/, where dvc.yaml makes them deps of the stages that read them.

Each stage depends on its own files only, so a change to one method's params (or to `rho`,
which only SGDrop reads), to one setup, or to one step's section reruns just the stages whose
files changed.
"""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config.resolve import run_configs, setup_stage_params
from pipeline_lib.inputs import write_input_links
from pipeline_lib.io import replace_dir, write_json
from stages.check import params_or_exit, warnings_or_exit
from stages.common import one_line_errors, run_command


def config_path(out: Path, cfg) -> Path:
    return out / cfg.setup / cfg.method.name / f"seed{cfg.seed}.json"


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("configs"))
@one_line_errors
def main(out: Path) -> None:
    params = params_or_exit()
    for warning in warnings_or_exit(params):
        click.echo(f"WARNING: {warning}", err=True)
    configs = run_configs(params)
    with replace_dir(out, "configure") as staging:
        for cfg in configs:
            write_json(config_path(staging, cfg), cfg.model_dump())
        for setup, files in setup_stage_params(params).items():
            for stem, sections in files.items():
                write_json(staging / setup / f"{stem}.json", sections)
    write_input_links(params)
    click.echo(f"{len(configs)} run configs of {len(params.setups)} setup(s) -> {out}")


if __name__ == "__main__":
    run_command(main)
