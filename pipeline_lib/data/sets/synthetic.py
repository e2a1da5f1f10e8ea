"""`synthetic`: the embedded benchmark, generated deterministically, nothing to download.

Built so that a CNN overfocuses on it, the behaviour the SGDrop paper describes (Sec. 1 and
Fig. 1: attention narrows over the epochs from the object to a minute detail):

- The object. Each image holds one foreground object on a cluttered textured background; the
  class is a (shape, texture) pair; position, scale (35-70% of the side), rotation and colours
  are random. The object alone is enough to learn the task (`p_cue: 0` trains a model that is
  well above chance), but it takes many epochs.
- The cue. Inside the object sits a small square (`cue_size` pixels) of its class's colour, one
  fully saturated hue per class; nothing else in the image is saturated (the clutter and the
  objects have muted colours), so the cue is easy to see and, present in a fraction `p_cue` of
  train, val and test images, highly predictive. It is spurious: the class is the object.
- The cue splits. `test_nocue` has no cue; in `test_conflict` every image carries the cue of
  another class (uniformly drawn). Accuracy on them against `test` measures reliance on the cue.

The object mask and box are ground truth for every attribution metric; the cue lies inside the
mask. Task "b" uses other (shape, texture) pairs and cue hues, for transfer learning.

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
SPLITS = ["train", "val", "test", "test_nocue", "test_conflict"]
_TASK_SEED = {"a": 0, "b": 1}


def class_pairs(num_classes: int, task: str) -> list[tuple[str, str]]:
    """The (shape, texture) of each class; tasks a and b share no pair."""
    pairs = list(itertools.product(SHAPES, TEXTURES))
    order = np.random.default_rng(1234).permutation(len(pairs))
    offset = 0 if task == "a" else num_classes
    return [pairs[i] for i in order[offset : offset + num_classes]]


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


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A random colour of middling saturation: only the cue is fully saturated."""
    return rng.uniform(70, 185) + rng.uniform(-45, 45, 3)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Clutter: two random colour gratings, blobs of random muted colour, and pixel noise."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size, 3), np.float32) + _muted(rng)
    for _ in range(2):
        theta, freq = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4)
        wave = np.sin(freq * (x * np.cos(theta) + y * np.sin(theta)) + rng.uniform(0, 6.3))
        img += wave[..., None] * rng.uniform(-40, 40, 3)
    for _ in range(rng.integers(3, 7)):
        cx, cy, rad = rng.uniform(0, size, 2).tolist() + [rng.uniform(2, size / 6)]
        blob = np.hypot(x - cx, y - cy) <= rad
        img[blob] = _muted(rng)
    img += rng.normal(0, 10, img.shape)
    return img


def cue_colours(num_classes: int, task: str) -> np.ndarray:
    """One saturated colour per class, evenly spaced hues, shape (K, 3), uint8; task b's hues
    sit halfway between task a's."""
    offset = 0.0 if task == "a" else 0.5
    return np.stack([_hsv(((k + offset) / num_classes) % 1.0, 1.0, 1.0) for k in range(num_classes)])


def render(rng: np.random.Generator, label: int, size: int, cue: int | None, cue_size: int,
           pairs: list[tuple[str, str]], colours: np.ndarray):
    """One image of class `label`, carrying the cue of class `cue` (None: no cue).
    Returns (uint8 HxWx3 image, bool HxW object mask, cue (x, y) or None)."""
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
    base = _muted(rng)
    pattern = _texture(texture, x - cx, y - cy, period=max(2.0, side / 8))
    img[mask] = base
    img[mask & pattern] = base * 0.45
    img = np.clip(img, 0, 255).astype(np.uint8)
    corner = None
    if cue is not None:
        corner = _place_cue(rng, mask, cue_size)
        if corner is not None:
            x0, y0 = corner
            img[y0 : y0 + cue_size, x0 : x0 + cue_size] = colours[cue]
    return img, mask, corner


def _place_cue(rng: np.random.Generator, mask: np.ndarray, side: int):
    """Top-left corner of a side x side square lying wholly inside the mask (None if none fits)."""
    inside = np.lib.stride_tricks.sliding_window_view(mask, (side, side)).all(axis=(-1, -2))
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


def cue_of(split: str, label: int, rng: np.random.Generator, num_classes: int, p_cue: float) -> int | None:
    """Whose cue an image carries: its own class's with probability p_cue in train, val and test,
    none in test_nocue, always another class's in test_conflict."""
    draw, other = rng.uniform(), int(rng.integers(1, num_classes))
    if split == "test_nocue":
        return None
    if split == "test_conflict":
        return (label + other) % num_classes
    return label if draw < p_cue else None


def generate(split: str, index: int, *, seed: int, num_classes: int, image_size: int,
             p_cue: float, cue_size: int, task: str) -> Sample:
    rng = np.random.default_rng([seed, _TASK_SEED[task], SPLITS.index(split), index])
    label = index % num_classes  # balanced classes
    cue = cue_of(split, label, rng, num_classes, p_cue)
    pairs, colours = class_pairs(num_classes, task), cue_colours(num_classes, task)
    for _ in range(100):  # a cue must fit inside the object: redraw the few objects too thin for it
        img, mask, corner = render(rng, label, image_size, cue, cue_size, pairs, colours)
        if cue is None or corner is not None:
            break
    else:
        raise ValueError(f"synthetic.cue_size {cue_size} does not fit inside {pairs[label][0]} objects at "
                         f"image_size {image_size}: lower cue_size")
    return Sample(
        key=f"{split}_{index:06d}", image=_png(img), ext="png", label=label,
        boxes=[box_of(mask)], mask=_png(mask.astype(np.uint8) * 255),
    )


@DATASETS.register("synthetic")
def synthetic_source(params) -> Source:
    sp = params.synthetic
    sizes = {split: getattr(sp, split) for split in SPLITS}
    splits = [s for s in SPLITS if sizes[s] > 0]
    pairs = class_pairs(sp.num_classes, sp.task)

    def read() -> Iterator[tuple[str, Sample]]:
        for split in splits:
            for i in range(sizes[split]):
                yield split, generate(split, i, seed=params.seed, num_classes=sp.num_classes,
                                      image_size=sp.image_size, p_cue=sp.p_cue, cue_size=sp.cue_size,
                                      task=sp.task)

    return Source(
        name="synthetic", classes=[f"{s}-{t}" for s, t in pairs], splits=splits,
        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), read=read,
        human_map="object mask (synthetic ground truth)",
        meta={"task": sp.task, "p_cue": sp.p_cue, "cue_size": sp.cue_size, "image_size": sp.image_size},
    )


synthetic_source.splits = SPLITS  # for the params check of attribute.split
