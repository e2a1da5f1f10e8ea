"""True results after any change: in a DVC workspace that `dvc repro` has built, each change to
the code or the data is followed by `dvc repro`, and the test checks which stages ran, which runs
were retrained (their checkpoints changed) and which kept their weights byte for byte, and that
`dvc status` is clean afterwards (dvc.lock describes the files on disk).

One workspace is built once (vanilla and SGDrop, one seed, one epoch) and copied for each change.
"""
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.dvc_workspace import dvc, ran, repro, workspace

RUNS = {"vanilla": Path("runs/default/vanilla/seed0"), "sgdrop": Path("runs/default/sgdrop/seed0")}
MATRIX = {"matrix": {"methods": ["vanilla", "sgdrop"], "one_seed_methods": [], "seeds": [0]}}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    path = workspace(tmp_path_factory.mktemp("true") / "built", MATRIX)
    repro(path)
    return path


@pytest.fixture()
def study(built, tmp_path) -> Path:
    """A copy of the built workspace, to change."""
    path = tmp_path / "study"
    shutil.copytree(built, path, symlinks=True)
    return path


def outputs(path: Path, name: str) -> dict[str, bytes]:
    """{method: bytes} of one output file of every run."""
    return {m: (path / run / name).read_bytes() for m, run in RUNS.items()}


def append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def assert_clean(path: Path) -> None:
    assert "Data and pipelines are up to date" in dvc(path, "status")


@pytest.mark.slow
def test_a_change_to_a_methods_training_code_retrains_that_methods_runs(study):
    """Halve SGDrop's output features. Vanilla's run stage reruns as well, since its process
    imports every method's module (the methods package registers them all), but vanilla's
    training code is not SGDrop's: it finds its checkpoint finished and redoes the analysis."""
    before = {name: outputs(study, name) for name in ("checkpoint.pt", "train.json")}
    append(study / "pipeline_lib/methods/sgdrop.py", "\n\n_features = SGDrop.features\n"
           "SGDrop.features = lambda self, *args: 0.5 * _features(self, *args)\n")
    stages = ran(repro(study))
    assert not [s for s in stages if s.startswith("shard")]  # the data does not depend on a method
    assert {"run@default-sgdrop-0", "run@default-vanilla-0", "report"} <= set(stages)
    after = {name: outputs(study, name) for name in ("checkpoint.pt", "train.json")}
    for name in after:
        assert after[name]["sgdrop"] != before[name]["sgdrop"], name
        assert after[name]["vanilla"] == before[name]["vanilla"], name
    assert_clean(study)


@pytest.mark.slow
def test_a_change_to_a_metric_rewrites_the_metrics_and_keeps_every_checkpoint(study):
    kept = {name: outputs(study, name) for name in ("checkpoint.pt", "train.json")}
    append(study / "pipeline_lib/metrics/run_metrics.py", "\n\n_measured = run_metrics\n"
           "run_metrics = lambda *args: {**_measured(*args), 'mutated': True}\n")
    stages = ran(repro(study))
    assert sorted(stages) == ["report", "run@default-sgdrop-0", "run@default-vanilla-0"]
    assert {name: outputs(study, name) for name in kept} == kept
    assert all(json.loads(m)["mutated"] for m in outputs(study, "metrics.json").values())
    assert_clean(study)


@pytest.mark.slow
def test_a_comment_in_the_training_code_retrains_nothing(study):
    """DVC reruns what imports the module; the runs' identities ignore comments and docstrings."""
    kept = outputs(study, "checkpoint.pt")
    append(study / "pipeline_lib/training/loop.py", "\n# a comment, and no code\n")
    assert {"run@default-sgdrop-0", "run@default-vanilla-0"} <= set(ran(repro(study)))
    assert outputs(study, "checkpoint.pt") == kept
    assert_clean(study)


@pytest.mark.slow
def test_a_change_to_the_report_reruns_the_report_alone(study):
    append(study / "pipeline_lib/reporting/tables.py", "\n\nMUTATED = True\n")
    assert ran(repro(study)) == ["report"]
    assert_clean(study)


@pytest.mark.slow
def test_a_change_to_the_shard_code_reshards_and_retrains(study):
    kept = outputs(study, "checkpoint.pt")
    synthetic = study / "pipeline_lib/data/sets/synthetic.py"
    synthetic.write_text(synthetic.read_text().replace("def _background(rng: np.random.Generator, size: int) -> np.ndarray:",
                                                       "def _background(rng: np.random.Generator, size: int) -> np.ndarray:\n"
                                                       "    rng.random()  # another background for every image"))
    stages = ran(repro(study))
    assert {"shard@default-main", "run@default-sgdrop-0", "run@default-vanilla-0", "report"} <= set(stages)
    changed = outputs(study, "checkpoint.pt")
    assert all(changed[m] != kept[m] for m in RUNS)
    assert_clean(study)


def class_folders(root: Path, classes: int = 3, per_class: int = 20) -> Path:
    """An image-folder data root: one folder of small PNGs per class, each class its own colour."""
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (32, 32), (80 * c, 4 * i, 255 - 80 * c)).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.slow
def test_swapping_two_class_folders_of_a_data_root_reshards_and_retrains(tmp_path):
    root = class_folders(tmp_path / "images")
    path = workspace(tmp_path / "folder", {**MATRIX, "matrix": {**MATRIX["matrix"], "methods": ["vanilla"]},
                                           "data": {"dataset": "imagefolder", "root": str(root)},
                                           "loader": {"batch_size": 8}, "evaluate": {"occlusion_images": 8}})
    repro(path)
    run = path / RUNS["vanilla"]
    before = (run / "checkpoint.pt").read_bytes()
    assert_clean(path)
    (root / "class0").rename(root / "swap")
    (root / "class1").rename(root / "class0")
    (root / "swap").rename(root / "class1")
    status = dvc(path, "status")
    assert "shard@default-main" in status and "data/inputs/default/main" in status
    stages = ran(repro(path))
    assert {"shard@default-main", "run@default-vanilla-0"} <= set(stages)
    assert (run / "checkpoint.pt").read_bytes() != before
    assert_clean(path)
