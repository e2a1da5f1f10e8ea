"""Per-epoch series of partial runs, side by side:  python series.py RUNS  (RUNS/<method>/seed0/plots/metrics)"""
import csv, sys
from pathlib import Path

runs = Path(sys.argv[1])

def col(method, name):
    f = runs / method / "seed0" / "plots" / "metrics" / f"{name}.tsv"
    with open(f) as fh:
        return [float(r[name]) for r in csv.DictReader(fh, delimiter="\t")]

v_acc, v_gap = col("vanilla", "val_acc"), col("vanilla", "gap")
s_acc, s_gap = col("sgdrop", "val_acc"), col("sgdrop", "gap")
leak = {k: col("sgdrop", f"leak_{k}") for k in ("unmasked", "masked_true", "follows_wrong", "wrong_chance")}
print("| epoch | vanilla val acc | vanilla gap | sgdrop val acc | sgdrop gap | sgdrop leakage: unmasked / masked true / follows wrong (chance) |")
print("|---:|---:|---:|---:|---:|---|")
for e in range(max(len(v_acc), len(s_acc))):
    v = f"{v_acc[e]:.3f} | {v_gap[e]:+.3f}" if e < len(v_acc) else "- | -"
    s = (f"{s_acc[e]:.3f} | {s_gap[e]:+.3f} | {leak['unmasked'][e]:.3f} / {leak['masked_true'][e]:.3f} / "
         f"{leak['follows_wrong'][e]:.3f} ({leak['wrong_chance'][e]:.3f})") if e < len(s_acc) else "- | - | -"
    print(f"| {e + 1} | {v} | {s} |")
