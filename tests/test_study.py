"""The study as one pipeline: setups crossed with methods and seeds in dvc.yaml, each setup's
stages depending on its own files only."""
import json
from pathlib import Path

import pytest

import yaml

from pipeline_lib.config.checks import parse_params
from pipeline_lib.config.resolve import method_spec, run_configs
from pipeline_lib.config.schema import ParamsError, load_yaml, merged, overlay
from tests.conftest import committed_params_text, shipped_raw, tiny_params
from tests.dvc_workspace import ran, repro, workspace, write_params

ROOT = Path(__file__).resolve().parents[1]
TWO_SETUPS = {"matrix": {"one_seed_methods": []},
              "setups": {"default": {}, "large": {"data": {"synthetic": {"train": 80}}, "train": {"lr": 0.001}}}}


@pytest.mark.slow
def test_a_change_to_one_setup_reruns_that_setup_alone(tmp_path):
    path = workspace(tmp_path / "study", TWO_SETUPS)
    repro(path)
    for setup, train_size in (("default", 60), ("large", 80)):
        metrics = json.loads((path / "runs" / setup / "vanilla" / "seed0" / "metrics.json").read_text())
        assert metrics["accuracy"]["test"] >= 0
        manifest = json.loads((path / "data" / "shards" / setup / "main" / "manifest.json").read_text())
        assert manifest["splits"]["train"]["count"] == train_size
    assert "(default)" in (path / "reports" / "README.md").read_text()  # two setups of one dataset and arch

    write_params(path, {**TWO_SETUPS, "setups": {**TWO_SETUPS["setups"],
                                                 "large": {**TWO_SETUPS["setups"]["large"], "train": {"lr": 0.002}}}})
    stages = ran(repro(path))
    # the bench measures every setup's architecture, so a setup's params are its params too
    assert sorted(stages) == ["bench", "configure", "report", "run@large-vanilla-0"]


@pytest.mark.slow
def test_new_metric_params_rerun_a_run_stage_without_retraining(tmp_path):
    """A run's one stage trains, attributes, evaluates and transfers (stages/run.py); after a change
    to the evaluate params DVC reruns it, deleting its outputs but the persistent checkpoint: the run
    must be found finished, not retrained, and every output written again."""
    path = workspace(tmp_path / "study")
    repro(path)
    run = path / "runs" / "default" / "vanilla" / "seed0"
    before = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "train.json", "live/probe_cams.npz",
                                                           "transfer.json")}
    metrics = json.loads((run / "metrics.json").read_text())

    write_params(path, {"evaluate": {"area_threshold": 0.3}})
    stages = ran(repro(path))
    assert sorted(stages) == ["configure", "report", "run@default-vanilla-0", "run_one_seed@default-dropout-0"]
    assert {name: (run / name).read_bytes() for name in before} == before
    rerun = json.loads((run / "metrics.json").read_text())
    assert rerun["accuracy"] == metrics["accuracy"]
    assert rerun["attribution"]["gradcam"]["area_ratio"] != metrics["attribution"]["gradcam"]["area_ratio"]
    assert (run / "attributions.npz").exists() and (run / "attribution_grid.png").exists()


def test_each_setup_is_its_own_run_matrix():
    params = tiny_params(**merged(TWO_SETUPS, {"matrix": {"methods": ["vanilla", "sgdrop"], "seeds": [0, 1]}}))
    cells = [(c.setup, c.method.name, c.seed, c.data.synthetic.train, c.train.lr) for c in run_configs(params)]
    assert cells == [(s, m, seed, size, lr) for s, size, lr in (("default", 60, 0.002), ("large", 80, 0.001))
                     for m in ("vanilla", "sgdrop") for seed in (0, 1)]
    assert {str(c.run_dir) for c in run_configs(params)} == {
        f"runs/{s}/{m}/seed{seed}" for s in ("default", "large") for m in ("vanilla", "sgdrop") for seed in (0, 1)}


@pytest.mark.parametrize("setup, expected", [
    ({"data": {"synthetic": {"trian": 10}}}, "setup 'bad', key 'data.synthetic.trian': unknown key; did you mean"),
    ({"model": {"architecture": "vgg17"}}, "setup 'bad', key 'model.architecture'"),
    ({"matrix": {"seeds": [3]}}, "setup 'bad' sets matrix, which every setup shares"),
    ({"loader": {"image_size": 30}, "evaluate": {"occlusion_patch": 8}}, "setup 'bad', key 'loader.image_size'"),
    ({"evaluate": {"occlusion_patch": 7}}, "setup 'bad', key 'evaluate.occlusion_patch': 7 does not divide"),
    ([1, 2], "key 'setups.bad': Input should be a valid dictionary"),
])
def test_a_bad_setup_is_named_with_its_key(setup, expected):
    with pytest.raises(ParamsError) as err:
        tiny_params(setups={"default": {}, "bad": setup})
    assert expected in str(err.value)


