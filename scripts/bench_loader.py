"""Loader throughput: the WebDataset stream loader against torchvision ImageFolder + DataLoader,
on the same images, in one run. `python scripts/bench_loader.py --tar ../shared/data/imagenette2-224sq.tar`

Extracts the tar once into a temporary folder (for ImageFolder), shards it (for WebDataset),
then times `--batches` batches of each loader with `--workers` workers at each image size.
"""
from __future__ import annotations

import tarfile
import tempfile
import time
from pathlib import Path

import click
import torch
from torchvision import datasets, transforms

from pipeline_lib.config.checks import params_with
from pipeline_lib.data import DATASETS
from pipeline_lib.data.loader import StreamLoader
from pipeline_lib.data.shards import write_shards


def images_per_second(loader, batches: int) -> float:
    it = iter(loader)
    next(it)  # workers started, first batch out: not timed
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        images, _ = next(it)
        n += len(images)
    return n / (time.perf_counter() - start)


@click.command()
@click.option("--tar", "tar_path", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--workers", default=2)
@click.option("--batch-size", default=64)
@click.option("--batches", default=40)
@click.option("--sizes", default="224,64")
def main(tar_path: Path, workers: int, batch_size: int, batches: int, sizes: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        root = next(p for p in tmp.iterdir() if p.is_dir())
        write_shards(DATASETS.get("imagenette")(params_with({"data": {"dataset": "imagenette", "root": str(root)}}).data), tmp / "shards",
                     params={}, samples_per_shard=1000, max_bad_fraction=0.01, progress=False)
        print(f"| size | WebDataset (ours) img/s | ImageFolder + DataLoader img/s | ratio |\n|---|---:|---:|---:|")
        for size in map(int, sizes.split(",")):
            wds_loader = StreamLoader(tmp / "shards", "train", size, batch_size, shuffle=True, seed=0, workers=workers,
                                      shuffle_buffer=1000)
            tf = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])
            folder = torch.utils.data.DataLoader(datasets.ImageFolder(str(root / "train"), transform=tf),
                                                 batch_size=batch_size, shuffle=True, num_workers=workers)
            ours, theirs = images_per_second(wds_loader, batches), images_per_second(folder, batches)
            print(f"| {size} | {ours:.0f} | {theirs:.0f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
