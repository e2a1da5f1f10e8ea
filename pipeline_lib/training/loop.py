"""The training loop: one loop for every method (see `pipeline_lib.methods` for the hooks).

- Adam or SGD (momentum, Nesterov) with weight decay; constant, step or cosine schedule per epoch.
- bf16 autocast and channels_last on a GPU (`train.autocast`, `train.channels_last`: `auto`), or
  on any device when set to true; deterministic algorithms on a CPU.
- A checkpoint after every epoch (or every `train.checkpoint_every`), written atomically and
  synced to the disk; a run finds its checkpoint and resumes (model, optimizer, schedule, method
  state such as the EMA, and RNG states), so a killed run ends with the same weights as an
  uninterrupted one. A checkpoint is this run's own only if its identity matches: the same
  settings, training code, data and starting weights (`pipeline_lib.training.identity`);
  any other is retrained over, saying what changed. A damaged checkpoint is named; within
  `dvc repro` an unfinished run's damaged checkpoint is set aside and the run starts again.
- The dvclive logs of a resumed run are rebuilt from the checkpoint's own per-epoch history, so a
  damaged or half-written log never blocks a resume and every epoch is logged once.
- A finished run is handed on as a `TrainedRun`: model, method, decoded splits and identity, so
  that the analysis steps of the same process read no checkpoint and decode no split again.
- A non-finite loss, non-finite weights or an exploded loss stop the run with `TrainingDiverged`,
  leaving the last good checkpoint.
- Per-epoch logs through dvclive: the running loss and accuracy of the training steps
  (`train_loss`, `train_step_acc`: on their masked or dropped-out forwards), the accuracy in
  evaluation mode of a fixed class-stratified train subset (`train_clean_acc`) and of val, the
  generalisation gap `gap` = train_clean_acc - val_acc, the attribution area ratio of a fixed probe batch
  (a class-stratified random sample of val) and, for a method whose mask follows the label
  (`Method.label_mask`), the label-leakage diagnostic (`leak_*`, pipeline_lib.metrics.leakage);
  a run whose head reads the mask ends with a warning, in its log and in train.json's `warnings`.
- Multi-process data parallelism under `torchrun` (NCCL on GPUs, gloo on CPUs) with
  DistributedDataParallel around the step module (`step.MethodStep`), whose forward runs the
  method's hooks, so the gradient all-reduce overlaps the backward. `loader.batch_size` is the
  global batch; every rank draws and augments the same global batch and trains on its slice.
  Parameters, hence the EMA, stay identical on every rank, and SGDrop's masks are per sample.
  Rank 0 alone writes checkpoints and logs.
- No host sync inside an epoch: losses, accuracies and the methods' statistics accumulate on the
  device and are read once per epoch; a GPU step's time comes from CUDA events on sampled steps.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pipeline_lib.attribution.latent import gradcam, upsample
from pipeline_lib.config.resolve import RunConfig
from pipeline_lib.config.schema import ParamsError
from pipeline_lib.data.loader import InMemoryLoader, Normalizer, Splits, StreamLoader, augment, stratified_sample
from pipeline_lib.errors import ClearError
from pipeline_lib.io import atomic_path, read_json, remove_temporaries, write_json
from pipeline_lib.methods import Method, build_method
from pipeline_lib.metrics.accuracy import evaluate
from pipeline_lib.metrics.leakage import leakage_warning, mask_leakage
from pipeline_lib.metrics.localization import area_ratio
from pipeline_lib.models import SplitModel, build_model, eval_mode
from pipeline_lib.training.identity import RunIdentity, run_identity
from pipeline_lib.training.step import MethodStep, train_step

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
PROBE_FILE = "probe_cams.npz"  # per-epoch Grad-CAM of the first probe images, in the dvclive folder


class TrainingDiverged(ClearError):
    pass


class CheckpointError(ClearError):
    pass


# An epoch whose mean loss is above this many times the chance-level loss ln(K) has exploded:
# Adam at a huge lr with batch norm trains on at chance with a finite loss of 1e12.
EXPLODED = 100


def select_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_optimizer(parameters, cfg) -> torch.optim.Optimizer:
    fused = {"fused": True} if torch.cuda.is_available() else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(parameters, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay, **fused)


def build_scheduler(optimizer, cfg) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@dataclass
class Run:
    """Everything a training run holds, for the loop, the checkpoint and the tests."""

    cfg: RunConfig
    identity: RunIdentity | None  # None for a run that is never saved (the overhead benchmark)
    model: SplitModel
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    step: nn.Module  # the forward of a training step (`MethodStep`), DDP-wrapped under torchrun
    bf16: bool = False  # autocast
    channels_last: bool = False
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    probe_cams: list[torch.Tensor] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {
            "identity": self.identity.to_dict(), "epoch": self.epoch, "history": self.history,
            "probe_cams": self.probe_cams,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "method": self.method.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.history, self.probe_cams = state["epoch"], state["history"], state["probe_cams"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def save(self, path: Path) -> None:
        with atomic_path(path, durable=True) as tmp:
            torch.save(self.state_dict(), tmp)


def on_for(setting, device: torch.device) -> bool:
    """`train.autocast` or `train.channels_last`: `auto` is on for a CUDA device only."""
    return device.type == "cuda" if setting == "auto" else setting


def build_run(cfg: RunConfig, num_classes: int, image_size: int, identity: RunIdentity | None = None) -> Run:
    seed_everything(cfg.seed)
    device = select_device(cfg.train.device)
    model = build_model(cfg.arch, num_classes, image_size, cfg.model).to(device)
    channels_last = on_for(cfg.train.channels_last, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # after the move, so that copies a method makes (SGDrop's EMA) are channels_last too
    method = build_method(cfg.method, model=model, num_classes=num_classes, image_size=image_size,
                          epochs=cfg.train.epochs)
    method.to(device)
    if cfg.train.compile:  # in place, so state_dict keys and checkpoints stay as they are
        model.encoder.compile()  # the training step calls the encoder, the head's body and fc, not model.forward
        model.head.body.compile()
    optimizer = build_optimizer(list(model.parameters()) + list(method.extra_modules.parameters()), cfg.train)
    return Run(cfg, identity, model, method, optimizer, build_scheduler(optimizer, cfg.train), device,
               MethodStep(model, method), bf16=on_for(cfg.train.autocast, device), channels_last=channels_last)


class DamagedCheckpoint(CheckpointError):
    pass


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's state; a damaged file (empty, truncated, not a checkpoint) is a
    `DamagedCheckpoint` naming it and the fix."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch.load raises many types for damaged data (zip, pickle, EOF)
        raise DamagedCheckpoint(
            f"{path} is damaged ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else 'unreadable'}); "
            f"restore it with `dvc checkout --force {path}`, or delete it to retrain the run") from None
    if not isinstance(state, dict) or "identity" not in state:
        raise DamagedCheckpoint(f"{path} is not a checkpoint of this pipeline (no run identity in it); restore it "
                                f"with `dvc checkout --force {path}`, or delete it to retrain the run")
    return state


def resume(run: Run, path: Path) -> None:
    """Resume `run` from its checkpoint at `path` when the checkpoint is this run's own.

    A checkpoint of another identity is left to be overwritten, saying what changed. A damaged
    one is an error naming the fix, except within `dvc repro`, which has already deleted the
    run's train.json (so whether the run had finished is unknown there): the damaged file is set
    aside (renamed, never deleted) and the run trains again."""
    if not path.exists():
        return
    try:
        state = read_checkpoint(path, run.device)
    except DamagedCheckpoint as err:
        if not os.environ.get("DVC_STAGE"):
            raise
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        path.rename(aside)
        log.warning(f"WARNING: {str(err).split(';')[0]}: set aside as {aside}; the run trains again (a finished "
                    f"run's checkpoint is also in DVC's cache: `dvc checkout --force {path}` restores it)")
        return
    if state["identity"] != run.identity.to_dict():
        changed = ", ".join(RunIdentity.from_dict(state["identity"]).differences(run.identity)) or "identity"
        log.warning(f"{path.parent}: its checkpoint was made with other {changed}; training again")
        return
    run.load_state_dict(state)


def readable_log(live_dir: Path) -> bool:
    """Whether a finished run's dvclive summary is there and whole (a full disk leaves it empty)."""
    try:
        read_json(live_dir / "metrics.json")
        return True
    except (ClearError, FileNotFoundError):
        return False


