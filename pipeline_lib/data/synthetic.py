"""`synthetic`: the embedded benchmark, generated deterministically, nothing to download.

Each image holds one foreground object on a cluttered textured background. The class is a
(shape, texture) pair; position, scale (35-70% of the side), rotation and colours are random.
Inside the object sits a small class-specific detail: a 4x4 checker of two class colours,
present with probability `p_detail` in train, val and test, and never in `test_shift`.
A CNN can fit the training set by looking only at those 16 pixels (overfocusing); the object
mask and box give every attribution metric a ground truth. Task "b" uses other
(shape, texture) pairs and detail colours, for transfer learning.

Every image comes from its own generator seeded by (seed, task, split, index), so the same
params give the same bytes, whatever order images are made in.
"""
from __future__ import annotations

import io
import itertools
from typing import Iterator

import numpy as np
from PIL import Image

from pipeline_lib.data import DATASETS, Sample, Source

SHAPES = ["disk", "square", "triangle", "diamond", "cross", "ring", "hexagon", "star"]
TEXTURES = ["solid", "hstripes", "vstripes", "checker", "dots", "diagonal"]
SPLITS = ["train", "val", "test", "test_shift"]
DETAIL = 4  # side of the detail, pixels
_TASK_SEED = {"a": 0, "b": 1}


def class_pairs(num_classes: int, task: str) -> list[tuple[str, str]]:
    """The (shape, texture) of each class; tasks a and b share no pair."""
    pairs = list(itertools.product(SHAPES, TEXTURES))
    order = np.random.default_rng(1234).permutation(len(pairs))
    offset = 0 if task == "a" else num_classes
    return [pairs[i] for i in order[offset : offset + num_classes]]


