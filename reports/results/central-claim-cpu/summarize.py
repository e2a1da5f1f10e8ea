"""The README's results table from the runs copied here: mean ± sample std over seeds (the mean
alone for one seed); methods without runs are left out.

    python reports/results/central-claim-cpu/summarize.py [RUNS]   (default: this folder's runs/)
"""
import csv
import json
import statistics
import sys
from pathlib import Path

RUNS = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "runs"
METHODS = ["vanilla", "dropout", "sgdrop", "sgdrop_curriculum"]
PAPER = {"vanilla": "67.21 ± 0.29", "dropout": "68.66 ± 0.54", "sgdrop": "81.00 ± 0.44",
         "sgdrop_curriculum": "81.82 ± 0.13"}  # SGDrop paper, Table 3, VGG16 on Imagenette


def series(run: Path, name: str) -> list[float]:
    with open(run / "plots" / "metrics" / f"{name}.tsv") as f:
        return [float(row[name]) for row in csv.DictReader(f, delimiter="\t")]


def spread(values: list[float], scale: float = 100) -> str:
    mean = f"{statistics.mean(values) * scale:.2f}"
    return f"{mean} ± {statistics.stdev(values) * scale:.2f}" if len(values) > 1 else mean


print("| method | seeds | test acc. (%) | paper, Table 3 | train acc. (%) | gap (train − test) "
      "| first epoch with a gap over 20 points | probe area, first → last epoch |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for method in METHODS:
    runs = sorted((RUNS / method).glob("seed*"))
    if not runs:
        continue
    acc = [json.loads((r / "metrics.json").read_text())["accuracy"] for r in runs]
    over = [next((i + 1 for i, g in enumerate(series(r, "gap")) if g > 0.2), None) for r in runs]
    area = [series(r, "probe_area_ratio") for r in runs]
    print(f"| {method} | {len(runs)} | {spread([a['test'] for a in acc])} | {PAPER[method]} "
          f"| {spread([a['train'] for a in acc])} | {spread([a['train'] - a['test'] for a in acc])} "
          f"| {', '.join(str(e) for e in over)} "
          f"| {statistics.mean(a[0] for a in area):.2f} → {spread([a[-1] for a in area], 1)} |")
