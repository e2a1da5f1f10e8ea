"""Validate params.yaml and run nothing: `python -m stages.check`.

`make repro` runs it before `dvc repro`, since DVC reads params.yaml first and a misspelt
section (`matrx:`) would otherwise get DVC's "Could not find 'matrix.methods'".
"""
from __future__ import annotations

import click

from pipeline_lib.config.checks import load_params, params_warnings
from pipeline_lib.config.schema import Params
from pipeline_lib.errors import ClearError
from stages.common import run_command


def params_or_exit(path: str = "params.yaml") -> Params:
    """params.yaml, validated (`pipeline_lib.config.checks.load_params`), or the stage ends with
    its error in one line."""
    try:
        return load_params(path)
    except ClearError as err:
        raise click.ClickException(str(err)) from None


def warnings_or_exit(params: Params) -> list[str]:
    try:
        return params_warnings(params)
    except ClearError as err:
        raise click.ClickException(str(err)) from None


@click.command()
@click.option("--params", "path", default="params.yaml", show_default=True)
def main(path: str) -> None:
    params = params_or_exit(path)
    for warning in warnings_or_exit(params):
        click.echo(f"WARNING: {warning}", err=True)
    click.echo(f"{path} is valid: {len(params.cells())} training runs in {len(params.setups)} setup(s)")


if __name__ == "__main__":
    run_command(main)
