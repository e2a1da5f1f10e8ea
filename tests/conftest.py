"""Shared fixtures: tiny synthetic shards (32 px) built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import yaml

from pipeline_lib.config import merged, parse_params

SHARED_DATA = Path(os.environ.get("OVERFOCUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

TINY = {
    "data": {"synthetic": {"image_size": 32, "cue_size": 4, "train": 60, "val": 20, "test": 20, "test_nocue": 10, "test_conflict": 10}},
    "loader": {"image_size": 32, "batch_size": 16, "augment": {"crop_padding": 2}},
    "model": {"architecture": "tinyvgg", "width": 0.25, "batch_norm": True},
    "train": {"methods": ["vanilla"], "one_seed_methods": [], "epochs": 2, "probe_size": 4},
}


def tiny_raw(**overrides) -> dict:
    """The shipped params.yaml as a dict, shrunk by TINY, with the test's own overrides on top
    (`setups` replaces the shipped setups)."""
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    return merged(shipped, merged(TINY, overrides))


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
