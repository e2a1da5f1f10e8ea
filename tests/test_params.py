"""params.yaml is validated at stage start, with errors that name the key and the fix."""
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline_lib.config.checks import parse_params
from pipeline_lib.config.resolve import method_spec, run_configs
from pipeline_lib.config.schema import ParamsError
from pipeline_lib.data import DATASETS
from pipeline_lib.data.files import resolve_root
from tests.conftest import shipped_raw, tiny_params, tiny_raw


def error_of(raw) -> str:
    with pytest.raises(ParamsError) as err:
        tiny_params(**raw)
    return str(err.value)


def test_unknown_dataset_lists_the_valid_ones():
    msg = error_of({"data": {"dataset": "imagenet42"}})
    assert "data.dataset" in msg and "imagenet42" in msg
    for name in ("synthetic", "imagenette", "cifar10", "imagefolder"):
        assert name in msg


def test_unknown_method_lists_the_valid_ones():
    msg = error_of({"matrix": {"methods": ["vanilla", "sgdorp"]}})
    assert "sgdorp" in msg and "sgdrop" in msg and "camdrop" in msg


def test_unknown_architecture_lists_the_valid_ones():
    msg = error_of({"model": {"architecture": "resnet9000"}})
    assert "model.architecture" in msg and "resnet20" in msg and "vgg16" in msg


@pytest.mark.parametrize("rho", [1.5, -0.1, 1.0])
def test_rho_out_of_range_names_key_and_range(rho):
    msg = error_of({"rho": rho})
    assert "'rho'" in msg and ("less than 1" in msg or "greater than or equal to 0" in msg)


def test_negative_epochs_and_zero_batch_size():
    assert "train.epochs" in error_of({"train": {"epochs": -3}})
    msg = error_of({"loader": {"batch_size": 0}})
    assert "loader.batch_size" in msg and "greater than or equal to 1" in msg


def test_method_params_are_checked_with_the_method_name():
    msg = error_of({"matrix": {"methods": ["dropout"]}, "methods": {"dropout": {"p": 2.0}}})
    assert "methods.dropout.p" in msg
    msg = error_of({"matrix": {"methods": ["dropout"]}, "methods": {"dropout": {"rate": 0.5}}})
    assert "methods.dropout.rate" in msg and "unknown key" in msg


def test_unknown_key_is_an_error_not_ignored():
    assert "train.epoch" in error_of({"train": {"epoch": 3}})


def test_missing_data_root_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("OVERFOCUS_DATA", str(tmp_path))
    params = tiny_params(**{"data": {"dataset": "imagenette"}})
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.get("imagenette")(params.data)
    msg = str(err.value)
    assert str(tmp_path / "imagenette") in msg and "data.root" in msg and "https://" in msg


def test_root_from_environment(tmp_path, monkeypatch):
    (tmp_path / "imagewoof").mkdir()
    monkeypatch.setenv("OVERFOCUS_DATA", str(tmp_path))
    assert resolve_root(None, "imagewoof", "") == tmp_path / "imagewoof"


def test_sgdrop_reads_the_top_level_rates():
    params = tiny_params(**{"rho": 0.025, "matrix": {"methods": ["sgdrop", "curr"]},
                           "methods": {"curr": {"type": "sgdrop", "schedule": "linear"}}})
    assert method_spec(params, "sgdrop").params["rho"] == 0.025
    assert method_spec(params, "curr").type == "sgdrop"
    assert method_spec(params, "curr").params["schedule"] == "linear"


def test_a_setup_overrides_rho_for_its_own_runs_only():
    """The SGDrop paper's Table 12: rho 0.1 for ConvNeXt on Imagenette, 0.01 for the others."""
    params = tiny_params(**{"rho": 0.01, "matrix": {"methods": ["sgdrop", "own"]},
                            "methods": {"own": {"type": "sgdrop", "rho": 0.02}},
                            "setups": {"default": {}, "convnext": {"model": {"architecture": "convnext_tiny",
                                                                             "width": 1.0}, "rho": 0.1}}})
    rho = {(c.setup, c.arch, c.method.name): c.method.params["rho"] for c in run_configs(params)}
    assert rho == {("convnext", "convnext_tiny", "sgdrop"): 0.1, ("default", "tinyvgg", "sgdrop"): 0.01,
                   ("convnext", "convnext_tiny", "own"): 0.02, ("default", "tinyvgg", "own"): 0.02}


