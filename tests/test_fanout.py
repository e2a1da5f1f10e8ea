"""The study fanned out as jobs (submitit's local executor, several cells at once) and gathered
gives the same results as a serial `dvc repro`, and the gathering `dvc repro` reruns no cell."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

submitit = pytest.importorskip("submitit")

from pipeline_lib import cluster  # noqa: E402
from pipeline_lib.config import load_params  # noqa: E402
from tests.conftest import TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The shipped params, shrunk to seconds: two cells (one of each matrix), every stage.
OVERRIDES = {**TINY, "train": {**TINY["train"], "methods": ["vanilla"], "one_seed_methods": ["dropout"], "seeds": [0],
                               "epochs": 1},
             "attribute": {"methods": ["gradcam"], "max_images": 8, "grid_images": 2},
             "evaluate": {"coverage_batches": 1, "coverage_batch_size": 8},
             "transfer": {"epochs": 1, "data": {"synthetic": {"image_size": 32, "cue_size": 4, "train": 20, "val": 10, "test": 10}}},
             "bench": {"image_size": 32, "batch_size": 4, "warmup": 0, "steps": 1}}


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(base.get(k) or {}, v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def workspace(path: Path) -> Path:
    """A fresh git + DVC workspace of this checkout with the tiny params."""
    path.mkdir()
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith("reports/results/"):
            (path / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, path / f)
    (path / "dvc.lock").unlink(missing_ok=True)
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), OVERRIDES)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "w"]):
        subprocess.run(cmd, cwd=path, check=True)
    return path


def repro(path: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["dvc", "repro"], cwd=path, env=env, capture_output=True, text=True, check=True).stdout


def results(path: Path) -> dict:
    out = {}
    for f in sorted((path / "runs").rglob("*.json")):
        data = json.loads(f.read_text())
        timings = [k for k in data if k.endswith(("_ms", "_per_s", "seconds"))]
        out[f.relative_to(path).as_posix()] = {k: v for k, v in data.items() if k not in timings}
    return out


@pytest.mark.slow
def test_fanned_out_cells_gather_to_the_serial_results(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    serial = workspace(tmp_path / "serial")
    repro(serial)

    fanned = workspace(tmp_path / "fanned")
    monkeypatch.chdir(fanned)
    params = load_params(fanned / "params.yaml")
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=10)
    jobs = cluster.submit(fanned, params, executor, scratch_root=str(tmp_path))
    assert len(jobs) == 2
    gathered = cluster.gather(fanned, jobs)
    assert sorted(gathered) == sorted(s for c in cluster.cells(params) for s in c.stages)

    log = repro(fanned)
    assert not any(f"Running stage '{s}'" in log for s in gathered), log  # no cell reran
    assert "Running stage 'report'" in log
    assert results(fanned) == results(serial)
    for table in (serial / "reports" / "tables").glob("*.csv"):
        if not table.name.startswith("overhead"):  # the bench's timings
            assert (fanned / "reports" / "tables" / table.name).read_text() == table.read_text(), table.name
