"""Shards of the real data in ../shared/data hold every image (skipped where it is absent)."""
import pytest

from pipeline_lib.data import DATASETS
from pipeline_lib.data.shards import write_shards
from tests.conftest import SHARED_DATA, tiny_params

IMAGENETTE = SHARED_DATA / "imagenette2-224sq.tar"
BOXES = SHARED_DATA / "imagenette2-224sq-boxes.csv"
CIFAR = SHARED_DATA / "cifar10-jpg.tar"


def shard(tmp_path, **data):
    source = DATASETS.get(data["dataset"])(tiny_params(**{"data": data}).data)
    return write_shards(source, tmp_path / "s", params={}, samples_per_shard=5000, max_bad_fraction=0.01,
                        progress=False)


@pytest.mark.skipif(not IMAGENETTE.exists(), reason="shared Imagenette data absent")
def test_imagenette_shards_hold_all_13394_images_and_500_boxed(tmp_path):
    m = shard(tmp_path, dataset="imagenette", root=str(IMAGENETTE), boxes_csv=str(BOXES))
    splits = m["splits"]
    assert m["bad_images"]["count"] == 0
    assert splits["train"]["count"] + splits["val"]["count"] == 9469 and splits["test"]["count"] == 3925
    assert sum(s["with_boxes"] for s in splits.values()) == 500
    assert splits["test"]["with_boxes"] == 134  # the boxed images of the official val split
    assert len(m["classes"]) == 10 and m["classes"][0] == "tench"


@pytest.mark.skipif(not CIFAR.exists(), reason="shared CIFAR-10 data absent")
def test_cifar10_jpg_shards_hold_all_60000_images(tmp_path):
    m = shard(tmp_path, dataset="cifar10", root=str(CIFAR))
    splits = m["splits"]
    assert m["bad_images"]["count"] == 0 and sum(s["count"] for s in splits.values()) == 60000
    assert splits["test"]["count"] == 10000 and splits["val"]["per_class"] == [500] * 10
