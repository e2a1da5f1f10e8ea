"""One-off (issue 28): each result folder's summary.csv, computed from the raw per-run files that
this commit still tracks, before they leave git. Run once from the repository root:

    python reports/results/extract_summaries.py

One row per run (setup, method, seed) with the numbers the folder's README quotes, as the files
hold them (accuracies and ratios as fractions, not %); a column no run of a folder has is left
out. Where a folder has no per-run files (bench_gpu: the JSON was lost, its README holds the
command's printed table; loader: the script's printed table), the rows are parsed from the table
its README holds. The next commit removes the raw files and this script; each result.yaml names
this commit as the summary's source.
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tsv(path: Path) -> list[float]:
    if not path.exists():
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [float(r[path.stem]) for r in rows]


def read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def get(d: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def series_dir(run: Path) -> Path:
    for sub in ("live/plots/metrics", "plots/metrics", "metrics"):
        if (run / sub).is_dir():
            return run / sub
    return run


METRICS = {  # column: key in metrics.json
    "test_acc": "accuracy.test", "val_acc": "accuracy.val", "train_acc": "accuracy.train",
    "test_nocue_acc": "accuracy.test_nocue", "test_conflict_acc": "accuracy.test_conflict",
    "test_shift_acc": "accuracy.test_shift", "gap": "gap",
    "gradcam_area": "attribution.gradcam.area_ratio", "gradcam_hit_whole": "attribution.gradcam.hit_whole",
    "gradcam_hit_largest": "attribution.gradcam.hit_largest",
    "gradcam_harmonization": "attribution.gradcam.harmonization", "boxed_images": "attribution.gradcam.hit_n",
    "coverage_global_unit": "coverage.global_unit", "coverage_last_conv_unit": "coverage.last_conv_unit",
    "coverage_encoder_output_unit": "coverage.encoder_output_unit",
    "coverage_global_scaled": "coverage.global_scaled", "coverage_last_conv_scaled": "coverage.last_conv_scaled",
    "coverage_encoder_output_scaled": "coverage.encoder_output_scaled",
    "probe_first": "attention_over_training.first", "probe_last": "attention_over_training.last",
    "occlusion_auc_relevant": "occlusion.relevant.auc", "occlusion_auc_random": "occlusion.random.auc",
    "leak_unmasked": "mask_leakage.unmasked", "leak_masked_true": "mask_leakage.masked_true",
    "leak_follows_wrong": "mask_leakage.follows_wrong", "leak_wrong_chance": "mask_leakage.wrong_chance",
}


def run_row(run: Path, **ident) -> dict:
    """One run's numbers: metrics.json, train.json, transfer.json, wall_s and the per-epoch series."""
    metrics, train, transfer = read(run / "metrics.json"), read(run / "train.json"), read(run / "transfer.json")
    series = series_dir(run)
    row = dict(ident)
    val = tsv(series / "val_acc.tsv")
    row["epochs"] = len(val) or train.get("epoch") or len(get(metrics, "attention_over_training.probe_area_ratio") or [])
    row.update({col: get(metrics, key) for col, key in METRICS.items()})
    row["last_val_acc"] = train.get("val_acc", val[-1] if val else None)
    row["last_train_step_acc"] = train.get("train_acc")  # the running accuracy of the epoch's training steps
    gaps = tsv(series / "gap.tsv")
    row["first_epoch_gap_over_0.2"] = next((i + 1 for i, g in enumerate(gaps) if g > 0.2), None) if gaps else None
    probe = tsv(series / "probe_area_ratio.tsv") or tsv(run / "probe_area_ratio.tsv")
    if row["probe_first"] is None and probe:
        row["probe_first"], row["probe_last"] = probe[0], probe[-1]
    row["dropped_fraction"] = train.get("dropped_fraction")
    row["transfer_test_acc"] = get(transfer, "accuracy.test")
    row["train_wall_s"] = float((run / "wall_s").read_text()) if (run / "wall_s").exists() else None
    row["warnings"] = len(train["warnings"]) if "warnings" in train else None
    return row


