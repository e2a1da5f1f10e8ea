"""Build the study's report from the runs: tables, figures, `index.html` and `README.md`.

Tables (Markdown, CSV, LaTeX): accuracy (paper Table 3), attribution metrics and neuron
coverage (Table 4), transfer (Table 5), rho sweep (Table 7), EMA ablation (Table 8), per-step
overhead (Table 9), occlusion-robustness AUC. Figures (PNG, SVG): attention over epochs beside
the gap (Figure 3), one image's saliency across epochs (Figure 1), images x methods (Figure 4),
occlusion curves, accuracy against rho, neuron coverage per layer.
"""
from __future__ import annotations

import csv
import html
import importlib.metadata
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipeline_lib.data.loader import load_split
from pipeline_lib.io import atomic_path
from pipeline_lib.reporting import figures
from pipeline_lib.reporting.collect import Collection, aggregate, label_variants
from pipeline_lib.reporting.tables import metric_table, to_markdown, write_table

VERSIONS = ["torch", "torchvision", "dvc", "dvclive", "webdataset", "captum", "zennit", "numpy", "pandas"]
COVERAGE_NOTE = "Neuron coverage is at the unit level (every C x H x W unit), threshold 0."


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def _history(run: str, name: str) -> list[float]:
    path = Path(run) / "live" / "plots" / "metrics" / f"{name}.tsv"
    if not path.exists():
        return []
    with open(path) as f:
        return [float(r[name]) for r in csv.DictReader(f, delimiter="\t")]


def tables_per_arch(agg: pd.DataFrame, rows: list[str] | None, columns: dict[str, str], stem: Path,
                    caption: str) -> list[tuple[str, pd.DataFrame]]:
    """One table per (dataset, architecture): methods of different models never share a row.
    `rows`: the method labels in order; None: the labels present, as they come."""
    out = []
    for (dataset, arch), part in agg.groupby(["dataset", "arch"]):
        t = metric_table(part, list(part["label"]) if rows is None else rows, columns)
        write_table(t, stem.with_name(f"{stem.name}_{dataset}_{arch}"), f"{caption}, {dataset}, {arch}")
        out.append((f"{dataset} / {arch}", t))
    return out


