"""Real-data sources, on local files: folders, tars, box CSVs, splits, subsets, downloads."""
import hashlib
import io
import tarfile
from collections import Counter

import pytest
from PIL import Image

from pipeline_lib.data import DATASETS
from pipeline_lib.data.download import Download, download
from tests.conftest import tiny_params


def image_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (i % 255, 0, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def make_tree(root, layout: dict[str, int], prefix="imagenette2-224sq"):
    """layout: {"train/n01": 12, ...} -> files root/prefix/train/n01/img_i.JPEG"""
    files = {}
    for folder, n in layout.items():
        for i in range(n):
            path = root / prefix / folder / f"img_{i}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(image_bytes(i))
            files[f"{prefix}/{folder}/img_{i}.JPEG"] = path
    return root / prefix


def as_tar(folder, tar_path):
    with tarfile.open(tar_path, "w") as tar:
        tar.add(folder, arcname=folder.name)
    return tar_path


def read_all(name, **data):
    src = DATASETS.get(name)(tiny_params(**{"data": {"dataset": name, **data}}).data)
    return src, list(src.read())


def test_imagenette_from_folder_and_tar_agree_with_boxes(tmp_path):
    root = make_tree(tmp_path, {"train/n01": 20, "train/n02": 20, "val/n01": 5, "val/n02": 5})
    csv = tmp_path / "boxes.csv"
    csv.write_text("path,split,wnid,orig_width,orig_height,x1,y1,x2,y2,x1_224,y1_224,x2_224,y2_224\n"
                   "val/n02/img_3.JPEG,val,n02,40,20,4,2,20,10,0,0,0,0\n"
                   "val/n02/img_3.JPEG,val,n02,40,20,0,0,40,20,0,0,0,0\n")
    src, folder = read_all("imagenette", root=str(root), boxes_csv=str(csv))
    _, tarred = read_all("imagenette", root=str(as_tar(root, tmp_path / "x.tar")), boxes_csv=str(csv))
    assert sorted((s, x.key, x.label) for s, x in folder) == sorted((s, x.key, x.label) for s, x in tarred)
    counts = Counter(s for s, _ in folder)
    assert counts == {"train": 36, "val": 4, "test": 10}  # val: 10% of train, stratified
    assert Counter((s, x.label) for s, x in folder if s == "val") == {("val", 0): 2, ("val", 1): 2}
    boxed = [x for _, x in folder if x.boxes]
    assert len(boxed) == 1 and boxed[0].boxes == [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]
    assert src.classes == ["n01", "n02"]


def test_subset_takes_n_per_class_and_split_deterministically(tmp_path):
    root = make_tree(tmp_path, {"train/a": 30, "train/b": 30, "test/a": 10, "test/b": 10}, prefix="cifar10-jpg")
    _, a = read_all("cifar10", root=str(root), subset=3)
    _, b = read_all("cifar10", root=str(root), subset=3)
    assert [x.key for _, x in a] == [x.key for _, x in b]
    assert set(Counter((s, x.label) for s, x in a).values()) == {3} and len(a) == 18


def test_imagefolder_without_splits_is_split_stratified(tmp_path):
    root = make_tree(tmp_path, {"forest": 20, "river": 30}, prefix="resisc")
    _, samples = read_all("imagefolder", root=str(root), val_fraction=0.1)
    counts = Counter((s, x.label) for s, x in samples)
    assert counts[("test", 0)] == 2 and counts[("test", 1)] == 3
    assert counts[("val", 0)] == 2 and counts[("val", 1)] == 3
    assert sum(counts.values()) == 50


def test_download_checks_the_checksum(tmp_path):
    archive = tmp_path / "src.tgz"
    archive.write_bytes(b"pretend archive")
    good = Download(archive.as_uri(), hashlib.sha256(b"pretend archive").hexdigest())
    path = download("toy", tmp_path / "dest", good)
    assert path.read_bytes() == b"pretend archive"
    with pytest.raises(ValueError, match="checksum mismatch"):
        download("other", tmp_path / "dest", Download(archive.as_uri(), "0" * 64))
    assert not (tmp_path / "dest" / "other.tgz").exists()
