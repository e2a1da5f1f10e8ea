"""What a user types never deletes their work, corrupt data never passes silently, and bad params
fail before anything runs, each with one line naming the key or file and the fix (issue 16)."""
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from pipeline_lib.config.checks import load_params, parse_params
from pipeline_lib.config.resolve import run_configs, setup_stage_params
from pipeline_lib.config.schema import ParamsError
from pipeline_lib.data import DATASETS, Sample, Source
from pipeline_lib.data.files import BadArchive, list_images, read_images
from pipeline_lib.data.shards import TooManyBadImages, write_shards
from pipeline_lib.io import STAGE_MARKER, OutputRefused, atomic_path, write_json
from pipeline_lib.models import ARCHITECTURES
from pipeline_lib.training import loop
from pipeline_lib.training.loop import CHECKPOINT, CheckpointError, TrainingDiverged, load_finished, train
from tests.conftest import tiny_params, tiny_raw


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (i % 255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def toy_source(samples):
    return Source(name="toy", classes=["a", "b"], splits=["train"], mean=(0.5,) * 3, std=(0.2,) * 3,
                  read=lambda: iter(samples))


def invoke(command, args, params: dict | None = None):
    """Run a stage's command in the working directory, with `params` as its params.yaml."""
    if params is not None:
        with open("params.yaml", "w") as f:
            yaml.safe_dump(params, f)
    return CliRunner().invoke(command, args)


def shard_params(raw: dict) -> str:
    """The shard stage's params file (what `configure` writes) of the default setup of `raw`."""
    write_json(Path("shard_main.json"), setup_stage_params(parse_params(raw))["default"]["shard_main"])
    return "shard_main.json"


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    message = result.output.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# 1. Nothing a user types deletes their work -------------------------------------------------------

def test_configure_refuses_to_replace_a_folder_it_did_not_write(in_tmp):
    from stages.configure import main

    (in_tmp / "thesis.tex").write_text("four years of work")
    (in_tmp / "src").mkdir()
    (in_tmp / "src" / "main.py").write_text("print('hello')")
    result = invoke(main, ["--out", "."], tiny_raw())
    assert_one_line_error(result, "refusing to replace", str(in_tmp), "--out")
    assert (in_tmp / "thesis.tex").read_text() == "four years of work" and (in_tmp / "src").is_dir()
    assert_one_line_error(invoke(main, ["--out", "src"]), "refusing", "src")
    assert (in_tmp / "src" / "main.py").exists()


def test_configure_replaces_its_own_output_including_a_dvc_restored_one(in_tmp):
    """DVC deletes a stage's outs before running it, and restores them from its cache with every
    file they held: the marker lives inside the folder, so a restored folder is still ours."""
    from stages.configure import main

    assert invoke(main, ["--out", "configs"], tiny_raw()).exit_code == 0
    assert (in_tmp / "configs" / STAGE_MARKER).read_text().strip() == "configure"
    (in_tmp / "configs" / "default" / "stale.json").write_text("{}")
    assert invoke(main, ["--out", "configs"]).exit_code == 0  # its own output: replaced
    assert not (in_tmp / "configs" / "default" / "stale.json").exists()
    assert list((in_tmp / "configs").rglob("seed0.json")) and not (in_tmp / "configs.partial").exists()


def test_shard_refuses_the_data_root_and_another_stages_output(tmp_path):
    raw = tmp_path / "data" / "raw" / "imagenette.tar"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"the only copy")
    samples = [("train", Sample(f"k{i}", png(i), "png", i % 2)) for i in range(4)]
    with pytest.raises(OutputRefused, match="refusing to replace .*data"):
        write_shards(toy_source(samples), tmp_path / "data", params={}, samples_per_shard=10,
                     max_bad_fraction=0, progress=False)
    assert raw.read_bytes() == b"the only copy"
    write_json(tmp_path / "configs" / "x.json", {})
    (tmp_path / "configs" / STAGE_MARKER).write_text("configure\n")
    with pytest.raises(OutputRefused):
        write_shards(toy_source(samples), tmp_path / "configs", params={}, samples_per_shard=10,
                     max_bad_fraction=0, progress=False)
    assert (tmp_path / "configs" / "x.json").exists()
    write_shards(toy_source(samples), tmp_path / "s", params={}, samples_per_shard=10, max_bad_fraction=0, progress=False)
    write_shards(toy_source(samples), tmp_path / "s", params={}, samples_per_shard=10, max_bad_fraction=0, progress=False)


