"""The study's report from all runs of the current matrix: `python -m stages.report --out reports`."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline_lib.config.resolve import method_spec
from pipeline_lib.io import fresh_dir
from pipeline_lib.reporting.collect import collect
from pipeline_lib.reporting.render import write_pages
from pipeline_lib.reporting.report import build_report, load_params_text
from stages.check import params_or_exit
from stages.common import one_line_errors, run_command


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports"))
@click.option("--configs", type=click.Path(exists=True, path_type=Path), default=Path("configs"))
@one_line_errors
def main(out: Path, configs: Path) -> None:
    params = params_or_exit()
    for sub in ("tables", "figures"):
        fresh_dir(out / sub, "report")
    collection = collect(configs)
    names = {*params.methods, *params.matrix.methods, *(params.bench.methods or [])}  # the runs' and the bench's
    page = build_report(collection, specs={name: method_spec(params, name) for name in names},
                        order=list(params.matrix.methods), setups=list(params.setups), out=out,
                        bench_dir=out / "bench", params_text=load_params_text())
    write_pages(page, out)
    click.echo(f"report of {len(collection.runs)} runs -> {out / 'index.html'}")


if __name__ == "__main__":
    run_command(main)
