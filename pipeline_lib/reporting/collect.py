"""Gather the runs of the current matrix into one table of rows, one row per run.

Rules that keep the report honest:
- only runs of the current matrix (the configs/ folder) are read;
- a run's weights must be those of its current settings and training code: a train.json whose
  identity (`pipeline_lib.training.identity`) says otherwise is left out and listed, with what
  changed ("the weights predate the code");
- its metrics.json and transfer.json must have been measured on those weights (the same
  identity digest); any other, or one without an identity, is left out and listed;
- runs are grouped for mean and std by (setup, method, params without the seed): if one
  method has runs with different params, each variant gets its own labelled row, never a mix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.io import read_json
from pipeline_lib.training.identity import current_code


def _read(path: Path) -> dict | None:
    return read_json(path, fix="rerun its run (dvc repro)") if path.exists() else None


def weights_problem(cfg: RunConfig, train: dict) -> str | None:
    """Why a run's train.json does not describe weights of its current settings and training code."""
    identity = train.get("identity")
    if not isinstance(identity, dict):
        return "has no run identity (not written by this pipeline's training loop): rerun dvc repro"
    changed = (["params"] if identity.get("config") != cfg.digest() else []) + sorted(
        f for f, d in current_code(cfg).items() if identity.get("code", {}).get(f) != d)
    if changed:
        return (f"the weights predate the current {', '.join(changed[:4])}{', ...' if len(changed) > 4 else ''}: "
                "rerun dvc repro")
    return None


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


@dataclass
class Collection:
    runs: pd.DataFrame
    configs: dict[str, RunConfig]
    metrics: dict[str, dict]
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def collect(configs_dir: Path) -> Collection:
    rows, configs, metrics, stale, missing = [], {}, {}, [], []
    for path in sorted(configs_dir.rglob("seed*.json")):
        cfg = RunConfig(**read_json(path))
        run = cfg.run_dir
        row = {"run": str(run), "setup": cfg.setup, "dataset": cfg.data.dataset, "arch": cfg.arch,
               "method": cfg.method.name, "type": cfg.method.type, "seed": cfg.seed,
               "params": cfg.digest(across_seeds=True)[:8],
               **{f"p.{k}": v for k, v in cfg.method.params.items()}}
        found = {}
        train = _read(run / "train.json")
        if train is not None:
            problem = weights_problem(cfg, train)
            if problem:
                stale.append(f"{run}/train.json {problem}")
                continue
            found["train"] = train
            for name in ("metrics", "transfer"):
                data = _read(run / f"{name}.json")
                if data is None:
                    continue
                if data.get("identity") != train["identity"]["digest"]:
                    stale.append(f"{run}/{name}.json " + ("has no run identity" if "identity" not in data else
                                                         "was measured on other weights") + ": rerun dvc repro")
                    continue
                found[name] = data
        if not found:
            missing.append(str(run))
            continue
        for name, data in found.items():
            row.update(flatten(data, f"{name}."))
        rows.append(row)
        configs[str(run)] = cfg
        metrics[str(run)] = found
    return Collection(pd.DataFrame(rows), configs, metrics, stale, missing)


def label_variants(runs: pd.DataFrame) -> pd.DataFrame:
    """A `label` column: the method name, suffixed by its params hash when variants coexist."""
    runs = runs.copy()
    variants = runs.groupby(["setup", "method"])["params"].transform("nunique")
    runs["label"] = runs["method"].where(variants == 1, runs["method"] + " [params " + runs["params"] + "]")
    return runs


def aggregate(runs: pd.DataFrame, columns: list[str], by: list[str]) -> pd.DataFrame:
    """Mean, std and count over seeds of each metric column, per group."""
    present = [c for c in columns if c in runs]
    grouped = runs.groupby(by, sort=False, dropna=False)[present]
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    out = pd.concat({"mean": mean, "std": std, "n": count}, axis=1)
    out.columns = [f"{c}:{stat}" for stat, c in out.columns]
    return out.reset_index()
