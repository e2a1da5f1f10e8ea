"""The training loop: resumable to identical weights, stops cleanly on NaN, logs what it says."""
import json

import pytest
import torch

from pipeline_lib.config.resolve import run_configs
from pipeline_lib.training.loop import CHECKPOINT, TrainingDiverged, train
from tests.conftest import tiny_params


# what mask_leakage returns for a head that reads the mask
LEAKY = {"unmasked": 0.1, "masked_true": 0.9, "follows_wrong": 0.8, "wrong_chance": 0.1, "follows_wrong_excess": 0.7}


def weights(path):
    return torch.load(path, weights_only=False)["model"]


def logged_steps(run_dir):
    rows = (run_dir / "live" / "plots" / "metrics" / "val_acc.tsv").read_text().splitlines()[1:]
    return [int(r.split("\t")[0]) for r in rows]


@pytest.mark.parametrize("method", ["sgdrop", "dropout"])
def test_killed_run_resumes_to_identical_weights(tiny_shards, in_tmp, method):
    cfg = run_configs(tiny_params(matrix={"methods": [method]}, train={"epochs": 3}))[0]
    train(cfg, tiny_shards, in_tmp / "straight")
    first = train(cfg, tiny_shards, in_tmp / "killed", stop_after=1).summary
    assert first["epochs"] == 1 and not (in_tmp / "killed" / "train.json").exists()
    train(cfg, tiny_shards, in_tmp / "killed")
    a, b = weights(in_tmp / "straight" / CHECKPOINT), weights(in_tmp / "killed" / CHECKPOINT)
    assert all(torch.equal(a[k], b[k]) for k in a)
    history = json.loads((in_tmp / "killed" / "train.json").read_text())
    assert history["epochs"] == 3
    assert logged_steps(in_tmp / "killed") == logged_steps(in_tmp / "straight") == [0, 1, 2]


def test_checkpoint_of_other_params_is_not_resumed(tiny_shards, in_tmp, caplog):
    cfg = run_configs(tiny_params(train={"epochs": 1}))[0]
    train(cfg, tiny_shards, in_tmp / "r")
    first = weights(in_tmp / "r" / CHECKPOINT)
    other = run_configs(tiny_params(train={"epochs": 1, "lr": 0.01}))[0]
    train(other, tiny_shards, in_tmp / "r")
    # Resumed, the finished checkpoint would have been kept as it was; retrained, it is other's.
    saved = torch.load(in_tmp / "r" / CHECKPOINT, weights_only=False)
    assert saved["identity"]["config"] == other.digest() != cfg.digest()
    assert not all(torch.equal(first[k], saved["model"][k]) for k in first)
    assert "its checkpoint was made with other params; training again" in caplog.text


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_shards, in_tmp, monkeypatch):
    cfg = run_configs(tiny_params(train={"epochs": 3}))[0]
    train(cfg, tiny_shards, in_tmp / "r", stop_after=1)
    good = weights(in_tmp / "r" / CHECKPOINT)
    import torch.nn.functional as F
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2.*last good checkpoint"):
        train(cfg, tiny_shards, in_tmp / "r")
    kept = torch.load(in_tmp / "r" / CHECKPOINT, weights_only=False)
    assert kept["epoch"] == 1 and all(torch.equal(good[k], kept["model"][k]) for k in good)


def test_logs_every_epoch_with_dvclive(tiny_shards, in_tmp):
    cfg = run_configs(tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 2}, rho=0.05))[0]
    final = train(cfg, tiny_shards, in_tmp / "r").summary
    assert final["rho"] == pytest.approx(0.05) and 0 < final["dropped_fraction"] < 0.05 + 0.01  # at most k = round(rho n)
    leak = ("leak_unmasked", "leak_masked_true", "leak_follows_wrong", "leak_wrong_chance", "leak_follows_wrong_excess")
    for name in ("train_loss", "train_step_acc", "train_clean_acc", "val_loss", "val_acc", "gap", "lr", "rho", "dropped_fraction",
                 "step_ms", "probe_area_ratio") + leak:
        rows = (in_tmp / "r" / "live" / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
        assert len(rows) == 3, name  # header + 2 epochs
    assert 0 <= final["probe_area_ratio"] <= 1
    assert final["leak_unmasked"] == pytest.approx(final["val_acc"])  # the leakage sample is all of val here
    assert json.loads((in_tmp / "r" / "train.json").read_text())["warnings"] == final["warnings"]


def test_a_run_whose_head_reads_the_mask_ends_with_a_warning(tiny_shards, in_tmp, monkeypatch):
    import pipeline_lib.training.loop as loop
    monkeypatch.setattr(loop, "mask_leakage", lambda *a, **k: LEAKY)
    cfg = run_configs(tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 1}))[0]
    (warning,) = train(cfg, tiny_shards, in_tmp / "r").summary["warnings"]
    assert "reads the label from where the mask is" in warning
    assert json.loads((in_tmp / "r" / "train.json").read_text())["warnings"] == [warning]
    vanilla = run_configs(tiny_params(train={"epochs": 1}))[0]
    final = train(vanilla, tiny_shards, in_tmp / "v").summary  # no label-guided mask: no diagnostic at all
    assert final["warnings"] == [] and "leak_unmasked" not in final


