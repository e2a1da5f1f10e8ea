"""The report: aggregation over seeds, verdicts computed by the stated rule, the findings first,
only the runs of the matrix, every figure once, warnings shown, and the paper's numbers traceable
to its text."""
import html as html_module
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline_lib.config.resolve import method_spec, run_configs
from pipeline_lib.io import write_json
from pipeline_lib.reporting.collect import aggregate, collect, label_variants
from pipeline_lib.reporting.findings import (AREA_UNCHECKED, CLAIMS, DOES_NOT_HOLD, HOLDS, MIXED, NOT_REPRODUCED,
                                             NOT_RUN, ONE_SEED, REPRODUCED, chance_reproduced, combine, compare,
                                             cue_findings, setup_finding)
from pipeline_lib.reporting.paper import PAPER_FILE, Paper
from pipeline_lib.reporting.render import write_pages
from pipeline_lib.reporting.report import build_report, data_provenance, setup_columns
from pipeline_lib.reporting.tables import DASH, metric_table
from pipeline_lib.training.identity import RunIdentity, current_code
from stages.configure import config_path
from tests.conftest import SHARED_DATA, tiny_params

METHODS = {"sgdrop": {"schedule": "constant", "ema": True},
           "sgdrop_no_ema": {"type": "sgdrop", "schedule": "constant", "ema": False},
           "sgdrop_rho05": {"type": "sgdrop", "rho": 0.05}}  # benched, not trained
# test accuracy per (arch, method): SGDrop clearly above vanilla on tinyvgg, below on resnet20;
# with and without the EMA within the seed spread; the seed adds -1, 0, +1 point
ACC = {("tinyvgg", "vanilla"): 0.60, ("tinyvgg", "sgdrop"): 0.70, ("tinyvgg", "sgdrop_no_ema"): 0.695,
       ("resnet20", "vanilla"): 0.70, ("resnet20", "sgdrop"): 0.60, ("resnet20", "sgdrop_no_ema"): 0.60}
WARNING = "the head reads SGDrop's mask (label leakage)"
GRID_KEYS = ["test_000007", "test_000002", "test_000005", "test_000000"]  # a random draw, not storage order


def fabricate(root: Path, params, warn: str | None = None, acc=None, more=None) -> None:
    """The files the pipeline writes for every run of the matrix, with known values; `more(cfg, a)`:
    top-level keys of metrics.json to set (a: the run's test accuracy)."""
    acc = acc or (lambda cfg: ACC[cfg.arch, cfg.method.name] + 0.01 * (cfg.seed - 1))
    for cfg in run_configs(params):
        write_json(config_path(root / "configs", cfg), cfg.model_dump())
        a, run = acc(cfg), root / cfg.run_dir
        areas = [0.5, 0.4, 0.3 + 0.01 * cfg.seed]  # every method narrows by about 0.2
        identity = RunIdentity(cfg.digest(), current_code(cfg), data="fabricated", weights=None)
        write_json(run / "metrics.json", {
            "identity": identity.digest, "accuracy": {"train": 1.0, "val": a, "test": a, "test_conflict": a - 0.3},
            "gap": 1.0 - a, "human_map": "object masks",
            "data": {"dataset": "synthetic", "counts": {"train": 60, "test": 20}, "human_map": "object masks",
                     "bad_images": 0, "images_read": 80, "converted_to_rgb": {}},
            "attribution": {"gradcam": {"area_ratio": a / 2, "hit_whole": a / 3}},
            "coverage": {"global_unit": 0.5, "last_conv_unit": 0.2, "per_layer_unit": [0.5, 0.6]},
            "occlusion": {"fractions": [0, 0.5], "relevant": {"accuracy": [a, 0.1], "auc": 0.4},
                          "random": {"accuracy": [a, 0.5], "auc": 0.6}},
            "attention_over_training": {"probe_area_ratio": areas, "first": areas[0], "last": areas[-1],
                                        "change": areas[-1] - areas[0]}, **(more(cfg, a) if more else {})})
        train = {"identity": identity.to_dict(), "val_acc": a}
        if warn and cfg.method.name == "sgdrop" and cfg.seed == 0:
            train["warnings"] = [warn]
        write_json(run / "train.json", train)
        tsv = run / "live" / "plots" / "metrics"
        tsv.mkdir(parents=True, exist_ok=True)
        for name, series in (("probe_area_ratio", areas), ("gap", [0.1, 0.2, 0.3])):
            (tsv / f"{name}.tsv").write_text(f"step\t{name}\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(series)))
        rng = np.random.default_rng(cfg.seed)
        np.savez(run / "live" / "probe_cams.npz", cams=rng.random((3, 2, 4, 4)), images=rng.random((2, 3, 32, 32)),
                 labels=np.zeros(2))
        np.savez(run / "attributions.npz", gradcam=rng.random((4, 32, 32)), keys=np.array(GRID_KEYS),
                 images=rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))


