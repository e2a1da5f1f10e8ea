"""Image trees read the same way from an extracted folder or straight from a .tar/.tgz.

An archive is read only if it is whole: Python's tarfile stops without a word where a copy was
cut between two members, so the end-of-archive marker (two zero blocks) is checked.
"""
from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import tarfile
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator

from pipeline_lib.errors import ClearError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
REDOWNLOAD = "(an interrupted copy or download?): copy or download it again"


class BadArchive(ClearError):
    pass


def is_archive(root: Path) -> bool:
    """True for a tar archive (plain or compressed), False for a folder; any other file is refused."""
    if not root.is_file():
        return False
    if not tarfile.is_tarfile(root):
        raise BadArchive(f"{root} is a file but not a tar archive (.tar, .tgz, .tar.gz): set data.root "
                         "to a folder of images or to a tar archive of one")
    return True


@contextlib.contextmanager
def _reading(root: Path) -> Iterator[None]:
    """Damage found while decompressing or reading members, as one message naming the file."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as err:
        raise BadArchive(f"{root} is damaged or truncated ({err}) {REDOWNLOAD}") from None


class EmptyClassFolder(ClearError):
    pass


def list_images(root: Path) -> list[str]:
    """Relative POSIX paths of the image files under a folder or inside a whole tar archive.

    A class folder without images is an error naming it: left out in silence, it would change the
    number of classes. A class folder is a folder beside those that hold images."""
    if is_archive(root):
        with _reading(root), tarfile.open(root, "r:*") as tar:
            members = tar.getmembers()
            names = [m.name for m in members if m.isfile()]
            folders = [m.name.rstrip("/") for m in members if m.isdir()]
            tar.fileobj.seek(tar.offset)  # where the members end: the end-of-archive marker
            if tar.fileobj.read(2 * tarfile.BLOCKSIZE) != bytes(2 * tarfile.BLOCKSIZE):
                raise BadArchive(f"{root} is truncated: it ends after {len(names)} files without the "
                                 f"tar end-of-archive marker {REDOWNLOAD}")
    else:
        found = list(root.rglob("*"))
        names = [p.relative_to(root).as_posix() for p in found if p.is_file()]
        folders = [p.relative_to(root).as_posix() for p in found if p.is_dir()]
    images = sorted(n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES and not Path(n).name.startswith("."))
    with_images = {Path(n).parent for n in images}
    empty = sorted(f for f in map(Path, folders) if f not in with_images and f.parent in {p.parent for p in with_images}
                   and not any(w.is_relative_to(f) for w in with_images))
    if empty:
        raise EmptyClassFolder(f"{root}/{empty[0].as_posix()} holds no images{f' (nor do {len(empty) - 1} more)' if len(empty) > 1 else ''}: "
                               "a class without images would silently change the number of classes. Add its images, "
                               "or remove the folder")
    return images


def read_images(root: Path, wanted: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the wanted files, in the archive's stream order (one sequential pass)."""
    wanted = set(wanted)
    if is_archive(root):
        with _reading(root), tarfile.open(root, "r|*") as tar:
            for member in tar:
                if member.name in wanted:
                    wanted.discard(member.name)
                    yield member.name, tar.extractfile(member).read()
        if wanted:  # the stream ended early, as it does without a word at a cut
            raise BadArchive(f"{root} is truncated: {len(wanted)} of its listed files are missing, "
                             f"e.g. {min(wanted)} {REDOWNLOAD}")
    else:
        for name in sorted(wanted):
            yield name, (root / name).read_bytes()


def stable_rank(seed: int, name: str) -> str:
    """A seeded, platform-independent order key: splits and subsets never depend on listing order."""
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def stratified_take(items: list[tuple[str, str]], fraction: float, seed: int) -> set[str]:
    """Of (path, class) pairs, the round(fraction * n) paths of each class first in seeded order."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for path, cls in items:
        by_class[cls].append(path)
    taken: set[str] = set()
    for paths in by_class.values():
        paths.sort(key=lambda p: stable_rank(seed, p))
        taken.update(paths[: round(fraction * len(paths))])
    return taken


def per_class_subset(items: list[tuple[str, str, str]], n: int, seed: int) -> list[tuple[str, str, str]]:
    """Of (path, split, class) triples, the first n of each (split, class) in seeded order."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for item in sorted(items, key=lambda t: stable_rank(seed, t[0])):
        if len(groups[item[1], item[2]]) < n:
            groups[item[1], item[2]].append(item)
    return sorted(i for g in groups.values() for i in g)


def resolve_root(configured: str | None, default_name: str, how_to_get: str) -> Path:
    """The data root: params.yaml's data.root, else $OVERFOCUS_DATA/<default_name>.

    Raises a FileNotFoundError that says where it looked and how to obtain the data.
    """
    if configured:
        candidates = [Path(os.path.expandvars(configured)).expanduser()]
    else:
        base = Path(os.environ.get("OVERFOCUS_DATA", "data/raw"))
        candidates = [base / default_name] + [base / (default_name + s) for s in (".tar", ".tgz", ".tar.gz")]
    for path in candidates:
        if path.exists():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"data for {default_name!r} not found (looked at: {looked}). Set data.root in params.yaml "
        f"or the OVERFOCUS_DATA environment variable to the folder holding it. {how_to_get}"
    )
