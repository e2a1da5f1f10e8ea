"""The typed schema of params.yaml, validated at the start of every stage.

Errors name the key, the allowed range or the valid names, and the fix. A run's resolved
configuration (`RunConfig`) is what one training run sees: the shared sections plus its own
method's parameters, so that a change to one method's params changes only that method's runs.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PARAMS_FILE = "params.yaml"


class ParamsError(ValueError):
    """A bad value in params.yaml, with the key, the problem and the fix."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(kind: str, name: str) -> str:
    from pipeline_lib import registries

    registry = registries.get(kind)
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(registry.names())}")
    return name


class SyntheticParams(Strict):
    num_classes: int = Field(10, ge=2, le=16)
    image_size: int = Field(64, ge=32)
    p_detail: float = Field(0.8, ge=0, le=1)
    train: int = Field(2000, ge=1)
    val: int = Field(1000, ge=1)
    test: int = Field(1000, ge=1)
    test_shift: int = Field(1000, ge=1)
    task: Literal["a", "b"] = "a"


class DataParams(Strict):
    dataset: str = "synthetic"
    root: str | None = None
    subset: int | None = Field(None, ge=1)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    boxes_csv: str | None = None
    download: bool = False
    seed: int = 0
    synthetic: SyntheticParams = SyntheticParams()

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        return _check_name("dataset", name)


class ShardParams(Strict):
    samples_per_shard: int = Field(2000, ge=1)
    max_bad_fraction: float = Field(0.01, ge=0, le=1)


class AugmentParams(Strict):
    random_crop: bool = True
    crop_padding: int = Field(4, ge=0)
    flip: bool = True


class LoaderParams(Strict):
    image_size: int = Field(64, ge=32)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    workers: int = Field(0, ge=0)
    shuffle_buffer: int = Field(2000, ge=1)
    in_memory: bool = True
    augment: AugmentParams = AugmentParams()


class ModelParams(Strict):
    width: float = Field(1.0, gt=0)
    batch_norm: bool = False
    weights: str | None = None
    # torchvision: the architecture's own init (torchvision's for VGG and ResNet); pytorch: every
    # layer's `reset_parameters`, PyTorch's default, which the collapsed VGG16 run of issue 13 used
    init: Literal["torchvision", "pytorch"] = "torchvision"


class TrainParams(Strict):
    architectures: list[str] = ["tinyvgg"]
    methods: list[str] = ["vanilla", "sgdrop"]
    seeds: list[int] = [0]
    epochs: int = Field(10, ge=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    schedule: Literal["constant", "step", "cosine"] = "cosine"
    step_size: int = Field(30, ge=1)
    gamma: float = Field(0.1, gt=0, le=1)
    probe_size: int = Field(16, ge=1)
    leakage_size: int = Field(256, ge=1)  # val images of the per-epoch label-leakage diagnostic
    device: str = "auto"
    compile: bool = False
    # Saving is seconds for a VGG16 with Adam and EMA state (about 2 GB); the last epoch is always saved.
    checkpoint_every: int = Field(1, ge=1)

    @field_validator("architectures")
    @classmethod
    def _known_architectures(cls, names: list[str]) -> list[str]:
        return [_check_name("architecture", n) for n in names]

    @field_validator("architectures", "methods", "seeds")
    @classmethod
    def _non_empty(cls, values: list) -> list:
        if not values:
            raise ValueError("must list at least one entry")
        return values


class AttributeParams(Strict):
    methods: list[str] = ["gradcam", "grad_x_act", "input_grad", "integrated_gradients", "lrp"]
    split: str = "test"
    max_images: int = Field(256, ge=1)
    ig_steps: int = Field(16, ge=2)
    grid_images: int = Field(8, ge=1)

    @field_validator("methods")
    @classmethod
    def _known_attributions(cls, names: list[str]) -> list[str]:
        return [_check_name("attribution", n) for n in names]


class EvaluateParams(Strict):
    area_threshold: float = Field(0.5, gt=0, lt=1)
    iou_threshold: float = Field(0.5, gt=0, le=1)
    top_fraction: float = Field(0.1, gt=0, lt=1)
    human_blur_sigma: float = Field(10.0, ge=0)  # Fel et al.'s 10 x 10 kernel at 64 px; 0: no blur
    coverage_threshold: float = 0.0
    coverage_batches: int = Field(10, ge=1)
    coverage_batch_size: int = Field(64, ge=1)
    occlusion_patch: int = Field(8, ge=1)
    occlusion_fractions: list[float] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    occlusion_images: int = Field(256, ge=1)  # class-stratified random test images
    leakage_images: int = Field(1024, ge=1)  # class-stratified random test images of the label-leakage metric
    clickme_root: str | None = None

    @field_validator("occlusion_fractions")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        if not values or any(not 0 <= v <= 1 for v in values) or sorted(values) != values:
            raise ValueError("must be increasing fractions in [0, 1]")
        return values


class TransferParams(Strict):
    enabled: bool = True
    data: DataParams = DataParams(synthetic=SyntheticParams(task="b"))
    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-3, gt=0)