def test_a_runs_config_depends_only_on_what_changes_its_weights():
    """DVC reruns a run stage when its config file changes: growing the matrix, or changing
    rho (read by SGDrop only), must not retrain the runs it does not concern."""
    def configs(**raw):
        return {(c.arch, c.method.name, c.seed): c.model_dump() for c in run_configs(tiny_params(**raw))}

    methods = ["vanilla", "sgdrop", "curriculum"]
    curriculum = {"curriculum": {"type": "sgdrop", "schedule": "linear"}}
    base = configs(matrix={"methods": methods}, methods=curriculum)
    grown = configs(matrix={"methods": methods + ["dropout"], "seeds": [0, 1]}, methods=curriculum)
    for method in methods:
        assert grown[("tinyvgg", method, 0)] == base[("tinyvgg", method, 0)]
    swept = configs(matrix={"methods": methods}, methods=curriculum, rho=0.05)
    assert swept[("tinyvgg", "sgdrop", 0)] != base[("tinyvgg", "sgdrop", 0)]
    assert swept[("tinyvgg", "vanilla", 0)] == base[("tinyvgg", "vanilla", 0)]
    assert swept[("tinyvgg", "curriculum", 0)] == base[("tinyvgg", "curriculum", 0)]  # linear: rho unused
    moved = configs(matrix={"methods": ["vanilla"], "one_seed_methods": ["sgdrop", "curriculum"], "seeds": [0, 1]},
                    methods=curriculum)
    assert set(moved) == {("tinyvgg", "vanilla", 0), ("tinyvgg", "vanilla", 1),
                          ("tinyvgg", "sgdrop", 0), ("tinyvgg", "curriculum", 0)}
    for method in methods:
        assert moved[("tinyvgg", method, 0)] == base[("tinyvgg", method, 0)]


def test_a_method_in_both_method_lists_is_refused():
    msg = error_of({"matrix": {"methods": ["vanilla", "sgdrop"], "one_seed_methods": ["sgdrop", "dropout"]}})
    assert "matrix.one_seed_methods" in msg and "sgdrop" in msg


