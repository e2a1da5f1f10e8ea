"""The typed schema of params.yaml: types, ranges and the rules between keys, and nothing that
needs torch or a registry (`pipeline_lib.config.checks` checks names, devices, files and shapes;
`pipeline_lib.config.resolve` turns the params into each run's config).

params.yaml is the one home of every value: this schema documents and validates, and holds no
defaults, so a key missing from params.yaml is an error rather than a silent second default.
Errors name the key, the allowed range or the valid names, and the fix.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from pipeline_lib.errors import ClearError
from pipeline_lib.strict import Strict

PARAMS_FILE = "params.yaml"


class ParamsError(ClearError, ValueError):
    """A bad value in params.yaml, with the key, the problem and the fix."""


Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what numpy's seeding takes


class SyntheticParams(Strict):
    """The embedded benchmark (`pipeline_lib.data.sets.synthetic`); a split of size 0 is not made."""

    num_classes: int = Field(ge=2, le=16)
    image_size: int = Field(ge=32)
    p_cue: float = Field(ge=0, le=1)
    cue_size: int = Field(ge=1)
    train: int = Field(ge=1)
    val: int = Field(ge=1)
    test: int = Field(ge=1)
    test_nocue: int = Field(ge=0)
    test_conflict: int = Field(ge=0)
    task: Literal["a", "b"]


class DataParams(Strict):
    dataset: str
    root: str | None
    subset: int | None = Field(ge=1)
    val_fraction: float = Field(gt=0, lt=1)
    boxes_csv: str | None
    download: bool
    seed: Seed
    # images smaller than this on either side are counted as unreadable when sharding
    min_image_size: int = Field(ge=1)
    synthetic: SyntheticParams


class ShardParams(Strict):
    samples_per_shard: int = Field(ge=1)
    max_bad_fraction: float = Field(ge=0, le=1)


class AugmentParams(Strict):
    random_crop: bool
    crop_padding: int = Field(ge=0)
    flip: bool


class LoaderParams(Strict):
    image_size: int = Field(ge=32)
    batch_size: int = Field(ge=1)
    eval_batch_size: int = Field(ge=1)
    workers: int = Field(ge=0)
    shuffle_buffer: int = Field(ge=1)
    in_memory: bool
    augment: AugmentParams


class ModelParams(Strict):
    architecture: str
    width: float = Field(gt=0)
    batch_norm: bool
    weights: str | None
    # torchvision: the architecture's own init (torchvision's for VGG and ResNet); pytorch: every
    # layer's `reset_parameters`, PyTorch's default, which the collapsed VGG16 run of issue 13 used
    init: Literal["torchvision", "pytorch"]


def _unique(values: list, what: str) -> list:
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"lists {', '.join(repeated)} more than once: list each {what} once")
    return values


class MatrixParams(Strict):
    """What dvc.yaml crosses with every setup: the methods (run names of `methods:`) and seeds."""

    methods: list[str]  # trained with every seed
    seeds: list[Seed]
    one_seed_methods: list[str]  # trained with the first seed only

    @field_validator("methods", "seeds")
    @classmethod
    def _non_empty_and_unique(cls, values: list, info) -> list:
        if not values:
            raise ValueError("must list at least one entry")
        return _unique(values, info.field_name.removesuffix("s"))

    @field_validator("one_seed_methods")
    @classmethod
    def _disjoint(cls, names: list[str], info) -> list[str]:
        _unique(names, "method")
        both = set(names) & set(info.data.get("methods", []))
        if both:
            raise ValueError(f"{', '.join(sorted(both))} also in matrix.methods: list each method in one of the two")
        return names


class TrainParams(Strict):
    epochs: int = Field(ge=1)
    optimizer: Literal["adam", "sgd"]
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    momentum: float = Field(ge=0, lt=1)
    nesterov: bool
    schedule: Literal["constant", "step", "cosine"]
    step_size: int = Field(ge=1)
    gamma: float = Field(gt=0, le=1)
    probe_size: int = Field(ge=1)
    leakage_size: int = Field(ge=1)  # val images of the per-epoch label-leakage diagnostic
    clean_size: int = Field(ge=1)  # train images whose evaluation-mode accuracy is logged each epoch
    device: str
    # bf16 autocast and channels_last: `auto` turns each on for a CUDA device only; `true` turns
    # it on for any device (the GPU path, rehearsed on a CPU)
    autocast: Literal["auto", True, False]
    channels_last: Literal["auto", True, False]
    compile: bool
    # Saving is seconds for a VGG16 with Adam and EMA state (about 2 GB); the last epoch is always saved.
    checkpoint_every: int = Field(ge=1)


class AttributeParams(Strict):
    methods: list[str]
    split: str
    max_images: int = Field(ge=1)
    ig_steps: int = Field(ge=2)
    grid_images: int = Field(ge=1)


class EvaluateParams(Strict):
    area_threshold: float = Field(gt=0, lt=1)
    iou_threshold: float = Field(gt=0, le=1)
    top_fraction: float = Field(gt=0, lt=1)
    human_blur_sigma: float = Field(ge=0)  # Fel et al.'s 10 x 10 kernel at 64 px; 0: no blur
    coverage_threshold: float  # unit coverage, the SGDrop paper's reading
    coverage_scaled_threshold: float = Field(ge=0, lt=1)  # DeepXplore's layer-scaled channel coverage
    coverage_batches: int = Field(ge=1)
    coverage_batch_size: int = Field(ge=1)
    occlusion_patch: int = Field(ge=1)
    occlusion_fractions: list[float]
    occlusion_images: int = Field(ge=1)  # class-stratified random test images
    leakage_images: int = Field(ge=1)  # class-stratified random test images of the label-leakage metric
    clickme_root: str | None

    @field_validator("occlusion_fractions")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if not values or any(not 0 <= v <= 1 for v in values) or sorted(values) != values:
            raise ValueError("must be increasing fractions in [0, 1]")
        return values


class TransferParams(Strict):
    enabled: bool
    data: DataParams
    epochs: int = Field(ge=1)
    lr: float = Field(gt=0)


class BenchParams(Strict):
    """The overhead benchmark: each setup's architecture at its image size and width."""

    setups: list[str] | None  # null: every setup
    batch_size: int = Field(ge=1)
    warmup: int = Field(ge=0)
    steps: int = Field(ge=1)
    methods: list[str] | None


SETUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Sections every setup shares: the dvc.yaml matrix, the bench stage's own section, the setups
SHARED_SECTIONS = ("matrix", "bench", "setups")


class Params(Strict):
    """The whole of params.yaml."""

    data: DataParams
    shard: ShardParams
    loader: LoaderParams
    model: ModelParams
    matrix: MatrixParams
    train: TrainParams
    rho: float = Field(ge=0, lt=1)
    rho_start: float = Field(ge=0, lt=1)
    rho_end: float = Field(ge=0, lt=1)
    methods: dict[str, dict[str, Any]]
    attribute: AttributeParams
    evaluate: EvaluateParams
    transfer: TransferParams
    bench: BenchParams
    # Each setup is one dataset with one architecture: its name, and the keys of this file that
    # differ for it (the SGDrop paper's Table 12: rho 0.1 for ConvNeXt on Imagenette). dvc.yaml
    # crosses the setups with matrix.methods and matrix.seeds.
    setups: dict[str, dict[str, Any]]

    @field_validator("setups")
    @classmethod
    def _setup_names(cls, setups: dict[str, dict[str, Any]], info) -> dict[str, dict[str, Any]]:
        if not setups:
            raise ValueError("must name at least one setup (e.g. `my-setup: {}` runs this file's settings)")
        for name, keys in setups.items():
            if not SETUP_NAME.fullmatch(str(name)):
                raise ValueError(f"setup name {name!r} must be letters, digits, '_', '.' or '-' (it names "
                                 "folders and DVC stages)")
            shared = [k for k in SHARED_SECTIONS if k in keys]
            if shared:
                raise ValueError(f"setup {name!r} sets {', '.join(shared)}, which every setup shares (the "
                                 "dvc.yaml matrix, the bench stage's own section): set it at the top level")
            new = sorted(set(keys.get("methods") or {}) - set(info.data.get("methods") or {}))
            if new:
                raise ValueError(f"setup {name!r} defines methods {', '.join(new)}, which no run would use: a "
                                 "setup changes the params of the methods defined under the top-level methods:")
        return setups

    @model_validator(mode="after")
    def _bench_setups_exist(self) -> "Params":
        unknown = [s for s in self.bench.setups or [] if s not in self.setups]
        if unknown:
            raise ValueError(f"bench.setups names {', '.join(unknown)}, which setups: does not define; use some of "
                             f"{', '.join(self.setups)}, or null for every setup")
        return self

    def setup(self, name: str) -> "Params":
        """The params of one setup: this file with the setup's keys applied (`setups` names it alone)."""
        raw = merged(self.model_dump(exclude={"setups"}), self.setups[name])
        raw["bench"]["setups"] = None  # the bench's choice of setups is the study's, not a setup's
        try:
            return Params(**raw, setups={name: {}})
        except ValidationError as err:
            raise ParamsError(in_setup(format_errors(err, Params), name)) from None

    def cells(self) -> list[tuple[str, str, int]]:
        """(setup, method, seed) of every run, in dvc.yaml's order: the `run` matrix
        (setups x methods x seeds), then `run_one_seed` (x one_seed_methods x the first seed)."""
        m = self.matrix
        return ([(s, name, seed) for s in self.setups for name in m.methods for seed in m.seeds]
                + [(s, name, m.seeds[0]) for s in self.setups for name in m.one_seed_methods])