def study(**matrix):
    return tiny_params(matrix={"seeds": [0, 1, 2], "methods": ["vanilla", "sgdrop", "sgdrop_no_ema"], **matrix},
                       methods=METHODS, setups={"tiny": {}, "resnet": {"model": {"architecture": "resnet20"}}})


def build(root: Path, params, shards: Path, order=None, bench=None):
    out = root / "reports"
    if bench:
        write_json(out / "bench" / "tinyvgg_32px_b16_cpu.json", bench)
    specs = {name: method_spec(params, name) for name in {*params.methods, *params.matrix.methods}}
    page = build_report(collect(Path("configs")), specs=specs, order=order or list(params.matrix.methods),
                        setups=list(params.setups), out=out, bench_dir=out / "bench", params_text="x: 1\n")
    write_pages(page, out)
    return page, out


@pytest.fixture()
def fabricated(in_tmp):
    params = study()
    fabricate(in_tmp, params, warn=WARNING)
    return params


def test_mean_and_std_over_seeds(fabricated):
    runs = label_variants(collect(Path("configs")).runs)
    agg = aggregate(runs, ["metrics.accuracy.test"], ["arch", "label"]).set_index(["arch", "label"])
    assert agg.loc[("tinyvgg", "vanilla"), "metrics.accuracy.test:mean"] == pytest.approx(0.60)
    assert agg.loc[("tinyvgg", "vanilla"), "metrics.accuracy.test:std"] == pytest.approx(0.01)
    assert agg.loc[("resnet20", "sgdrop"), "metrics.accuracy.test:n"] == 3
    table = metric_table(agg.loc["tinyvgg"].reset_index(), ["vanilla", "sgdrop"], {"test": "metrics.accuracy.test"})
    assert table.loc["vanilla", "test"] == "60.00 ± 1.00" and table.loc["vanilla", "n"] == "3"


def test_a_missing_value_is_a_dash_never_zero(fabricated):
    runs = label_variants(collect(Path("configs")).runs)
    agg = aggregate(runs, ["metrics.accuracy.test", "metrics.nothing"], ["label"])
    table = metric_table(agg, ["vanilla"], {"test": "metrics.accuracy.test", "absent": "metrics.nothing"})
    assert table.loc["vanilla", "absent"] == DASH


def test_runs_with_other_params_are_stale_and_variants_are_labelled(fabricated, in_tmp):
    cfg = run_configs(fabricated)[0]
    metrics = in_tmp / cfg.run_dir / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "identity": "other"}))
    col = collect(Path("configs"))
    assert col.stale == [f"{cfg.run_dir}/metrics.json was measured on other weights: rerun dvc repro"]
    runs = col.runs.copy()
    runs.loc[runs["seed"] == 2, "params"] = "deadbeef"
    labels = set(label_variants(runs)["label"])
    assert "vanilla [params deadbeef]" in labels and "sgdrop" not in labels


def test_the_verdict_rule():
    a, b = np.array([0.70, 0.71, 0.72]), np.array([0.60, 0.61, 0.62])
    assert compare(a, b, +1) == REPRODUCED and compare(b, a, +1) == NOT_REPRODUCED
    assert compare(a, a - 0.005, +1) == NOT_REPRODUCED  # within the seed spread
    assert compare(a[:1], b, +1) == ONE_SEED  # one seed: no spread to compare with
    assert compare(np.array([-0.2, -0.21]), None, -1) == REPRODUCED  # a change within one method
    assert combine([REPRODUCED, NOT_REPRODUCED]) == MIXED and combine([ONE_SEED, REPRODUCED]) == REPRODUCED
    assert combine([]) == NOT_RUN and combine([ONE_SEED]) == ONE_SEED


