"""Shared fixtures: tiny synthetic shards (32 px) built once per test session, and params built
from the committed params.yaml, never the workspace's copy, which `dvc exp run -S ...` rewrites."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

import yaml

from pipeline_lib.config.checks import parse_params
from pipeline_lib.config.schema import load_yaml, merged

ROOT = Path(__file__).resolve().parents[1]

SHARED_DATA = Path(os.environ.get("OVERFOCUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

TINY = {
    "data": {"synthetic": {"image_size": 32, "cue_size": 4, "train": 60, "val": 20, "test": 20, "test_nocue": 10, "test_conflict": 10}},
    "loader": {"image_size": 32, "batch_size": 16, "augment": {"crop_padding": 2}},
    "model": {"architecture": "tinyvgg", "width": 0.25, "batch_norm": True},
    "matrix": {"methods": ["vanilla"], "one_seed_methods": []}, "train": {"epochs": 2, "probe_size": 4},
}


@functools.cache
def committed_params_text() -> str:
    """params.yaml as git's index holds it (the last commit, or what a developer staged), so that
    an experiment's edits to the workspace's copy change no test; the file itself outside git."""
    try:
        return subprocess.run(["git", "show", ":params.yaml"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return (ROOT / "params.yaml").read_text()


def shipped_raw() -> dict:
    """The committed params.yaml as a dict."""
    return load_yaml(committed_params_text())


def tiny_raw(**overrides) -> dict:
    """The committed params.yaml as a dict, shrunk by TINY, with the test's own overrides on top
    (`setups` replaces the shipped setups)."""
    return merged(shipped_raw(), merged(TINY, overrides))


def tiny_params(**overrides):
    return parse_params(tiny_raw(**overrides))


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    from pipeline_lib.data import DATASETS
    from pipeline_lib.data.shards import write_shards

    params = tiny_params()
    out = tmp_path_factory.mktemp("shards") / "main"
    write_shards(DATASETS.get("synthetic")(params.data), out, params={}, samples_per_shard=25,
                 max_bad_fraction=0.01, progress=False)
    return out


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in a temporary folder (runs/ and configs/ are relative to the working directory)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
