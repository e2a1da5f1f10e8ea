"""Validate params.yaml and write one resolved config per training run.

Each `train@...` stage depends on its own config file only, so a change to one method's params
(or to `rho`, which only SGDrop reads) reruns just the runs whose config changed.
"""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config import run_configs
from pipeline_lib.io import replace_dir, write_json
from stages.common import one_line_errors, params_or_exit


def config_path(out: Path, cfg) -> Path:
    return out / cfg.data.dataset / cfg.arch / cfg.method.name / f"seed{cfg.seed}.json"


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("configs"))
@one_line_errors
def main(out: Path) -> None:
    params = params_or_exit()
    configs = run_configs(params)
    with replace_dir(out, "configure") as staging:
        for cfg in configs:
            write_json(config_path(staging, cfg), cfg.model_dump())
    click.echo(f"{len(configs)} run configs -> {out}")


if __name__ == "__main__":
    main()
