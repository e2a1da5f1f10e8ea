"""The checks of params.yaml beyond its schema, run before anything else: registered names
(datasets, architectures, methods, attributions), devices, files, what an architecture takes,
and each setup as a whole study of its own. Every stage validates its params through
`load_params`; tests and scripts start from the shipped file with `params_with`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pipeline_lib.attribution import ATTRIBUTIONS
from pipeline_lib.config.resolve import method_spec
from pipeline_lib.config.schema import (
    PARAMS_FILE, ModelParams, Params, ParamsError, in_setup, merged, parse_schema, read_params_file,
)
from pipeline_lib.data import DATASETS, dataset_splits
from pipeline_lib.methods import METHODS, MethodNeeds
from pipeline_lib.models import ARCHITECTURES


def parse_params(raw: dict[str, Any] | None) -> Params:
    params = parse_schema(raw)
    names = list(dict.fromkeys([*params.matrix.methods, *params.matrix.one_seed_methods, *params.methods]))
    for name in dict.fromkeys([*names, *(params.bench.methods or [])]):
        method_spec(params, name)
    for setup in params.setups:  # each setup is a whole study of its own: every check applies to it
        resolved = params.setup(setup)
        try:
            for name in names:
                method_spec(resolved, name)
            for check in (_check_names, _check_device, _check_files, _check_sizes, _check_optimizer, _check_split):
                check(resolved)
        except ParamsError as err:  # the embedded default's one empty setup needs no naming
            named = len(params.setups) > 1 or params.setups[setup]
            raise ParamsError(in_setup(str(err), setup) if named else str(err)) from None
    return params


def params_warnings(params: Params) -> list[str]:
    """What valid params come to that a user should know before training: settings that do not
    apply to a setup's architecture, and what each method of the matrix does on the setup's latent
    map (`Method.check_latent`: a block clipped to the map, a rate that drops nothing)."""
    out = []
    names = [*params.matrix.methods, *params.matrix.one_seed_methods]
    for setup in params.setups:
        resolved = params.setup(setup)
        where = f"setup {setup!r}: " if len(params.setups) > 1 or params.setups[setup] else ""
        arch, model = resolved.model.architecture, resolved.model
        if arch.startswith("timm/"):
            out += [f"{where}model.width {model.width} does not apply to {arch}: a timm model is built at its own "
                    "width (timm's names say it, e.g. timm/mobilenetv3_small_050)"] if model.width != 1.0 else []
            out += [f"{where}model.batch_norm: false does not apply to {arch}: a timm model keeps its own norms"
                    ] if not model.batch_norm else []
            out += [f"{where}LRP on {arch} is approximate: zennit has no canonizer for timm's blocks "
                    "(pipeline_lib/models/timm_models.py)"] if "lrp" in resolved.attribute.methods else []
        shape = _latent(arch, resolved.loader.image_size, model)
        for name in names:
            spec = method_spec(resolved, name)
            cls = METHODS.get(spec.type)
            try:
                out += [f"{where}methods.{name}: {w}" for w in cls.check_latent(cls.Params(**spec.params), shape)]
            except MethodNeeds as err:
                raise ParamsError(f"params.yaml, {where}methods.{name}: {err}") from None
    return out


def _latent(arch: str, size: int, model: ModelParams) -> tuple[int, int, int]:
    """(C, H, W) of the architecture's latent map, on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        net = ARCHITECTURES.get(arch)(num_classes=2, image_size=size, width=model.width,
                                      batch_norm=model.batch_norm).eval()
        return tuple(net.encoder(torch.zeros(1, 3, size, size)).shape[1:])


def load_params(path: str | os.PathLike = PARAMS_FILE) -> Params:
    return parse_params(read_params_file(path))


def params_with(overrides: dict[str, Any] | None = None, path: str | os.PathLike = PARAMS_FILE) -> Params:
    """The shipped params.yaml with `overrides` (a nested dict of the keys to change)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parents[2] / path
    return parse_params(merged(read_params_file(path), overrides or {}))


def _check_name(registry, name: str, key: str) -> None:
    if name not in registry:
        raise ParamsError(f"params.yaml key '{key}': {registry.unknown(name)}")


def _check_names(params: Params) -> None:
    _check_name(DATASETS, params.data.dataset, "data.dataset")
    _check_name(DATASETS, params.transfer.data.dataset, "transfer.data.dataset")
    _check_name(ARCHITECTURES, params.model.architecture, "model.architecture")
    for i, name in enumerate(params.attribute.methods):
        _check_name(ATTRIBUTIONS, name, f"attribute.methods.{i}")


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


def _probe(arch: str, size: int, model: ModelParams, key: str) -> None:
    """Build the architecture on the meta device (no memory, no compute), check that it follows
    the model contract (`pipeline_lib.models`), and pass it an image."""
    try:
        with torch.device("meta"):
            net = ARCHITECTURES.get(arch)(num_classes=2, image_size=size, width=model.width,
                                          batch_norm=model.batch_norm).eval()
            missing = contract_gaps(net)
            if missing:
                raise ParamsError(f"params.yaml key '{key}': {arch} does not follow the model contract of "
                                  f"pipeline_lib/models/__init__.py: it lacks {', '.join(missing)}; its builder "
                                  "must return a SplitModel that declares them")
            net(torch.zeros(1, 3, size, size))
    except (RuntimeError, ValueError) as err:
        raise ParamsError(f"params.yaml key '{key}': {arch} cannot take {size}-pixel images with "
                          f"model.width {model.width} ({err}); change the architecture, the image "
                          "size or model.width") from None


def contract_gaps(net) -> list[str]:
    """The parts of the model contract that `net` lacks."""
    head = getattr(net, "head", None)
    parts = {"encoder": getattr(net, "encoder", None), "head.pre_logits": getattr(head, "pre_logits", None),
             "head.fc (an nn.Linear)": getattr(head, "fc", None) if isinstance(getattr(head, "fc", None), torch.nn.Linear)
             else None, "head.gap_linear": getattr(head, "gap_linear", None), "num_features": getattr(net, "num_features", None),
             "feature_info (activations, last_conv, stages, canonizers)": getattr(net, "feature_info", None)}
    return [name for name, part in parts.items() if part is None]


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