def test_the_shard_stage_says_so_in_one_line(in_tmp):
    from stages.shard import main

    (in_tmp / "data" / "raw").mkdir(parents=True)
    (in_tmp / "data" / "raw" / "notes.txt").write_text("mine")
    assert_one_line_error(invoke(main, ["--params", shard_params(tiny_raw()), "--out", "data"]), "refusing", "data")
    assert (in_tmp / "data" / "raw" / "notes.txt").exists()


def test_the_report_stage_never_deletes_folders_it_did_not_write(in_tmp):
    from stages.report import main

    (in_tmp / "figures").mkdir()
    (in_tmp / "figures" / "plot_for_the_paper.pdf").write_text("mine")
    (in_tmp / "configs").mkdir()
    result = invoke(main, ["--out", ".", "--configs", "configs"], tiny_raw())
    assert_one_line_error(result, "refusing", "figures")
    assert (in_tmp / "figures" / "plot_for_the_paper.pdf").exists()


# 2. Truncated or foreign archives fail with a message naming the file -----------------------------

def image_tar(path, n=6, mode="w"):
    with tarfile.open(path, mode) as tar:
        for i in range(n):
            data = png(i)
            info = tarfile.TarInfo(f"top/c{i % 2}/img{i}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_archive_cut_at_a_member_boundary_is_refused(tmp_path):
    whole = image_tar(tmp_path / "whole.tar")
    assert len(list_images(whole)) == 6
    data = whole.read_bytes()
    ends = [m.offset_data + -(-m.size // 512) * 512 for m in tarfile.open(whole).getmembers()]
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: ends[2]])  # three whole members, then nothing: tarfile says nothing
    with pytest.raises(BadArchive, match=rf"{cut}.*truncated"):
        list_images(cut)
    for inside in (100, 600):  # cut in a member's header, in its data
        cut.write_bytes(data[: ends[2] + inside])
        with pytest.raises(BadArchive, match=str(cut)):
            list_images(cut)
        with pytest.raises(BadArchive, match=str(cut)):
            dict(read_images(cut, [f"top/c{i % 2}/img{i}.png" for i in range(6)]))


def test_a_truncated_tgz_and_a_file_that_is_no_tar_are_named(tmp_path):
    tgz = image_tar(tmp_path / "d.tgz", mode="w:gz")
    tgz.write_bytes(tgz.read_bytes()[:-40])
    with pytest.raises(BadArchive, match=str(tgz)):
        list_images(tgz)
    notes = tmp_path / "imagenette.tar"
    notes.write_text("not an archive at all")
    with pytest.raises(BadArchive, match=rf"{notes} is a file but not a tar archive"):
        DATASETS.get("imagefolder")(parse_params(tiny_raw(data={"dataset": "imagefolder", "root": str(notes)})).data)


# 3. A checkpoint of other params is never used --------------------------------------------------

def test_load_finished_refuses_a_checkpoint_of_other_params(tiny_shards, in_tmp):
    cfg = run_configs(tiny_params(train={"epochs": 1}))[0]
    train(cfg, tiny_shards, cfg.run_dir)
    load_finished(cfg, tiny_shards)
    other = run_configs(tiny_params(train={"epochs": 1, "lr": 0.01}))[0]
    assert other.run_dir == cfg.run_dir
    with pytest.raises(CheckpointError, match=f"{cfg.run_dir / CHECKPOINT} was trained with other params"):
        load_finished(other, tiny_shards)


def test_a_diverged_run_never_calls_another_configs_checkpoint_its_own(tiny_shards, in_tmp):
    cfg = run_configs(tiny_params(train={"epochs": 1}))[0]
    train(cfg, tiny_shards, in_tmp / "r")
    exploding = run_configs(tiny_params(train={"epochs": 1, "lr": 1e6}))[0]
    with pytest.raises(TrainingDiverged) as err:
        train(exploding, tiny_shards, in_tmp / "r")
    msg = str(err.value)
    assert "no checkpoint of this run was saved" in msg and "is another run's" in msg
    assert "last good checkpoint" not in msg


# 4. A killed save's temporaries are removed -------------------------------------------------------

def test_a_run_removes_the_temporaries_of_a_killed_save(tiny_shards, in_tmp):
    cfg = run_configs(tiny_params(train={"epochs": 1}))[0]
    (in_tmp / "r").mkdir()
    stale = in_tmp / "r" / f".{CHECKPOINT}.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = in_tmp / "r" / "notes.tmp"
    other.write_text("not ours")
    train(cfg, tiny_shards, in_tmp / "r")
    assert not stale.exists() and other.exists()


# 5. Outputs are atomic and honour the umask -------------------------------------------------------

def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(ZeroDivisionError):
        with atomic_path(tmp_path / "m.json") as tmp:
            tmp.write_text("half")
            1 / 0
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 1\n}\n' and os.listdir(tmp_path) == ["m.json"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_outputs_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_path(tmp_path / "w.pt") as tmp:
            torch.save({"x": 1}, tmp)
    finally:
        os.umask(old)
    for name in ("m.json", "w.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


# 6. and 9. Bad params fail before anything runs, one line naming the key and the fix --------------

def params_error(**sections) -> str:
    with pytest.raises(ParamsError) as err:
        parse_params(tiny_raw(**sections))
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("device", ["gpu0", "cuda:99", "tpu"])
def test_a_device_this_machine_has_not_is_refused(device):
    assert "train.device" in params_error(train={"device": device})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it():
    msg = params_error(train={"device": "cuda"})
    assert "train.device" in msg and "no CUDA" in msg and "auto or cpu" in msg


def test_attribute_split_must_be_one_the_dataset_has():
    assert "test_nocue" in params_error(attribute={"split": "tset"})  # lists the valid ones
    parse_params(tiny_raw(attribute={"split": "test_nocue"}))  # synthetic has it
    msg = params_error(data={"dataset": "imagenette"}, attribute={"split": "test_nocue"})
    assert "attribute.split" in msg and "train, val, test" in msg


def test_bench_setups_and_methods_are_defined_names():
    assert "bench.setups names nowhere" in params_error(bench={"setups": ["nowhere"]})
    assert "sgdorp" in params_error(bench={"methods": ["sgdorp"]})


@pytest.mark.parametrize("patch", [12, 64])
def test_occlusion_patch_must_tile_the_image(patch):
    msg = params_error(evaluate={"occlusion_patch": patch})
    assert "evaluate.occlusion_patch" in msg and "loader.image_size 32" in msg and "8" in msg


def test_an_architecture_that_cannot_take_the_image_or_width(monkeypatch):
    msg = params_error(model={"architecture": "resnet18"})  # width 0.25
    assert "model.architecture" in msg and "model.width" in msg

    def needs_64_pixels(num_classes, image_size, width=1.0, batch_norm=False):
        return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 64), torch.nn.Flatten())
    monkeypatch.setitem(ARCHITECTURES._entries, "needs64", needs_64_pixels)
    msg = params_error(model={"architecture": "needs64"})
    assert "needs64 cannot take 32-pixel images" in msg and "model.architecture" in msg


