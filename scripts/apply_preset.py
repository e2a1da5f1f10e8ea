"""Apply a params preset to params.yaml, keeping its comments:
`python -m scripts.apply_preset params/paper-study.yaml`, then `dvc exp run` (or `dvc repro`).

A preset lists only the keys that differ from the shipped params.yaml (the one home of every
setting); its `setups`, when present, replace the file's setups instead of adding to them. The
result is validated before params.yaml is written, and `git diff params.yaml` shows the change.
"""
from __future__ import annotations

import json
from collections.abc import MutableMapping
from io import StringIO
from pathlib import Path

import click
from ruamel.yaml import YAML

from pipeline_lib.config import parse_params
from pipeline_lib.io import atomic_path
from stages.common import one_line_errors

REPLACED = ("setups",)  # a study's setups are its own, never the shipped default's plus its own


def apply_preset(params: MutableMapping, preset: MutableMapping, top: bool = True) -> MutableMapping:
    """`params` with `preset` applied in place, section by section."""
    for key, value in preset.items():
        if isinstance(value, MutableMapping) and isinstance(params.get(key), MutableMapping) \
                and not (top and key in REPLACED):
            apply_preset(params[key], value, top=False)
        else:  # a copy sharing nothing: YAML merge keys (`<<: *imagenette`) share one object between
            params[key] = json.loads(json.dumps(value))  # setups, which the dump would tie together as anchors
    return params


@click.command()
@click.argument("preset", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--params", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=Path("params.yaml"), show_default=True)
@one_line_errors
def main(preset: Path, path: Path) -> None:
    yaml = YAML()  # round-trip: params.yaml keeps its comments
    params = apply_preset(yaml.load(path.read_text()), YAML(typ="safe").load(preset.read_text()))
    text = StringIO()
    yaml.dump(params, text)
    valid = parse_params(YAML(typ="safe").load(text.getvalue()))
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())
    click.echo(f"{path}: {preset} applied; {len(valid.cells())} training runs in {len(valid.setups)} setup(s)")


if __name__ == "__main__":
    main()
