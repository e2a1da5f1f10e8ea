"""The study's report as one data model (`Page`): the findings first, then the detailed tables
and figures. `render.py` turns it into `index.html` and `README.md` with the same templates' data.

Tables (CSV, LaTeX): test accuracy in the layout of the paper's Table 3 (setups as columns, the
paper's values beside ours), accuracy on every split, cue reliance and attention over the
epochs, attribution metrics with the reference maps' rows and neuron coverage in three readings
(Table 4), transfer (Table 5), rho (Table 7), EMA ablation (Table 8), per-step cost (Table 9),
occlusion robustness, label leakage with the content-free probe. Figures:
attention over epochs (Figure 3), one probe image's Grad-CAM over the epochs (Figure 1), test
images x methods (Figure 4), occlusion curves, neuron coverage per layer, accuracy against rho.
Every number is a mean ± std over the seeds of one variant (same params but the seed).
"""
from __future__ import annotations

import csv
import importlib.metadata
import json
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline_lib.config.resolve import MethodSpec
from pipeline_lib.config.schema import load_yaml
from pipeline_lib.metrics.leakage import ALPHA as LEAK_ALPHA
from pipeline_lib.reporting import figures
from pipeline_lib.reporting.collect import Collection, aggregate, label_variants
from pipeline_lib.reporting.findings import Finding, findings, pick, rule_text
from pipeline_lib.reporting.overlay import overlay_grid
from pipeline_lib.reporting.paper import Paper
from pipeline_lib.reporting.tables import DASH, cell, metric_table, usual_n, write_table

VERSIONS = ["torch", "torchvision", "dvc", "dvclive", "webdataset", "captum", "zennit", "numpy", "pandas"]
COVERAGE_NOTE = (
    "Neuron coverage, three readings of the units (every C x H x W unit of an activation layer) above the threshold "
    "(evaluate.coverage_threshold; 0 in the paper), see pipeline_lib/metrics/coverage.py. Per image: the fraction of "
    "units active on an image, averaged over the images; this is the reading of the paper's Table 4 and the one the "
    "findings use. Union: the fraction of units active on at least one image of the set; at threshold 0 it saturates "
    "near 1 for every run. Scaled: DeepXplore's channel coverage, each layer's output min-max scaled per image "
    "(evaluate.coverage_scaled_threshold). Global pools the units of every activation layer; last conv is the last "
    "convolution's map after its activation.")
GRADCAM = "metrics.attribution.gradcam."  # the attribution method of the paper's Table 4 and of the findings
REFERENCES = {"uniform": "reference: uniform map", "centred_gaussian": "reference: centred Gaussian, mean object area"}
SAME_AREA = "reference: same area as "
HIGHLIGHT = ("vanilla", "sgdrop")  # the paper's roles drawn thick in every figure
MODES = {"L": "grayscale", "LA": "grayscale with alpha", "P": "palette", "RGBA": "RGBA", "CMYK": "CMYK",
         "I;16": "16-bit grayscale", "1": "black-and-white"}  # PIL's image modes, in words


@dataclass
class Table:
    id: str
    title: str
    frame: pd.DataFrame
    files: list[str] = field(default_factory=list)

    @property
    def header(self) -> list[str]:
        return [self.frame.index.name or "", *map(str, self.frame.columns)]

    @property
    def rows(self) -> list[list[str]]:
        return [[str(i), *map(str, row)] for i, row in zip(self.frame.index, self.frame.values)]


@dataclass
class Figure:
    id: str
    src: str
    caption: str


@dataclass
class Section:
    id: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


@dataclass
class Page:
    summary: str
    findings: list[Finding]
    rule: str
    warnings: list[str]
    sections: list[Section]
    provenance: list[str]
    params_text: str

    @property
    def finding_groups(self) -> list[tuple[str, list[Finding]]]:
        """The findings by group, in the order they come."""
        groups: dict[str, list[Finding]] = {}
        for f in self.findings:
            groups.setdefault(f.group, []).append(f)
        return list(groups.items())


