"""A workspace's runs as a result's summary.csv, one row per run of its current matrix:

    python -m scripts.summarize_runs --workspace ../fresh --out reports/results/<result>/summary.csv
    python -m scripts.summarize_runs --workspace ../fresh --setup resnet20 --out ...   # that setup's runs only

The runs are read as the report reads them (`pipeline_lib.reporting.collect`: only the runs of
the workspace's configs/, only metrics measured on the run's own weights); the columns are the
numbers the results quote, as the files hold them (accuracies and ratios as fractions), a column
no run has left out. `python -m scripts.results_table` then writes the tables from it.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import click

# column: the collected column (train.json, metrics.json and transfer.json, flattened)
COLUMNS = {
    "epochs": "train.epochs",
    "test_acc": "metrics.accuracy.test", "val_acc": "metrics.accuracy.val", "train_acc": "metrics.accuracy.train",
    "train_clean_acc": "metrics.accuracy.train_clean", "test_nocue_acc": "metrics.accuracy.test_nocue",
    "test_conflict_acc": "metrics.accuracy.test_conflict", "gap": "metrics.gap", "gap_last_epoch": "train.gap",
    "last_train_step_acc": "train.train_step_acc", "dropped_fraction": "train.dropped_fraction",
    "gradcam_area": "metrics.attribution.gradcam.area_ratio", "gradcam_hit_whole": "metrics.attribution.gradcam.hit_whole",
    "gradcam_hit_largest": "metrics.attribution.gradcam.hit_largest",
    "gradcam_spearman": "metrics.attribution.gradcam.spearman",
    "same_area_hit_whole": "metrics.reference_maps.same_area.gradcam.hit_whole",
    "same_area_spearman": "metrics.reference_maps.same_area.gradcam.spearman",
    **{f"coverage_{layer}_{reading}": f"metrics.coverage.{layer}_{reading}"
       for reading in ("per_image", "unit", "scaled") for layer in ("global", "last_conv")},
    "probe_first": "metrics.attention_over_training.first", "probe_last": "metrics.attention_over_training.last",
    "occlusion_auc_relevant": "metrics.occlusion.relevant.auc", "occlusion_auc_random": "metrics.occlusion.random.auc",
    "leak_follows_wrong": "metrics.mask_leakage.follows_wrong", "leak_wrong_chance": "metrics.mask_leakage.wrong_chance",
    "leak_content_free_follows_label": "metrics.mask_leakage.content_free.follows_label",
    "leak_content_free_chance": "metrics.mask_leakage.content_free.chance",
    "leak_content_free_p_value": "metrics.mask_leakage.content_free.p_value",
    "transfer_test_acc": "transfer.accuracy.test",
}


def summary_rows(workspace: Path, setups: tuple[str, ...] = ()) -> list[dict]:
    from pipeline_lib.reporting.collect import collect

    here = Path.cwd()
    os.chdir(workspace)  # run folders are relative to the workspace, as its configs name them
    try:
        col = collect(Path("configs"))
    finally:
        os.chdir(here)
    if col.stale or col.missing:
        raise click.ClickException("not every run of the matrix is finished and its own: "
                                   + "; ".join([*col.stale, *col.missing][:3]) + " (run dvc repro there first)")
    runs = col.runs[col.runs["setup"].isin(setups)] if setups else col.runs
    if runs.empty:
        raise click.ClickException(f"no runs of setup {', '.join(setups)}: the workspace's setups are "
                                   + ", ".join(sorted(col.runs["setup"].unique())))
    present = {name: key for name, key in COLUMNS.items() if key in runs and runs[key].notna().any()}
    return [{"setup": r["setup"], "method": r["method"], "seed": r["seed"],
             **{name: r[key] for name, key in present.items()}} for _, r in runs.iterrows()]


@click.command()
@click.option("--workspace", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--setup", "setups", multiple=True, help="Keep this setup's runs only (repeatable).")
def main(workspace: Path, out: Path, setups: tuple[str, ...]) -> None:
    rows = summary_rows(workspace.resolve(), setups)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v != v else v for k, v in row.items()} for row in rows)  # NaN: empty
    click.echo(f"{len(rows)} runs -> {out}")


if __name__ == "__main__":
    main()
