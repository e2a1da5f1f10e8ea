"""The synthetic benchmark: deterministic bytes, and ground truth that is true."""
import io

import numpy as np
from PIL import Image

from pipeline_lib.data.synthetic import DETAIL, class_pairs, detail_colours, generate, render

KW = dict(seed=3, num_classes=10, image_size=64, p_detail=0.8, task="a")


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = [generate("train", i, **KW) for i in range(5)]
    b = [generate("train", i, **KW) for i in range(5)]
    c = [generate("train", i, **{**KW, "seed": 4}) for i in range(5)]
    assert [s.image for s in a] == [s.image for s in b]
    assert [s.mask for s in a] == [s.mask for s in b]
    assert [s.image for s in a] != [s.image for s in c]


def test_box_contains_mask_and_is_tight():
    for i in range(20):
        s = generate("val", i, **KW)
        mask = np.asarray(Image.open(io.BytesIO(s.mask))) > 0
        x1, y1, x2, y2 = (np.array(s.boxes[0]) * 64).round().astype(int)
        inside = np.zeros_like(mask)
        inside[y1:y2, x1:x2] = True
        assert mask.any() and not (mask & ~inside).any()
        assert mask[y1, :].any() and mask[y2 - 1, :].any() and mask[:, x1].any() and mask[:, x2 - 1].any()


def test_detail_lies_inside_the_object_and_carries_the_class_colours():
    pairs, colours = class_pairs(10, "a"), detail_colours(10, "a")
    for i in range(30):
        rng = np.random.default_rng(i)
        img, mask, detail = render(rng, i % 10, 64, True, pairs, colours)
        assert detail is not None
        x, y = detail
        assert mask[y : y + DETAIL, x : x + DETAIL].all()
        patch = img[y : y + DETAIL, x : x + DETAIL].reshape(-1, 3)
        assert {tuple(p) for p in patch} == {tuple(c) for c in colours[i % 10]}


def test_test_shift_has_no_detail_and_other_splits_mostly_do():
    def has_detail(split, i):
        s = generate(split, i, **KW)
        img = np.asarray(Image.open(io.BytesIO(s.image)))
        colours = {tuple(c) for c in detail_colours(10, "a")[s.label]}
        return sum(tuple(p) in colours for p in img.reshape(-1, 3)) >= DETAIL * DETAIL
    assert not any(has_detail("test_shift", i) for i in range(30))
    assert 0.6 <= np.mean([has_detail("test", i) for i in range(60)]) <= 0.95


def test_tasks_a_and_b_share_no_class():
    assert not set(class_pairs(10, "a")) & set(class_pairs(10, "b"))
