"""What a run's weights are made of, and so what its checkpoint must match to be resumed, found
finished or measured as this run's own:

- `config`: the run's settings that shape the weights (`RunConfig.digest`);
- `code`: the source digest of every project module that training executes: the loop and the
  step, the data loader, the models package and the run's own architecture, the methods package
  and the run's own method, and what they import (`pipeline_lib.provenance`). Other methods'
  and architectures' modules are not among them: a change to CamDrop retrains CamDrop's runs
  alone. Comments and docstrings do not count;
- `data`: the content digest of the shards it trains on (`data.shards.manifest_digest`);
- `weights`: the content digest of `model.weights`, when the run starts from a state dict.

A change to the analysis code (attribution, metrics, transfer, report) changes none of these,
so it reruns the analysis and keeps the weights.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.data.shards import manifest_digest, read_manifest
from pipeline_lib.provenance import closure, code_digests, content_digest, source_file

TRAINING_ENTRY = "pipeline_lib/training/loop.py"


@dataclass(frozen=True)
class RunIdentity:
    config: str
    code: dict[str, str]
    data: str
    weights: str | None

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {**asdict(self), "digest": self.digest}

    @classmethod
    def from_dict(cls, d: dict) -> "RunIdentity":
        return cls(config=d["config"], code=d["code"], data=d["data"], weights=d["weights"])

    def differences(self, other: "RunIdentity") -> list[str]:
        """What differs from `other`, in words: "params", "code (<files>)", "data", "model.weights"."""
        out = ["params"] if self.config != other.config else []
        changed = sorted(f for f in {*self.code, *other.code} if self.code.get(f) != other.code.get(f))
        if changed:
            out.append(f"code ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})")
        if self.data != other.data:
            out.append("data")
        if self.weights != other.weights:
            out.append("model.weights")
        return out


@functools.cache
def training_files(method_type: str, arch: str) -> frozenset[str]:
    """The project modules that training a run of this method type and architecture executes."""
    from pipeline_lib.attribution import ATTRIBUTIONS
    from pipeline_lib.data import DATASETS
    from pipeline_lib.methods import METHODS
    from pipeline_lib.models import ARCHITECTURES

    registrations = {source_file(obj) for registry in (METHODS, ARCHITECTURES, DATASETS, ATTRIBUTIONS)
                     for obj in registry.entries()}
    own = [source_file(METHODS.get(method_type)), source_file(ARCHITECTURES.get(arch))]
    return frozenset(closure([TRAINING_ENTRY, *own], registrations))


@functools.cache
def _code(method_type: str, arch: str) -> tuple[tuple[str, str], ...]:
    return tuple(code_digests(training_files(method_type, arch)).items())


def current_code(cfg: RunConfig) -> dict[str, str]:
    """{module: digest} of the training code that the run's method and architecture execute today."""
    return dict(_code(cfg.method.type, cfg.arch))


def run_identity(cfg: RunConfig, shard_dir: str | Path) -> RunIdentity:
    return RunIdentity(config=cfg.digest(), code=current_code(cfg),
                       data=manifest_digest(read_manifest(shard_dir)),
                       weights=content_digest(cfg.model.weights) if cfg.model.weights else None)
