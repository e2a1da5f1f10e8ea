"""Datasets, registered by name. A source yields encoded samples for every split in one pass;
the `shard` stage writes them to WebDataset tars and the loader reads them back."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from pipeline_lib.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Sample:
    key: str
    image: bytes  # encoded PNG or JPEG, as stored
    ext: str  # "png" or "jpg"
    label: int
    boxes: list[list[float]] | None = None  # [x1, y1, x2, y2] as fractions of width and height
    mask: bytes | None = None  # PNG, object pixels = 255
    origin: str | None = None  # the file it was read from, for error messages


@dataclass
class Source:
    """What a dataset is: its classes, normalisation and splits, and how to read it."""

    name: str
    classes: list[str]
    splits: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    read: Callable[[], Iterator[tuple[str, Sample]]]  # yields (split, sample)
    human_map: str = "none"  # which ground truth stands in for human importance maps
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: Registry[Callable[..., Source]] = Registry("dataset", "pipeline_lib/data")


def data_root(params) -> Path | None:
    """The files a dataset's source reads (a folder or an archive), where it finds them now, or
    None when it reads none (the synthetic set, whose factory has no `root`) or they are not
    there (yet: `data.download`). `params`: the `data` section."""
    find = getattr(DATASETS.get(params.dataset), "root", None)
    path = find(params) if find is not None else None
    return path if path is not None and path.exists() else None


def dataset_splits(name: str) -> list[str]:
    """The splits of a dataset, known without reading it (params are checked before any stage
    runs): a source factory may declare them as `.splits`; real datasets have train, val and test."""
    return getattr(DATASETS.get(name), "splits", ["train", "val", "test"])

from pipeline_lib.data import sets  # noqa: E402,F401  (the datasets register themselves)
