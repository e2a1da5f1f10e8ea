"""Real datasets: Imagenette/Imagewoof, CIFAR-10/100, STL10 and generic class folders.

Canonical splits are train, val and test. Where a dataset ships no val split, val is a
deterministic stratified `data.val_fraction` of train; Imagenette's official `val` is our `test`
(as in the SGDrop paper). A folder with no split at all is split train/val/test stratified.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from pipeline_lib.data import DATASETS, IMAGENET_MEAN, IMAGENET_STD, Sample, Source
from pipeline_lib.data.download import DOWNLOADS, download
from pipeline_lib.data.files import (
    list_images, per_class_subset, read_images, resolve_root, stratified_take,
)

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
STL10_MEAN, STL10_STD = (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)


def _root(params, name: str) -> Path:
    how = (f"It can be downloaded with data.download: true ({DOWNLOADS[name].url})."
           if name in DOWNLOADS else "See the README's Data section.")
    try:
        return resolve_root(params.root, name, how)
    except FileNotFoundError:
        if params.download and name in DOWNLOADS:
            return download(name, Path(params.root or "data/raw"))
        raise


def _found_root(name: str):
    """A factory's `root`: where `_root` finds the data now, or None (`pipeline_lib.data.data_root`)."""
    def find(params) -> Path | None:
        try:
            return resolve_root(params.root, name, "")
        except FileNotFoundError:
            return None
    return find


def read_box_csv(path: str | Path) -> dict[str, list[list[float]]]:
    """Boxes per image from the `imagenette2-224sq-boxes.csv` format, as fractions of the image.

    Keyed by the path's last three components (`split/wnid/file`), so that any copy of the images
    (extracted, archived, resized) finds its boxes.
    """
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            w, h = float(row["orig_width"]), float(row["orig_height"])
            key = "/".join(Path(row["path"]).parts[-3:])
            boxes[key].append([float(row["x1"]) / w, float(row["y1"]) / h,
                               float(row["x2"]) / w, float(row["y2"]) / h])
    return dict(boxes)


def folder_source(name: str, root: Path, params, *, split_map: dict[str, str] | None,
                  mean, std, class_names: dict[str, str] | None = None,
                  human_map: str = "none") -> Source:
    """A class-folder tree: `{split}/<class>/<image>` (split_map maps its split folders to ours)
    or, with split_map None, `<class>/<image>` split train/val/test here."""
    paths = list_images(root)
    if not paths:
        raise FileNotFoundError(f"no images found under {root}: expected <class>/<image> folders")
    # Images are identified by their last path components, so that a folder and an archive of
    # it (which adds a top folder) give the same keys, splits and subsets.
    depth = 2 if split_map is None else 3
    path_of = {"/".join(Path(p).parts[-depth:]): p for p in paths}
    entries = []  # (identity, official split or None, class)
    for ident in path_of:
        parts = ident.split("/")
        if split_map is None:
            entries.append((ident, None, parts[-2]))
        elif len(parts) == 3 and parts[0] in split_map:
            entries.append((ident, parts[0], parts[1]))
    if not entries:
        raise FileNotFoundError(
            f"no images under {root} in the layout {{{','.join(split_map)}}}/<class>/<image>")
    classes = sorted({c for _, _, c in entries})
    label_of = {c: i for i, c in enumerate(classes)}
    split_of = _assign_splits(entries, split_map, params)
    chosen = [(i, split_of[i], c) for i, _, c in entries]
    if params.subset:
        chosen = per_class_subset(chosen, params.subset, params.seed)
    wanted = {path_of[i]: (i, s, c) for i, s, c in chosen}
    boxes = read_box_csv(params.boxes_csv) if params.boxes_csv else {}

    def read() -> Iterator[tuple[str, Sample]]:
        for path, data in read_images(root, wanted):
            ident, split, cls = wanted[path]
            key = str(Path(ident).with_suffix("")).replace("/", "__").replace(".", "_")
            yield split, Sample(key=key, image=data, ext=Path(path).suffix.lower().lstrip("."),
                                label=label_of[cls], boxes=boxes.get(ident), origin=f"{root}/{path}")

    names = [class_names.get(c, c) for c in classes] if class_names else classes
    meta = {"root": str(root), "folders": classes}
    if all(c in IMAGENET_INDEX for c in classes):
        meta["imagenet_index"] = [IMAGENET_INDEX[c] for c in classes]
    return Source(name=name, classes=names, splits=["train", "val", "test"], mean=mean, std=std,
                  read=read, human_map=human_map if boxes else "none", meta=meta)


def _assign_splits(entries, split_map, params) -> dict[str, str]:
    if split_map is None:
        pool = [(p, c) for p, _, c in entries]
        test = stratified_take(pool, params.val_fraction, params.seed)
        val = stratified_take([(p, c) for p, c in pool if p not in test],
                              params.val_fraction / (1 - params.val_fraction), params.seed + 1)
        return {p: "test" if p in test else "val" if p in val else "train" for p, _ in pool}
    mapped = {p: split_map[s] for p, s, _ in entries}
    if "val" not in split_map.values():
        val = stratified_take([(p, c) for p, s, c in entries if mapped[p] == "train"],
                              params.val_fraction, params.seed)
        mapped.update({p: "val" for p in val})
    return mapped