def test_dvc_yaml_runs_the_cells_of_run_configs(tmp_path):
    """configure writes run_configs' files and the run stages read them: DVC's own resolution of
    dvc.yaml against a two-setup params.yaml must give the run stages exactly those cells, in the
    same order, each reading its own setup's files and shards only."""
    from dvc.repo import Repo

    root = Path(__file__).resolve().parents[1]
    raw = tiny_raw(matrix={"methods": ["vanilla", "sgdrop"], "one_seed_methods": ["dropout"], "seeds": [0, 1]})
    raw["setups"] = {"default": {}, "wide": {"model": {"width": 0.5}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(root / "dvc.yaml", tmp_path)
    Repo.init(str(tmp_path), no_scm=True).close()
    expected = [f"configs/{c.setup}/{c.method.name}/seed{c.seed}.json" for c in run_configs(parse_params(raw))]
    assert len(expected) == len(set(expected)) == 2 * (2 * 2 + 1)
    with Repo(str(tmp_path)) as repo:
        stages = list(repo.index.stages)
    cmds = [s.cmd for s in stages if s.name.split("@")[0] in ("run", "run_one_seed")]
    assert [c.split("--config ")[1].split()[0] for c in cmds] == expected
    for cmd in cmds:
        setup = cmd.split("--config configs/")[1].split("/")[0]
        paths = [w for w in cmd.split() if w.startswith(("configs/", "data/shards/"))]
        assert len(paths) == 4 and all(w.split("/")[1 if w.startswith("configs/") else 2] == setup for w in paths), cmd


def test_params_yaml_is_the_only_home_of_defaults():
    """The schema holds no default: a key left out of params.yaml is named, never filled in."""
    raw = shipped_raw()
    del raw["train"]["lr"], raw["evaluate"]["occlusion_patch"]
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    msg = str(err.value)
    assert "'train.lr': missing" in msg and "'evaluate.occlusion_patch': missing" in msg
    raw = shipped_raw()
    del raw["methods"]["dropblock"]["block_size"]  # a method's params too
    with pytest.raises(ParamsError, match="'methods.dropblock.block_size': missing"):
        parse_params(raw)


def test_a_method_variant_starts_from_its_base_entry():
    params = tiny_params(**{"matrix": {"methods": ["sgdrop", "slow"]},
                          "methods": {"sgdrop": {"ema_decay": 0.9}, "slow": {"type": "sgdrop", "schedule": "linear"}}})
    assert method_spec(params, "slow").params["ema_decay"] == 0.9
    assert method_spec(params, "slow").params["schedule"] == "linear"
    assert method_spec(params, "sgdrop").params["schedule"] == "constant"


def test_an_architecture_that_does_not_follow_the_model_contract_is_refused(monkeypatch):
    from torch import nn

    from pipeline_lib.models import ARCHITECTURES

    class Guessed(nn.Module):  # an encoder and a head, and nothing declared
        def __init__(self):
            super().__init__()
            self.encoder, self.head = nn.Conv2d(3, 4, 3), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                                         nn.Linear(4, 2))

        def forward(self, x):
            return self.head(self.encoder(x))
    monkeypatch.setitem(ARCHITECTURES._entries, "guessed", lambda num_classes, image_size, width, batch_norm: Guessed())
    with pytest.raises(ParamsError) as err:
        tiny_params(model={"architecture": "guessed"})
    assert "does not follow the model contract" in str(err.value) and "feature_info" in str(err.value)
    assert "head.pre_logits" in str(err.value) and "num_features" in str(err.value)


def test_each_methods_params_are_checked_against_the_setups_latent_map():
    """vgg11 at 32 px has a 1x1 latent map: DropBlock's and CamDrop's blocks are clipped to it and a
    small rho drops nothing; the check says each before training (and DropBlock still trains)."""
    from pipeline_lib.config.checks import params_warnings

    params = tiny_params(model={"architecture": "vgg11", "width": 0.125},
                         matrix={"methods": ["dropblock", "camdrop", "sgdrop"]}, rho=0.001)
    warnings = params_warnings(params)
    assert any("methods.dropblock" in w and "1x1 latent map" in w for w in warnings)
    assert any("methods.camdrop" in w and "blocks of 1" in w for w in warnings)
    assert any("methods.sgdrop" in w and "rounds to 0 features: nothing will be dropped" in w for w in warnings)
    assert params_warnings(tiny_params(matrix={"methods": ["dropblock", "sgdrop"]})) == []


def test_an_unknown_name_suggests_the_closest_and_says_where_a_new_one_goes():
    msg = error_of({"model": {"architecture": "resnet19"}})
    assert "did you mean 'resnet18'" in msg and "a new architecture is a module in pipeline_lib/models/" in msg
    assert "timm/<name>" in msg
    msg = error_of({"matrix": {"methods": ["gradcam_drop"]}, "methods": {"gradcam_drop": {}}})
    assert "unknown method 'gradcam_drop'" in msg and "pipeline_lib/methods/" in msg and "type:" in msg


def test_registries_find_every_module_of_their_package(tmp_path, monkeypatch):
    """Registration is by decorator in any module of the package: no hand-kept import list."""
    import sys

    from pipeline_lib.registry import Registry, import_submodules

    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text("")
    registry = Registry("plugin", "plugins")
    monkeypatch.setitem(sys.modules, "plugin_registry", type(sys)("plugin_registry"))
    sys.modules["plugin_registry"].REGISTRY = registry
    for name in ("first", "second"):
        (package / f"{name}.py").write_text(f"from plugin_registry import REGISTRY\nREGISTRY.register('{name}')(object)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import_submodules("plugins")
    assert registry.names() == ["first", "second"]
