"""scripts/run_lanes.py on tiny data: a preset's cells in two lanes at once, each with dvc.yaml's
own `run` command; with no lanes, configure and shard only (what reports/results/gpu-pending's
prepare.sh needs)."""
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeline_lib.config.schema import merged
from scripts.run_lanes import main, parse_cell, run_command
from tests.dvc_workspace import OVERRIDES

ROOT = Path(__file__).resolve().parents[1]
PRESET = merged(OVERRIDES, {"matrix": {"methods": ["vanilla", "sgdrop"], "one_seed_methods": [], "seeds": [0]},
                            "transfer": {"enabled": False}, "setups": {"tiny": {}}})


def test_a_cell_is_method_seed_or_setup_method_seed():
    assert parse_cell("sgdrop:2", ["a"]) == ("a", "sgdrop", 2)
    assert parse_cell("b/sgdrop:0", ["a", "b"]) == ("b", "sgdrop", 0)
    for bad, message in (("sgdrop", "method:seed"), ("sgdrop:x", "method:seed"), ("sgdrop:0", "2 setups"),
                         ("c/sgdrop:0", "no setup 'c'")):
        with pytest.raises(Exception, match=message):
            parse_cell(bad, ["a", "b"] if bad != "sgdrop" else ["a"])


def test_the_run_command_is_dvc_yamls():
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["run"]["cmd"]
    item = {"${item.setup}": "s", "${item.method}": "m", "${item.seed}": "3"}
    for key, value in item.items():
        cmd = cmd.replace(key, value)
    assert " ".join(run_command("s", "m", 3)[1:]) == cmd.removeprefix("python3 ")


@pytest.mark.slow
def test_a_preset_runs_in_two_lanes_and_resumes(tmp_path):
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(PRESET))
    work = tmp_path / "work"
    runner = CliRunner()

    prepared = runner.invoke(main, [str(preset), "--work", str(work)])  # no lanes: configure and shard
    assert prepared.exit_code == 0, prepared.output
    assert yaml.safe_load((work / "params.yaml").read_text())["matrix"]["methods"] == ["vanilla", "sgdrop"]
    assert (work / "configs" / "tiny" / "sgdrop" / "seed0.json").is_file()
    assert (work / "data" / "shards" / "tiny" / "main" / "manifest.json").is_file()
    assert not (work / "runs").exists() and not (work / "reports" / "results").exists()

    result = runner.invoke(main, ["--work", str(work), "--lane", "vanilla:0", "--lane", "tiny/sgdrop:0"])
    assert result.exit_code == 0, result.output
    for method in ("vanilla", "sgdrop"):
        run = work / "runs" / "tiny" / method / "seed0"
        for out in ("checkpoint.pt", "train.json", "metrics.json", "transfer.json"):
            assert (run / out).is_file(), (method, out)
        assert (work / "logs" / f"tiny-{method}-0.log").is_file()
    assert result.output.count("start ") == 2

    again = runner.invoke(main, ["--work", str(work), "--lanes", "2"])  # every cell finished: nothing runs
    assert again.exit_code == 0, again.output
    assert again.output.count("finished already") == 2 and "start " not in again.output

    missing = runner.invoke(main, ["--work", str(work), "--lane", "dropout:0"])  # not a cell of the matrix
    assert missing.exit_code == 1 and "1 cell(s) failed: tiny/dropout:0" in missing.output
