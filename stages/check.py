"""Validate params.yaml and run nothing: `python -m stages.check`.

`make repro` runs it before `dvc repro`, since DVC reads params.yaml first and a misspelt
section (`trian:`) would otherwise get DVC's "Could not find 'train.architectures'".
"""
from __future__ import annotations

import click

from stages.common import params_or_exit


@click.command()
@click.option("--params", "path", default="params.yaml", show_default=True)
def main(path: str) -> None:
    params = params_or_exit(path)
    t = params.train
    click.echo(f"{path} is valid: {len(t.architectures) * len(t.methods) * len(t.seeds)} training runs")


if __name__ == "__main__":
    main()
