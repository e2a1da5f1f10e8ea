"""Downloads for real users: the official archive, checked against its pinned SHA-256.

This machine has no internet; the code is tested with a local `file://` URL.
"""
from __future__ import annotations

import hashlib
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline_lib.io import atomic_path


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str | None  # None: no published checksum that we could verify


# Checksums as published by FastAI.jl's dataset registry for fast.ai's archives.
DOWNLOADS = {
    "imagenette": Download(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz",
        "569b4497c98db6dd29f335d1f109cf315fe127053cedf69010d047f0188e158c"),
    "imagewoof": Download(
        "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-160.tgz",
        "663c22f69c2802d85e2a67103c017e047096702ffddf9149a14011b7002539bf"),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(name: str, dest_dir: Path, spec: Download | None = None) -> Path:
    """Fetch the archive into dest_dir (kept only if its checksum matches) and return its path.

    The archive is read as it is (no extraction needed: the sources read .tgz directly).
    """
    spec = spec or DOWNLOADS[name]
    target = dest_dir / f"{name}.tgz"
    if target.exists():
        return target
    with atomic_path(target) as tmp:
        with urllib.request.urlopen(spec.url) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        got = sha256_of(tmp)
        if spec.sha256 and got != spec.sha256:
            raise ValueError(f"checksum mismatch for {spec.url}: expected {spec.sha256}, got {got}; "
                             "the download is corrupt or the archive changed upstream")
    return target
