"""Per-step cost of every method against vanilla, in one process and one run.

Each method trains the same architecture on one fixed in-memory batch (so that data loading
is excluded): `warmup` steps, then `steps` timed steps; the median is reported. Rounds are
interleaved across methods (one step of each in turn) so that drifts in machine load affect
every method alike.
"""
from __future__ import annotations

import statistics
import time

import torch

from pipeline_lib.config.resolve import RunConfig, method_spec
from pipeline_lib.config.schema import Params
from pipeline_lib.training.loop import build_run
from pipeline_lib.training.step import train_step


def benchmark(params: Params, methods: list[str], *, arch: str, image_size: int, batch_size: int,
              warmup: int, steps: int, num_classes: int = 10, device: str = "auto", model=None) -> list[dict]:
    """`model` overrides params.model (width, batch norm) for this benchmark."""
    train_cfg = params.train.model_copy(update={"device": device})
    model = (model or params.model).model_copy(update={"architecture": arch})
    loader = params.loader.model_copy(update={"image_size": image_size, "batch_size": batch_size})
    runs = {}
    for name in methods:
        cfg = RunConfig(setup="bench", method=method_spec(params, name), seed=0, data=params.data, loader=loader,
                        model=model, train=train_cfg)
        run = build_run(cfg, num_classes, image_size)
        run.method.start_epoch(train_cfg.epochs - 1)  # the final rates: a curriculum's largest
        runs[name] = run
    first = next(iter(runs.values()))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, image_size, image_size, generator=gen).to(first.device)
    y = torch.randint(0, num_classes, (batch_size,), generator=gen).to(first.device)
    if first.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(warmup + steps):
        for name, run in runs.items():
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(run, x, y)
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(1000 * (time.perf_counter() - start))
    base = statistics.median(times[methods[0]])
    return [{"method": name, "ms_per_step": statistics.median(t), "images_per_s": 1000 * batch_size / statistics.median(t),
             "ratio_to_vanilla": statistics.median(t) / base, "device": str(first.device), "arch": arch,
             "image_size": image_size, "batch_size": batch_size, "steps": steps}
            for name, t in times.items()]


def markdown_table(rows: list[dict]) -> str:
    head = "| method | ms / step | images / s | x vanilla |\n|---|---:|---:|---:|\n"
    return head + "".join(f"| {r['method']} | {r['ms_per_step']:.1f} | {r['images_per_s']:.0f} | "
                          f"{r['ratio_to_vanilla']:.2f} |\n" for r in rows)
