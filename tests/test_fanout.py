"""The study fanned out as jobs (submitit's local executor, several cells at once) and gathered
gives the same results as a serial `dvc repro`, and the gathering `dvc repro` reruns no cell."""
import json
import os
import sys
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit")

from pipeline_lib import cluster  # noqa: E402
from pipeline_lib.config.checks import load_params  # noqa: E402
from tests.dvc_workspace import repro, workspace  # noqa: E402


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
    assert sorted(gathered) == sorted(c.stage for c in cluster.cells(params))

    log = repro(fanned)
    assert not any(f"Running stage '{s}'" in log for s in gathered), log  # no cell reran
    assert "Running stage 'report'" in log
    assert results(fanned) == results(serial)
    for table in (serial / "reports" / "tables").glob("*.csv"):
        if not table.name.startswith("overhead"):  # the bench's timings
            assert (fanned / "reports" / "tables" / table.name).read_text() == table.read_text(), table.name