def test_the_train_stage_prints_the_leakage_warning_on_stderr(tiny_shards, in_tmp, monkeypatch):
    """The run's log (dvc repro's output) must say it, not only train.json."""
    from click.testing import CliRunner

    import pipeline_lib.training.loop as loop
    from stages.train import main
    monkeypatch.setattr(loop, "mask_leakage", lambda *a, **k: LEAKY)
    cfg = run_configs(tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 1}))[0]
    (in_tmp / "cfg.json").write_text(cfg.model_dump_json())
    result = CliRunner().invoke(main, ["--config", "cfg.json", "--shards", str(tiny_shards)])
    assert result.exit_code == 0, result.output
    assert f"WARNING: {cfg.run_dir}: label leakage through the training mask" in result.stderr


def test_checkpoint_every_n_epochs_saves_the_last_and_resumes_identically(tiny_shards, in_tmp):
    cfg = run_configs(tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 3, "checkpoint_every": 2}))[0]
    train(cfg, tiny_shards, in_tmp / "straight")
    train(cfg, tiny_shards, in_tmp / "killed", stop_after=1)
    assert not (in_tmp / "killed" / CHECKPOINT).exists()
    train(cfg, tiny_shards, in_tmp / "killed", stop_after=2)
    assert torch.load(in_tmp / "killed" / CHECKPOINT, weights_only=False)["epoch"] == 2
    epoch_2 = (in_tmp / "killed" / CHECKPOINT).read_bytes()
    train(cfg, tiny_shards, in_tmp / "killed", stop_after=3)  # logs epoch 3, saves it: the last
    (in_tmp / "killed" / CHECKPOINT).write_bytes(epoch_2)  # as if killed before that save
    train(cfg, tiny_shards, in_tmp / "killed")
    a, b = weights(in_tmp / "straight" / CHECKPOINT), weights(in_tmp / "killed" / CHECKPOINT)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert logged_steps(in_tmp / "killed") == [0, 1, 2]  # epoch 3 logged twice, kept once


def test_a_finished_run_is_not_retrained_on_another_device(tiny_shards, in_tmp):
    """DVC reruns the stage when `train.device` changes (a queued experiment on another GPU);
    the run must find its finished checkpoint and leave every output byte for byte as it was,
    so that the stages downstream stay up to date."""
    cfg = run_configs(tiny_params(train={"epochs": 2, "device": "auto"}))[0]
    train(cfg, tiny_shards, in_tmp / "r")
    outputs = [CHECKPOINT, "train.json", "live/probe_cams.npz", "live/metrics.json", "live/plots/metrics/val_acc.tsv"]
    before = {name: (in_tmp / "r" / name).read_bytes() for name in outputs}
    moved = run_configs(tiny_params(train={"epochs": 2, "device": "cpu", "checkpoint_every": 2}))[0]
    assert moved.digest() == cfg.digest()
    train(moved, tiny_shards, in_tmp / "r")
    assert all((in_tmp / "r" / name).read_bytes() == before[name] for name in outputs)


def test_probe_and_leakage_samples_are_seeded_class_stratified_random_draws():
    from pipeline_lib.data.loader import stratified_sample
    labels = torch.arange(4).repeat_interleave(10)  # stored class by class, as the shards are
    pick = stratified_sample(labels, 8, seed=0)
    assert torch.bincount(labels[pick], minlength=4).tolist() == [2, 2, 2, 2]
    assert sorted(labels[pick[:4]].tolist()) == [0, 1, 2, 3]  # the first images span the classes
    assert len(set(pick.tolist())) == 8 and torch.equal(pick, stratified_sample(labels, 8, seed=0))
    assert not torch.equal(pick, stratified_sample(labels, 8, seed=1))
    assert sorted(stratified_sample(labels, 100, seed=0).tolist()) == list(range(40))