class BenchParams(Strict):
    architecture: str = "tinyvgg"
    image_size: int = Field(64, ge=32)
    batch_size: int = Field(64, ge=1)
    warmup: int = Field(3, ge=0)
    steps: int = Field(10, ge=1)
    methods: list[str] | None = None


class Params(Strict):
    """The whole of params.yaml."""

    data: DataParams = DataParams()
    shard: ShardParams = ShardParams()
    loader: LoaderParams = LoaderParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    rho: float = Field(0.01, ge=0, lt=1)
    rho_start: float = Field(0.0, ge=0, lt=1)
    rho_end: float = Field(0.05, ge=0, lt=1)
    # rho for the runs of one architecture (the SGDrop paper's Table 12: 0.1 for ConvNeXt on
    # Imagenette and Imagewoof); a method's own `rho` still wins
    rho_by_architecture: dict[str, float] = {}
    methods: dict[str, dict[str, Any]] = {}
    attribute: AttributeParams = AttributeParams()
    evaluate: EvaluateParams = EvaluateParams()
    transfer: TransferParams = TransferParams()
    bench: BenchParams = BenchParams()

    @field_validator("rho_by_architecture")
    @classmethod
    def _rho_per_architecture(cls, values: dict[str, float]) -> dict[str, float]:
        for arch, rho in values.items():
            _check_name("architecture", arch)
            if not 0 <= rho < 1:
                raise ValueError(f"rho for {arch} must be in [0, 1), got {rho}")
        return values

    def method_spec(self, name: str, arch: str | None = None) -> "MethodSpec":
        """The resolved method of a run name (for runs of `arch`): its registered type and validated params."""
        from pipeline_lib.methods import METHODS

        entry = dict(self.methods.get(name, {}))
        kind = entry.pop("type", name)
        if kind not in METHODS:
            raise ParamsError(
                f"params.yaml methods.{name}: unknown method type {kind!r}; valid methods: "
                f"{', '.join(METHODS.names())} (set `type:` to one of them)"
            )
        cls = METHODS.get(kind)
        inherited = {key: getattr(self, key) for key in cls.shared_params if key not in entry}
        if "rho" in inherited and arch in self.rho_by_architecture:
            inherited["rho"] = self.rho_by_architecture[arch]
        try:
            params = cls.Params(**inherited, **entry)
        except ValidationError as err:
            raise ParamsError(_format(err, prefix=f"methods.{name}.")) from None
        return MethodSpec(name=name, type=kind, params=params.model_dump(exclude=cls.unused_params(params)))


class MethodSpec(Strict):
    name: str
    type: str
    params: dict[str, Any]


# Where and how often a run is saved: not part of what identifies its results.
EXECUTION_ONLY = {"checkpoint_every", "device"}


class RunConfig(Strict):
    """Everything one training run depends on; its hash identifies the run's params."""

    arch: str
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
    def run_dir(self) -> Path:
        return run_dir(self.data.dataset, self.arch, self.method.name, self.seed)


def run_dir(dataset: str, arch: str, method: str, seed: int) -> Path:
    return Path("runs") / dataset / arch / method / f"seed{seed}"


def _format(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        key = prefix + ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (remove it or check its spelling)"
        lines.append(f"params.yaml key '{key}': {msg} (got {got!r})")
    return "\n".join(lines)


def parse_params(raw: dict[str, Any]) -> Params:
    try:
        params = Params(**(raw or {}))
    except ValidationError as err:
        raise ParamsError(_format(err)) from None
    for name in params.train.methods:
        params.method_spec(name)
    return params


def load_params(path: str | os.PathLike = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found: run the stage from the repository root")
    return parse_params(yaml.safe_load(path.read_text()))


def run_configs(params: Params) -> list[RunConfig]:
    """The training matrix, architectures x methods x seeds, in dvc.yaml's order.

    Each run's `train` names only its own cell of the matrix, so that adding a method, an
    architecture or a seed leaves the other runs' configs, and their DVC stages, unchanged.
    """
    return [
        RunConfig(
            arch=arch, method=params.method_spec(method, arch), seed=seed, data=params.data,
            loader=params.loader, model=params.model,
            train=params.train.model_copy(update={"architectures": [arch], "methods": [method], "seeds": [seed]}),
        )
        for arch in params.train.architectures
        for method in params.train.methods
        for seed in params.train.seeds
    ]