@pytest.mark.parametrize("setups, expected", [
    ({}, "must name at least one setup"),
    ({"a/b": {}}, "setup name 'a/b' must be letters"),
])
def test_setup_names_are_checked(setups, expected):
    raw = tiny_params().model_dump()
    raw["setups"] = setups
    with pytest.raises(ParamsError, match=expected):
        parse_params(raw)


def test_the_paper_study_preset_is_valid_and_names_table_12():
    """params/paper-study.yaml: 5 datasets x 3 architectures plus CIFAR-10 and STL10, Table 12's
    settings per pair."""
    shipped = shipped_raw()
    params = parse_params(overlay(shipped, load_yaml((ROOT / "params" / "paper-study.yaml").read_text())))
    assert len(params.setups) == 17
    rho = {name: method_spec(params.setup(name), "sgdrop").params["rho"] for name in params.setups}
    assert rho["imagenette-convnext_tiny"] == rho["imagewoof-convnext_tiny"] == 0.1
    assert rho["rsicd-convnext_tiny"] == rho["resisc45-convnext_tiny"] == rho["patternnet-convnext_tiny"] == 0.05
    assert {rho[f"{d}-{a}"] for d in ("imagenette", "rsicd") for a in ("vgg16", "resnet50")} == {0.01}
    assert len(params.cells()) == 17 * 7 * 3
    stl10, cifar = params.setup("stl10-vgg9"), params.setup("cifar10-cifarnet")
    assert (stl10.train.lr, stl10.train.epochs, cifar.train.lr, cifar.train.epochs) == (0.00005, 80, 0.0001, 100)
    assert params.setup("rsicd-vgg16").data.dataset == "rsicd"  # the name the paper's tables use
    transfers = {name: params.setup(name).transfer for name in params.setups}
    assert [n for n, t in transfers.items() if t.enabled] == ["resisc45-vgg16"]  # Table 5
    assert transfers["resisc45-vgg16"].data.dataset == "rsicd"
    assert (params.evaluate.coverage_batches, params.evaluate.coverage_batch_size) == (10, 64)  # Sec. 4.2


def test_applying_a_preset_keeps_the_comments_and_replaces_the_setups(tmp_path):
    from click.testing import CliRunner

    from scripts.apply_preset import main
    target = tmp_path / "params.yaml"
    target.write_text(committed_params_text())  # the committed file: an experiment rewrites the workspace's
    result = CliRunner().invoke(main, [str(ROOT / "params" / "paper-study.yaml"), "--params", str(target)])
    assert result.exit_code == 0, result.output
    assert "357 training runs in 17 setup(s)" in result.output
    text = target.read_text()
    assert "# SGDrop's drop rate" in text  # the shipped file's comments survive
    assert "&id" not in text and "*id" not in text  # no setup shares an object with another (dvc exp run -S)
    params = parse_params(load_yaml(text))
    assert "default" not in params.setups and params.train.epochs == 80
    resnet = params.setup("imagewoof-resnet50")
    assert (resnet.data.dataset, resnet.model.architecture, resnet.model.batch_norm) == ("imagewoof", "resnet50", True)


PRESETS = sorted(ROOT.glob("params/*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=[p.relative_to(ROOT).as_posix() for p in PRESETS])
def test_every_shipped_preset_applies_to_a_valid_params_file(preset):
    raw = overlay(shipped_raw(), load_yaml(preset.read_text()))
    if raw["data"]["boxes_csv"] and not (ROOT / raw["data"]["boxes_csv"]).is_file():
        raw["data"]["boxes_csv"] = None  # the shared data is not beside every checkout; the rest is checked
    assert parse_params(raw).cells()


def test_a_setup_cannot_define_a_method_of_its_own():
    with pytest.raises(ParamsError, match="setup 'bad' defines methods mine, which no run would use"):
        tiny_params(setups={"default": {}, "bad": {"methods": {"mine": {"type": "sgdrop"}}}})
    params = tiny_params(matrix={"methods": ["sgdrop"], "seeds": [0]},
                         setups={"default": {}, "other": {"methods": {"sgdrop": {"rho": 0.05}}}})
    assert [c.method.params["rho"] for c in run_configs(params)] == [0.01, 0.05]


def test_a_bad_method_entry_in_a_setup_names_the_setup():
    with pytest.raises(ParamsError, match="setup 'bad', key 'methods.sgdrop.rho'"):
        tiny_params(matrix={"methods": ["sgdrop"]},
                    setups={"default": {}, "bad": {"methods": {"sgdrop": {"rho": 2}}}})
