"""Convert a dataset into WebDataset shards: `python -m stages.shard --which main|transfer`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.data import DATASETS
from pipeline_lib.data.shards import write_shards
from stages.common import one_line_errors, params_or_exit, show_progress


@click.command()
@click.option("--which", type=click.Choice(["main", "transfer"]), default="main",
              help="main: params `data`; transfer: params `transfer.data`.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@one_line_errors
def main(which: str, out: Path) -> None:
    params = params_or_exit()
    data = params.data if which == "main" else params.transfer.data
    source = DATASETS.get(data.dataset)(data)
    manifest = write_shards(source, out, params={"data": data.model_dump(), "shard": params.shard.model_dump()},
                            samples_per_shard=params.shard.samples_per_shard,
                            max_bad_fraction=params.shard.max_bad_fraction, progress=show_progress())
    counts = ", ".join(f"{s} {v['count']}" for s, v in manifest["splits"].items())
    click.echo(f"{data.dataset}: {counts}; {manifest['bad_images']['count']} unreadable skipped -> {out}")


if __name__ == "__main__":
    main()