def test_the_rules_false_positive_rate_is_what_the_page_states():
    rng = np.random.default_rng(0)
    for n in (2, 3):
        calls = [compare(rng.normal(size=n), rng.normal(size=n), +1) == REPRODUCED for _ in range(20000)]
        assert np.mean(calls) == pytest.approx(chance_reproduced(n), abs=0.01)


def test_findings_are_computed_from_the_runs(fabricated, in_tmp, tiny_shards):
    bench = {"device_name": "cpu", "rows": [{"method": "vanilla", "ms_per_step": 10.0, "images_per_s": 1.0,
                                             "ratio_to_vanilla": 1.0},
                                            {"method": "sgdrop", "ms_per_step": 13.0, "images_per_s": 1.0,
                                             "ratio_to_vanilla": 1.3},
                                            {"method": "sgdrop_no_ema", "ms_per_step": 20.0, "images_per_s": 1.0,
                                             "ratio_to_vanilla": 2.0},  # another role: not SGDrop's cost
                                            {"method": "sgdrop_rho05", "ms_per_step": 20.0, "images_per_s": 1.0,
                                             "ratio_to_vanilla": 2.0}]}  # SGDrop's role, but not its variant
    page, _ = build(in_tmp, fabricated, tiny_shards, bench=bench)
    verdict = {f.key: f.verdict for f in page.findings}
    assert verdict["accuracy"] == MIXED  # above vanilla on tinyvgg, below on resnet20
    assert verdict["ema"] == NOT_REPRODUCED  # 0.5 point apart, 1 point of seed spread
    assert verdict["narrowing"] == REPRODUCED
    assert verdict["transfer"] == NOT_RUN and verdict["rho"] == NOT_RUN and verdict["curriculum"] == NOT_RUN
    assert verdict["cost"] == REPRODUCED  # +30%, within the paper's 25-33%
    accuracy = next(f for f in page.findings if f.key == "accuracy")
    assert any("70.00 ± 1.00 vs" in line and "(n = 3, 3)" in line for line in accuracy.ours)
    assert "81.00 ± 0.44 vs 67.21 ± 0.29" in accuracy.paper
    assert ("table", "accuracy") in accuracy.links


def test_one_seed_is_inconclusive(in_tmp, tiny_shards):
    params = study(seeds=[0])
    fabricate(in_tmp, params)
    page, _ = build(in_tmp, params, tiny_shards)
    assert {f.key: f.verdict for f in page.findings}["accuracy"] == ONE_SEED


def test_pages_open_with_the_findings_and_show_each_figure_once(fabricated, in_tmp, tiny_shards):
    page, out = build(in_tmp, fabricated, tiny_shards, order=["camdrop", "vanilla", "sgdrop", "sgdrop_no_ema"])
    html, md = (out / "index.html").read_text(), (out / "README.md").read_text()
    assert html.index('id="findings"') < html.index("<table") and html.index('id="findings"') < html.index("<img")
    assert re.findall(r"^## .*", md, re.M)[0].startswith("## Findings")
    for text in (html, md):
        refs = re.findall(r'src="([^"]+)"', text) or re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
        assert refs and all((out / r).exists() for r in refs)
        assert len(refs) == len(set(refs))  # no figure twice
        assert WARNING in html_module.unescape(text) and "test − test_conflict" in text
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert len({Path(f).stem for f in figures}) == len(figures)  # one file per figure, no PNG + SVG pairs
    assert "attention_over_epochs.svg" in figures and not any("rho" in f for f in figures)  # one rho value
    accuracy = (out / "tables" / "accuracy.csv").read_text().splitlines()
    assert accuracy[0].split(",")[:2] == ["method", "n"]  # Table 3 layout: setups as columns
    assert set(accuracy[0].split(",")[2:]) == {"synthetic / tinyvgg", "synthetic / resnet20"}
    assert not any(line.startswith("camdrop") for line in accuracy)  # only the runs of the matrix
    assert (out / "tables" / "accuracy.tex").read_text().count(r"\midrule") == 1
    cue = (out / "tables" / "cue_reliance_synthetic_tinyvgg.csv").read_text()
    assert "30.00 ± 0.00" in cue  # test minus test_conflict, per run