class Writer:
    """Writes tables and figures under `out` and returns them as page items (paths relative to `out`)."""

    def __init__(self, out: Path):
        self.out = out
        (out / "tables").mkdir(parents=True, exist_ok=True)
        (out / "figures").mkdir(parents=True, exist_ok=True)

    def table(self, name: str, title: str, frame: pd.DataFrame) -> Table:
        caption = title + ("; mean ± std over the n seeds of each row" if "n" in frame.columns else "")
        paths = write_table(frame, self.out / "tables" / name, caption)
        return Table(name, caption, frame, [p.relative_to(self.out).as_posix() for p in paths])

    def figure(self, name: str, caption: str, draw, suffix: str = ".svg") -> Figure:
        path = draw(self.out / "figures" / f"{name}{suffix}")
        return Figure(f"fig-{name}", path.relative_to(self.out).as_posix(), caption)


def _history(run: str, name: str) -> list[float]:
    path = Path(run) / "live" / "plots" / "metrics" / f"{name}.tsv"
    if not path.exists():
        return []
    with open(path) as f:
        return [float(r[name]) for r in csv.DictReader(f, delimiter="\t")]


def slug(setup: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", setup.lower()).strip("_")


def per_setup(w: Writer, agg: pd.DataFrame, order: list[str], columns: dict[str, str], name: str, title: str,
              **fmt) -> list[Table]:
    """One table per setup, rows the labels run in that setup: methods of different models never share a row."""
    out = []
    for setup, part in agg.groupby("setup", sort=False):
        rows = [m for m in order if m in set(part["label"])]
        present = {k: v for k, v in columns.items() if f"{v}:mean" in part and part[f"{v}:n"].sum()}
        if present:
            out.append(w.table(f"{name}_{slug(setup)}", f"{title}, {setup}", metric_table(part, rows, present, **fmt)))
    return out


def setup_columns(runs: pd.DataFrame, order: list[str], metric: str, paper_value) -> pd.DataFrame:
    """The paper's Table 3 layout: methods as rows, setups as columns, the paper's value beside ours
    where it has one (`paper_value(role, dataset, arch)` -> [mean, std] or None), beside the variant
    that plays the role in the findings only."""
    agg = aggregate(runs, [metric], ["setup", "dataset", "arch", "label", "role"])
    rows = [m for m in order if m in set(agg["label"])]
    table = pd.DataFrame(DASH, index=pd.Index(rows, name="method"), columns=["n"], dtype=object)
    row_n = {label: usual_n(g[f"{metric}:n"]) for label, g in agg.groupby("label")}
    for label, n in row_n.items():
        table.loc[label, "n"] = str(n) if n else DASH
    for setup, part in agg.groupby("setup", sort=False):
        table[setup] = DASH
        primary = {role: pick(part, role)["label"].iloc[0] for role in set(part["role"]) - {""}}
        paper_cells = {r["label"]: paper_value(r["role"], r["dataset"], r["arch"]) for _, r in part.iterrows()
                       if primary.get(r["role"]) == r["label"]}
        for _, r in part.iterrows():
            table.loc[r["label"], setup] = cell(r[f"{metric}:mean"], r[f"{metric}:std"], int(r[f"{metric}:n"]),
                                                row_n=row_n[r["label"]])
        if any(paper_cells.values()):
            table[f"{setup} (paper)"] = DASH
            for label, c in paper_cells.items():
                if c:
                    table.loc[label, f"{setup} (paper)"] = f"{c[0]:.2f} ± {c[1]:.2f}"
    return table


def proxy_name(metrics: dict) -> str:
    """The ground truth a run's proxy harmonization was measured against (its `human_map` names
    ClickMe where it has ClickMe's maps, the data's own ground truth otherwise)."""
    name = metrics.get("human_map", "none")
    return metrics.get("data", {}).get("human_map", "none") if name == "ClickMe" else name


def reference_runs(runs: pd.DataFrame, prefix: str) -> list[pd.DataFrame]:
    """The reference maps' metrics as rows of runs labelled "reference: ...", in the columns of the
    method's own metrics (`prefix` + name), so that they aggregate over seeds as the methods do.
    The uniform and centred maps depend on the images alone, which the attribute step draws by the
    seed: one row per seed, not one per run."""
    source = "metrics.reference_maps."
    names = {c.removeprefix(prefix) for c in runs if c.startswith(prefix)}

    def rows(part: pd.DataFrame, of: str, label: str) -> list[pd.DataFrame]:
        cols = {f"{of}.{m}": prefix + m for m in names if f"{of}.{m}" in part}
        return [part[["setup", "seed", *cols]].rename(columns=cols).assign(label=label)] if cols else []

    per_seed = runs.drop_duplicates(["setup", "seed"])
    method = prefix.removeprefix("metrics.attribution.").rstrip(".")
    return ([f for name, label in REFERENCES.items() for f in rows(per_seed, source + name, label)]
            + [f for label, part in runs.groupby("label", sort=False)
               for f in rows(part, f"{source}same_area.{method}", SAME_AREA + label)])


def reference_order(order: list[str]) -> list[str]:
    """The methods, then the references: the image-blind maps, then each method's same-area blobs."""
    return [*order, *REFERENCES.values(), *(SAME_AREA + m for m in order)]


def primary(runs: pd.DataFrame, role: str) -> set[str]:
    """The labels that play `role` in the findings, one per setup."""
    return {m for _, part in runs.groupby("setup") for m in pick(part, role)["label"].unique()}


def setup_labels(runs: pd.DataFrame, paper: Paper) -> list[str]:
    """The paper's name of each run's dataset and architecture, with the setup's own name where
    two setups share them (the synthetic task at two sizes)."""
    label = {s: paper.setup_label(d, a) for s, d, a in zip(runs["setup"], runs["dataset"], runs["arch"])}
    shared = {v for v in label.values() if list(label.values()).count(v) > 1}
    return [f"{label[s]} ({s})" if label[s] in shared else label[s] for s in runs["setup"]]


def build_report(col: Collection, *, specs: dict[str, MethodSpec], order: list[str], setups: list[str], out: Path,
                 bench_dir: Path, params_text: str) -> Page:
    """`specs`: the resolved method of every run name of params.yaml; `order`: the methods' order;
    `setups`: the study's setups. Everything shown comes from the runs' outputs (the data each
    setup's runs measured, the images their attribution maps were drawn over)."""
    paper = Paper.load()
    w = Writer(out)
    warnings = run_warnings(col)
    provenance, data_warnings = data_provenance(col, setups)
    warnings += data_warnings
    bench = [{**json.loads(p.read_text()), "name": p.stem} for p in sorted(bench_dir.glob("*.json"))]
    bench_roles = {name: paper.role(spec.type, spec.params) for name, spec in specs.items()}
    if col.runs.empty:
        return Page("No finished run was found in the current matrix.",
                    findings(pd.DataFrame(columns=["setup"]), paper, bench, bench_roles, [], order), rule_text(),
                    warnings, [], provenance, params_text)

    runs = label_variants(col.runs)
    runs["role"] = [paper.role(t, col.configs[r].method.params) or "" for t, r in zip(runs["type"], runs["run"])]
    runs["setup"] = setup_labels(runs, paper)
    order = list(dict.fromkeys([*order, *runs["label"]]))
    order = [m for m in order if m in set(runs["label"])]
    by = ["setup", "label"]
    style = figures.Style(order, {label for role in HIGHLIGHT for label in primary(runs, role)})
    first_seed = runs.sort_values("seed").groupby(by, sort=False).head(1)
    first_seed = first_seed.iloc[np.argsort([order.index(m) for m in first_seed["label"]], kind="stable")]
    sections = []

    # accuracy (Table 3)
    splits = sorted(c.removeprefix("metrics.accuracy.") for c in runs if c.startswith("metrics.accuracy.test_"))
    s = Section("accuracy", "Accuracy (Table 3)", [
        "Top-1 test accuracy in %, mean ± std over seeds, with the paper's value beside ours where the paper has "
        "the same dataset and architecture. The second table gives every split in evaluation mode; gap = train − test. "
        "The last two columns are the training loop's last epoch: the accuracy of its fixed train subset in "
        "evaluation mode, and that minus val (the per-epoch gap of the figure below; the running accuracy of "
        "the training steps, on masked or dropped-out forwards, would bias it down for the dropping methods)."])
    s.tables.append(w.table("accuracy", "Test accuracy (%), methods x setups",
                            setup_columns(runs, order, "metrics.accuracy.test",
                                          lambda r, d, a: (paper.accuracy(r, d, a) or (None,))[0])))
    split_cols = {"test": "metrics.accuracy.test", **{k: f"metrics.accuracy.{k}" for k in splits},
                  "val": "metrics.accuracy.val", "train": "metrics.accuracy.train", "gap": "metrics.gap",
                  "last epoch: clean train": "metrics.accuracy.train_clean", "last epoch: clean gap": "clean_gap"}
    runs["clean_gap"] = runs.get("metrics.accuracy.train_clean", np.nan) - runs.get("metrics.accuracy.val", np.nan)
    s.tables += per_setup(w, aggregate(runs, list(split_cols.values()), by), order, split_cols, "accuracy_splits",
                          "Accuracy on every split (%)")
    sections.append(s)

    # cue reliance and attention over the epochs (Figures 1 and 3)
    for k in splits:
        runs[f"cue.{k}"] = runs["metrics.accuracy.test"] - runs[f"metrics.accuracy.{k}"]
    area = "metrics.attention_over_training."
    s = Section("cue", "Cue reliance and attention over the epochs (Figures 1 and 3)", [
        "Cue reliance: test accuracy minus the accuracy on each test_* split (in points; a split without the "
        "training cue, or with a conflicting one), computed per run and then averaged. Attention: the Grad-CAM "
        "area ratio of the fixed probe images (in % of the image) at the first and the last epoch, and its change."])
    cue_cols = {"test": "metrics.accuracy.test", **{f"test − {k}": f"cue.{k}" for k in splits},
                "area, first epoch": area + "first", "area, last epoch": area + "last", "area change": area + "change"}
    s.tables += per_setup(w, aggregate(runs, list(cue_cols.values()), by), order, cue_cols, "cue_reliance",
                          "Test accuracy, cue reliance and probe area ratio (%; differences in points)")
    history = pd.DataFrame([{"setup": r.setup, "label": r.label, "seed": r.seed, "epoch": e, "probe_area_ratio": a,
                             "gap": g}
                            for r in runs.itertuples()
                            for e, (a, g) in enumerate(zip(_history(r.run, "probe_area_ratio"), _history(r.run, "gap")),
                                                       start=1)])
    if not history.empty:
        s.figures.append(w.figure("attention_over_epochs", "Grad-CAM area ratio of the probe images and the "
                                  "generalization gap (accuracy on a fixed train subset in evaluation mode minus "
                                  "val accuracy) over the epochs: mean ± std over seeds (n in the legend); "
                                  "vanilla and SGDrop drawn thick.",
                                  lambda p: figures.attention_over_epochs(history, style, p)))
    for setup, part in first_seed.groupby("setup", sort=False):
        strips = {}
        for r in sorted(part.itertuples(), key=lambda r: (r.role not in HIGHLIGHT, order.index(r.label))):
            probe = Path(r.run) / "live" / "probe_cams.npz"
            if probe.exists():
                with np.load(probe) as d:
                    strips[r.label] = {"cams": d["cams"], "images": d["images"]}
        if strips:
            s.figures.append(w.figure(f"saliency_over_epochs_{slug(setup)}", f"{setup}: one probe image's Grad-CAM "
                                      "over the epochs, one row per method (first seed; the paper's Figure 1).",
                                      lambda p: figures.saliency_strip(strips, p), ".png"))
    sections.append(s)

    # attribution metrics and neuron coverage (Table 4)
    attr_cols = {"area ratio": GRADCAM + "area_ratio", "hit ratio": GRADCAM + "hit_whole",
                 "hit (largest component)": GRADCAM + "hit_largest",
                 "harmonization, proxy (Spearman)": GRADCAM + "spearman",
                 "harmonization, ClickMe (Spearman / ceiling)": "metrics.harmonization_clickme.gradcam.score",
                 "dice top-10%": GRADCAM + "dice_top"}
    cov_cols = {f"{layer}, {reading}": f"metrics.coverage.{key}_{suffix}"
                for layer, key in (("global", "global"), ("last conv", "last_conv"))
                for reading, suffix in (("per image", "per_image"), ("union", "unit"), ("scaled", "scaled"))}
    proxy = sorted({proxy_name(m.get("metrics", {})) for m in col.metrics.values()})
    table4 = paper.data["attribution"]
    s = Section("attribution", "Attribution metrics and neuron coverage (Table 4)", [
        "Grad-CAM at the encoder output, upsampled; ratios in [0, 1] as in the paper. The paper's Table 4 comes "
        "first. Hit ratio against the ground-truth boxes. Harmonization, proxy: the raw Spearman correlation with "
        f"the human-map proxy ({', '.join(proxy)}), not divided by ClickMe's human ceiling as the paper's score is "
        "(a proxy's Spearman over ClickMe's ceiling can exceed 1); harmonization, ClickMe: the paper's score, with "
        "ClickMe's human maps, where the setup has them.",
        "Reference rows: the same metrics, on the same images, of maps that know nothing of the image "
        "(pipeline_lib/metrics/reference_maps.py): a uniform map; a centred Gaussian whose area is the mean object "
        "size of the ground truth; and, under each method, random blobs with that method's Grad-CAM area image by "
        "image: what area alone gives. The findings read a hit ratio or harmonization gain against the gain of the "
        "same-area blobs.", COVERAGE_NOTE])
    t4 = pd.DataFrame({paper.label(role): v for role, v in table4["rows"].items()}).T
    t4 = t4.rename(columns=lambda c: c.replace("coverage_", "coverage, ").replace("_", " "))
    t4.index.name = "method"
    s.tables.append(w.table("attribution_paper", f"The paper: {table4['where']}", t4.map(lambda v: f"{v:.2f}")))
    with_references = pd.concat([runs, *reference_runs(runs, GRADCAM)], ignore_index=True)
    s.tables += per_setup(w, aggregate(with_references, list(attr_cols.values()), by), reference_order(order),
                          attr_cols, "attribution", "Grad-CAM attribution metrics and reference maps", scale=1.0,
                          digits=3)
    s.tables += per_setup(w, aggregate(runs, list(cov_cols.values()), by), order, cov_cols, "coverage",
                          "Neuron coverage, three readings", scale=1.0, digits=3)
    per_map = {name: f"metrics.attribution.{name}.area_ratio" for name in
               ("gradcam", "grad_x_act", "input_grad", "integrated_gradients", "lrp")}
    s.tables += per_setup(w, aggregate(runs, list(per_map.values()), by), order, per_map, "area_ratio_per_map",
                          "Area ratio per attribution method", scale=1.0, digits=3)
    for setup, part in first_seed.groupby("setup", sort=False):
        grid, keys, images = {}, None, None
        for r in part.itertuples():
            npz = Path(r.run) / "attributions.npz"
            if npz.exists():
                with np.load(npz) as d:
                    row = {str(k): i for i, k in enumerate(d["keys"])}
                    if keys is None:  # the images the attribute step kept, and the maps over them
                        images = d["images"]
                        keys = list(row)[:len(images)]
                    if all(k in row for k in keys):  # the same images for every method: same seed, same draw
                        grid[r.label] = d["gradcam"][[row[k] for k in keys]].astype(np.float32)
        if grid and keys:
            def draw(p, grid=grid, images=images):
                return overlay_grid(images, grid, p)
            s.figures.append(w.figure(f"methods_grid_{slug(setup)}", f"{setup}: test images x methods, Grad-CAM "
                                      "(first seed; the paper's Figure 4).", draw, ".png"))
    per_layer = pd.DataFrame([{"setup": r.setup, "label": r.label, "seed": r.seed, "layer": i + 1, "coverage": v}
                              for r in runs.itertuples()
                              for i, v in enumerate(col.metrics[r.run].get("metrics", {}).get("coverage", {})
                                                    .get("per_layer_per_image", []))])
    if not per_layer.empty:
        s.figures.append(w.figure("coverage_per_layer", "Neuron coverage per activation layer: the fraction of the "
                                  "layer's units active on an image, averaged over the images (the per-image reading "
                                  "of Table 4), mean ± std over seeds.",
                                  lambda p: figures.coverage_per_layer(per_layer, style, p)))
    sections.append(s)

    # transfer (Table 5)
    if "transfer.accuracy.test" in runs:
        target = runs["transfer.target"].dropna().iloc[0] if "transfer.target" in runs else "the target task"
        t5 = paper.data["transfer"]
        tr_cols = {"target test": "transfer.accuracy.test", "target val": "transfer.accuracy.val"}
        sections.append(Section("transfer", "Transfer learning (Table 5)", [
            f"Frozen source encoder, a new head trained on {target}; accuracy in %. The paper ({t5['where']}): "
            + ", ".join(f"{paper.label(k)} {v[0]:.2f} ± {v[1]:.2f}" for k, v in t5["rows"].items()) + "."],
            per_setup(w, aggregate(runs, list(tr_cols.values()), by), order, tr_cols, "transfer",
                      f"Transfer with a frozen encoder to {target} (%)")))

    rho_and_ema(w, runs, order, paper, style, sections)
    sections += bench_section(w, bench_dir)

    # occlusion robustness
    occ_cols = {"AUC relevant": "metrics.occlusion.relevant.auc", "AUC random": "metrics.occlusion.random.auc"}
    s = Section("occlusion", "Occlusion robustness", [
        "Accuracy as the most relevant patches (by the model's own Grad-CAM) are replaced by the mean, against "
        "random patches; area under the accuracy curve in %."],
        per_setup(w, aggregate(runs, list(occ_cols.values()), by), order, occ_cols, "occlusion_auc",
                  "Occlusion robustness, area under the accuracy curve (%)"))
    curves = pd.DataFrame([{"setup": r.setup, "label": r.label, "seed": r.seed, "fraction": f,
                            "relevant": o["relevant"]["accuracy"][i], "random": o["random"]["accuracy"][i]}
                           for r in runs.itertuples()
                           if (o := col.metrics[r.run].get("metrics", {}).get("occlusion"))
                           for i, f in enumerate(o["fractions"])])
    if not curves.empty:
        s.figures.append(w.figure("occlusion_curves", "Test accuracy as patches are occluded, mean ± std over seeds.",
                                  lambda p: figures.occlusion_curves(curves, style, p)))
    sections.append(s)

    leak = "metrics.mask_leakage."
    leak_cols = {"unmasked": leak + "unmasked", "masked, true label": leak + "masked_true",
                 "follows a wrong-label mask": leak + "follows_wrong", "its chance": leak + "wrong_chance",
                 "content-free: follows the mask's label": leak + "content_free.follows_label",
                 "its chance (1 / classes)": leak + "content_free.chance"}
    if leak + "unmasked" in runs:
        sections.append(Section("leakage", "Label leakage through the training mask", [
            "Test accuracy of each method's model with nothing dropped, with its training-time mask for the true "
            "label, and how often it predicts a random wrong label when the mask is made for that label, beside its "
            "chance: how often the unmasked model predicts that label (a collapsed model's chance is far above one in "
            "the number of classes); far above chance: the model reads the label from the mask, not the image. "
            "Methods that do not transform the latent map are not listed.",
            "Content-free probe: the head sees the encoder's output for the mean image, masked for a label drawn at "
            "random, so nothing but the mask varies; a head that ignores the mask follows that label one time in "
            "the number of classes, and the number of trials it follows is then Binomial exactly, whatever the model. "
            "p: the one-sided exact binomial p-value of each seed, in seed order. Reads the mask: the run's verdict, "
            f"at family-wise level {LEAK_ALPHA:g} over the probe and the two paired tests "
            "(pipeline_lib/metrics/leakage.py), counted over the seeds."],
            leakage_tables(w, runs.dropna(subset=[leak + "unmasked"]), order, leak_cols)))

    anchors = [a for s in sections for a in (s.id, *(f.id for f in s.figures))]
    setups = list(dict.fromkeys(runs["setup"]))
    seeds = sorted(set(runs["seed"]))
    summary = (f"{len(runs)} runs: {len(order)} method variants x {len(setups)} setup{'s' * (len(setups) > 1)} "
               f"({', '.join(setups)}) x seeds {', '.join(map(str, seeds))}.")
    ns = sorted({n for n in runs.groupby(by).size() if n > 1}) or [2]  # the seed counts of this page
    return Page(summary, findings(runs, paper, bench, bench_roles, anchors, order), rule_text(tuple(ns)), warnings,
                sections, provenance, params_text)


def leakage_tables(w: Writer, leak: pd.DataFrame, order: list[str], columns: dict[str, str]) -> list[Table]:
    """Per setup, the leakage readings (mean ± std over seeds) and, per seed, the content-free
    probe's p-value and the run's verdict: a p-value's mean over seeds means nothing."""
    p_value, verdict = "metrics.mask_leakage.content_free.p_value", "metrics.mask_leakage.reads_the_mask"
    tables = []
    for setup, part in leak.groupby("setup", sort=False):
        agg = aggregate(part, list(columns.values()), ["label"])
        present = {k: v for k, v in columns.items() if f"{v}:mean" in agg and agg[f"{v}:n"].sum()}
        table = metric_table(agg, [m for m in order if m in set(part["label"])], present)
        for label, runs in part.sort_values("seed").groupby("label"):
            if p_value in runs and runs[p_value].notna().any():
                table.loc[label, "content-free p"] = ", ".join(f"{v:.1e}" for v in runs[p_value].dropna())
            if verdict in runs and runs[verdict].notna().any():
                said = runs[verdict].dropna().astype(bool)
                table.loc[label, "reads the mask"] = f"{int(said.sum())} of {len(said)} seeds"
        tables.append(w.table(f"mask_leakage_{slug(setup)}", f"Label leakage (%), {setup}", table.fillna(DASH)))
    return tables


def rho_and_ema(w: Writer, runs: pd.DataFrame, order: list[str], paper: Paper, style, sections: list[Section]) -> None:
    """Table 7 (the rho values and the curriculum, with a curve from two rho values on) and Table 8."""
    sg = runs[runs["role"].isin(["sgdrop", "sgdrop_curriculum"])].copy()
    if not sg.empty:
        sg["label"] = [f"linear {r['p.rho_start']}→{r['p.rho_end']}" if r["role"] == "sgdrop_curriculum"
                       else f"rho = {r['p.rho']}" for _, r in sg.iterrows()]
        cols = {"test accuracy (%)": "metrics.accuracy.test",
                "area ratio (%)": "metrics.attribution.gradcam.area_ratio"}
        rows = sorted(set(sg["label"]), key=lambda m: (m.startswith("linear"), m))
        s = Section("rho", "rho and the curriculum (Table 7)", [
            "SGDrop with a fixed rho (one row per value) and with rho rising linearly over the epochs. "
            + paper.data["text"]["rho"] + " Add variants with other rho values under methods: in params.yaml to "
            "extend the sweep; the curve appears from two values on."],
            per_setup(w, aggregate(sg, list(cols.values()), ["setup", "label"]), rows, cols, "rho", "SGDrop rho"))
        fixed = sg[sg["role"] == "sgdrop"]
        fixed = fixed.assign(rho=fixed["p.rho"], accuracy=fixed["metrics.accuracy.test"], label="SGDrop, fixed rho")
        if fixed.groupby("setup")["rho"].nunique().max() >= 2:
            s.figures.append(w.figure("accuracy_vs_rho", "Test accuracy against rho, mean ± std over seeds.",
                                      lambda p: figures.accuracy_vs_rho(fixed, figures.Style(["SGDrop, fixed rho"],
                                                                                             set()), p)))
        sections.append(s)
    ema = runs[runs["label"].isin([m for role in ("vanilla", "sgdrop_no_ema", "sgdrop") for m in primary(runs, role)])]
    if {"sgdrop", "sgdrop_no_ema"} <= set(ema["role"]):
        sections.append(Section("ema", "EMA ablation (Table 8)", [
            "SGDrop's masks from the EMA copy of the model against masks from the online model, with vanilla as the "
            "reference; test accuracy in %, the paper's Table 8 beside ours where it has the setup."],
            [w.table("ema_ablation", "Test accuracy (%) with and without the EMA",
                     setup_columns(ema, order, "metrics.accuracy.test", paper.ema))]))


def bench_section(w: Writer, bench_dir: Path) -> list[Section]:
    tables = []
    for path in sorted(bench_dir.glob("*.json")):
        data = json.loads(path.read_text())
        t = pd.DataFrame(data["rows"]).set_index("method")[["ms_per_step", "images_per_s", "ratio_to_vanilla"]]
        t = t.round(2).rename(columns={"ms_per_step": "ms / step", "images_per_s": "images / s",
                                       "ratio_to_vanilla": "x vanilla"})
        tables.append(w.table(f"overhead_{path.stem}", f"Per-step cost, {path.stem} ({data['device_name']})", t))
    if not tables:
        return []
    return [Section("overhead", "Per-step cost against vanilla (Table 9)", [
        "Median ms per training step on one fixed batch, all methods in one process, rounds interleaved."], tables)]


def run_warnings(col: Collection) -> list[str]:
    """Warnings the runs wrote into train.json, and runs left out of the report."""
    out = [f"{run}: {text}" for run, found in col.metrics.items()
           for text in found.get("train", {}).get("warnings", [])]
    if col.stale:
        out += [f"Left out: {reason}" for reason in col.stale]
    if col.missing:
        out.append("Runs of the matrix not finished yet: " + ", ".join(col.missing))
    return out


def data_provenance(col: Collection, setups: list[str]) -> tuple[list[str], list[str]]:
    """Lines on each setup's data (as its runs' metrics.json record it) and the software, and a
    warning when images were skipped as unreadable."""
    lines, warnings = [], []
    data = {}
    for run, found in col.metrics.items():
        data.setdefault(col.configs[run].setup, found.get("metrics", {}).get("data"))
    for setup in setups:
        d = data.get(setup)
        if not d:
            lines.append(f"Setup {setup}: no finished run yet.")
            continue
        converted = ", ".join(f"{n} {MODES.get(mode, mode)}" for mode, n in d["converted_to_rgb"].items())
        lines.append(f"Setup {setup}, dataset {d['dataset']}: " + ", ".join(f"{k} {v}" for k, v in d["counts"].items())
                     + f" images; human-map proxy: {d['human_map']}. Unreadable images skipped while sharding: "
                     f"{d['bad_images']} of {d['images_read']}; converted to RGB: {converted or 'none'}.")
        if d["bad_images"]:
            warnings.append(f"{d['bad_images']} unreadable images were skipped while sharding {d['dataset']} "
                            f"(setup {setup}).")
    versions = {p: importlib.metadata.version(p) for p in VERSIONS}
    versions["python"] = platform.python_version()
    lines.append("Software: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    return lines, warnings


def load_params_text(path: Path = Path("params.yaml")) -> str:
    return yaml.safe_dump(load_yaml(path.read_text()), sort_keys=False)