def test_nesterov_needs_momentum():
    msg = params_error(train={"optimizer": "sgd", "momentum": 0.0, "nesterov": True})
    assert "train.nesterov" in msg and "train.momentum" in msg
    parse_params(tiny_raw(train={"momentum": 0.0}))  # Adam ignores both


def test_a_batch_larger_than_the_training_set(tiny_shards, in_tmp):
    assert "loader.batch_size" in params_error(loader={"batch_size": 61})  # 60 synthetic images
    # real datasets: known from the shards, checked before the first epoch
    cfg = run_configs(tiny_params())[0]
    cfg = cfg.model_copy(update={"loader": cfg.loader.model_copy(update={"batch_size": 64})})
    with pytest.raises(ParamsError, match="loader.batch_size.*larger than the training set"):
        train(cfg, tiny_shards, in_tmp / "r")
    assert not (in_tmp / "r" / CHECKPOINT).exists()


def test_params_of_methods_not_in_the_matrix_are_validated_too():
    assert "methods.dropout.p" in params_error(methods={"dropout": {"p": 2.0}})
    assert "methods.sgdrop_x" in params_error(methods={"sgdrop_x": {"type": "sgdorp"}})


def test_a_misspelt_section_names_the_closest_valid_one(in_tmp):
    from stages.check import main

    raw = tiny_raw()
    raw["trian"] = raw.pop("train")
    msg = assert_one_line_error(invoke(main, [], raw), "trian")
    assert "did you mean 'train'" in msg
    assert "did you mean 'train.epochs'" in params_error(train={"epoch": 3})
    assert invoke(main, [], tiny_raw()).exit_code == 0