def relog(live, history: list[dict]) -> None:
    """Log the checkpoint's epochs again into a fresh dvclive folder: a resumed run's curves then
    hold every saved epoch once, and nothing of epochs logged after the checkpoint, or of a log
    damaged by a full disk or a kill."""
    for record in history:
        for key, value in record.items():
            live.log_metric(key, value, plot=key != "epoch")
        live.next_step()


def check_diverged(run: Run, record: dict, num_classes: int) -> None:
    """After an epoch, before it is logged or saved: the loss and the weights are finite, the loss
    has not exploded. Checked once an epoch, since a check per step would stall the GPU."""
    if not math.isfinite(record["train_loss"]):
        raise TrainingDiverged(f"loss became {record['train_loss']} at epoch {run.epoch + 1}")
    tensors = [*run.model.named_parameters(), *run.model.named_buffers()]
    broken = [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise TrainingDiverged(f"weights became non-finite ({broken[0]}) at epoch {run.epoch + 1}")
    limit = EXPLODED * math.log(num_classes)
    if not record["train_loss"] <= limit:
        raise TrainingDiverged(f"the mean training loss exploded to {record['train_loss']:.3g} at epoch "
                               f"{run.epoch + 1} (above {EXPLODED} x the chance level ln {num_classes})")


PROBE_STRIP = 4  # probe images whose Grad-CAM is kept every epoch, for the Figure 1 strip


@torch.no_grad()
def probe_gradcam(model, x, y) -> tuple[float, torch.Tensor]:
    """Mean Grad-CAM area ratio of the probe batch (the narrowing of attention over epochs),
    and the first probe images' maps at the latent resolution."""
    with eval_mode(model):
        cams = gradcam(model.head, model.encoder(x), y)
    return float(area_ratio(upsample(cams, x.shape[-1])).mean()), cams[:PROBE_STRIP].half().cpu()


@dataclass
class TrainedRun:
    """A finished (or, with `stop_after`, stopped) run as the analysis steps take it: the model in
    evaluation mode, the method in its final state (SGDrop's EMA, the last epoch's rho), the
    run's decoded splits and its identity. `summary` is train.json's content."""

    cfg: RunConfig
    model: SplitModel
    method: Method
    splits: Splits
    identity: RunIdentity
    history: list[dict]  # one record per epoch
    summary: dict

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir


def train(cfg: RunConfig, shard_dir: Path, out_dir: Path, *, progress: bool = False,
          stop_after: int | None = None) -> TrainedRun:
    """Train (or resume, or find finished) one run into out_dir.

    `stop_after` ends the call after that many epochs in total, as if killed (for tests).
    """
    splits = Splits(shard_dir, cfg.loader.image_size)
    lcfg = cfg.loader
    if lcfg.batch_size > splits.manifest["splits"]["train"]["count"]:
        raise ParamsError(f"params.yaml key 'loader.batch_size': {lcfg.batch_size} is larger than the training "
                          f"set ({splits.manifest['splits']['train']['count']} images in {shard_dir}); lower it")
    run = build_run(cfg, splits.num_classes, lcfg.image_size, run_identity(cfg, shard_dir))
    rank, world = init_distributed(run.device)
    if world > 1:  # the bucketed all-reduce overlaps the backward; rank 0's weights are broadcast
        run.step = DistributedDataParallel(run.step, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    if lcfg.batch_size % world:
        raise ValueError(f"loader.batch_size ({lcfg.batch_size}) must be a multiple of the {world} processes")
    if run.device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    ckpt = out_dir / CHECKPOINT
    if rank == 0:  # a process killed mid-write leaves its temporaries
        for path in (ckpt, out_dir / "train.json", out_dir / "live" / PROBE_FILE):
            remove_temporaries(path)
    resume(run, ckpt)
    saved = run.epoch or None  # the epoch of this run's own checkpoint
    val, normalize = splits["val"], splits.normalize
    probe = stratified_sample(val.labels, cfg.train.probe_size, cfg.seed)
    probe_x, probe_y = normalize(val.images[probe]).to(run.device), val.labels[probe].to(run.device)
    leak = stratified_sample(val.labels, cfg.train.leakage_size, cfg.seed + 1) if run.method.label_mask else None
    train_split = splits["train"]
    clean = stratified_sample(train_split.labels, cfg.train.clean_size, cfg.seed + 2)
    clean_x, clean_y = train_split.images[clean], train_split.labels[clean]

    if run.epoch < cfg.train.epochs and (stop_after is None or run.epoch < stop_after):
        if lcfg.in_memory:  # global batches, sliced per rank after augmentation
            loader = InMemoryLoader(splits["train"], lcfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True,
                                    device=run.device)
        else:  # shards split across ranks, local batches
            loader = StreamLoader(shard_dir, "train", lcfg.image_size, lcfg.batch_size // world, shuffle=True,
                                  seed=cfg.seed, workers=lcfg.workers, shuffle_buffer=lcfg.shuffle_buffer)
        from dvclive import Live

        live = Live(str(out_dir / "live"), save_dvc_exp=False, dvcyaml=None, report=None) if rank == 0 else None
        if live is not None:
            relog(live, run.history)
        with live or contextlib.nullcontext():
            while run.epoch < cfg.train.epochs and (stop_after is None or run.epoch < stop_after):
                try:
                    record = train_epoch(run, loader, normalize, progress and rank == 0, rank, world)
                    check_diverged(run, record, splits.num_classes)
                except TrainingDiverged as err:
                    foreign = f" ({ckpt} is another run's)" if ckpt.exists() else ""
                    kept = (f"the last good checkpoint, {ckpt} (epoch {saved}), is kept" if saved
                            else f"no checkpoint of this run was saved{foreign}")
                    raise TrainingDiverged(f"{out_dir}: {err}: the run is stopped and {kept}. Lower train.lr, "
                                           "or check the data for broken images.") from None
                record["train_clean_acc"] = evaluate(run.model, clean_x, clean_y, normalize,
                                                     batch_size=lcfg.eval_batch_size, device=run.device)["acc"]
                record.update({f"val_{k}": v for k, v in evaluate(
                    run.model, val.images, val.labels, normalize, batch_size=lcfg.eval_batch_size,
                    device=run.device).items()})
                record["gap"] = record["train_clean_acc"] - record["val_acc"]
                record["probe_area_ratio"], cams = probe_gradcam(run.model, probe_x, probe_y)
                if leak is not None:
                    record.update({f"leak_{k}": v for k, v in mask_leakage(
                        run.model, run.method, val.images[leak], val.labels[leak], normalize,
                        num_classes=splits.num_classes, batch_size=lcfg.eval_batch_size, seed=cfg.seed).items()})
                run.probe_cams.append(cams)
                run.scheduler.step()
                run.epoch += 1
                run.history.append(record)
                if live is not None:
                    for key, value in record.items():
                        live.log_metric(key, value, plot=key != "epoch")
                    live.next_step()
                    if run.epoch % cfg.train.checkpoint_every == 0 or run.epoch == cfg.train.epochs:
                        run.save(ckpt)
                        saved = run.epoch
    elif rank == 0 and run.history and not readable_log(out_dir / "live"):
        from dvclive import Live

        log.warning(f"WARNING: {out_dir / 'live'} was damaged: rebuilt from the checkpoint's history")
        with Live(str(out_dir / "live"), save_dvc_exp=False, dvcyaml=None, report=None) as live:
            relog(live, run.history)
    summary = {"epochs": run.epoch, "identity": run.identity.to_dict(), **run.history[-1],
               "warnings": leakage_warning(run.history)}
    if run.epoch == cfg.train.epochs and rank == 0:
        with atomic_path(out_dir / "live" / PROBE_FILE) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, cams=torch.stack(run.probe_cams).float().numpy(),
                                images=val.images[probe[:PROBE_STRIP]].numpy(),
                                labels=val.labels[probe[:PROBE_STRIP]].numpy())
        write_json(out_dir / "train.json", summary)
    state = {"model": run.model.state_dict(), "method": run.method.state_dict(), "epoch": run.epoch}
    return trained_run(cfg, splits, run.identity, state, run.history, summary, run.device)


TIMED_EVERY = 10  # GPU steps timed with CUDA events: one in ten, read at the end of the epoch


def train_epoch(run: Run, loader, normalize, progress: bool, rank: int = 0, world: int = 1) -> dict:
    run.model.train()
    run.method.start_epoch(run.epoch)
    loader.set_epoch(run.epoch)
    gen = torch.Generator().manual_seed(run.cfg.seed * 7919 + run.epoch)
    aug = run.cfg.loader.augment
    cuda = run.device.type == "cuda"
    loss_sum, correct = torch.zeros((), device=run.device), torch.zeros((), device=run.device, dtype=torch.long)
    steps, seen, timings, stats = 0, 0, [], {}
    bar = tqdm(loader, desc=f"epoch {run.epoch + 1}/{run.cfg.train.epochs}", disable=not progress, leave=False)
    epoch_start = time.perf_counter()
    for images, labels in bar:
        images = augment(images.to(run.device, non_blocking=True), gen, random_crop=aug.random_crop,
                         crop_padding=aug.crop_padding, flip=aug.flip)
        if world > 1 and isinstance(loader, InMemoryLoader):
            images, labels = images.chunk(world)[rank], labels.chunk(world)[rank]
        x, y = normalize(images), labels.to(run.device, non_blocking=True)
        if run.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        timed = steps % TIMED_EVERY == 0
        if timed:
            start = torch.cuda.Event(enable_timing=True) if cuda else time.perf_counter()
            if cuda:
                start.record()
        loss, logits = train_step(run, x, y)
        if timed:  # on a CPU the step has run when train_step returns
            end = torch.cuda.Event(enable_timing=True) if cuda else time.perf_counter()
            if cuda:
                end.record()
            timings.append((start, end))
        loss_sum += loss
        correct += (logits.argmax(1) == y).sum()
        steps, seen = steps + 1, seen + len(y)
        for k in run.method.logs:  # sums on the device: read once, at the end of the epoch
            stats[k] = stats.get(k, 0.0) + run.method.last[k]
    if cuda:
        torch.cuda.synchronize()  # the epoch's one sync: every sum and event below is final
    step_ms = [s.elapsed_time(e) if cuda else 1000 * (e - s) for s, e in timings]
    return {
        "epoch": run.epoch + 1, "train_loss": loss_sum.item() / steps, "train_step_acc": correct.item() / seen,
        "lr": run.optimizer.param_groups[0]["lr"], "step_ms": statistics.median(step_ms),
        # loader included: against step_ms, says whether data loading keeps up with the GPU
        "train_images_per_s": seen / (time.perf_counter() - epoch_start),
        **{k: float(v) / steps for k, v in stats.items()},
    }


def trained_run(cfg: RunConfig, splits: Splits, identity: RunIdentity, state: dict, history: list[dict],
                summary: dict, device: torch.device) -> TrainedRun:
    """The run as the analysis takes it, from its final state: a model of its own, uncompiled (the
    analysis hooks layers, which a compiled graph would bypass) and in evaluation mode, and the
    method as it stood at the last epoch. The same whether the run trained in this process or
    was read from its checkpoint."""
    model = build_model(cfg.arch, splits.num_classes, cfg.loader.image_size, cfg.model.model_copy(update={"weights": None}))
    model.load_state_dict(state["model"])
    model = model.to(device).eval()
    method = build_method(cfg.method, model=model, num_classes=splits.num_classes,
                          image_size=cfg.loader.image_size, epochs=cfg.train.epochs)
    method.load_state_dict(state["method"])
    method.to(device).start_epoch(state["epoch"] - 1)
    return TrainedRun(cfg, model, method, splits, identity, history, summary)


def load_finished(cfg: RunConfig, shard_dir: Path, device: torch.device | None = None) -> TrainedRun:
    """A finished run read from its checkpoint, for an analysis step run on its own (`train`
    hands a `TrainedRun` on instead). Its identity must be this run's: the same settings, training
    code, data and starting weights."""
    path = cfg.run_dir / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (dvc repro)")
    splits = Splits(shard_dir, cfg.loader.image_size)
    identity = run_identity(cfg, shard_dir)
    state = read_checkpoint(path)
    if state["identity"] != identity.to_dict():
        changed = ", ".join(RunIdentity.from_dict(state["identity"]).differences(identity))
        raise CheckpointError(f"{path} was trained with other {changed} than this run has now: train the run "
                              "again (dvc repro)")
    if state["epoch"] < cfg.train.epochs:
        raise CheckpointError(f"{path} holds epoch {state['epoch']} of {cfg.train.epochs}: the run is unfinished")
    summary = read_json(cfg.run_dir / "train.json") if (cfg.run_dir / "train.json").exists() else {}
    return trained_run(cfg, splits, identity, state, state["history"], summary,
                       device or select_device(cfg.train.device))
