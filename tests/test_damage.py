"""Reliability under damage: a damaged checkpoint, shard, log or params value, a full disk and a
Python without the project's packages each end in one line naming the file or key and the fix,
and lose nothing; where `dvc repro` can mend on its own without losing anything, it does."""
import errno
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pipeline_lib.config.resolve import run_configs
from pipeline_lib.config.schema import ParamsError
from pipeline_lib.data import DATASETS, Sample, Source
from pipeline_lib.data.files import EmptyClassFolder, list_images
from pipeline_lib.data.loader import Splits
from pipeline_lib.data.shards import DamagedShards, write_shards
from pipeline_lib.io import DiskFull, write_json
from pipeline_lib.training.loop import CHECKPOINT, CheckpointError, load_finished, train
from tests.conftest import tiny_params

ROOT = Path(__file__).resolve().parents[1]


def one_line(result, *fragments) -> str:
    """A stage's result that failed with one line (no traceback) holding every fragment."""
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def train_stage(cfg, shards):
    """`python -m stages.train` of a run, in the working directory."""
    from stages.train import main

    write_json(Path("cfg.json"), cfg.model_dump())
    return CliRunner().invoke(main, ["--config", "cfg.json", "--shards", str(shards)])


# 1. Damaged checkpoints ----------------------------------------------------------------------------

