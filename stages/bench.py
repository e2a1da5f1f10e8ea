"""Per-step overhead of every method against vanilla:
`python -m stages.bench --out reports/bench [--arch resnet18 --image-size 224 --batch-size 64]`."""
from __future__ import annotations

import platform
from pathlib import Path

import click
import torch

from pipeline_lib.io import atomic_path, write_json
from pipeline_lib.training.bench import benchmark, markdown_table
from stages.check import params_or_exit
from stages.common import run_command


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("reports/bench"))
@click.option("--arch", default=None, help="default: bench.architecture")
@click.option("--image-size", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--steps", type=int, default=None)
@click.option("--methods", default=None, help="comma-separated run names; default: bench.methods or every trained method")
@click.option("--width", type=float, default=None, help="default: model.width")
@click.option("--batch-norm/--no-batch-norm", default=None, help="default: model.batch_norm")
@click.option("--device", default="auto")
def main(out, arch, image_size, batch_size, steps, methods, width, batch_norm, device) -> None:
    params = params_or_exit()
    b = params.bench
    names = methods.split(",") if methods else (b.methods or params.matrix.methods + params.matrix.one_seed_methods)
    if "vanilla" in names:
        names.remove("vanilla")
    names = ["vanilla", *names]
    arch, image_size = arch or b.architecture, image_size or b.image_size
    batch_size, steps = batch_size or b.batch_size, steps or b.steps
    model = params.model.model_copy(update={k: v for k, v in {"width": width, "batch_norm": batch_norm}.items()
                                            if v is not None})
    rows = benchmark(params, names, arch=arch, image_size=image_size, batch_size=batch_size,
                     warmup=b.warmup, steps=steps, device=device, model=model)
    device_name = torch.cuda.get_device_name() if rows[0]["device"].startswith("cuda") else platform.processor() or "cpu"
    stem = f"{arch}_{image_size}px_b{batch_size}_{rows[0]['device'].split(':')[0]}"
    write_json(out / f"{stem}.json", {"device_name": device_name, "threads": torch.get_num_threads(),
                                      "torch": torch.__version__, "rows": rows})
    table = markdown_table(rows)
    with atomic_path(out / f"{stem}.md") as tmp:
        tmp.write_text(f"Per-step cost, {arch} at {image_size} px, batch {batch_size}, {device_name} "
                       f"({torch.get_num_threads()} threads), median of {steps} steps:\n\n{table}")
    click.echo(table)


if __name__ == "__main__":
    run_command(main)