def in_setup(message: str, name: str) -> str:
    return message.replace("params.yaml key '", f"params.yaml, setup {name!r}, key '")


def format_errors(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    lines, misspelt = {}, set()  # a misspelt key is also a missing one: say it once, as the typo
    for e in err.errors():
        key = prefix + ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ") + (f" (got {e.get('input')!r})" if e["loc"] else "")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (remove it or check its spelling) (got {e.get('input')!r})"
            close = difflib.get_close_matches(str(e["loc"][-1]), _keys_at(model, e["loc"][:-1]), n=1)
            if close:
                meant = prefix + ".".join([*map(str, e["loc"][:-1]), close[0]])
                msg = f"unknown key; did you mean {meant!r}?"
                misspelt.add(meant)
        elif e["type"] == "missing":
            msg = "missing (params.yaml holds every setting: copy the key from the shipped params.yaml)"
        lines[key] = f"params.yaml key '{key}': {msg}" if key else f"params.yaml: {msg}"
    return "\n".join(line for key, line in lines.items() if key not in misspelt)


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys of the section at `loc` (for a suggestion when a key is misspelt)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def parse_schema(raw: dict[str, Any] | None) -> Params:
    """params.yaml's mapping, validated against the schema alone (`checks.parse_params` does the rest)."""
    if not isinstance(raw, dict):
        raise ParamsError(
            "params.yaml is empty: restore it (git checkout params.yaml)" if raw is None else
            f"params.yaml must be a mapping of sections (data:, train:, ...), not a {type(raw).__name__}")
    try:
        return Params(**raw)
    except ValidationError as err:
        raise ParamsError(format_errors(err, Params)) from None


class _Yaml12Floats(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats, as DVC (ruamel) reads params.yaml: `1e-4` is
    a number there, and text for YAML 1.1."""


_Yaml12Floats.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"""^(?:
    [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
  | [-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
  | [-+]?\.(?:inf|Inf|INF)
  | \.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Floats)


def read_params_file(path: str | os.PathLike = PARAMS_FILE) -> Any:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run the stage from the repository root")
    try:
        return load_yaml(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ParamsError(f"{path} is not valid YAML{line}: {getattr(err, 'problem', None) or err}") from None


# A study's setups are its own: overrides that name setups replace the file's, never add to them
REPLACED_WHOLE = ("setups",)


def overlay(base: MutableMapping, overrides: Mapping, top: bool = True) -> MutableMapping:
    """`base` with `overrides` applied in place, key by key, recursing into sections (a YAML
    round-trip mapping keeps its comments). Values are copied sharing nothing: YAML merge keys
    (`<<: *imagenette`) share one object between setups, which a dump would tie together."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), MutableMapping) \
                and not (top and key in REPLACED_WHOLE):
            overlay(base[key], value, top=False)
        else:
            base[key] = json.loads(json.dumps(value))
    return base


def merged(base: Mapping, overrides: Mapping) -> dict:
    """A copy of `base` with `overrides` applied (`overlay`)."""
    return overlay(json.loads(json.dumps(base)), overrides)


def read_stage_params(path: str | os.PathLike) -> SimpleNamespace:
    """A stage's params file (`resolve.setup_stage_params`), each section validated by its schema."""
    raw = json.loads(Path(path).read_text())
    return SimpleNamespace(**{key: Params.model_fields[key].annotation.model_validate(value)
                              for key, value in raw.items()})
