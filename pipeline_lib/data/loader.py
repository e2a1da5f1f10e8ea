"""Loading shards for training and evaluation.

Two loaders yield the same thing, uint8 batches `(B, 3, S, S)` and labels, deterministic for a
seed and epoch; augmentation and normalisation then run batched on the training device:
- `InMemoryLoader` decodes a split once (small datasets: the synthetic set, CIFAR, Imagenette at
  low resolution) and only indexes afterwards;
- `StreamLoader` is a WebDataset pipeline (shard shuffle, shuffle buffer, decode in workers).
"""
from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import webdataset as wds
from PIL import Image

from pipeline_lib.data.shards import DamagedShards, read_manifest, restore_fix, shard_urls, verify_shards

IMAGE_KEYS = ("png", "jpg")


FAST_JPEG_MIN_SIZE = 128  # below this target size, PIL's reduced-scale JPEG decoding wins


def decode_image(data: bytes, size: int) -> torch.Tensor:
    """Encoded image to uint8 (3, size, size).

    For targets of at least FAST_JPEG_MIN_SIZE pixels, JPEGs go through torchvision's
    libjpeg-turbo decoder (about twice as fast as PIL at full scale, measured). Smaller targets
    go through PIL's draft mode, which lets libjpeg decode at a reduced DCT scale (most of the
    cost saved at 64 pixels); so do other formats and JPEGs that libjpeg-turbo rejects.
    Resizing is bilinear with antialiasing either way."""
    if size >= FAST_JPEG_MIN_SIZE and data[:2] == b"\xff\xd8":
        from torchvision.io import ImageReadMode, decode_jpeg  # not at the top: see pipeline_lib.models

        try:
            image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        except RuntimeError:
            image = None
        if image is not None:
            if image.shape[-2:] != (size, size):
                image = torch.nn.functional.interpolate(image[None].float(), size=(size, size), mode="bilinear",
                                                        antialias=True, align_corners=False)[0]
                image = image.round().clamp(0, 255).to(torch.uint8)
            return image
    with Image.open(io.BytesIO(data)) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))
        im = im.convert("RGB")
        if im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.array(im)).permute(2, 0, 1)


def decode_mask(data: bytes, size: int) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L")
        if im.size != (size, size):
            im = im.resize((size, size), Image.NEAREST)
        return torch.from_numpy(np.asarray(im) > 127)


def _image_bytes(record: dict) -> bytes:
    for key in IMAGE_KEYS:
        if key in record:
            return record[key]
    raise KeyError(f"sample {record.get('__key__')} holds no image ({', '.join(record)})")


def _decode_record(record: dict, size: int) -> tuple[torch.Tensor, int]:
    return decode_image(_image_bytes(record), size), int(record["cls"])


@dataclass
class SplitData:
    """A whole split in memory. Boxes are fractions of the side; masks are (N, S, S) bool."""

    images: torch.Tensor
    labels: torch.Tensor
    keys: list[str]
    boxes: list[list[list[float]] | None]
    masks: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, order: list[int]) -> "SplitData":
        return SplitData(images=self.images[order], labels=self.labels[order], keys=[self.keys[i] for i in order],
                         boxes=[self.boxes[i] for i in order],
                         masks=self.masks[order] if self.masks is not None else None)

    def by_keys(self, keys: list[str]) -> "SplitData":
        """The samples of `keys`, in their order (say, those an attributions.npz was computed on)."""
        index = {k: i for i, k in enumerate(self.keys)}
        missing = [k for k in keys if k not in index]
        if missing:
            raise KeyError(f"{len(missing)} of {len(keys)} keys are not in this split (first: {missing[0]}); "
                           "the file they come from was made from other shards: rerun its stage")
        return self.subset([index[k] for k in keys])


def load_split(shard_dir: str | Path, split: str, size: int) -> SplitData:
    """Decode a whole split. Its sample count must be the manifest's: a tar that lost members
    (`verify_shards` checks the tars' digests first) is an error, not a shorter split."""
    images, labels, keys, boxes, masks = [], [], [], [], []
    # Every process reads the whole split (evaluation; in-memory training slices batches per rank).
    for record in wds.WebDataset(shard_urls(shard_dir, split), shardshuffle=False, empty_check=False,
                                 nodesplitter=None):
        image, label = _decode_record(record, size)
        images.append(image)
        labels.append(label)
        keys.append(record["__key__"])
        boxes.append(json.loads(record["boxes.json"]) if "boxes.json" in record else None)
        if "mask.png" in record:
            masks.append(decode_mask(record["mask.png"], size))
    expected = read_manifest(shard_dir)["splits"][split]["count"]
    if len(labels) != expected:
        raise DamagedShards(f"split {split!r} of {shard_dir} holds {len(labels)} samples where its manifest "
                            f"lists {expected}; {restore_fix(shard_dir)}")
    return SplitData(
        images=torch.stack(images), labels=torch.tensor(labels), keys=keys, boxes=boxes,
        masks=torch.stack(masks) if len(masks) == len(labels) else None,
    )