def build_report(col: Collection, *, study_methods: list[str], out: Path, shard_dir: Path, bench_dir: Path,
                 params_text: str, grid_images: int = 6) -> list[Section]:
    tables_dir, fig_dir = out / "tables", out / "figures"
    sections: list[Section] = []
    if col.runs.empty:
        return [Section("No runs", "No finished run was found in the current matrix.")]
    runs = label_variants(col.runs)
    labels = list(dict.fromkeys(study_methods + list(runs["label"])))
    by = ["dataset", "arch", "label"]

    acc_cols = {"test": "metrics.accuracy.test", "val": "metrics.accuracy.val", "train": "metrics.accuracy.train",
                "gap": "metrics.gap", "test_shift": "metrics.accuracy.test_shift"}
    acc = aggregate(runs, list(acc_cols.values()), by)
    sections.append(Section("Accuracy (Table 3)", "Top-1 accuracy in %, mean ± std over seeds; gap = train − test; "
                            "test_shift (synthetic) has no class detail. — marks a method not in the current matrix.",
                            tables_per_arch(acc, labels, {k: v for k, v in acc_cols.items() if f"{v}:mean" in acc},
                                            tables_dir / "accuracy", "Accuracy (%)")))

    attr_cols = {"area ratio": "metrics.attribution.gradcam.area_ratio",
                 "hit (whole)": "metrics.attribution.gradcam.hit_whole",
                 "hit (largest)": "metrics.attribution.gradcam.hit_largest",
                 "harmonization": "metrics.attribution.gradcam.harmonization",
                 "dice top-10%": "metrics.attribution.gradcam.dice_top",
                 "coverage global": "metrics.coverage.global_unit",
                 "coverage last conv": "metrics.coverage.last_conv_unit"}
    attr = aggregate(runs, list(attr_cols.values()), by)
    proxy = sorted({m.get("metrics", {}).get("human_map", "none") for m in col.metrics.values()})
    s = Section("Attribution metrics and neuron coverage (Table 4)",
                f"Grad-CAM at the encoder output, upsampled; in %. Human-map proxy for harmonization: "
                f"{', '.join(proxy)}. {COVERAGE_NOTE}")
    s.tables += tables_per_arch(attr, labels, attr_cols, tables_dir / "attribution", "Attribution metrics (%)")
    per_map = {}
    for name in ("gradcam", "grad_x_act", "input_grad", "integrated_gradients", "lrp"):
        col_name = f"metrics.attribution.{name}.area_ratio"
        if col_name in runs:
            per_map[name] = col_name
    if per_map:
        s.tables += [(f"area ratio per attribution method, {name}", t) for name, t in tables_per_arch(
            aggregate(runs, list(per_map.values()), by), labels, per_map, tables_dir / "area_ratio_per_map",
            "Area ratio (%) per attribution method")]
    sections.append(s)

    tr_cols = {"target test": "transfer.accuracy.test", "target val": "transfer.accuracy.val"}
    if "transfer.accuracy.test" in runs:
        target = runs.get("transfer.target", pd.Series(["?"])).dropna().iloc[0]
        sections.append(Section("Transfer learning (Table 5)", f"Frozen source encoder, new head trained on {target}.",
                                tables_per_arch(aggregate(runs, list(tr_cols.values()), by), labels, tr_cols,
                                                tables_dir / "transfer", f"Transfer with a frozen encoder to {target} (%)")))

    sg = runs[runs["type"] == "sgdrop"].copy()
    if not sg.empty:
        sg["variant"] = sg["p.schedule"] + sg["p.ema"].map({True: "", False: ", no EMA"})
        sg["rho_label"] = sg.apply(lambda r: f"linear {r['p.rho_start']}→{r['p.rho_end']}"
                                   if r["p.schedule"] == "linear" else f"rho = {r['p.rho']}", axis=1)
        sg_cols = {"test acc": "metrics.accuracy.test", "area ratio": "metrics.attribution.gradcam.area_ratio"}
        rho_agg = aggregate(sg, list(sg_cols.values()), ["dataset", "arch", "rho_label", "p.ema"])
        rho_agg = rho_agg[rho_agg["p.ema"]].assign(label=lambda d: d["rho_label"])
        ema_agg = aggregate(sg[sg["p.schedule"] == "constant"], list(sg_cols.values()), ["dataset", "arch", "p.ema"]
                            ).assign(label=lambda d: d["p.ema"].map({True: "EMA", False: "online model"}))
        tables = [(f"rho sweep, {name}", t) for name, t in tables_per_arch(
            rho_agg, None, sg_cols, tables_dir / "rho_sweep", "SGDrop rho sweep (%)")]
        tables += [(f"EMA ablation, {name}", t) for name, t in tables_per_arch(
            ema_agg, ["EMA", "online model"], sg_cols, tables_dir / "ema_ablation", "SGDrop with and without EMA (%)")]
        sections.append(Section("rho sweep (Table 7) and EMA ablation (Table 8)",
                                "Runs of type sgdrop in the current matrix; add variants with other rho under "
                                "`methods:` in params.yaml to extend the sweep.", tables,
                                figures.accuracy_vs_rho(sg.assign(rho=sg["p.rho"], accuracy=sg["metrics.accuracy.test"])
                                                        [sg["p.schedule"] == "constant"], fig_dir / "accuracy_vs_rho")))

    bench_tables = []
    for path in sorted(bench_dir.glob("*.json")):
        data = json.loads(path.read_text())
        t = pd.DataFrame(data["rows"]).set_index("method")[["ms_per_step", "images_per_s", "ratio_to_vanilla"]].round(2)
        t.index.name = "method"
        write_table(t, tables_dir / f"overhead_{path.stem}", f"Per-step cost, {path.stem} ({data['device_name']})")
        bench_tables.append((f"{path.stem} on {data['device_name']}", t))
    if bench_tables:
        sections.append(Section("Per-step overhead against vanilla (Table 9)",
                                "Median ms per training step on one fixed batch, all methods in one process.", bench_tables))

    occ_cols = {"AUC relevant": "metrics.occlusion.relevant.auc", "AUC random": "metrics.occlusion.random.auc"}
    occ_tables = tables_per_arch(aggregate(runs, list(occ_cols.values()), by), labels, occ_cols,
                                 tables_dir / "occlusion_auc", "Occlusion robustness, area under the accuracy curve (%)")
    # figures draw one line per method: with several models in the matrix, per model too
    several = runs[["dataset", "arch"]].drop_duplicates().shape[0] > 1
    runs["figure_label"] = runs["label"] + (" / " + runs["arch"] if several else "")
    first_seed = runs.sort_values("seed").groupby("figure_label").head(1)
    curves = {r.figure_label: col.metrics[r.run]["metrics"]["occlusion"] for r in first_seed.itertuples()
              if "metrics" in col.metrics[r.run]}
    sections.append(Section("Occlusion robustness", "Accuracy as the most relevant patches (by the model's own "
                            "Grad-CAM) are replaced by the mean; random patches as reference.",
                            occ_tables, figures.occlusion_curves(curves, fig_dir / "occlusion_curves") if curves else []))

    leak_columns = {"unmasked": "metrics.mask_leakage.unmasked", "masked, true label": "metrics.mask_leakage.masked_true",
                    "follows a wrong-label mask": "metrics.mask_leakage.follows_wrong"}
    if all(c in runs for c in leak_columns.values()):
        leak = runs.dropna(subset=list(leak_columns.values()))
        s = Section("Label leakage through the training mask",
                    "Test accuracy of each method's model with nothing dropped, with its training-time mask for the "
                    "true label, and how often it predicts a random wrong label when the mask is made for that label "
                    "(chance: about one in the number of classes; near 100: the model reads the label from the mask, "
                    "not the image). Methods that do not transform the latent map are not listed.")
        s.tables = tables_per_arch(aggregate(leak, list(leak_columns.values()), by),
                                   [m for m in labels if m in set(leak["label"])], leak_columns,
                                   tables_dir / "mask_leakage", "Label leakage (%)")
        sections.append(s)

    hist_rows = []
    for r in runs.itertuples():
        for e, (area, gap) in enumerate(zip(_history(r.run, "probe_area_ratio"), _history(r.run, "gap")), start=1):
            hist_rows.append({"method": r.figure_label, "seed": r.seed, "epoch": e, "probe_area_ratio": area, "gap": gap})
    figs = []
    if hist_rows:
        figs += figures.attention_over_epochs(pd.DataFrame(hist_rows), fig_dir / "attention_over_epochs")
    strips = {}
    for r in first_seed.itertuples():
        probe = Path(r.run) / "live" / "probe_cams.npz"
        if probe.exists() and r.label in ("vanilla", "sgdrop", "dropout", "sgdrop_curriculum"):
            with np.load(probe) as d:
                strips[r.figure_label] = {"cams": d["cams"], "images": d["images"]}
    if strips:
        figs += figures.saliency_strip(strips, fig_dir / "saliency_over_epochs")
    grid = {}
    keys = None
    for r in first_seed.itertuples():
        npz = Path(r.run) / "attributions.npz"
        if npz.exists():
            with np.load(npz) as d:
                grid[r.figure_label] = d["gradcam"][:grid_images].astype(np.float32)
                keys = keys or [str(k) for k in d["keys"][:grid_images]]
    if grid and keys:
        data = load_split(shard_dir, "test", next(iter(col.configs.values())).loader.image_size, limit=grid_images)
        from pipeline_lib.reporting.overlay import overlay_grid
        for suffix in (".png", ".svg"):
            overlay_grid(data.images.permute(0, 2, 3, 1).numpy(), grid, (fig_dir / "methods_grid").with_suffix(suffix))
        figs.append(fig_dir / "methods_grid.png")
    per_layer = {r.figure_label: col.metrics[r.run]["metrics"]["coverage"]["per_layer_unit"] for r in first_seed.itertuples()
                 if "metrics" in col.metrics[r.run]}
    if per_layer:
        figs += figures.coverage_per_layer(per_layer, fig_dir / "coverage_per_layer")
    sections.append(Section("Figures", "Attention over epochs (Figure 3), one probe image's Grad-CAM over epochs "
                            "(Figure 1), test images x methods (Figure 4), neuron coverage per layer.",
                            figures=[f for f in figs if f.suffix == ".png"]))

    notes = []
    if col.stale:
        notes.append("Left out, made with other params (rerun `dvc repro`): " + ", ".join(col.stale))
    if col.missing:
        notes.append("Runs of the matrix not finished yet: " + ", ".join(col.missing))
    versions = {p: importlib.metadata.version(p) for p in VERSIONS}
    versions["python"] = platform.python_version()
    manifest = json.loads((shard_dir / "manifest.json").read_text())
    data_text = (f"Dataset **{manifest['dataset']}**: " + ", ".join(f"{k} {v['count']}" for k, v in manifest["splits"].items())
                 + f" images; human-map proxy: {manifest['human_map']}.")
    sections.append(Section("Provenance", "\n\n".join([data_text, *notes, "Software: " + ", ".join(
        f"{k} {v}" for k, v in versions.items()), "params.yaml:\n\n```yaml\n" + params_text + "```"])))
    return sections