def test_the_probe_leakage_and_clean_accuracy_batches_come_from_the_stratified_draw(tiny_shards, in_tmp, monkeypatch):
    """The synthetic splits interleave their classes, so a storage-order probe would look balanced
    here: check that the loop draws its samples with stratified_sample instead."""
    import pipeline_lib.training.loop as loop
    calls = []
    real = loop.stratified_sample
    monkeypatch.setattr(loop, "stratified_sample", lambda labels, n, seed: calls.append(n) or real(labels, n, seed))
    cfg = run_configs(tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 1, "leakage_size": 8}))[0]
    train(cfg, tiny_shards, in_tmp / "r")
    assert sorted(calls) == sorted([cfg.train.probe_size, 8, cfg.train.clean_size])


@pytest.mark.slow
@pytest.mark.parametrize("method", ["vanilla", "sgdrop"])
def test_the_gpu_path_runs_on_a_cpu_resumes_and_stays_close_to_fp32(tiny_shards, in_tmp, method):
    """bf16 autocast, channels_last and torch.compile, which no GPU has run since the loop changed,
    all on: two epochs, killed after the first and resumed, then the analysis. Against the same
    run in fp32: the per-epoch training loss within 1% (bf16 keeps 8 bits of mantissa, and SGDrop's
    masks may flip where attributions tie; 0.03% at most on 2026-12-06's CPU) and the accuracies
    within 2 of the 20 val or test images."""
    from pipeline_lib.metrics.run_metrics import run_metrics
    from stages.attribute import attribute_run

    params = tiny_params(matrix={"methods": [method]}, train={"epochs": 2},
                         attribute={"methods": ["gradcam"], "max_images": 8})
    fp32 = train(run_configs(params)[0], tiny_shards, in_tmp / "fp32")
    gpu_path = run_configs(tiny_params(matrix={"methods": [method]}, train={"epochs": 2, "autocast": True,
                                                                           "channels_last": True, "compile": True}))[0]
    train(gpu_path, tiny_shards, in_tmp / "gpu", stop_after=1)
    trained = train(gpu_path, tiny_shards, in_tmp / "gpu")
    assert trained.summary["epochs"] == 2 and logged_steps(in_tmp / "gpu") == [0, 1]
    for a, b in zip(fp32.history, trained.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=0.01)
        assert abs(b["val_acc"] - a["val_acc"]) <= 0.1
    maps, keys = attribute_run(trained, params.attribute)
    metrics = run_metrics(trained, params.evaluate, "test", 8, maps, keys)
    reference = run_metrics(fp32, params.evaluate, "test", 8, *attribute_run(fp32, params.attribute))
    assert abs(metrics["accuracy"]["test"] - reference["accuracy"]["test"]) <= 0.1


def test_the_gap_is_clean_train_accuracy_minus_val_accuracy(tiny_shards, in_tmp):
    """The training steps' running accuracy is on masked or dropped-out forwards (SGDrop, dropout),
    which biases a gap made from it downward: the gap uses a fixed train subset measured like val,
    in evaluation mode with nothing dropped."""
    from pipeline_lib.data.loader import Splits, stratified_sample
    from pipeline_lib.metrics.accuracy import evaluate

    cfg = run_configs(tiny_params(matrix={"methods": ["dropout"]}, methods={"dropout": {"p": 0.9}},
                                  train={"epochs": 2, "clean_size": 12}))[0]
    trained = train(cfg, tiny_shards, in_tmp / "r")
    for record in trained.history:
        assert record["gap"] == pytest.approx(record["train_clean_acc"] - record["val_acc"])
    split = Splits(tiny_shards, 32)["train"]
    pick = stratified_sample(split.labels, 12, cfg.seed + 2)
    clean = evaluate(trained.model, split.images[pick], split.labels[pick], trained.splits.normalize,
                     batch_size=64, device=trained.device)["acc"]
    assert trained.history[-1]["train_clean_acc"] == pytest.approx(clean)
    assert "train_step_acc" in trained.history[-1] and "train_acc" not in trained.history[-1]
