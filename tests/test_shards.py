"""Shards: what goes in comes out; unreadable images are skipped, counted and listed."""
import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline_lib.data import Sample, Source
from pipeline_lib.data import loader
from pipeline_lib.data.loader import InMemoryLoader, Splits, StreamLoader, augment, decode_image, load_split
from pipeline_lib.data.shards import TooManyBadImages, read_manifest, write_shards


def jpeg(value: int, size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (value, 255 - value, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def source(samples):
    return Source(name="toy", classes=["a", "b"], splits=["train", "test"], mean=(0.5,) * 3, std=(0.2,) * 3,
                  read=lambda: iter(samples))


def test_round_trip_keeps_images_labels_boxes_and_masks(tmp_path, tiny_shards):
    samples = [("train", Sample(f"k{i}", jpeg(10 * i), "jpg", i % 2, boxes=[[0.1, 0.2, 0.5, 0.9]] if i % 3 == 0 else None))
               for i in range(7)]
    manifest = write_shards(source(samples), tmp_path / "s", params={"x": 1}, samples_per_shard=3,
                            max_bad_fraction=0.0, progress=False)
    assert manifest["splits"]["train"]["count"] == 7 and len(manifest["splits"]["train"]["shards"]) == 3
    assert manifest["splits"]["train"]["per_class"] == [4, 3] and manifest["splits"]["train"]["with_boxes"] == 3
    data = load_split(tmp_path / "s", "train", 16)
    assert data.keys == [s.key for _, s in samples]
    assert data.labels.tolist() == [s.label for _, s in samples]
    assert data.boxes == [s.boxes for _, s in samples]
    for (_, s), image in zip(samples, data.images):
        assert torch.equal(image, decode_image(s.image, 16))
    synthetic = load_split(tiny_shards, "test", 32)
    assert synthetic.masks is not None and synthetic.masks.shape == (20, 32, 32)
    assert all(b and len(b) == 1 for b in synthetic.boxes)


def test_a_runs_splits_are_decoded_once_each_and_handed_out_as_copies(tmp_path, monkeypatch):
    write_shards(source([("train", Sample(f"k{i}", jpeg(10 + i), "jpg", i % 2)) for i in range(4)]),
                 tmp_path / "s", params={}, samples_per_shard=3, max_bad_fraction=0.0, progress=False)
    decodes, decode = [], loader.load_split
    monkeypatch.setattr(loader, "load_split", lambda *a: decodes.append(a) or decode(*a))
    splits = Splits(tmp_path / "s", 16)
    first = splits["train"]
    first.images = first.images[:1]  # what InMemoryLoader does to its copy (a move to the GPU)
    second = splits["train"]
    assert len(decodes) == 1 and len(second.images) == 4
    assert len(Splits(tmp_path / "s", 8)["train"].images) == 4 and len(decodes) == 2  # another run's: its own


def test_same_params_give_identical_shards(tmp_path):
    samples = [("train", Sample(f"k{i}", jpeg(i), "jpg", i % 2)) for i in range(4)]
    a = write_shards(source(samples), tmp_path / "a", params={}, samples_per_shard=10, max_bad_fraction=0, progress=False)
    b = write_shards(source(samples), tmp_path / "b", params={}, samples_per_shard=10, max_bad_fraction=0, progress=False)
    assert a["splits"]["train"]["shards"] == b["splits"]["train"]["shards"]


def test_corrupt_images_are_skipped_and_listed(tmp_path):
    good = [("train", Sample(f"g{i}", jpeg(i), "jpg", i % 2)) for i in range(199)]
    bad = [("train", Sample("broken", b"\xff\xd8 not a jpeg", "jpg", 0))]
    manifest = write_shards(source(good + bad), tmp_path / "s", params={}, samples_per_shard=100,
                            max_bad_fraction=0.01, progress=False)
    assert manifest["splits"]["train"]["count"] == 199
    assert manifest["bad_images"]["count"] == 1 and manifest["bad_images"]["items"][0]["key"] == "broken"
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["bad_images"]["count"] == 1


def test_too_many_corrupt_images_fail_with_a_clear_message(tmp_path):
    samples = [("train", Sample(f"g{i}", jpeg(i), "jpg", 0)) for i in range(10)]
    samples += [("train", Sample("broken", b"garbage", "jpg", 0))]
    with pytest.raises(TooManyBadImages, match=r"1 of 11 images are unreadable.*max_bad_fraction"):
        write_shards(source(samples), tmp_path / "s", params={}, samples_per_shard=10, max_bad_fraction=0.01,
                     progress=False)
    assert not (tmp_path / "s").exists()


def test_a_png_named_jpeg_is_stored_as_png(tmp_path):
    buf = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buf, format="PNG")
    write_shards(source([("train", Sample("p", buf.getvalue(), "jpg", 1))]), tmp_path / "s", params={},
                 samples_per_shard=10, max_bad_fraction=0, progress=False)
    with tarfile.open(next((tmp_path / "s").glob("train-*.tar"))) as tar:
        assert tar.getnames() == ["p.cls", "p.png"]


def test_loaders_are_deterministic_for_a_seed(tiny_shards):
    data = load_split(tiny_shards, "train", 32)
    first = [y.tolist() for _, y in InMemoryLoader(data, 16, shuffle=True, seed=1)]
    again = [y.tolist() for _, y in InMemoryLoader(data, 16, shuffle=True, seed=1)]
    other = [y.tolist() for _, y in InMemoryLoader(data, 16, shuffle=True, seed=2)]
    assert first == again and first != other
    stream = lambda seed: [y.tolist() for _, y in StreamLoader(tiny_shards, "train", 32, 16, shuffle=True, seed=seed,  # noqa: E731
                                                                workers=0, shuffle_buffer=50)]
    assert stream(1) == stream(1) and stream(1) != stream(2)
    assert sorted(sum(stream(1), [])) == sorted(data.labels.tolist())


def test_augment_crops_and_flips_per_sample():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    same = augment(images, torch.Generator().manual_seed(0), random_crop=False, crop_padding=0, flip=False)
    assert torch.equal(same, images)
    out = augment(images, torch.Generator().manual_seed(0), random_crop=True, crop_padding=2, flip=True)
    assert out.shape == images.shape
    for i in range(2):  # each output is a shifted (maybe flipped) window of the zero-padded input
        padded = torch.nn.functional.pad(images[i], (2, 2, 2, 2))
        windows = [padded[:, y : y + 8, x : x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