def runs_under(root: Path, setup_of=lambda parts: "/".join(parts)) -> list[dict]:
    """Every `<...>/<method>/seed<k>` folder under root holding a run's files."""
    rows = []
    for run in sorted(p for p in root.rglob("seed*") if p.is_dir() and re.fullmatch(r"seed\d+", p.name)):
        parts = run.relative_to(root).parts
        rows.append(run_row(run, setup=setup_of(parts[:-2]), method=parts[-2], seed=int(run.name[4:])))
    return rows


def write(folder: str, rows: list[dict], name: str = "summary.csv") -> None:
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if any(r.get(c) is not None for r in rows)]
    out = HERE / folder / name
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: ("" if r.get(c) is None else r[c]) for c in columns})
    print(f"{out.relative_to(HERE)}: {len(rows)} rows, {len(columns)} columns")


def epoch_rows(run: Path, names: list[str], **ident) -> list[dict]:
    series = series_dir(run)
    data = {n: tsv(series / f"{n}.tsv") for n in names}
    return [{**ident, "epoch": e + 1, **{n: v[e] if e < len(v) else None for n, v in data.items()}}
            for e in range(max(len(v) for v in data.values()))]


def markdown_table(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(header_start))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return [rows[0], *rows[2:]]


def main() -> None:
    # The central claim at 64 px: runs/<method>/seed<k>
    write("central-claim-cpu", runs_under(HERE / "central-claim-cpu" / "runs",
                                          lambda parts: "imagenette64-vgg16"))
    # 128 px: runs/<method>/seed0, stopped before their end (no metrics.json): the final epoch and each epoch
    screen = HERE / "central-claim-cpu" / "128px" / "runs"
    write("central-claim-cpu-128px", runs_under(screen, lambda parts: "imagenette128-vgg16"))
    leak = ["leak_unmasked", "leak_masked_true", "leak_follows_wrong", "leak_wrong_chance"]
    write("central-claim-cpu-128px",
          [r for m in ("vanilla", "sgdrop") for r in epoch_rows(screen / m / "seed0", ["val_acc", "gap", "train_acc", *leak],
                                                               setup="imagenette128-vgg16", method=m, seed=0)],
          "epochs.csv")

    # The VGG16 collapse grid: metrics/<init>-<method>.json (collect.py's output)
    cells, epochs = [], []
    for f in sorted((HERE / "vgg16-collapse" / "metrics").glob("*.json")):
        c = read(f)
        s = c["series"]
        last = lambda k: s[k][-1] if s.get(k) else None
        setup = f"imagenette64-vgg16-{c['init']}-init"
        cells.append({"setup": setup, "method": c["method"], "seed": 0, "epochs": c["epochs_done"],
                      "last_train_step_acc": last("train_acc"), "last_val_acc": last("val_acc"),
                      "test_acc": c.get("test_acc"),
                      **{f"val_{k}": last(k) for k in leak},
                      **{f"test_{k}": get(c, f"test_leakage.{k.removeprefix('leak_')}") for k in leak},
                      "warnings": len(c["warnings"]) if c["warnings"] is not None else None})
        for e in range(len(s["val_acc"])):
            epochs.append({"setup": setup, "method": c["method"], "seed": 0, "epoch": e + 1,
                           **{k: s[k][e] if k in s else None for k in ["train_acc", "val_acc", *leak]}})
    write("vgg16-collapse", cells)
    write("vgg16-collapse", epochs, "epochs.csv")

    # The H100 runs: runs/imagenette/<arch>/<method>/seed0
    write("imagenette224-gpu", runs_under(HERE / "imagenette224-gpu" / "runs",
                                          lambda parts: f"imagenette224-{parts[-1]}"))
    # VGG11 under both inits: <old|new>-init/runs/imagenette/vgg11/<method>/seed0
    rows = []
    for side, init in (("old-init", "pytorch"), ("new-init", "torchvision")):
        rows += runs_under(HERE / "vgg11-init" / side / "runs", lambda parts, i=init: f"imagenette64-vgg11-{i}-init")
    write("vgg11-init", rows)

    write("cifar10-cifarnet", runs_under(HERE / "cifar10-cifarnet" / "runs", lambda parts: "cifar10-cifarnet"))
    write("imagenette64-tinyvgg", runs_under(HERE / "imagenette64-tinyvgg" / "runs",
                                             lambda parts: "imagenette64-tinyvgg"))
    rows = []
    for side in ("always", "never"):
        rows += runs_under(HERE / f"synthetic-detail-{side}" / "runs", lambda parts, s=side: f"detail-{s}")
    write("synthetic-detail", rows)
    write("embedded-benchmark", runs_under(HERE / "embedded-benchmark" / "runs", lambda parts: "default"))

    # dvc-queue: the resnet20 runs of the with-resnet20 experiment, and what each experiment ran
    write("dvc-queue", runs_under(HERE / "dvc-queue" / "with-resnet20" / "runs",
                                  lambda parts: f"synthetic-{parts[-1]}"))
    stages = []
    for log in sorted((HERE / "dvc-queue" / "logs").glob("stages_*.txt")):
        lines = log.read_text().splitlines()
        ran = sum(l.startswith("Running stage '") for l in lines)
        skipped = sum(l.startswith("Stage '") and "didn't change, skipping" in l for l in lines)
        stages.append({"experiment": log.stem.removeprefix("stages_"), "stages_ran": ran, "stages_skipped": skipped,
                       "stages": ran + skipped})
    write("dvc-queue", stages, "stages.csv")

    # Excitation Dropout's rescalings: runs/<sample|neuron>/seed<k> (training only), beside vanilla's
    # runs of the embedded benchmark (the README's vanilla row)
    rows = [run_row(HERE / "embedded-benchmark" / "runs" / "synthetic" / "tinyvgg" / "vanilla" / f"seed{k}",
                    setup="default", method="vanilla", seed=k) for k in range(3)]
    for mode, name in (("sample", "excitation_dropout"), ("neuron", "excitation_dropout_neuron")):
        for k in range(3):
            rows.append(run_row(HERE / "embedded-benchmark" / "excitation-rescale" / "runs" / mode / f"seed{k}",
                                setup="default", method=name, seed=k))
    keep = ["setup", "method", "seed", "epochs", "last_val_acc", "last_train_step_acc", "dropped_fraction"]
    write("excitation-rescale", [{k: r[k] for k in keep} for r in rows])

    # CPU overhead: <arch>_32px_b64_cpu.json
    rows = []
    for f in sorted((HERE / "bench_cpu").glob("*.json")):
        for r in read(f)["rows"]:
            rows.append({k: r[k] for k in ("arch", "image_size", "batch_size", "device", "method", "steps",
                                            "ms_per_step", "images_per_s", "ratio_to_vanilla")})
    write("bench_cpu", rows)

    # GPU overhead: the command's printed table, as bench_gpu/README.md holds it (the JSON was lost)
    table = markdown_table((HERE / "bench_gpu" / "README.md").read_text(), "| method | vgg16 ms")
    rows = []
    for cells in table[1:]:
        for i, arch in enumerate(("vgg16", "resnet50", "convnext_tiny")):
            rows.append({"arch": arch, "image_size": 224, "batch_size": 64, "device": "NVIDIA H100 80GB HBM3",
                         "method": cells[0].removesuffix(" (EMA)"), "steps": 50, "ms_per_step": cells[1 + 2 * i],
                         "ratio_to_vanilla": cells[2 + 2 * i]})
    write("bench_gpu", rows)

    # Loader throughput: the script's printed table, as loader/README.md holds it
    table = markdown_table((HERE / "loader" / "README.md").read_text(), "| size |")
    write("loader", [{"image_size": c[0], "webdataset_images_per_s": c[1], "imagefolder_images_per_s": c[2],
                      "ratio": c[3]} for c in table[1:]])

    # The step without host syncs: runs.jsonl.txt, one line per timed run ("old {...}" / "new {...}")
    rows = []
    for i, line in enumerate((HERE / "step-no-host-sync" / "runs.jsonl.txt").read_text().splitlines()):
        side, _, data = line.partition(" ")
        rows.append({"code": {"old": "648e3c9^", "new": "648e3c9"}[side], "side": side, "repeat": i // 2 + 1,
                     **json.loads(data)})
    write("step-no-host-sync", rows)


if __name__ == "__main__":
    main()