DAMAGE = {"empty": lambda data: b"", "truncated": lambda data: data[: len(data) // 2],
          "random bytes": lambda data: os.urandom(len(data))}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_is_named_with_its_fix(tiny_shards, in_tmp, damage):
    cfg = run_configs(tiny_params(train={"epochs": 2}))[0]
    train(cfg, tiny_shards, cfg.run_dir)
    ckpt = cfg.run_dir / CHECKPOINT
    damaged = DAMAGE[damage](ckpt.read_bytes())
    ckpt.write_bytes(damaged)
    one_line(train_stage(cfg, tiny_shards), str(ckpt), "is damaged", f"dvc checkout --force {ckpt}", "delete it")
    with pytest.raises(CheckpointError, match=f"dvc checkout --force {ckpt}"):
        load_finished(cfg, tiny_shards)
    assert ckpt.read_bytes() == damaged  # left as it was, for the user to restore or delete


def test_within_dvc_repro_a_damaged_checkpoint_is_set_aside_and_the_run_trains_again(tiny_shards, in_tmp,
                                                                                       monkeypatch, caplog):
    """DVC deletes a stage's train.json before running it, so within `dvc repro` whether the run had
    finished is unknown: the damaged file is renamed, never deleted, and the run trains again."""
    cfg = run_configs(tiny_params(train={"epochs": 2}))[0]
    train(cfg, tiny_shards, cfg.run_dir, stop_after=1)
    ckpt = cfg.run_dir / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    monkeypatch.setenv("DVC_STAGE", "run@default-vanilla-0")
    trained = train(cfg, tiny_shards, cfg.run_dir)
    assert trained.summary["epochs"] == 2
    (aside,) = cfg.run_dir.glob(f"{CHECKPOINT}.damaged-*")
    assert len(aside.read_bytes()) == 100  # never deleted
    assert f"{ckpt} is damaged" in caplog.text and "set aside" in caplog.text
    assert f"dvc checkout --force {ckpt}" in caplog.text


# 2. Shards are checked against their manifest -------------------------------------------------------

def copy_shards(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def member_offsets(tar_path: Path) -> list[int]:
    with tarfile.open(tar_path) as tar:
        return [m.offset for m in tar.getmembers()]


def test_a_corrupt_tar_header_is_named_not_a_shorter_split(tiny_shards, in_tmp):
    """The probe of the issue: 8 flipped bytes in a member's header made the loader read half the
    training split without a word."""
    shards = copy_shards(tiny_shards, in_tmp / "shards")
    tar = shards / "train-00000.tar"
    data = bytearray(tar.read_bytes())
    header = member_offsets(tar)[len(member_offsets(tar)) // 2]
    data[header + 100:header + 108] = bytes(b ^ 0xFF for b in data[header + 100:header + 108])
    tar.write_bytes(bytes(data))
    with pytest.raises(DamagedShards, match=rf"{tar} does not match its manifest.*dvc checkout --force {shards}"):
        Splits(shards, 32)
    cfg = run_configs(tiny_params())[0]
    one_line(train_stage(cfg, shards), str(tar), "does not match its manifest", "dvc checkout --force")


def test_a_flipped_label_byte_is_caught(tiny_shards, in_tmp):
    shards = copy_shards(tiny_shards, in_tmp / "shards")
    tar = shards / "train-00000.tar"
    with tarfile.open(tar) as t:
        label = next(m for m in t.getmembers() if m.name.endswith(".cls"))
    data = bytearray(tar.read_bytes())
    data[label.offset_data] = ord("9") if data[label.offset_data] != ord("9") else ord("8")
    tar.write_bytes(bytes(data))
    with pytest.raises(DamagedShards, match=str(tar)):
        Splits(shards, 32)


def test_a_split_shorter_than_its_manifest_is_an_error(tiny_shards, in_tmp):
    """The count is checked as the split is decoded, after the digests (a manifest edited by hand)."""
    shards = copy_shards(tiny_shards, in_tmp / "shards")
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["splits"]["val"]["count"] += 5
    write_json(shards / "manifest.json", manifest)
    with pytest.raises(DamagedShards, match=r"split 'val' .* holds 20 samples where its manifest lists 25"):
        Splits(shards, 32)["val"]


# 3. A damaged dvclive log never blocks a resume --------------------------------------------------------

@pytest.mark.parametrize("damaged", ["live/metrics.json", "live/plots/metrics/val_acc.tsv"])
def test_a_damaged_dvclive_file_is_rebuilt_from_the_checkpoints_history(tiny_shards, in_tmp, damaged):
    cfg = run_configs(tiny_params(train={"epochs": 3}))[0]
    train(cfg, tiny_shards, in_tmp / "r", stop_after=2)
    (in_tmp / "r" / damaged).write_bytes(b"")  # what a full disk leaves
    train(cfg, tiny_shards, in_tmp / "r")
    rows = (in_tmp / "r" / "live" / "plots" / "metrics" / "val_acc.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == [0, 1, 2]
    assert json.loads((in_tmp / "r" / "live" / "metrics.json").read_text())["step"] == 2


def test_a_finished_runs_damaged_dvclive_summary_is_rebuilt_and_its_checkpoint_kept(tiny_shards, in_tmp, caplog):
    cfg = run_configs(tiny_params(train={"epochs": 2}))[0]
    train(cfg, tiny_shards, in_tmp / "r")
    kept = (in_tmp / "r" / CHECKPOINT).read_bytes()
    whole = json.loads((in_tmp / "r" / "live" / "metrics.json").read_text())
    (in_tmp / "r" / "live" / "metrics.json").write_bytes(b"")
    train(cfg, tiny_shards, in_tmp / "r")
    assert json.loads((in_tmp / "r" / "live" / "metrics.json").read_text()) == whole
    assert (in_tmp / "r" / CHECKPOINT).read_bytes() == kept and "rebuilt from the checkpoint's history" in caplog.text


# 4. A full disk is named, and leaves nothing half-written ---------------------------------------------

def test_a_full_disk_on_a_checkpoint_save_is_one_line_and_keeps_the_last_checkpoint(tiny_shards, in_tmp,
                                                                                  monkeypatch):
    cfg = run_configs(tiny_params(train={"epochs": 2}))[0]
    train(cfg, tiny_shards, cfg.run_dir, stop_after=1)
    ckpt = cfg.run_dir / CHECKPOINT
    good = ckpt.read_bytes()
    real_save = torch.save
    for error in (OSError(errno.ENOSPC, "No space left on device"),
                  RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 3264 vs 3152"),
                  RuntimeError("basic_ios::clear: iostream error")):
        def full(obj, f, *a, error=error, **k):
            real_save({"half": torch.zeros(10)}, f)  # something was written before the disk filled
            raise error
        monkeypatch.setattr(torch, "save", full)
        with pytest.raises(DiskFull, match=rf"could not write {ckpt}.*MB free on the filesystem of .*free some space"):
            train(cfg, tiny_shards, cfg.run_dir)
        assert ckpt.read_bytes() == good and not list(cfg.run_dir.glob(".*.tmp"))
    message = one_line(train_stage(cfg, tiny_shards), str(ckpt), "free some space")
    assert "Nothing half-written" in message


def test_a_full_disk_on_a_shard_write_is_one_line_and_keeps_the_old_shards(in_tmp, monkeypatch):
    import webdataset

    samples = [("train", Sample(f"k{i}", png(i), "png", i % 2)) for i in range(4)]
    source = Source(name="toy", classes=["a", "b"], splits=["train"], mean=(0.5,) * 3, std=(0.2,) * 3,
                    read=lambda: iter(samples))
    write_shards(source, in_tmp / "s", params={}, samples_per_shard=10, max_bad_fraction=0, progress=False)
    before = {p.name: p.read_bytes() for p in (in_tmp / "s").iterdir()}

    def full(self, obj):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(webdataset.ShardWriter, "write", full)
    with pytest.raises(DiskFull, match=rf"could not write {in_tmp / 's'}: no space left on the device"):
        write_shards(source, in_tmp / "s", params={}, samples_per_shard=10, max_bad_fraction=0, progress=False)
    assert {p.name: p.read_bytes() for p in (in_tmp / "s").iterdir()} == before
    assert not (in_tmp / "s.partial").exists()


# 5. Bad input never passes --------------------------------------------------------------------------

def params_error(**overrides) -> str:
    with pytest.raises(ParamsError) as err:
        tiny_params(**overrides)
    return str(err.value)


@pytest.mark.parametrize("overrides, fragments", [
    ({"matrix": {"seeds": [-1]}}, ["matrix.seeds.0", "greater than or equal to 0"]),
    ({"matrix": {"seeds": [0, 0]}}, ["matrix.seeds", "lists 0 more than once"]),
    ({"matrix": {"methods": ["vanilla", "vanilla"]}}, ["matrix.methods", "lists vanilla more than once"]),
    ({"matrix": {"one_seed_methods": ["dropout", "dropout"]}}, ["matrix.one_seed_methods", "more than once"]),
    ({"train": {"epochs": "6"}}, ["train.epochs", "valid integer", "'6'"]),
    ({"train": {"epochs": 2.0}}, ["train.epochs", "valid integer"]),
    ({"train": {"epochs": True}}, ["train.epochs", "valid integer"]),
    ({"train": {"lr": float("inf")}}, ["train.lr", "finite number"]),
    ({"train": {"lr": float("nan")}}, ["train.lr", "finite number"]),
    ({"train": {"lr": "0.1"}}, ["train.lr", "valid number"]),
    ({"rho": True}, ["rho", "valid number"]),
    ({"transfer": {"lr": float("inf")}}, ["transfer.lr", "finite number"]),
])
def test_bad_numbers_seeds_and_lists_are_refused_naming_the_key(overrides, fragments):
    msg = params_error(**overrides)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)


def test_yaml_numbers_in_exponent_form_are_numbers_as_dvc_reads_them(tmp_path):
    """PyYAML reads `1e-4` as text (YAML 1.1), DVC as a number (YAML 1.2): params.yaml is read as DVC does."""
    from pipeline_lib.config.schema import load_yaml

    assert load_yaml("lr: 1e-4\nwd: 5.0e-05\nn: 6\ns: '6'") == {"lr": 1e-4, "wd": 5e-05, "n": 6, "s": "6"}


def png(i: int, size=(8, 8), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (i % 255, 0, 0, 255)[: len(mode)] if mode not in ("L", "P") else i % 255).save(buf, format="PNG")
    return buf.getvalue()


def test_an_empty_class_folder_is_named(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / "root" / c).mkdir(parents=True)
    (tmp_path / "root" / "cat" / "1.png").write_bytes(png(1))
    with pytest.raises(EmptyClassFolder, match=rf"{tmp_path / 'root' / 'dog'} holds no images.*number of classes"):
        list_images(tmp_path / "root")
    archive = tmp_path / "root.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "root", arcname="root")
    with pytest.raises(EmptyClassFolder, match=rf"{archive}/root/dog holds no images"):
        list_images(archive)


def test_images_of_other_modes_are_converted_and_counted_and_tiny_ones_are_bad(tmp_path):
    samples = [("train", Sample("rgba", png(1, mode="RGBA"), "png", 0)),
               ("train", Sample("gray", png(2, mode="L"), "png", 1)),
               ("train", Sample("palette", png(3, mode="P"), "png", 0)),
               ("train", Sample("rgb", png(4), "png", 1)),
               ("train", Sample("dot", png(5, size=(1, 1)), "png", 1))]
    source = Source(name="toy", classes=["a", "b"], splits=["train"], mean=(0.5,) * 3, std=(0.2,) * 3,
                    read=lambda: iter(samples))
    manifest = write_shards(source, tmp_path / "s", params={}, samples_per_shard=10, max_bad_fraction=0.5,
                            min_image_size=4, progress=False)
    assert manifest["converted_to_rgb"] == {"L": 1, "P": 1, "RGBA": 1}
    assert manifest["bad_images"]["count"] == 1 and "1x1 pixels, smaller than data.min_image_size (4)" in \
        manifest["bad_images"]["items"][0]["error"]
    data = Splits(tmp_path / "s", 8)["train"]
    assert data.keys == ["rgba", "gray", "palette", "rgb"] and data.images.shape == (4, 3, 8, 8)


# 6. A Python without the project's packages ----------------------------------------------------------

def test_a_stage_run_by_a_python_without_the_packages_says_what_to_do(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    done = subprocess.run([str(bare / "bin" / "python"), "-m", "stages.check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "make repro" in lines[0] and ".venv" in lines[0] and "torch" in lines[0], done.stderr