def test_missing_files_name_their_key(tmp_path):
    assert "model.weights" in params_error(model={"weights": str(tmp_path / "w.pt")})
    assert "data.boxes_csv" in params_error(data={"boxes_csv": str(tmp_path / "boxes.csv")})


def test_an_empty_or_broken_params_file_gets_its_own_message(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("")
    with pytest.raises(ParamsError, match="params.yaml is empty"):
        load_params(path)
    path.write_text("train: [epochs: 3\n")
    with pytest.raises(ParamsError, match="not valid YAML at line"):
        load_params(path)


# 7. The divergence guard sees exploding losses and broken weights ----------------------------------

def test_an_exploding_loss_stops_the_run(tiny_shards, in_tmp):
    """Adam at lr 1e6 with batch norm trains on with a finite loss of about 1e12 (at chance)."""
    cfg = run_configs(tiny_params(train={"epochs": 2, "lr": 1e6}))[0]
    with pytest.raises(TrainingDiverged, match="exploded.*no checkpoint of this run was saved"):
        train(cfg, tiny_shards, in_tmp / "r")
    assert not (in_tmp / "r" / CHECKPOINT).exists() and not (in_tmp / "r" / "train.json").exists()


def test_non_finite_weights_stop_the_run_and_keep_the_last_good_checkpoint(tiny_shards, in_tmp, monkeypatch):
    cfg = run_configs(tiny_params(train={"epochs": 3}))[0]
    train(cfg, tiny_shards, in_tmp / "r", stop_after=1)
    good = (in_tmp / "r" / CHECKPOINT).read_bytes()
    real_epoch = loop.train_epoch

    def breaks_a_weight(run, *args):
        record = real_epoch(run, *args)
        with torch.no_grad():
            next(run.model.parameters())[0].fill_(float("inf"))
        return record
    monkeypatch.setattr(loop, "train_epoch", breaks_a_weight)
    with pytest.raises(TrainingDiverged, match=rf"non-finite .* at epoch 2.*{in_tmp / 'r' / CHECKPOINT} \(epoch 1\)"):
        train(cfg, tiny_shards, in_tmp / "r")
    assert (in_tmp / "r" / CHECKPOINT).read_bytes() == good


# 8. Bad images: one line, file paths, no noise, and the count in the manifest ---------------------

def test_too_many_bad_images_is_one_line_naming_the_files(in_tmp):
    from stages.shard import main

    root = in_tmp / "photos"
    for i in range(6):
        path = root / f"c{i % 2}" / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(i) if i else b"\x89PNG broken")
    params = tiny_raw(data={"dataset": "imagefolder", "root": str(root), "val_fraction": 0.2, "min_image_size": 8})
    msg = assert_one_line_error(invoke(main, ["--params", shard_params(params), "--out", "shards"]),
                                "1 of 6 images are unreadable",
                                str(root / "c0" / "img0.png"), "shard.max_bad_fraction")
    assert "BytesIO" not in msg and " at 0x" not in msg
    manifest = write_shards(DATASETS.get("imagefolder")(parse_params(params).data), in_tmp / "s", params={},
                            samples_per_shard=10, max_bad_fraction=0.5, progress=False)
    assert manifest["bad_images"]["count"] == 1 and manifest["bad_images"]["of"] == 6
    assert manifest["bad_images"]["items"][0]["file"] == str(root / "c0" / "img0.png")


