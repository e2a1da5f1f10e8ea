"""A throwaway git + DVC workspace of this checkout, for tests that run `dvc repro` end to end."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline_lib.config.schema import merged
from scripts.run_lanes import copy_checkout
from tests.conftest import TINY, tiny_raw

# The shipped params, shrunk to seconds: two cells (one of each matrix), every stage.
OVERRIDES = {**TINY, "matrix": {"methods": ["vanilla"], "one_seed_methods": ["dropout"], "seeds": [0]},
             "train": {**TINY["train"], "epochs": 1},
             "attribute": {"methods": ["gradcam"], "max_images": 8, "grid_images": 2},
             "evaluate": {"coverage_batches": 1, "coverage_batch_size": 8},
             "transfer": {"epochs": 1, "data": {"synthetic": {"image_size": 32, "cue_size": 4, "train": 20, "val": 10, "test": 10}}},
             "bench": {"batch_size": 4, "warmup": 0, "steps": 1}}


def workspace(path: Path, overrides: dict | None = None) -> Path:
    """A fresh workspace at `path` with the tiny params (OVERRIDES, then `overrides`)."""
    path.mkdir()
    copy_checkout(path)
    (path / "dvc.lock").unlink(missing_ok=True)
    write_params(path, overrides or {})
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "w"]):
        subprocess.run(cmd, cwd=path, check=True)
    return path


def write_params(path: Path, overrides: dict) -> None:
    """The tiny params with `overrides` (`setups` replaces the shipped ones) as the workspace's params.yaml."""
    (path / "params.yaml").write_text(yaml.safe_dump(tiny_raw(**merged(OVERRIDES, overrides)), sort_keys=False))


def dvc(path: Path, *args: str) -> str:
    """`dvc <args>` in the workspace, with this Python's environment first on PATH; its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["dvc", *args], cwd=path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def repro(path: Path, *targets: str) -> str:
    return dvc(path, "repro", *targets)


def ran(log: str) -> list[str]:
    """The stages a `dvc repro` log says it ran."""
    return [line.split("'")[1] for line in log.splitlines() if line.startswith("Running stage '")]