# ImageNet class index of each Imagenette folder (to match ClickMe's ImageNet labels).
IMAGENET_INDEX = {
    "n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
    "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701,
}

IMAGENETTE_NAMES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}


def _imagenet_subset(name: str):
    def make(params) -> Source:
        return folder_source(name, _root(params, name), params,
                             split_map={"train": "train", "val": "test"},
                             mean=IMAGENET_MEAN, std=IMAGENET_STD, class_names=IMAGENETTE_NAMES,
                             human_map="ImageNet bounding-box masks")
    return make


for _name in ("imagenette", "imagewoof"):
    DATASETS.register(_name)(_imagenet_subset(_name)).root = _found_root(_name)


def _class_folders(name: str):
    """Class folders under $OVERFOCUS_DATA/<name> (or data.root): uses the tree's train/val/test
    folders when it has them, else splits it here."""
    def make(params) -> Source:
        root = _root(params, name)
        split_folders = {Path(p).parts[-3] for p in list_images(root)[:1000] if len(Path(p).parts) >= 3}
        split_map = ({s: s for s in ("train", "val", "test")}
                     if {"train", "test"} <= split_folders or {"train", "val"} <= split_folders else None)
        return folder_source(name, root, params, split_map=split_map, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return make


# Any class-folder tree (UC-Merced, ...), and the SGDrop paper's remote-sensing sets by the names
# its tables use, so that the report finds the paper's values beside ours
for _name in ("imagefolder", "rsicd", "resisc45", "patternnet"):
    DATASETS.register(_name)(_class_folders(_name)).root = _found_root(_name)


def _torchvision_root(name: str):
    def root(params) -> Path:
        return Path(params.root) if params.root else Path("data/raw") / name
    return root


def _torchvision_source(name: str, params, dataset_cls, splits: dict[str, dict], mean, std) -> Source:
    """torchvision-format roots (`download=True` for real users); images re-encoded as PNG."""
    root = _torchvision_root(name)(params)
    sets = {}
    for split, kwargs in splits.items():
        try:
            sets[split] = dataset_cls(str(root), download=params.download, **kwargs)
        except RuntimeError as err:
            raise FileNotFoundError(
                f"{name} not found under {root} ({err}). Set data.root to the torchvision-format "
                f"root, or data.download: true to fetch it.") from None
    classes = list(getattr(sets["train"], "classes"))
    entries = [(f"{split}/{i:06d}", split, int(_label(ds, i)))
               for split, ds in sets.items() for i in range(len(ds))]
    split_of = {p: s for p, s, _ in entries}
    val = stratified_take([(p, str(c)) for p, s, c in entries if s == "train"],
                          params.val_fraction, params.seed)
    chosen = [(p, "val" if p in val else split_of[p], str(c)) for p, _, c in entries]
    if params.subset:
        chosen = per_class_subset(chosen, params.subset, params.seed)

    def read() -> Iterator[tuple[str, Sample]]:
        for path, split, cls in chosen:
            source_split, index = path.split("/")
            image, label = sets[source_split][int(index)]
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            yield split, Sample(key=path.replace("/", "_"), image=buf.getvalue(), ext="png",
                                label=int(label))

    return Source(name=name, classes=classes, splits=["train", "val", "test"], mean=mean,
                  std=std, read=read, meta={"root": str(root)})


def _label(ds, i):
    targets = getattr(ds, "targets", None)
    return targets[i] if targets is not None else ds.labels[i]


@DATASETS.register("cifar10")
def cifar10_source(params) -> Source:
    """CIFAR-10 from a torchvision root, or from the `{train,test}/<class>/*.jpg` layout
    (a folder or a .tar), told apart by what the root holds."""
    from torchvision.datasets import CIFAR10

    root = Path(params.root) if params.root else None
    if root is not None and root.exists() and not (root / "cifar-10-batches-py").exists():
        return folder_source("cifar10", root, params, split_map={"train": "train", "test": "test"},
                             mean=CIFAR10_MEAN, std=CIFAR10_STD)
    return _torchvision_source("cifar10", params, CIFAR10,
                               {"train": {"train": True}, "test": {"train": False}},
                               CIFAR10_MEAN, CIFAR10_STD)


@DATASETS.register("cifar100")
def cifar100_source(params) -> Source:
    from torchvision.datasets import CIFAR100

    return _torchvision_source("cifar100", params, CIFAR100,
                               {"train": {"train": True}, "test": {"train": False}},
                               CIFAR100_MEAN, CIFAR100_STD)


@DATASETS.register("stl10")
def stl10_source(params) -> Source:
    from torchvision.datasets import STL10

    return _torchvision_source("stl10", params, STL10,
                               {"train": {"split": "train"}, "test": {"split": "test"}},
                               STL10_MEAN, STL10_STD)


for _name, _factory in (("cifar10", cifar10_source), ("cifar100", cifar100_source), ("stl10", stl10_source)):
    _factory.root = _torchvision_root(_name)