def test_the_methods_grid_draws_each_runs_maps_over_the_images_its_attribute_step_kept(fabricated, in_tmp,
                                                                                       tiny_shards, monkeypatch):
    drawn = []
    monkeypatch.setattr("pipeline_lib.reporting.report.overlay_grid",
                        lambda images, columns, path: drawn.append((images, columns)) or path)
    build(in_tmp, fabricated, tiny_shards)
    with np.load(in_tmp / "runs" / "tiny" / "sgdrop" / "seed0" / "attributions.npz") as d:
        images, maps = d["images"], d["gradcam"][:len(d["images"])].astype(np.float32)
    assert drawn and np.array_equal(drawn[0][0], images)
    assert np.array_equal(drawn[0][1]["sgdrop"], maps)


def test_paper_values_stand_beside_ours_for_a_setup_the_paper_has(fabricated):
    paper = Paper.load()
    runs = label_variants(collect(Path("configs")).runs)
    runs["role"] = [paper.role(t, {"schedule": "constant", "ema": m != "sgdrop_no_ema"})
                    for t, m in zip(runs["type"], runs["method"])]
    runs.loc[runs["arch"] == "tinyvgg", ["dataset", "arch"]] = ["imagenette", "vgg16"]
    runs["setup"] = [paper.setup_label(d, a) for d, a in zip(runs["dataset"], runs["arch"])]
    runs = pd.concat([runs, runs[runs["label"] == "sgdrop"].assign(label="sgdrop_rho05")])  # a second SGDrop
    table = setup_columns(runs, ["vanilla", "sgdrop", "sgdrop_no_ema", "sgdrop_rho05"], "metrics.accuracy.test",
                          lambda r, d, a: (paper.accuracy(r, d, a) or (None,))[0])
    assert table.loc["vanilla", "Imagenette / VGG16 (paper)"] == "67.21 ± 0.29"
    assert table.loc["sgdrop", "Imagenette / VGG16 (paper)"] == "81.00 ± 0.44"
    assert table.loc["sgdrop", "Imagenette / VGG16"] == "70.00 ± 1.00"
    assert table.loc["sgdrop_rho05", "Imagenette / VGG16 (paper)"] == DASH  # the paper's value beside one variant
    assert "synthetic / resnet20 (paper)" not in table


def test_a_matrix_without_finished_runs_still_gives_the_claims(in_tmp, tiny_shards):
    params = study()
    for cfg in run_configs(params):
        write_json(config_path(in_tmp / "configs", cfg), cfg.model_dump())
    page, out = build(in_tmp, params, tiny_shards)
    assert {f.verdict for f in page.findings} == {NOT_RUN} and len(page.findings) > 5
    assert "not finished yet" in page.warnings[0] and 'id="findings"' in (out / "index.html").read_text()


def test_a_rho_curve_needs_two_rho_values(in_tmp, tiny_shards):
    params = tiny_params(matrix={"methods": ["sgdrop", "sgdrop_high"], "seeds": [0, 1]},
                         methods={"sgdrop_high": {"type": "sgdrop", "rho": 0.2}})
    fabricate(in_tmp, params, acc=lambda cfg: 0.8 - 0.3 * (cfg.method.name == "sgdrop_high") + 0.01 * cfg.seed)
    page, out = build(in_tmp, params, tiny_shards)
    assert (out / "figures" / "accuracy_vs_rho.svg").exists()
    rho = (out / "tables" / "rho_synthetic_tinyvgg.csv").read_text()
    assert "rho = 0.01,2,80.50 ± 0.71" in rho and "rho = 0.2,2,50.50 ± 0.71" in rho
    assert {f.key: f.verdict for f in page.findings}["rho"] == REPRODUCED


def test_skipped_and_converted_images_are_reported_and_none_is_none(in_tmp, tiny_shards):
    params = study(seeds=[0, 1])
    fabricate(in_tmp, params)
    page, out = build(in_tmp, params, tiny_shards)
    assert page.warnings == [] and 'id="warnings"' not in (out / "index.html").read_text()
    assert "skipped while sharding: 0 of 80" in page.provenance[0]
    for cfg in run_configs(params):
        metrics = in_tmp / cfg.run_dir / "metrics.json"
        data = json.loads(metrics.read_text())
        write_json(metrics, {**data, "data": {**data["data"], "bad_images": 3, "converted_to_rgb": {"L": 2, "RGBA": 1}}})
    lines, warnings = data_provenance(collect(Path("configs")), list(params.setups))
    assert "skipped while sharding: 3 of 80; converted to RGB: 2 grayscale, 1 RGBA" in lines[0]
    assert "3 unreadable images" in warnings[0]


