"""Gather the VGG16 collapse grid into metrics JSON, one file per cell, and print its table.

    PYTHONPATH=. python reports/results/vgg16-collapse/collect.py WORK_DIR [--test]

Per cell (init x method): the per-epoch series logged by the training loop (train accuracy on
masked batches, val accuracy, the label-leakage diagnostic on 256 val images), the run's
warnings, and with --test, for finished cells, the test accuracy and the leakage metric on the
test split (the trained model and the method in its final state). Unfinished cells are
collected as far as they went.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import torch

from pipeline_lib.config import RunConfig
from pipeline_lib.data.loader import Normalizer, load_split, stratified_sample
from pipeline_lib.data.shards import read_manifest
from pipeline_lib.io import read_json, write_json
from pipeline_lib.metrics.accuracy import evaluate
from pipeline_lib.metrics.leakage import mask_leakage
from pipeline_lib.training.loop import load_trained

HERE = Path(__file__).parent
SERIES = ["train_acc", "val_acc", "train_loss", "dropped_fraction", "leak_unmasked", "leak_masked_true",
          "leak_follows_wrong", "leak_wrong_chance", "leak_follows_wrong_excess"]


def series(live: Path) -> dict[str, list[float]]:
    out = {}
    for name in SERIES:
        tsv = live / "plots" / "metrics" / f"{name}.tsv"
        if tsv.exists():
            with open(tsv) as f:
                out[name] = [float(r[name]) for r in csv.DictReader(f, delimiter="\t")]
    return out


def test_metrics(init_dir: Path, cfg: RunConfig, shards: Path) -> dict:
    import os
    cwd = os.getcwd()
    os.chdir(init_dir)  # run dirs are relative to the folder the grid ran in
    try:
        model, method = load_trained(cfg, shards, torch.device("cpu"), with_method=True)
    finally:
        os.chdir(cwd)
    manifest = read_manifest(shards)
    normalize = Normalizer(manifest["mean"], manifest["std"])
    test = load_split(shards, "test", cfg.loader.image_size)
    out = {"test_acc": evaluate(model, test.images, test.labels, normalize, batch_size=256,
                                device=torch.device("cpu"))["acc"]}
    if method.label_mask:
        pick = stratified_sample(test.labels, 1024, cfg.seed)
        out["test_leakage"] = mask_leakage(model, method, test.images[pick], test.labels[pick], normalize,
                                           num_classes=len(manifest["classes"]), batch_size=256, seed=cfg.seed)
    return out


def main(work: Path, with_test: bool) -> None:
    rows = []
    for init_dir in sorted(p for p in work.iterdir() if (p / "configs").exists()):
        for config in sorted((init_dir / "configs").rglob("seed*.json")):
            cfg = RunConfig(**read_json(config))
            run = init_dir / cfg.run_dir
            s = series(run / "live")
            if not s.get("val_acc"):  # not started, or no epoch finished yet
                continue
            finished = (run / "train.json").exists()
            cell = {"init": init_dir.name, "method": cfg.method.name, "method_params": cfg.method.params,
                    "epochs_done": len(s.get("val_acc", [])), "epochs": cfg.train.epochs, "finished": finished,
                    "series": s, "warnings": read_json(run / "train.json")["warnings"] if finished else None}
            out = HERE / "metrics" / f"{init_dir.name}-{cfg.method.name}.json"
            done = read_json(out) if out.exists() else {}
            if finished and "test_acc" in done:  # a finished run's test metrics do not change
                cell.update({k: done[k] for k in ("test_acc", "test_leakage") if k in done})
            elif finished and with_test:
                cell.update(test_metrics(init_dir, cfg, work / "shards"))
            write_json(out, cell)
            rows.append(cell)
    print("| init | method | epochs | train acc (masked) | val acc | test acc | val: unmasked / masked true / "
          "follows wrong (chance) | warning |")
    print("|---|---|---|---|---|---|---|---|")
    for c in rows:
        s, last = c["series"], lambda k: c["series"][k][-1] if c["series"].get(k) else None
        leak = (f"{last('leak_unmasked'):.3f} / {last('leak_masked_true'):.3f} / {last('leak_follows_wrong'):.3f} "
                f"({last('leak_wrong_chance'):.3f})" if s.get("leak_unmasked") else "n/a")
        test = f"{c['test_acc']:.3f}" if "test_acc" in c else "-"
        print(f"| {c['init']} | {c['method']} | {c['epochs_done']}/{c['epochs']} | {last('train_acc'):.3f} | "
              f"{last('val_acc'):.3f} | {test} | {leak} | {'yes' if c['warnings'] else 'no' if c['finished'] else '-'} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--test" in sys.argv[2:])
