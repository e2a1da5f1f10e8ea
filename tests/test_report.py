"""The report: aggregation over seeds, the "—" rule, variants never mixed, and pages that
reference only files that exist."""
import json
import re
from pathlib import Path

import pytest

from pipeline_lib.config import run_configs
from pipeline_lib.io import write_json
from pipeline_lib.reporting.collect import aggregate, collect, label_variants
from pipeline_lib.reporting.report import build_report, write_pages
from pipeline_lib.reporting.tables import DASH, metric_table
from stages.configure import config_path
from tests.conftest import tiny_params

ACCURACIES = {("vanilla", 0): 0.70, ("vanilla", 1): 0.80, ("vanilla", 2): 0.90, ("sgdrop", 0): 0.75, ("sgdrop", 1): 0.85,
              ("sgdrop", 2): 0.95, ("curriculum", 0): 0.60}


def fabricate(root: Path, params) -> None:
    """Metric files with known values for every run of the matrix."""
    for cfg in run_configs(params):
        write_json(config_path(root / "configs", cfg), cfg.model_dump())
        acc = ACCURACIES[cfg.method.name, cfg.seed]
        run = root / cfg.run_dir
        write_json(run / "metrics.json", {"config_digest": cfg.digest(), "accuracy": {"train": 1.0, "test": acc},
                                          "gap": 1.0 - acc, "human_map": "object masks",
                                          "attribution": {"gradcam": {"area_ratio": acc / 2}},
                                          "coverage": {"global_unit": 0.5, "per_layer_unit": [0.5, 0.6]},
                                          "occlusion": {"fractions": [0, 0.5], "relevant": {"accuracy": [acc, 0.1], "auc": 0.4},
                                                        "random": {"accuracy": [acc, 0.5], "auc": 0.6}}})
        write_json(run / "train.json", {"config_digest": cfg.digest(), "val_acc": acc})


@pytest.fixture()
def fabricated(in_tmp):
    params = tiny_params(train={"methods": ["vanilla", "sgdrop"], "seeds": [0, 1, 2]})
    fabricate(in_tmp, params)
    return params


def test_mean_and_std_over_seeds(fabricated):
    runs = label_variants(collect(Path("configs")).runs)
    agg = aggregate(runs, ["metrics.accuracy.test"], ["label"]).set_index("label")
    assert agg.loc["vanilla", "metrics.accuracy.test:mean"] == pytest.approx(0.80)
    assert agg.loc["vanilla", "metrics.accuracy.test:std"] == pytest.approx(0.10)
    assert agg.loc["sgdrop", "metrics.accuracy.test:n"] == 3
    table = metric_table(agg.reset_index(), ["vanilla", "sgdrop", "camdrop"], {"test": "metrics.accuracy.test"})
    assert table.loc["vanilla", "test"] == "80.00 ± 10.00" and table.loc["sgdrop", "test"] == "85.00 ± 10.00"


def test_a_missing_method_is_a_dash_never_zero(fabricated):
    runs = label_variants(collect(Path("configs")).runs)
    agg = aggregate(runs, ["metrics.accuracy.test", "metrics.nothing"], ["label"])
    table = metric_table(agg, ["vanilla", "camdrop"], {"test": "metrics.accuracy.test", "absent": "metrics.nothing"})
    assert table.loc["camdrop"].tolist() == [DASH, DASH] and table.loc["vanilla", "absent"] == DASH


def test_runs_with_other_params_are_stale_and_variants_are_labelled(fabricated, in_tmp):
    cfg = run_configs(fabricated)[0]
    metrics = in_tmp / cfg.run_dir / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "config_digest": "other"}))
    col = collect(Path("configs"))
    assert col.stale == [f"{cfg.run_dir}/metrics.json"]
    runs = col.runs.copy()
    runs.loc[runs["seed"] == 2, "params"] = "deadbeef"
    labels = set(label_variants(runs)["label"])
    assert "vanilla [params deadbeef]" in labels and "sgdrop" not in labels


def test_pages_reference_only_files_that_exist(fabricated, in_tmp, tiny_shards):
    out = in_tmp / "reports"
    sections = build_report(collect(Path("configs")), study_methods=["vanilla", "sgdrop", "camdrop"], out=out,
                            shard_dir=tiny_shards, bench_dir=out / "bench", params_text="x: 1\n")
    write_pages(sections, out)
    page = (out / "index.html").read_text()
    refs = re.findall(r'src="([^"]+)"', page)
    assert refs and all((out / r).exists() for r in refs)
    md_refs = re.findall(r"\]\(([^)]+)\)", (out / "README.md").read_text())
    assert md_refs and all((out / r).exists() for r in md_refs)
    assert "object masks" in page and DASH in page
    assert next((out / "tables").glob("occlusion_auc_*.tex")).read_text().count(r"\midrule") == 1


def test_rho_sweep_labels_each_schedule_by_the_rates_it_uses(in_tmp, tiny_shards):
    fabricate(in_tmp, tiny_params(train={"methods": ["sgdrop", "curriculum"]}, rho=0.02,
                                  methods={"curriculum": {"type": "sgdrop", "schedule": "linear", "rho_end": 0.1}}))
    out = in_tmp / "reports"
    build_report(collect(Path("configs")), study_methods=["sgdrop"], out=out, shard_dir=tiny_shards,
                 bench_dir=out / "bench", params_text="x: 1\n")
    table = next((out / "tables").glob("rho_sweep_*.md")).read_text()
    assert "| rho = 0.02 | 75.00 |" in table and "| linear 0.0→0.1 | 60.00 |" in table
