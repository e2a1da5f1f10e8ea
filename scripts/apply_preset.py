"""Apply a params preset to params.yaml, keeping its comments:
`python -m scripts.apply_preset params/paper-study.yaml`, then `dvc exp run` (or `dvc repro`).

A preset lists only the keys that differ from the shipped params.yaml (the one home of every
setting); its `setups`, when present, replace the file's setups instead of adding to them. The
result is validated before params.yaml is written, and `git diff params.yaml` shows the change.
"""
from __future__ import annotations

from io import StringIO
from pathlib import Path

import click
from ruamel.yaml import YAML

from pipeline_lib.config.checks import parse_params
from pipeline_lib.config.schema import overlay
from pipeline_lib.io import atomic_path
from stages.common import one_line_errors


@click.command()
@click.argument("preset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--params", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("params.yaml"), show_default=True)
@one_line_errors
def main(preset: Path, path: Path) -> None:
    yaml = YAML()  # round-trip: params.yaml keeps its comments
    params = overlay(yaml.load(path.read_text()), YAML(typ="safe").load(preset.read_text()))
    text = StringIO()
    yaml.dump(params, text)
    valid = parse_params(YAML(typ="safe").load(text.getvalue()))
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())
    click.echo(f"{path}: {preset} applied; {len(valid.cells())} training runs in {len(valid.setups)} setup(s)")


if __name__ == "__main__":
    main()
