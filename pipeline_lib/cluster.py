"""The study fanned out over a cluster: one job per matrix cell, gathered into one DVC workspace.

A cell is one (setup, method, seed) run: its `run` stage (training, attribution maps, metrics,
transfer; stages/run.py). Each job runs `dvc repro` of its cell's stage in a scratch copy of the
workspace whose DVC cache is the workspace's own (on shared storage, so every node sees it); the
outputs land in that cache, content-addressed, so concurrent jobs never collide. The job returns
its stage's dvc.lock entry; gathering merges them into the workspace's dvc.lock and checks the
outputs out of the cache, after which `dvc repro` finds every cell up to date and runs only what
spans cells (bench, report).

The lock entries are gathered instead of relying on DVC's run-cache, because DVC does not
run-cache a stage with persistent outputs, and `run` keeps its checkpoint persistent so that a
killed run resumes.

Jobs go through submitit: SLURM where `sbatch` exists, local processes otherwise (and in the test).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline_lib.config.resolve import run_configs
from pipeline_lib.config.schema import Params
from pipeline_lib.inputs import INPUTS
from pipeline_lib.io import atomic_path

SHARED_STAGES = ("configure", "shard")  # run once in the workspace, before the jobs


@dataclass(frozen=True)
class Cell:
    setup: str
    method: str
    seed: int
    one_seed: bool  # a method of matrix.one_seed_methods: its stage is of the `run_one_seed` matrix

    @property
    def stage(self) -> str:
        # DVC names a matrix stage by its values joined with "-", in dvc.yaml's key order.
        return f"run{'_one_seed' if self.one_seed else ''}@{self.setup}-{self.method}-{self.seed}"


def cells(params: Params) -> list[Cell]:
    one_seed = set(params.matrix.one_seed_methods)
    return [Cell(c.setup, c.method.name, c.seed, c.method.name in one_seed) for c in run_configs(params)]


def dvc(*args: str, cwd: Path) -> str:
    done = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"`dvc {' '.join(args)}` failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def cache_dir(workspace: Path) -> Path:
    return Path(dvc("cache", "dir", cwd=workspace).strip()).resolve()


def workspace_files(workspace: Path) -> list[str]:
    """What `git` would give a clone, plus uncommitted and untracked (not ignored) changes."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=workspace,
                            capture_output=True, text=True, check=True).stdout
    return [f for f in listed.split("\0") if f and (workspace / f).is_file()]


def run_cell(workspace: str, cache: str, cell: Cell, scratch_root: str | None = None) -> dict:
    """The job: the cell's stage in a scratch copy that shares the cache; returns its lock entry."""
    workspace = Path(workspace)
    scratch = Path(tempfile.mkdtemp(prefix="overfocus-cell-", dir=scratch_root))
    try:
        for f in workspace_files(workspace):
            (scratch / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workspace / f, scratch / f)
        # the links to the external inputs, which `configure` made here and DVC hashes as deps
        shutil.copytree(workspace / INPUTS, scratch / INPUTS, symlinks=True)
        # DVC needs a git root and dvclive a commit in it
        for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=overfocus", "-c", "user.email=overfocus@localhost",
                                                     "commit", "-qm", f"cell {cell}"]):
            subprocess.run(["git", *git], cwd=scratch, check=True)
        dvc("cache", "dir", "--local", cache, cwd=scratch)
        dvc("checkout", *SHARED_STAGES, cwd=scratch)
        dvc("repro", cell.stage, cwd=scratch)
        return {cell.stage: yaml.safe_load((scratch / "dvc.lock").read_text())["stages"][cell.stage]}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def merge_lock(workspace: Path, entries: dict[str, dict]) -> None:
    path = workspace / "dvc.lock"
    lock = yaml.safe_load(path.read_text()) if path.exists() else {"schema": "2.0", "stages": {}}
    lock["stages"].update(entries)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(lock, sort_keys=False))


def submit(workspace: Path, params: Params, executor, only: list[Cell] | None = None,
           scratch_root: str | None = None) -> list:
    """Runs the shared stages here, then one job per cell; returns the submitit jobs."""
    workspace = Path(workspace).resolve()
    dvc("repro", *SHARED_STAGES, cwd=workspace)
    todo = only or cells(params)
    cache = str(cache_dir(workspace))
    with executor.batch():
        jobs = [executor.submit(run_cell, str(workspace), cache, c, scratch_root) for c in todo]
    return jobs


def gather(workspace: Path, jobs: list) -> list[str]:
    """Waits for the jobs, merges their lock entries and checks their outputs out of the cache."""
    entries = {}
    for job in jobs:
        entries.update(job.result())
    merge_lock(Path(workspace), entries)
    dvc("checkout", *entries, cwd=Path(workspace))
    return sorted(entries)