# cue reliance (test - test_conflict) per seed: vanilla's and SGDrop's spread as on the embedded
# default (28.8 ± 7.4 and 18.2 ± 2.8 points); the one-seed methods in between
RELIANCE = {"vanilla": [0.240, 0.250, 0.373], "sgdrop": [0.154, 0.182, 0.210]}
ONE_SEED_RELIANCE = 0.223
HIT, SAME_AREA_HIT = "metrics.attribution.gradcam.hit_whole", "metrics.reference_maps.same_area.gradcam.hit_whole"


def benchmark_metrics(cfg, a: float) -> dict:
    """What run_metrics writes today, with known values: SGDrop above vanilla on coverage per image
    and equal on the saturated union; SGDrop's mask read on seed 2 only."""
    sg, k = cfg.method.name == "sgdrop", cfg.seed
    rely = RELIANCE[cfg.method.name][k] if cfg.method.name in RELIANCE else ONE_SEED_RELIANCE
    out = {"accuracy": {"train": 1.0, "val": a, "test": a, "test_conflict": a - rely, "train_clean": 0.9},
           "attribution": {"gradcam": {"area_ratio": a / 2, "hit_whole": a / 3, "spearman": 0.8,
                                       "harmonization": 0.8 / 0.65753}},
           "reference_maps": {"uniform": {"area_ratio": 1.0, "hit_whole": 0.1, "spearman": 0.0},
                              "centred_gaussian": {"area_ratio": 0.2, "hit_whole": 0.4, "spearman": 0.3},
                              "object_area": 0.2,
                              "same_area": {"gradcam": {"area_ratio": a / 2, "hit_whole": 0.25, "spearman": 0.1}}},
           "coverage": {"global_per_image": 0.4, "global_unit": 0.999, "global_scaled": 0.3,
                        "last_conv_per_image": (0.45 if sg else 0.30) + 0.01 * k, "last_conv_unit": 0.997,
                        "last_conv_scaled": 0.2, "per_layer_per_image": [0.3, 0.4], "per_layer_unit": [0.99, 0.99]}}
    if sg:
        out["mask_leakage"] = {"unmasked": a, "masked_true": a, "follows_wrong": 0.1, "wrong_chance": 0.1,
                               "content_free": {"follows_label": 0.1 + 0.2 * (k == 2), "chance": 0.1, "n": 100,
                                                "p_value": [0.5, 0.4, 1e-9][k]},
                               "reads_the_mask": k == 2}
    return out


@pytest.fixture()
def benchmark(in_tmp, tiny_shards, monkeypatch):
    """Two methods with three seeds, three with one (the embedded default's mix), as the report draws them."""
    params = tiny_params(matrix={"seeds": [0, 1, 2], "methods": ["vanilla", "sgdrop"],
                                 "one_seed_methods": ["dropout", "camdrop", "spatial_dropout"]}, methods=METHODS)
    fabricate(in_tmp, params, acc=lambda cfg: 0.68, more=benchmark_metrics)
    drawn = {}
    monkeypatch.setattr("pipeline_lib.reporting.report.figures.coverage_per_layer",
                        lambda data, style, path: drawn.setdefault("coverage", data) is None or path)
    page, out = build(in_tmp, params, tiny_shards)
    return page, out, drawn


def test_headings_give_the_seeds_of_each_row(benchmark):
    page, out, _ = benchmark
    titles = [t.title for s in page.sections for t in s.tables]
    assert not any("n = 1" in t for t in titles)  # three one-seed rows once made the heading say so
    table = next(t for s in page.sections for t in s.tables if t.id == "accuracy_splits_synthetic_tinyvgg")
    assert table.frame.loc["vanilla", "n"] == "3" and table.frame.loc["camdrop", "n"] == "1"
    assert "(n =" not in table.frame.loc["vanilla", "test"] and "± " in table.frame.loc["vanilla", "test"]