class Splits:
    """The splits of one folder of shards at one image size, for one run's process: the tars are
    checked against the manifest once (`verify_shards`), and each split is decoded on first use
    and kept, so that training, attribution and evaluation share one decode. Nothing modifies a
    split's tensors in place; a copy's fields may be reassigned (`InMemoryLoader`)."""

    def __init__(self, shard_dir: str | Path, size: int):
        self.dir, self.size = Path(shard_dir), size
        self.manifest = verify_shards(shard_dir)
        self.normalize = Normalizer(self.manifest["mean"], self.manifest["std"])
        self._decoded: dict[str, SplitData] = {}

    @property
    def names(self) -> list[str]:
        return list(self.manifest["splits"])

    @property
    def num_classes(self) -> int:
        return len(self.manifest["classes"])

    def __getitem__(self, split: str) -> SplitData:
        if split not in self._decoded:
            self._decoded[split] = load_split(self.dir, split, self.size)
        return replace(self._decoded[split])


def stratified_sample(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of n images drawn at random (seeded), round-robin over the classes so that every
    class is as equally represented as the split allows: splits are stored class by class, so
    their first images are a single class."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    rank = torch.empty_like(order)  # position of each image among its class, in the random order
    for c in shuffled.unique():
        members = (shuffled == c).nonzero().flatten()
        rank[members] = torch.arange(len(members))
    return order[(rank * len(labels) + torch.arange(len(labels))).argsort()[:n]]


def with_ground_truth_first(data: SplitData, limit: int, seed: int = 0) -> SplitData:
    """Up to `limit` images, those with boxes or masks first, each group a seeded class-stratified
    random draw, so that the metrics that need ground truth see as many such images as the
    budget allows and no metric sees only the first classes of the split."""
    has = torch.tensor([data.masks is not None or bool(b) for b in data.boxes], dtype=torch.bool)
    groups = [g.nonzero().flatten() for g in (has, ~has)]
    return data.subset(torch.cat([g[stratified_sample(data.labels[g], len(g), seed)] for g in groups])[:limit].tolist())


class Normalizer:
    """uint8 images to normalised floats, on whatever device the batch is on."""

    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float() / 255 - mean) / std



def augment(images: torch.Tensor, generator: torch.Generator, *, random_crop: bool,
            crop_padding: int, flip: bool) -> torch.Tensor:
    """Batched random crop (zero padding) and horizontal flip of uint8 images, per sample."""
    b, _, h, w = images.shape
    if random_crop and crop_padding > 0:
        p = crop_padding
        padded = torch.nn.functional.pad(images, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(images.device)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(images.device)
        rows = (oy[:, None] + torch.arange(h, device=images.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=images.device))[:, None, None, :]
        batch = torch.arange(b, device=images.device)[:, None, None, None]
        chans = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
        images = padded[batch, chans, rows, cols]
    if flip:
        flips = (torch.rand(b, generator=generator) < 0.5).to(images.device)
        images = torch.where(flips[:, None, None, None], images.flip(-1), images)
    return images


class InMemoryLoader:
    """Batches of a split held in memory: on the GPU when `device` is one (a 224-pixel Imagenette
    train split is about 1.4 GB of uint8), so that indexing and augmentation never leave it."""

    def __init__(self, data: SplitData, batch_size: int, *, shuffle: bool, seed: int,
                 drop_last: bool = False, device: torch.device | str = "cpu"):
        data.images, data.labels = data.images.to(device), data.labels.to(device)
        self.data, self.batch_size, self.shuffle, self.seed = data, batch_size, shuffle, seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        else:
            order = torch.arange(n)
        order = order.to(self.data.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.data.images[idx], self.data.labels[idx]


class StreamLoader:
    """WebDataset pipeline: seeded shard shuffle and shuffle buffer, decode in `workers`."""

    def __init__(self, shard_dir, split: str, size: int, batch_size: int, *, shuffle: bool,
                 seed: int, workers: int, shuffle_buffer: int):
        self.urls = shard_urls(shard_dir, split)
        self.count = read_manifest(shard_dir)["splits"][split]["count"]
        self.size, self.batch_size, self.shuffle, self.seed = size, batch_size, shuffle, seed
        self.workers, self.shuffle_buffer = min(workers, len(self.urls)), shuffle_buffer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.count // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seed = self.seed * 100003 + self.epoch
        dataset = wds.WebDataset(self.urls, shardshuffle=len(self.urls) if self.shuffle else False,
                                 seed=seed, empty_check=False, nodesplitter=wds.split_by_node)
        if self.shuffle:
            dataset = dataset.shuffle(self.shuffle_buffer, rng=random.Random(seed))
        size = self.size
        dataset = dataset.map(lambda r: _decode_record(r, size)).batched(
            self.batch_size, collation_fn=_collate, partial=True)
        loader = wds.WebLoader(dataset, batch_size=None, num_workers=self.workers)
        yield from loader


def _collate(samples):
    images, labels = zip(*samples)
    return torch.stack(images), torch.tensor(labels)
