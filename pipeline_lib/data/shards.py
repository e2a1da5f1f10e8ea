"""WebDataset shards: one tar series per split, plus a JSON manifest of what went in.

Each sample holds `<key>.png|jpg` (the encoded image as read), `<key>.cls` (the label),
and `<key>.boxes.json` / `<key>.mask.png` when the dataset has them. Tars are written with a
fixed mtime, so the same params give byte-identical shards.
"""
from __future__ import annotations

import hashlib
import io
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import webdataset as wds
from PIL import Image
from tqdm import tqdm

from pipeline_lib.data import Sample, Source
from pipeline_lib.data.download import sha256_of
from pipeline_lib.errors import ClearError
from pipeline_lib.io import replace_dir, write_json

MANIFEST = "manifest.json"
_FORMATS = {"JPEG": "jpg", "PNG": "png"}


class TooManyBadImages(ClearError):
    pass


class DamagedShards(ClearError):
    pass


def check_image(sample: Sample, min_size: int = 1) -> tuple[str | None, str | None]:
    """Decode the image fully. Returns (the error text if it is unreadable or smaller than
    `min_size` on either side, else None; its original mode if it was converted, else None).

    Fixes the extension to the real format (some `.JPEG` files are PNG). An image that is not RGB
    (RGBA, grayscale, palette, CMYK, 16-bit) is converted to RGB (alpha dropped, as PIL does) and
    stored as PNG, losslessly, and so is an exotic format; the shard manifest counts the modes."""
    data = io.BytesIO(sample.image)
    try:
        with Image.open(data) as im:
            im.load()
            if min(im.size) < min_size:
                return f"{im.size[0]}x{im.size[1]} pixels, smaller than data.min_image_size ({min_size})", None
            fmt, mode = _FORMATS.get(im.format), None
            if im.mode != "RGB" or fmt is None:
                mode = im.mode if im.mode != "RGB" else None
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="PNG")
                sample.image, fmt = buf.getvalue(), "png"
        sample.ext = fmt
        return None, mode
    except Exception as err:  # PIL raises many types for corrupt data
        return f"{type(err).__name__}: {err}".replace(f" {data!r}", ""), None  # PIL names the buffer


def write_shards(source: Source, out_dir: Path, *, params: dict[str, Any],
                 samples_per_shard: int, max_bad_fraction: float, min_image_size: int = 1,
                 progress: bool = True) -> dict:
    """Write all splits of `source` under `out_dir` (replaced atomically, and only if it is an
    earlier output of the shard stage) and return the manifest."""
    with replace_dir(out_dir, "shard") as tmp:
        writers: dict[str, wds.ShardWriter] = {}
        counts: dict[str, Counter] = defaultdict(Counter)
        with_boxes: Counter = Counter()
        converted: Counter = Counter()
        bad: list[dict[str, str]] = []
        total = 0
        for split, sample in tqdm(source.read(), desc=f"shard {source.name}", unit="img",
                                  disable=not progress, mininterval=2):
            total += 1
            error, mode = check_image(sample, min_image_size)
            if mode:
                converted[mode] += 1
            if error:
                bad.append({"split": split, "key": sample.key, "file": sample.origin or sample.key,
                            "error": error})
                continue
            if split not in writers:
                writers[split] = wds.ShardWriter(str(tmp / f"{split}-%05d.tar"),
                                                 maxcount=samples_per_shard, verbose=0, mtime=0)
            record = {"__key__": sample.key, sample.ext: sample.image, "cls": str(sample.label).encode()}
            if sample.boxes:
                record["boxes.json"] = json.dumps(sample.boxes).encode()
                with_boxes[split] += 1
            if sample.mask is not None:
                record["mask.png"] = sample.mask
            writers[split].write(record)
            counts[split][sample.label] += 1
        for writer in writers.values():
            writer.close()
        if total == 0:
            raise ClearError(f"{source.name}: the source yielded no images")
        if len(bad) > max_bad_fraction * total:
            listed = "; ".join(f"{b['file']} ({b['error']})" for b in bad[:3])
            raise TooManyBadImages(
                f"{len(bad)} of {total} images are unreadable ({len(bad) / total:.1%}, more than "
                f"shard.max_bad_fraction = {max_bad_fraction:.1%}), e.g. {listed}. Re-download or "
                "repair the data, or raise shard.max_bad_fraction if these losses are acceptable.")
        manifest = {
            "dataset": source.name,
            "classes": source.classes,
            "mean": source.mean,
            "std": source.std,
            "human_map": source.human_map,
            "meta": source.meta,
            "params": params,
            # what the report states: how many images were skipped, of how many read
            "bad_images": {"count": len(bad), "of": total, "items": bad},
            # images stored as RGB that were read in another mode (RGBA, L: grayscale, P: palette, ...)
            "converted_to_rgb": dict(sorted(converted.items())),
            "splits": {
                split: {
                    "count": sum(counts[split].values()),
                    "per_class": [counts[split][c] for c in range(source.num_classes)],
                    "with_boxes": with_boxes[split],
                    "shards": [{"file": p.name, "sha256": sha256_of(p)}
                               for p in sorted(tmp.glob(f"{split}-*.tar"))],
                }
                for split in source.splits if split in counts
            },
        }
        write_json(tmp / MANIFEST, manifest, durable=True)
    return manifest


def read_manifest(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the shard stage first (dvc repro shard)")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise DamagedShards(f"{path} is damaged (not JSON); {restore_fix(shard_dir)}") from None


def restore_fix(shard_dir: str | Path) -> str:
    return f"restore the shards with `dvc checkout --force {shard_dir}`, or reshard (`dvc repro --force shard`)"


def manifest_digest(manifest: dict) -> str:
    """The content digest of a folder of shards: its classes, normalisation and, per split, the
    counts and each tar's sha256 (which covers every image, label, box and mask in it). Where the
    data came from (the data root's path) is not part of it."""
    content = {k: manifest[k] for k in ("classes", "mean", "std", "human_map", "splits")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def verify_shards(shard_dir: str | Path) -> dict:
    """The manifest, once every tar it lists is checked against its sha256 (about 1 s per GB):
    a damaged or replaced tar is a one-line error naming it and the fix, never a split that is
    silently shorter or relabelled."""
    manifest = read_manifest(shard_dir)
    for split, entry in manifest["splits"].items():
        for shard in entry["shards"]:
            path = Path(shard_dir) / shard["file"]
            if not path.is_file():
                raise DamagedShards(f"{path} is missing ({split} split); {restore_fix(shard_dir)}")
            if sha256_of(path) != shard["sha256"]:
                raise DamagedShards(f"{path} does not match its manifest (damaged or replaced; {split} "
                                    f"split); {restore_fix(shard_dir)}")
    return manifest


def shard_urls(shard_dir: str | Path, split: str) -> list[str]:
    manifest = read_manifest(shard_dir)
    if split not in manifest["splits"]:
        raise KeyError(f"split {split!r} not in {shard_dir}; it has: {', '.join(manifest['splits'])}")
    return [str(Path(shard_dir) / s["file"]) for s in manifest["splits"][split]["shards"]]