def write_pages(sections: list[Section], out: Path) -> None:
    md = ["# overfocus report\n", "Regenerated by `dvc repro` from the runs of the current matrix.\n"]
    body = []
    for s in sections:
        md.append(f"## {s.title}\n\n{s.text}\n")
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body.append(_html_text(s.text))
        for title, t in s.tables:
            md.append(f"**{title}**\n\n{to_markdown(t)}")
            body.append(f"<h3>{html.escape(title)}</h3>" + t.to_html(classes="table", border=0))
        for f in s.figures:
            rel = f.relative_to(out).as_posix()
            md.append(f"![{f.stem}]({rel})\n")
            body.append(f'<figure><img src="{html.escape(rel)}" alt="{html.escape(f.stem)}">'
                        f"<figcaption>{html.escape(f.stem.replace('_', ' '))}</figcaption></figure>")
    page = _PAGE.replace("{{BODY}}", "\n".join(body))
    for name, text in (("README.md", "\n".join(md)), ("index.html", page)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)


def _html_text(text: str) -> str:
    parts = text.split("```")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<pre>{html.escape(part.removeprefix('yaml'))}</pre>")
        else:
            out += [f"<p>{html.escape(p).replace('**', '')}</p>" for p in part.split("\n\n") if p.strip()]
    return "\n".join(out)


# The inline script records, once the page has loaded, how many images loaded or broke, so that a
# headless browser can check the page (see tests/test_report_browser.py).
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>overfocus report</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%}
pre{background:#f6f6f6;padding:1em;font-size:12px;overflow:auto}
</style></head><body>
<h1>overfocus report</h1>
{{BODY}}
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-broken-images", String(broken.length));
});
</script>
</body></html>
"""


def load_params_text(path: Path = Path("params.yaml")) -> str:
    return yaml.safe_dump(yaml.safe_load(path.read_text()), sort_keys=False)
