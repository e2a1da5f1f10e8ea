"""The study's report from all runs of the current matrix: `python -m stages.report --out reports`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.io import fresh_dir
from pipeline_lib.reporting.collect import collect
from pipeline_lib.reporting.render import write_pages
from pipeline_lib.reporting.report import build_report, load_params_text
from stages.common import one_line_errors, params_or_exit, run_command


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--configs", type=click.Path(exists=True, path_type=Path), default=Path("configs"))
@click.option("--shards", type=click.Path(exists=True, path_type=Path), default=Path("data/shards"),
              help="one folder of shards per setup")
@one_line_errors
def main(out: Path, configs: Path, shards: Path) -> None:
    params = params_or_exit()
    for sub in ("tables", "figures"):
        fresh_dir(out / sub, "report")
    collection = collect(configs)
    names = {*params.methods, *params.train.methods, *(params.bench.methods or [])}  # the runs' and the bench's
    page = build_report(collection, specs={name: params.method_spec(name) for name in names},
                        order=list(params.train.methods), setups=list(params.setups), out=out, shards=shards,
                        bench_dir=out / "bench", params_text=load_params_text(),
                        attribute_splits={name: params.setup(name).attribute.split for name in params.setups})
    write_pages(page, out)
    click.echo(f"report of {len(collection.runs)} runs -> {out / 'index.html'}")


if __name__ == "__main__":
    run_command(main)
