"""The typed schema of params.yaml, validated at the start of every stage.

params.yaml is the one home of every value: this schema documents and validates, and holds no
defaults, so a key missing from params.yaml is an error rather than a silent second default.
A method variant (`type: sgdrop` under another name) starts from its base method's entry and
lists only what differs. Tests and scripts start from the shipped file (`params_with`).

Errors name the key, the allowed range or the valid names, and the fix. A run's resolved
configuration (`RunConfig`) is what one training run sees: its setup's sections (this file with
the setup's keys applied) plus its own method's parameters, so that a change to one method's
params, or to one setup, changes only those runs.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from pipeline_lib.attribution import ATTRIBUTIONS
from pipeline_lib.data import DATASETS, dataset_splits
from pipeline_lib.errors import ClearError
from pipeline_lib.methods import METHODS
from pipeline_lib.models import ARCHITECTURES
from pipeline_lib.strict import Strict

PARAMS_FILE = "params.yaml"


class ParamsError(ClearError, ValueError):
    """A bad value in params.yaml, with the key, the problem and the fix."""


class SyntheticParams(Strict):
    """The embedded benchmark (`pipeline_lib.data.synthetic`); a split of size 0 is not made."""

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
    seed: int
    synthetic: SyntheticParams

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        return DATASETS.check(name)


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

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        return ARCHITECTURES.check(name)


class TrainParams(Strict):
    methods: list[str]  # trained with every seed
    seeds: list[int]
    one_seed_methods: list[str]  # trained with the first seed only
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
    device: str
    compile: bool
    # Saving is seconds for a VGG16 with Adam and EMA state (about 2 GB); the last epoch is always saved.
    checkpoint_every: int = Field(ge=1)

    @field_validator("methods", "seeds")
    @classmethod
    def _non_empty(cls, values: list) -> list:
        if not values:
            raise ValueError("must list at least one entry")
        return values

    @field_validator("one_seed_methods")
    @classmethod
    def _disjoint(cls, names: list[str], info) -> list[str]:
        both = set(names) & set(info.data.get("methods", []))
        if both:
            raise ValueError(f"{', '.join(sorted(both))} also in train.methods: list each method in one of the two")
        return names


class AttributeParams(Strict):
    methods: list[str]
    split: str
    max_images: int = Field(ge=1)
    ig_steps: int = Field(ge=2)
    grid_images: int = Field(ge=1)

    @field_validator("methods")
    @classmethod
    def _known_attributions(cls, names: list[str]) -> list[str]:
        return [ATTRIBUTIONS.check(n) for n in names]


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
    architecture: str
    image_size: int = Field(ge=32)
    batch_size: int = Field(ge=1)
    warmup: int = Field(ge=0)
    steps: int = Field(ge=1)
    methods: list[str] | None

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, name: str) -> str:
        return ARCHITECTURES.check(name)


class Params(Strict):
    """The whole of params.yaml."""

    data: DataParams
    shard: ShardParams
    loader: LoaderParams
    model: ModelParams
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
    # crosses the setups with train.methods and train.seeds.
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
            shared = [f"{section}.{key}" for section, keys_ in MATRIX_KEYS.items() for key in keys_
                      if key in (keys.get(section) or {})] + [k for k in ("setups", "bench") if k in keys]
            if shared:
                raise ValueError(f"setup {name!r} sets {', '.join(shared)}, which every setup shares (the "
                                 "dvc.yaml matrix, and the bench stage's own section): set it at the top level")
            new = sorted(set(keys.get("methods") or {}) - set(info.data.get("methods") or {}))
            if new:
                raise ValueError(f"setup {name!r} defines methods {', '.join(new)}, which no run would use: a "
                                 "setup changes the params of the methods defined under the top-level methods:")
        return setups

    def setup(self, name: str) -> "Params":
        """The params of one setup: this file with the setup's keys applied (`setups` names it alone)."""
        raw = merged(self.model_dump(exclude={"setups"}), self.setups[name])
        try:
            return Params(**raw, setups={name: {}})
        except ValidationError as err:
            raise ParamsError(_in_setup(_format(err, Params), name)) from None

    def cells(self) -> list[tuple[str, str, int]]:
        """(setup, method, seed) of every run, in dvc.yaml's order: the `run` matrix
        (setups x methods x seeds), then `run_one_seed` (x one_seed_methods x the first seed)."""
        t = self.train
        return ([(s, m, seed) for s in self.setups for m in t.methods for seed in t.seeds]
                + [(s, m, t.seeds[0]) for s in self.setups for m in t.one_seed_methods])

    def method_spec(self, name: str) -> "MethodSpec":
        """The resolved method of a run name: its registered type and validated params."""
        entry = dict(self.methods.get(name, {}))
        kind = entry.pop("type", name)
        if kind != name:  # a variant: its base method's entry, then what the variant changes
            entry = {**{k: v for k, v in self.methods.get(kind, {}).items() if k != "type"}, **entry}
        try:
            METHODS.check(kind)
        except ValueError as err:
            raise ParamsError(f"params.yaml key 'methods.{name}': {err} (set `type:` to one of them)") from None
        cls = METHODS.get(kind)
        inherited = {key: getattr(self, key) for key in cls.shared_params if key not in entry}
        try:
            params = cls.Params(**inherited, **entry)
        except ValidationError as err:
            raise ParamsError(_format(err, cls.Params, prefix=f"methods.{name}.")) from None
        return MethodSpec(name=name, type=kind, params=params.model_dump(exclude=cls.unused_params(params)))


SETUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# The dvc.yaml matrix: the same for every setup
MATRIX_KEYS = {"train": ("methods", "seeds", "one_seed_methods")}


def _in_setup(message: str, name: str) -> str:
    return message.replace("params.yaml key '", f"params.yaml, setup {name!r}, key '")


class MethodSpec(Strict):
    name: str
    type: str
    params: dict[str, Any]


# Where and how often a run is saved: not part of what identifies its results.
EXECUTION_ONLY = {"checkpoint_every", "device"}


class RunConfig(Strict):
    """Everything one training run depends on; its hash identifies the run's params."""

    setup: str
    method: MethodSpec
    seed: int
    data: DataParams
    loader: LoaderParams
    model: ModelParams
    train: TrainParams

    def digest(self, *, across_seeds: bool = False) -> str:
        """What a checkpoint must match to be resumed: every setting that changes the weights.

        Where and how often the run is saved are not among them: a run trained on cuda:0 is
        resumed, or found finished, on cuda:1 or a CPU. `across_seeds` also leaves out the seed,
        which gives what the seeds of one variant share (the report's grouping key)."""
        exclude = {"seed": True, "train": EXECUTION_ONLY | {"seeds"}} if across_seeds else {"train": EXECUTION_ONLY}
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


def _format(err: ValidationError, model: type[BaseModel], prefix: str = "") -> str:
    lines, misspelt = {}, set()  # a misspelt key is also a missing one: say it once, as the typo
    for e in err.errors():
        key = prefix + ".".join(str(p) for p in e["loc"])
        msg = f"{e['msg'].removeprefix('Value error, ')} (got {e.get('input')!r})"
        if e["type"] == "extra_forbidden":
            msg = f"unknown key (remove it or check its spelling) (got {e.get('input')!r})"
            close = difflib.get_close_matches(str(e["loc"][-1]), _keys_at(model, e["loc"][:-1]), n=1)
            if close:
                meant = prefix + ".".join([*map(str, e["loc"][:-1]), close[0]])
                msg = f"unknown key; did you mean {meant!r}?"
                misspelt.add(meant)
        elif e["type"] == "missing":
            msg = "missing (params.yaml holds every setting: copy the key from the shipped params.yaml)"
        lines[key] = f"params.yaml key '{key}': {msg}"
    return "\n".join(line for key, line in lines.items() if key not in misspelt)


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The valid keys of the section at `loc` (for a suggestion when a key is misspelt)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return list(model.model_fields)


def parse_params(raw: dict[str, Any] | None) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError(
            "params.yaml is empty: restore it (git checkout params.yaml)" if raw is None else
            f"params.yaml must be a mapping of sections (data:, train:, ...), not a {type(raw).__name__}")
    try:
        params = Params(**raw)
    except ValidationError as err:
        raise ParamsError(_format(err, Params)) from None
    names = list(dict.fromkeys([*params.train.methods, *params.train.one_seed_methods, *params.methods]))
    for name in dict.fromkeys([*names, *(params.bench.methods or [])]):
        params.method_spec(name)
    _probe(params.bench.architecture, params.bench.image_size, params.model, "bench.architecture")
    for setup in params.setups:  # each setup is a whole study of its own: every check applies to it
        resolved = params.setup(setup)
        try:
            for name in names:
                resolved.method_spec(name)
            for check in (_check_device, _check_files, _check_sizes, _check_optimizer, _check_split):
                check(resolved)
        except ParamsError as err:  # the embedded default's one empty setup needs no naming
            named = len(params.setups) > 1 or params.setups[setup]
            raise ParamsError(_in_setup(str(err), setup) if named else str(err)) from None
    return params