def test_the_benchmarks_cue_reliance_opens_the_findings_with_its_verdict_by_the_rule(benchmark):
    page, out, _ = benchmark
    found = {f.key: f for f in page.findings}
    assert [f.key for f in page.findings][:2] == ["cue", "cue:sgdrop"]  # before the paper's claims
    assert found["cue"].verdict == HOLDS and "vanilla 28.8 ± 7.4 points" in found["cue"].ours[0]
    sgdrop = found["cue:sgdrop"]
    assert "sgdrop 18.2 ± 2.8 vs vanilla 28.8 ± 7.4 points (n = 3, 3)" in sgdrop.ours[0]
    assert sgdrop.verdict == HOLDS  # 10.6 points apart, pooled spread 5.6
    assert found["cue:camdrop"].verdict == ONE_SEED
    html = html_module.unescape((out / "index.html").read_text())
    assert html.index("sgdrop relies less on the cue") < html.index("Without SGDrop, attention narrows")


def test_a_cue_reliance_difference_within_the_seed_spread_does_not_hold():
    rows = [{"setup": "s", "role": m, "label": m, "seed": k, "metrics.accuracy.test": 0.7,
             "metrics.accuracy.test_conflict": 0.7 - r}
            for m, rs in (("vanilla", RELIANCE["vanilla"]), ("sgdrop", [0.22, 0.25, 0.28])) for k, r in enumerate(rs)]
    found = {f.key: f for f in cue_findings(pd.DataFrame(rows), [], [])}
    assert found["cue:sgdrop"].verdict == DOES_NOT_HOLD  # 3.8 points below vanilla, pooled spread 5.7
    assert cue_findings(pd.DataFrame(rows).drop(columns="metrics.accuracy.test_conflict"), [], []) == []


def claim(key: str):
    return next(c for c in CLAIMS if c.key == key)


def hit_runs(same_area: dict[str, list[float]] | None) -> pd.DataFrame:
    hits = {"vanilla": [0.30, 0.31, 0.32], "sgdrop": [0.60, 0.61, 0.62]}
    return pd.DataFrame([{"setup": "s", "role": m, "label": m, "seed": k, HIT: h,
                          **({SAME_AREA_HIT: same_area[m][k]} if same_area else {})}
                         for m, hs in hits.items() for k, h in enumerate(hs)])


def test_a_hit_ratio_gain_that_only_restates_a_larger_area_is_not_reproduced():
    explained = {"vanilla": [0.25, 0.26, 0.27], "sgdrop": [0.55, 0.56, 0.57]}  # blobs gain as much
    line, verdict = setup_finding(hit_runs(explained), claim("hit"))
    assert verdict == NOT_REPRODUCED and "area alone gains +0.300 of our +0.300" in line
    assert setup_finding(hit_runs({m: [0.3] * 3 for m in explained}), claim("hit"))[1] == REPRODUCED
    assert setup_finding(hit_runs(None), claim("hit"))[1] == AREA_UNCHECKED  # no reference: no verdict on area
    assert combine([AREA_UNCHECKED]) == AREA_UNCHECKED and combine([AREA_UNCHECKED, ONE_SEED]) == ONE_SEED


def test_harmonization_is_the_raw_spearman_with_a_proxy_and_the_papers_score_only_with_clickme():
    spearman = {"vanilla": [0.50, 0.51, 0.52], "sgdrop": [0.70, 0.71, 0.72]}
    proxy = pd.DataFrame([{"setup": "s", "role": m, "label": m, "seed": k, "metrics.human_map": "object masks",
                           "metrics.attribution.gradcam.spearman": v, "metrics.attribution.gradcam.harmonization":
                           v / 0.65753, "metrics.reference_maps.same_area.gradcam.spearman": 0.1}
                          for m, vs in spearman.items() for k, v in enumerate(vs)])
    line, verdict = setup_finding(proxy, claim("harmonization"))
    assert line.startswith("sgdrop 0.710 ± 0.010 vs vanilla 0.510 ± 0.010") and "object masks, a proxy" in line
    assert verdict == REPRODUCED  # the blobs gain nothing here
    score = proxy["metrics.attribution.gradcam.spearman"]
    clickme = proxy.assign(**{"metrics.human_map": "ClickMe", "metrics.harmonization_clickme.gradcam.score": score})
    line, verdict = setup_finding(clickme, claim("harmonization"))
    assert "ClickMe maps / human ceiling" in line and verdict == AREA_UNCHECKED