def test_too_many_bad_images_of_a_source_without_files_names_the_keys(tmp_path):
    samples = [("train", Sample("broken", b"junk", "png", 0)), ("train", Sample("ok", png(1), "png", 1))]
    with pytest.raises(TooManyBadImages, match=r"broken \(UnidentifiedImageError: cannot identify image file\)"):
        write_shards(toy_source(samples), tmp_path / "s", params={}, samples_per_shard=10,
                     max_bad_fraction=0.1, progress=False)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_running_out_of_gpu_memory_is_one_line(in_tmp, monkeypatch):
    import stages.train

    cfg = run_configs(tiny_params())[0]
    write_json(in_tmp / "c.json", cfg.model_dump())
    (in_tmp / "shards").mkdir()

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB ...\nSee documentation")
    monkeypatch.setattr(stages.train, "train", out_of_memory)
    result = invoke(stages.train.main, ["--config", "c.json", "--shards", "shards"])
    assert_one_line_error(result, "out of GPU memory", "loader.batch_size")


def test_a_stage_process_keeps_its_exit_code_and_freezes_its_heap_on_the_way_out(monkeypatch):
    """stages.common.run_command, every stage's `__main__`: the exit code is the command's, error
    or not, and the heap is frozen so that the exit skips its long last garbage collection."""
    import click
    import gc

    from stages.common import run_command

    @click.command()
    def ok():
        pass

    @click.command()
    def fails():
        raise click.ClickException("bad params")

    monkeypatch.setattr("sys.argv", ["stage"])
    try:
        for command, code in ((ok, 0), (fails, 1)):
            gc.unfreeze()
            with pytest.raises(SystemExit) as done:
                run_command(command)
            assert done.value.code == code and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_bench_measures_each_setups_architecture_at_its_image_size(in_tmp, monkeypatch):
    import stages.bench

    measured = []
    monkeypatch.setattr(stages.bench, "benchmark", lambda setup, names, **kw: measured.append(
        (kw["arch"], kw["image_size"], kw["model"].width, names)) or [{"device": "cpu", "method": n, "ms_per_step": 1.0,
                                                                       "images_per_s": 1.0, "ratio_to_vanilla": 1.0}
                                                                      for n in names])
    raw = tiny_raw(matrix={"methods": ["vanilla", "sgdrop"]}, setups={
        "small": {}, "wide": {"model": {"architecture": "resnet20", "width": 1.0}, "loader": {"image_size": 40},
                              "evaluate": {"occlusion_patch": 8}}})
    assert invoke(stages.bench.main, ["--out", "bench"], raw).exit_code == 0
    assert measured == [("tinyvgg", 32, 0.25, ["vanilla", "sgdrop"]), ("resnet20", 40, 1.0, ["vanilla", "sgdrop"])]
    assert sorted(p.name for p in (in_tmp / "bench").glob("*.json")) == ["small_tinyvgg_32px_b32_cpu.json",
                                                                       "wide_resnet20_40px_b32_cpu.json"]
    measured.clear()
    raw["bench"]["setups"] = ["wide"]
    result = invoke(stages.bench.main, ["--out", "bench2"], raw)
    assert result.exit_code == 0, result.output
    assert [m[0] for m in measured] == ["resnet20"]
