"""Atomic writes: a crash never leaves a half-written checkpoint, metrics file or figure.

Outputs get the permissions the umask gives (as `open` would), and a stage replaces only a
folder that it wrote itself, recognised by the marker file it leaves in it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator

from pipeline_lib.errors import ClearError

STAGE_MARKER = ".overfocus-stage"  # holds the name of the stage that wrote the folder


class OutputRefused(ClearError):
    pass


class DiskFull(ClearError):
    pass


# How torch.save reports a failed write (it raises RuntimeError, not OSError)
TORCH_WRITE_ERRORS = ("iostream error", "file write failed", "unexpected pos")


@contextlib.contextmanager
def disk_full_named(path: Path) -> Iterator[None]:
    """A write that runs out of space becomes one line: the file, the space left on its
    filesystem and the fix (OSError ENOSPC, or torch.save's stream errors on a full disk)."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        full = (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
                or isinstance(err, RuntimeError) and any(t in str(err) for t in TORCH_WRITE_ERRORS))
        if not full:
            raise
        where = next(p for p in (path, *path.parents) if p.exists())
        free = shutil.disk_usage(where).free
        raise DiskFull(f"could not write {path}: no space left on the device ({free / 2**20:.0f} MB free on the "
                       f"filesystem of {where}); free some space (or move the workspace), then rerun. "
                       "Nothing half-written was left in its place.") from None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary(path: Path) -> Path:
    """A new empty file beside `path`, created like `open` would (mode 0666 less the umask),
    unlike `tempfile.mkstemp`'s 0600."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.
    `durable` (checkpoints, manifests): the file and then its folder are synced to the disk
    around the rename, so that a power cut leaves the old file or the new one, never a truncated
    one under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with disk_full_named(path):
            yield tmp
            if durable:
                _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_temporaries(path: str | os.PathLike) -> None:
    """Delete the temporaries `atomic_path` left beside `path` when a process was killed mid-write."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def check_replaceable(path: Path, stage: str) -> None:
    """Refuse a `path` that holds anything but an earlier output of `stage`."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        marker = path / STAGE_MARKER
        if not any(path.iterdir()) or (marker.is_file() and marker.read_text().strip() == stage):
            return
    raise OutputRefused(
        f"refusing to replace {path}: it is not an output of the {stage} stage (no {STAGE_MARKER} "
        f"file naming it), and replacing it would delete what it holds. Give another --out, or "
        f"move {path} away yourself.")


def fresh_dir(path: str | os.PathLike, stage: str) -> Path:
    """Empty the folder `path` for `stage` to write into: it must be absent, empty or an earlier
    output of the same stage."""
    path = Path(os.path.abspath(path))
    check_replaceable(path, stage)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / STAGE_MARKER).write_text(stage + "\n")
    return path


@contextlib.contextmanager
def replace_dir(path: str | os.PathLike, stage: str) -> Iterator[Path]:
    """Yield an empty staging folder, marked as `stage`'s, that replaces the folder `path` if the
    block succeeds; `path` must be absent, empty or an earlier output of the same stage."""
    path = Path(os.path.abspath(path))  # `--out .` or `--out ..` by its real name
    check_replaceable(path, stage)
    staging = path.with_name(path.name + ".partial")
    fresh_dir(staging, stage)  # a killed run's leftover is ours; someone else's folder is refused
    try:
        with disk_full_named(path):
            yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    staging.rename(path)


def write_json(path: str | os.PathLike, obj: Any, *, durable: bool = False) -> None:
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


class DamagedFile(ClearError):
    pass


def read_json(path: str | os.PathLike, fix: str = "rerun the stage that writes it (dvc repro)") -> Any:
    """The JSON in `path`; a damaged file (empty or cut short, as a full disk leaves it) is a
    one-line error naming it and `fix`."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError:
        state = "is empty" if not text.strip() else "is not valid JSON (damaged or cut short)"
        raise DamagedFile(f"{path} {state}; {fix}") from None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
