"""From params.yaml to what each stage runs: a setup's params, each run's config (`RunConfig`:
its setup's sections plus its own method's parameters, so that a change to one method's params,
or to one setup, changes only those runs) and the per-setup files of the other stages.

A method variant (`type: sgdrop` under another name) starts from its base method's entry and
lists only what differs.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline_lib.config.schema import (
    DataParams, LoaderParams, ModelParams, Params, ParamsError, TrainParams, format_errors,
)
from pipeline_lib.methods import METHODS
from pipeline_lib.strict import Strict


class MethodSpec(Strict):
    name: str
    type: str
    params: dict[str, Any]


def method_spec(params: Params, name: str) -> MethodSpec:
    """The resolved method of a run name: its registered type and validated params."""
    entry = dict(params.methods.get(name, {}))
    kind = entry.pop("type", name)
    if kind != name:  # a variant: its base method's entry, then what the variant changes
        entry = {**{k: v for k, v in params.methods.get(kind, {}).items() if k != "type"}, **entry}
    if kind not in METHODS:
        where = f"methods.{name}.type" if kind != name else f"methods.{name}"
        raise ParamsError(f"params.yaml key '{where}': {METHODS.unknown(kind)}. A variant of a registered "
                          f"method names it with `type:`")
    cls = METHODS.get(kind)
    inherited = {key: getattr(params, key) for key in cls.shared_params if key not in entry}
    try:
        method_params = cls.Params(**inherited, **entry)
    except ValidationError as err:
        raise ParamsError(format_errors(err, cls.Params, prefix=f"methods.{name}.")) from None
    return MethodSpec(name=name, type=kind, params=method_params.model_dump(exclude=cls.unused_params(method_params)))


# Where and how often a run is saved: not part of what identifies its results.
EXECUTION_ONLY = {"checkpoint_every", "device"}


class RunConfig(Strict):
    """Everything one training run is configured with."""

    setup: str
    method: MethodSpec
    seed: int
    data: DataParams
    loader: LoaderParams
    model: ModelParams
    train: TrainParams

    def digest(self, *, across_seeds: bool = False) -> str:
        """The settings that shape the weights: what a checkpoint must match, with the training
        code, the data and the starting weights (`pipeline_lib.training.identity`).

        Where and how often the run is saved are not among them: a run trained on cuda:0 is
        resumed, or found finished, on cuda:1 or a CPU. Nor is `data`: training reads the shards,
        whose content digest stands for it, so a data root moved elsewhere retrains nothing.
        `across_seeds` also leaves out the seed, which gives what the seeds of one variant share
        (the report's grouping key)."""
        exclude = {"data": True, "train": EXECUTION_ONLY}
        if across_seeds:
            exclude["seed"] = True
        dump = self.model_dump(exclude=exclude)
        return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def arch(self) -> str:
        return self.model.architecture

    @property
    def run_dir(self) -> Path:
        return run_dir(self.setup, self.method.name, self.seed)


def run_dir(setup: str, method: str, seed: int) -> Path:
    return Path("runs") / setup / method / f"seed{seed}"


def run_configs(params: Params) -> list[RunConfig]:
    """The training matrix (`Params.cells`), in dvc.yaml's order."""
    setups = {name: params.setup(name) for name in params.setups}
    return [RunConfig(setup=setup, method=method_spec(setups[setup], method), seed=seed, data=setups[setup].data,
                      loader=setups[setup].loader, model=setups[setup].model, train=setups[setup].train)
            for setup, method, seed in params.cells()]


# What each per-setup stage reads, written by `configure` to configs/<setup>/<file>.json: the
# params.yaml sections of each, resolved for the setup. A stage depends on its file alone, so a
# change to one setup, or to a section a stage does not read, reruns nothing else.
SETUP_STAGE_FILES = {
    "shard_main": {"data": "data", "shard": "shard"},
    "shard_transfer": {"data": "transfer.data", "shard": "shard"},
    "attribute": {"attribute": "attribute"},
    "evaluate": {"evaluate": "evaluate", "attribute": "attribute"},
    "transfer": {"transfer": "transfer"},
}


def setup_stage_params(params: Params) -> dict[str, dict[str, dict]]:
    """{setup: {file stem: {section: values}}} of every setup (`SETUP_STAGE_FILES`)."""
    out = {}
    for name in params.setups:
        dump = params.setup(name).model_dump()
        out[name] = {stem: {key: _at(dump, where) for key, where in sections.items()}
                     for stem, sections in SETUP_STAGE_FILES.items()}
    return out


def _at(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree
