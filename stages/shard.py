"""Convert a setup's dataset into WebDataset shards:
`python -m stages.shard --params configs/<setup>/shard_main.json --out data/shards/<setup>/main`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.data import DATASETS
from pipeline_lib.data.shards import write_shards
from stages.common import one_line_errors, run_command, show_progress, stage_params_option


@click.command()
@stage_params_option("shard_main.json or shard_transfer.json")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@one_line_errors
def main(params, out: Path) -> None:
    data = params.data
    source = DATASETS.get(data.dataset)(data)
    manifest = write_shards(source, out, params={"data": data.model_dump(), "shard": params.shard.model_dump()},
                            samples_per_shard=params.shard.samples_per_shard,
                            max_bad_fraction=params.shard.max_bad_fraction, min_image_size=data.min_image_size,
                            progress=show_progress())
    counts = ", ".join(f"{s} {v['count']}" for s, v in manifest["splits"].items())
    converted = ", ".join(f"{n} {mode}" for mode, n in manifest["converted_to_rgb"].items())
    click.echo(f"{data.dataset}: {counts}; {manifest['bad_images']['count']} unreadable skipped"
               + (f"; converted to RGB: {converted}" if converted else "") + f" -> {out}")


if __name__ == "__main__":
    run_command(main)
