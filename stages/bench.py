"""Per-step overhead of every method against vanilla, for each setup's architecture at its image
size and width (`bench.setups`, null for every setup): `python -m stages.bench --out reports/bench`,
or one architecture by hand: `python -m stages.bench --arch resnet18 --image-size 224 --batch-size 64`."""
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
@click.option("--arch", default=None, help="one architecture instead of the setups' (with --image-size)")
@click.option("--image-size", type=int, default=None, help="with --arch; default: loader.image_size")
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
    names = ["vanilla", *[n for n in names if n != "vanilla"]]
    batch_size, steps = batch_size or b.batch_size, steps or b.steps
    if arch:  # by hand: the first setup's params with this architecture
        benches = {"": (params.setup(next(iter(params.setups))), arch, image_size)}
    else:
        benches = {f"{s}_": (params.setup(s), None, None) for s in b.setups or params.setups}
    for prefix, (setup, bench_arch, size) in benches.items():
        arch, size = bench_arch or setup.model.architecture, size or setup.loader.image_size
        model = setup.model.model_copy(update={k: v for k, v in {"width": width, "batch_norm": batch_norm}.items()
                                               if v is not None})
        rows = benchmark(setup, names, arch=arch, image_size=size, batch_size=batch_size, warmup=b.warmup,
                         steps=steps, device=device, model=model)
        device_name = (torch.cuda.get_device_name() if rows[0]["device"].startswith("cuda")
                       else platform.processor() or "cpu")
        stem = f"{prefix}{arch}_{size}px_b{batch_size}_{rows[0]['device'].split(':')[0]}"
        write_json(out / f"{stem}.json", {"device_name": device_name, "threads": torch.get_num_threads(),
                                          "torch": torch.__version__, "width": model.width, "rows": rows})
        table = markdown_table(rows)
        with atomic_path(out / f"{stem}.md") as tmp:
            tmp.write_text(f"Per-step cost, {arch} at {size} px (width {model.width}), batch {batch_size}, "
                           f"{device_name} ({torch.get_num_threads()} threads), median of {steps} steps:\n\n{table}")
        click.echo(f"{stem}:\n{table}")


if __name__ == "__main__":
    run_command(main)
