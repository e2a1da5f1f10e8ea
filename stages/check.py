"""Validate params.yaml and run nothing: `python -m stages.check`.

`make repro` runs it before `dvc repro`, since DVC reads params.yaml first and a misspelt
section (`trian:`) would otherwise get DVC's "Could not find 'train.methods'".
"""
from __future__ import annotations

import click

from stages.common import params_or_exit, run_command


@click.command()
@click.option("--params", "path", default="params.yaml", show_default=True)
def main(path: str) -> None:
    params = params_or_exit(path)
    click.echo(f"{path} is valid: {len(params.cells())} training runs in {len(params.setups)} setup(s)")


if __name__ == "__main__":
    run_command(main)