def test_coverage_reads_per_image_with_the_union_and_scaled_beside(benchmark):
    page, out, drawn = benchmark
    coverage = {f.key: f for f in page.findings}["coverage"]
    assert coverage.verdict == REPRODUCED  # 0.46 against 0.31 per image; the union is 0.997 for both
    assert "sgdrop 0.460 ± 0.010 vs vanilla 0.310 ± 0.010" in coverage.ours[0]
    assert "; union 0.997 ± 0.000 vs 0.997 ± 0.000; scaled" in coverage.ours[0]
    assert "; global, per image 0.400 ± 0.000 vs 0.400 ± 0.000" in coverage.ours[0]
    assert set(drawn["coverage"]["coverage"]) == {0.3, 0.4}  # per_layer_per_image, not the saturated union
    table = pd.read_csv(out / "tables" / "coverage_synthetic_tinyvgg.csv", index_col="method")
    assert list(table.columns) == ["n", *(f"{layer}, {reading}" for layer in ("global", "last conv")
                                          for reading in ("per image", "union", "scaled"))]
    assert "Per image: the fraction of units active on an image" in (out / "README.md").read_text()


def test_attribution_table_has_reference_rows_and_the_proxy_spearman(benchmark):
    page, out, _ = benchmark
    table = next(t for s in page.sections for t in s.tables if t.id == "attribution_synthetic_tinyvgg").frame
    assert table.loc["reference: uniform map", "area ratio"] == "1.000 ± 0.000"
    assert table.loc["reference: uniform map", "n"] == "3"  # one per seed, not one per run
    assert table.loc["reference: same area as sgdrop", "hit ratio"] == "0.250 ± 0.000"
    assert table.loc["reference: same area as camdrop", "n"] == "1"
    assert table.loc["vanilla", "harmonization, proxy (Spearman)"] == "0.800 ± 0.000"  # not 0.8 / ClickMe's ceiling
    assert not any(c.startswith("harmonization, ClickMe") for c in table.columns)  # no ClickMe maps here


def test_leakage_table_shows_the_content_free_probe_and_the_runs_verdict(benchmark):
    page, out, _ = benchmark
    table = next(t for s in page.sections for t in s.tables if t.id == "mask_leakage_synthetic_tinyvgg").frame
    assert list(table.index) == ["sgdrop"]
    assert table.loc["sgdrop", "content-free: follows the mask's label"] == "16.67 ± 11.55"
    assert table.loc["sgdrop", "its chance (1 / classes)"] == "10.00 ± 0.00"
    assert table.loc["sgdrop", "content-free p"] == "5.0e-01, 4.0e-01, 1.0e-09"  # per seed, in seed order
    assert table.loc["sgdrop", "reads the mask"] == "1 of 3 seeds"


PAPER_TEXT = SHARED_DATA.parent / "papers" / "000_1cc4953471667593.txt"


def _row_pattern(numbers: list[float]) -> str:
    """The numbers in this order, separated by anything but digits (the text prints 2.70 as 2.7)."""
    texts = [f"{x:.2f}" for x in numbers]
    return r"\D{1,12}".join(re.escape(t[:-1]) + (t[-1] + "?" if t.endswith("0") else re.escape(t[-1])) for t in texts)


def paper_rows(data: dict) -> list[list[float]]:
    """Every row of numbers of paper.yaml, in the order the paper prints them."""
    flat = lambda cells: [x for c in cells for x in (c if isinstance(c, list) else [c])]  # noqa: E731
    rows = []
    for table in data["accuracy"]:
        for row in table["rows"].values():
            rows += [flat(r) for r in row.values()] if isinstance(row, dict) else [flat(row)]
    rows += [flat(r) for r in data["transfer"]["rows"].values()] + [flat(r) for r in data["ema"]["rows"].values()]
    rows += [[r["vanilla_ms"], r["sgdrop_ms"], r["overhead_percent"]] for r in data["overhead"]["rows"].values()]
    for r in data["attribution"]["rows"].values():
        rows += [[r["area_ratio"], r["hit_ratio"], r["harmonization"]],
                 [r["coverage_global"], r["coverage_feature_map"]]]
    return rows


@pytest.mark.skipif(not PAPER_TEXT.exists(), reason="the paper's text is not on this machine")
def test_every_number_of_paper_yaml_is_in_the_paper_in_its_row():
    text = PAPER_TEXT.read_text()
    rows = paper_rows(yaml.safe_load(PAPER_FILE.read_text()))
    assert len(rows) > 30
    assert [r for r in rows if not re.search(_row_pattern(r), text)] == []
