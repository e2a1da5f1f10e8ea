"""The synthetic benchmark: deterministic bytes, ground truth that is true, and the cue exactly
where each split says it is."""
import io

import numpy as np
import pytest
from PIL import Image

from pipeline_lib.data.sets.synthetic import SPLITS, class_pairs, cue_colours, generate, render

KW = dict(seed=3, num_classes=10, image_size=64, p_cue=0.8, cue_size=4, task="a")


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def cues_in(img: np.ndarray, side: int, task: str = "a") -> set[int]:
    """The classes whose cue (a full side x side square of the class's colour) the image holds."""
    found = set()
    for k, colour in enumerate(cue_colours(10, task)):
        same = (img == colour).all(-1)
        if np.lib.stride_tricks.sliding_window_view(same, (side, side)).all(axis=(-1, -2)).any():
            found.add(k)
    return found


def test_same_seed_same_bytes_other_seed_other_bytes():
    for split in SPLITS:
        a = [generate(split, i, **KW) for i in range(4)]
        b = [generate(split, i, **KW) for i in range(4)]
        c = [generate(split, i, **{**KW, "seed": 4}) for i in range(4)]
        assert [s.image for s in a] == [s.image for s in b]
        assert [s.mask for s in a] == [s.mask for s in b]
        assert [s.image for s in a] != [s.image for s in c]


def test_box_contains_mask_and_is_tight():
    for i in range(20):
        s = generate("val", i, **KW)
        mask = decode(s.mask) > 0
        x1, y1, x2, y2 = (np.array(s.boxes[0]) * 64).round().astype(int)
        inside = np.zeros_like(mask)
        inside[y1:y2, x1:x2] = True
        assert mask.any() and not (mask & ~inside).any()
        assert mask[y1, :].any() and mask[y2 - 1, :].any() and mask[:, x1].any() and mask[:, x2 - 1].any()


@pytest.mark.parametrize("cue_size", [4, 8])
def test_the_cue_changes_only_its_square_inside_the_object_and_not_the_mask(cue_size):
    """Same generator state with and without the cue: same object and mask, and the images
    differ only on the cue's square, which lies wholly inside the object mask."""
    pairs, colours = class_pairs(10, "a"), cue_colours(10, "a")
    placed = 0
    for i in range(30):
        plain, plain_mask, _ = render(np.random.default_rng(i), i % 10, 64, None, cue_size, pairs, colours)
        img, mask, corner = render(np.random.default_rng(i), i % 10, 64, (i + 3) % 10, cue_size, pairs, colours)
        assert (mask == plain_mask).all() and mask.any()
        if corner is None:  # the object is too thin for the cue (generate redraws it)
            continue
        placed += 1
        x, y = corner
        square = np.zeros_like(mask)
        square[y : y + cue_size, x : x + cue_size] = True
        assert mask[square].all()
        assert (img[square] == colours[(i + 3) % 10]).all()
        assert (img[~square] == plain[~square]).all()
    assert placed >= 20


def test_each_split_carries_the_cue_it_should():
    """train/val/test: the own class's cue or none (at about p_cue); test_nocue: no cue;
    test_conflict: exactly one cue, another class's, in every image."""
    for split in ("train", "val", "test"):
        samples = [generate(split, i, **KW) for i in range(60)]
        found = [cues_in(decode(s.image), 4) for s in samples]
        assert all(f <= {s.label} for f, s in zip(found, samples))
        assert 0.65 <= np.mean([bool(f) for f in found]) <= 0.95
    for i in range(40):
        s = generate("test_nocue", i, **KW)
        assert cues_in(decode(s.image), 4) == set()
        s = generate("test_conflict", i, **KW)
        found = cues_in(decode(s.image), 4)
        assert len(found) == 1 and s.label not in found


def test_the_cue_split_images_hold_the_object_in_their_masks():
    """The cue splits' masks and boxes are the object's, as in test: the mask is non-empty, the
    cue (when there is one) lies inside it, and the object spans about its drawn scale."""
    for split in ("test_nocue", "test_conflict"):
        for i in range(20):
            s = generate(split, i, **{**KW, "cue_size": 6})
            mask, img = decode(s.mask) > 0, decode(s.image)
            x1, y1, x2, y2 = s.boxes[0]
            assert 0.2 <= max(x2 - x1, y2 - y1) <= 0.9  # a rotated square spans up to 0.84
            for k in cues_in(img, 6):
                same = (img == cue_colours(10, "a")[k]).all(-1)
                assert mask[same].mean() > 0.9  # the square is inside; stray noise pixels may match


def test_p_cue_zero_has_no_cue_and_sizes_of_zero_drop_the_split():
    from pipeline_lib.data.sets.synthetic import synthetic_source
    from tests.conftest import tiny_params

    assert all(not cues_in(decode(generate("train", i, **{**KW, "p_cue": 0.0}).image), 4) for i in range(20))

    data = tiny_params(data={"synthetic": {"train": 3, "val": 2, "test": 2, "test_nocue": 0, "test_conflict": 2,
                                           "task": "b"}}, loader={"batch_size": 2}).data
    source = synthetic_source(data)
    assert source.splits == ["train", "val", "test", "test_conflict"]
    assert sorted({split for split, _ in source.read()}) == sorted(source.splits)


def test_tasks_a_and_b_share_no_class_and_no_cue_colour():
    assert not set(class_pairs(10, "a")) & set(class_pairs(10, "b"))
    assert not {tuple(c) for c in cue_colours(10, "a")} & {tuple(c) for c in cue_colours(10, "b")}