def detail_colours(num_classes: int, task: str) -> np.ndarray:
    """Two saturated colours per class, shape (K, 2, 3), uint8."""
    rng = np.random.default_rng(99 + _TASK_SEED[task])
    hues = (np.arange(2 * num_classes) / (2 * num_classes) + rng.uniform(0, 1)) % 1.0
    hues = hues[rng.permutation(2 * num_classes)]
    return np.stack([_hsv(h, 1.0, 1.0) for h in hues]).reshape(num_classes, 2, 3)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (np.array(rgb) * 255).astype(np.uint8)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of a unit shape in rotated, centred coordinates u, v in [-1, 1]."""
    r = np.hypot(u, v)
    if shape == "disk":
        return r <= 1
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.85
    if shape == "triangle":
        return (v <= 0.8) & (v >= -1 + 1.8 * abs(u))
    if shape == "diamond":
        return abs(u) + abs(v) <= 1
    if shape == "cross":
        return ((abs(u) <= 0.35) & (abs(v) <= 1)) | ((abs(v) <= 0.35) & (abs(u) <= 1))
    if shape == "ring":
        return (r <= 1) & (r >= 0.5)
    if shape == "hexagon":
        return (abs(v) <= 0.87) & (abs(u) * 0.87 + abs(v) * 0.5 <= 0.87)
    if shape == "star":
        angle = np.arctan2(v, u)
        return r <= 0.55 + 0.45 * np.cos(5 * angle) ** 2
    raise ValueError(shape)


def _texture(texture: str, x: np.ndarray, y: np.ndarray, period: float) -> np.ndarray:
    if texture == "solid":
        return np.zeros_like(x, dtype=bool)
    if texture == "hstripes":
        return (y // period) % 2 == 0
    if texture == "vstripes":
        return (x // period) % 2 == 0
    if texture == "checker":
        return ((x // period) + (y // period)) % 2 == 0
    if texture == "dots":
        return np.hypot(x % (2 * period) - period, y % (2 * period) - period) < period * 0.6
    if texture == "diagonal":
        return ((x + y) // period) % 2 == 0
    raise ValueError(texture)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Clutter: two random colour gratings, blobs of random colour, and pixel noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32) + rng.uniform(60, 190, 3)
    for _ in range(2):
        theta, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
        wave = np.sin(freq * (x * np.cos(theta) + y * np.sin(theta)) + rng.uniform(0, 6.3))
        img += wave[..., None] * rng.uniform(-40, 40, 3)
    for _ in range(rng.integers(3, 7)):
        cx, cy, rad = rng.uniform(0, size, 2).tolist() + [rng.uniform(2, size / 6)]
        blob = np.hypot(x - cx, y - cy) <= rad
        img[blob] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 10, img.shape)
    return img


def render(rng: np.random.Generator, label: int, size: int, with_detail: bool,
           pairs: list[tuple[str, str]], colours: np.ndarray):
    """One image: (uint8 HxWx3 image, bool HxW object mask, detail (x, y) or None)."""
    shape, texture = pairs[label]
    img = _background(rng, size)
    side = rng.uniform(0.35, 0.70) * size
    half = side / 2
    cx, cy = rng.uniform(half, size - half, 2)
    theta = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = (x - cx) / half, (y - cy) / half
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    mask = _shape_mask(shape, u, v)
    base = rng.uniform(30, 225, 3)
    pattern = _texture(texture, x - cx, y - cy, period=max(2.0, side / 8))
    img[mask] = base
    img[mask & pattern] = base * 0.45
    img = np.clip(img, 0, 255).astype(np.uint8)
    detail = None
    if with_detail:
        detail = _place_detail(rng, mask)
        if detail is not None:
            dx0, dy0 = detail
            checker = (np.add.outer(np.arange(DETAIL), np.arange(DETAIL)) % 2).astype(int)
            img[dy0 : dy0 + DETAIL, dx0 : dx0 + DETAIL] = colours[label][checker]
    return img, mask, detail


def _place_detail(rng: np.random.Generator, mask: np.ndarray):
    """Top-left corner of a DETAIL x DETAIL square lying wholly inside the mask."""
    h, w = mask.shape
    inside = np.lib.stride_tricks.sliding_window_view(mask, (DETAIL, DETAIL)).all(axis=(-1, -2))
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        return None
    i = rng.integers(len(ys))
    return int(xs[i]), int(ys[i])


def box_of(mask: np.ndarray) -> list[float]:
    """[x1, y1, x2, y2] of the mask's pixels, as fractions of the side (x2, y2 exclusive)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return [float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h)]


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def generate(split: str, index: int, *, seed: int, num_classes: int, image_size: int,
             p_detail: float, task: str) -> Sample:
    split_id = SPLITS.index(split)
    rng = np.random.default_rng([seed, _TASK_SEED[task], split_id, index])
    label = index % num_classes  # balanced classes
    with_detail = split != "test_shift" and rng.uniform() < p_detail
    img, mask, detail = render(rng, label, image_size, with_detail,
                               class_pairs(num_classes, task), detail_colours(num_classes, task))
    return Sample(
        key=f"{split}_{index:06d}", image=_png(img), ext="png", label=label,
        boxes=[box_of(mask)], mask=_png(mask.astype(np.uint8) * 255),
    )


@DATASETS.register("synthetic")
def synthetic_source(params) -> Source:
    sp = params.synthetic
    sizes = {"train": sp.train, "val": sp.val, "test": sp.test, "test_shift": sp.test_shift}
    pairs = class_pairs(sp.num_classes, sp.task)

    def read() -> Iterator[tuple[str, Sample]]:
        for split in SPLITS:
            for i in range(sizes[split]):
                yield split, generate(split, i, seed=params.seed, num_classes=sp.num_classes,
                                      image_size=sp.image_size, p_detail=sp.p_detail, task=sp.task)

    return Source(
        name="synthetic", classes=[f"{s}-{t}" for s, t in pairs], splits=SPLITS,
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), read=read,
        human_map="object mask (synthetic ground truth)",
        meta={"task": sp.task, "p_detail": sp.p_detail, "image_size": sp.image_size},
    )


synthetic_source.splits = SPLITS  # for the params check of attribute.split