def _check_device(params: Params) -> None:
    name = params.train.device
    fix = "use auto, cpu, cuda or cuda:<index>"
    try:
        device = torch.device(name) if name != "auto" else None
    except RuntimeError:
        raise ParamsError(f"params.yaml key 'train.device': {name!r} is not a device; {fix}") from None
    if device is not None and device.type == "cuda":
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise ParamsError(f"params.yaml key 'train.device': {name!r}, but this machine has "
                              f"{count or 'no'} CUDA GPU{'s' * (count != 1)}; use auto or cpu"
                              + (f", or an index below {count}" if count else ""))
    elif device is not None and device.type == "mps" and not torch.backends.mps.is_available():
        raise ParamsError("params.yaml key 'train.device': this machine has no MPS device; use auto or cpu")
    elif device is not None and device.type not in ("cpu", "mps"):
        raise ParamsError(f"params.yaml key 'train.device': {name!r} is not supported; {fix}")


def _check_files(params: Params) -> None:
    for key, value in (("model.weights", params.model.weights), ("data.boxes_csv", params.data.boxes_csv),
                       ("transfer.data.boxes_csv", params.transfer.data.boxes_csv)):
        if value and not Path(value).is_file():
            raise ParamsError(f"params.yaml key '{key}': the file {value} does not exist; give the "
                              "path of an existing file (relative to the repository root), or null")


def _check_sizes(params: Params) -> None:
    """Architectures that cannot take the image size or width, patches that do not tile the
    image, batches larger than the training set: each would fail only once training has run."""
    size = params.loader.image_size
    _probe(params.model.architecture, size, params.model, "model.architecture")
    patch = params.evaluate.occlusion_patch
    if size % patch:
        divisors = [d for d in range(2, size // 2 + 1) if size % d == 0]
        raise ParamsError(f"params.yaml key 'evaluate.occlusion_patch': {patch} does not divide "
                          f"loader.image_size {size} into whole patches; use one of {divisors}")
    if params.data.dataset == "synthetic" and params.loader.batch_size > params.data.synthetic.train:
        raise ParamsError(f"params.yaml key 'loader.batch_size': {params.loader.batch_size} is larger than "
                          f"the training set (data.synthetic.train: {params.data.synthetic.train}), so an "
                          "epoch would have no full batch; lower it")


def _probe(arch: str, size: int, model: "ModelParams", key: str) -> None:
    """Build the architecture on the meta device (no memory, no compute) and pass it an image."""
    try:
        with torch.device("meta"):
            net = ARCHITECTURES.get(arch)(num_classes=2, image_size=size, width=model.width,
                                          batch_norm=model.batch_norm).eval()
            net(torch.zeros(1, 3, size, size))
    except (RuntimeError, ValueError) as err:
        raise ParamsError(f"params.yaml key '{key}': {arch} cannot take {size}-pixel images with "
                          f"model.width {model.width} ({err}); change the architecture, the image "
                          "size or model.width") from None


def _check_optimizer(params: Params) -> None:
    t = params.train
    if t.optimizer == "sgd" and t.nesterov and t.momentum == 0:
        raise ParamsError("params.yaml key 'train.nesterov': Nesterov momentum needs train.momentum > 0; "
                          "set train.momentum (e.g. 0.9) or train.nesterov: false")


def _check_split(params: Params) -> None:
    splits = dataset_splits(params.data.dataset)
    if params.attribute.split not in splits:
        raise ParamsError(f"params.yaml key 'attribute.split': {params.data.dataset} has no split "
                          f"{params.attribute.split!r}; use one of {', '.join(splits)}")


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


def params_with(overrides: dict[str, Any] | None = None, path: str | os.PathLike = PARAMS_FILE) -> Params:
    """The shipped params.yaml with `overrides` (a nested dict of the keys to change)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parents[1] / path
    return parse_params(merged(yaml.safe_load(path.read_text()), overrides or {}))


def load_params(path: str | os.PathLike = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run the stage from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise ParamsError(f"{path} is not valid YAML{line}: {getattr(err, 'problem', None) or err}") from None
    return parse_params(raw)


def run_configs(params: Params) -> list[RunConfig]:
    """The training matrix (`Params.cells`), in dvc.yaml's order.

    Each run's `train` names only its own cell of the matrix, so that adding a method, a setup
    or a seed, or moving a method between the two method lists, leaves the other runs' configs,
    and their DVC stages, unchanged.
    """
    setups = {name: params.setup(name) for name in params.setups}
    return [
        RunConfig(
            setup=setup, method=setups[setup].method_spec(method), seed=seed, data=setups[setup].data,
            loader=setups[setup].loader, model=setups[setup].model,
            train=setups[setup].train.model_copy(update={"methods": [method], "seeds": [seed], "one_seed_methods": []}),
        )
        for setup, method, seed in params.cells()
    ]


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


def read_stage_params(path: str | os.PathLike) -> SimpleNamespace:
    """A stage's params file (`setup_stage_params`), each section validated by its schema."""
    raw = json.loads(Path(path).read_text())
    return SimpleNamespace(**{key: Params.model_fields[key].annotation.model_validate(value)
                              for key, value in raw.items()})
