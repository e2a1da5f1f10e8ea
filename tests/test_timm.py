"""Any timm CNN by name (`model.architecture: timm/<name>`), built to the model contract: one
training step of vanilla and SGDrop, every attribution map and every metric, at 64 px with random
init, on the models the issue names; and a model without an NCHW feature map refused in one line."""
import pytest
import torch

from pipeline_lib.config.resolve import run_configs
from pipeline_lib.data import DATASETS
from pipeline_lib.data.shards import write_shards
from pipeline_lib.metrics.run_metrics import run_metrics
from pipeline_lib.training.loop import train
from pipeline_lib.training.transfer import transfer
from stages.attribute import attribute_run
from tests.conftest import tiny_params

pytest.importorskip("timm")

MODELS = ["resnet18d", "convnext_atto", "efficientnet_b0", "mobilenetv3_small_100", "regnetx_002"]
AT_64 = {"data": {"synthetic": {"image_size": 64, "cue_size": 8, "train": 16, "val": 10, "test": 10,
                                "test_nocue": 0, "test_conflict": 0}},
         "loader": {"image_size": 64, "batch_size": 16},
         "train": {"epochs": 1, "probe_size": 4, "leakage_size": 10, "clean_size": 8},
         "attribute": {"max_images": 4, "ig_steps": 2, "grid_images": 2},
         "evaluate": {"coverage_batches": 1, "coverage_batch_size": 4, "occlusion_images": 4, "leakage_images": 10},
         "transfer": {"epochs": 1}}


@pytest.fixture(scope="module")
def shards_64(tmp_path_factory):
    params = tiny_params(**AT_64)
    out = tmp_path_factory.mktemp("shards64") / "main"
    write_shards(DATASETS.get("synthetic")(params.data), out, params={}, samples_per_shard=100,
                 max_bad_fraction=0.01, progress=False)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_a_timm_cnn_trains_is_attributed_and_measured(name, shards_64, in_tmp):
    params = tiny_params(**AT_64, model={"architecture": f"timm/{name}", "width": 1.0},
                         matrix={"methods": ["vanilla", "sgdrop"]}, rho=0.05)
    for cfg in run_configs(params)[:1] + run_configs(params)[3:4]:  # vanilla and sgdrop, seed 0
        trained = train(cfg, shards_64, cfg.run_dir)
        assert torch.isfinite(torch.tensor(trained.summary["train_loss"]))
        if cfg.method.type == "sgdrop":
            assert trained.summary["dropped_fraction"] > 0
        maps, keys = attribute_run(trained, params.attribute)
        assert set(maps) == set(params.attribute.methods)
        metrics = run_metrics(trained, params.evaluate, "test", params.attribute.max_images, maps, keys)
        assert 0 <= metrics["coverage"]["last_conv_per_image"] <= 1 and metrics["occlusion"]
        assert all(m["area_ratio"] is not None for m in metrics["attribution"].values())
        moved = transfer(trained, shards_64, params.transfer)  # a fresh head from the contract
        assert 0 <= moved["accuracy"]["test"] <= 1


def test_a_model_without_an_nchw_map_is_refused_in_one_line(in_tmp):
    from click.testing import CliRunner

    import yaml
    from stages.check import main
    from tests.conftest import tiny_raw

    raw = tiny_raw(model={"architecture": "timm/vit_tiny_patch16_224", "width": 1.0}, loader={"image_size": 224})
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 1
    assert "not an NCHW map" in result.output and "model.architecture" in result.output
    assert len(result.output.strip().splitlines()) == 1
