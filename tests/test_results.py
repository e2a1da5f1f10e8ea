"""reports/results/: every result folder has its manifest (result.yaml), a command that names an
existing preset or script, a summary that parses, and a row in the top-level table; the generated
tables are up to date. Reads files only (no torch): fast."""
import csv
import re
import shlex
from pathlib import Path

import pytest
import yaml

from scripts import results_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports" / "results"
FOLDERS = sorted(p for p in RESULTS.iterdir() if p.is_dir())
REQUIRED = ("claim", "shows", "status", "commit", "date", "machine", "seeds", "preset", "command")


def ids(folders):
    return [f.name for f in folders]


def manifest(folder: Path) -> dict:
    return yaml.safe_load((folder / "result.yaml").read_text())


def shipped_keys() -> dict:
    from tests.conftest import shipped_raw

    return shipped_raw()


def named_files(command: str) -> list[str]:
    """What a command names that must exist: params files, `python -m` modules (as paths),
    scripts, make targets (as `Makefile:<target>`), dvc.yaml for a dvc run."""
    tokens = shlex.split(command.replace(";", " ; ").replace("&&", " && "), posix=True)
    out = []
    for i, tok in enumerate(tokens):
        if re.fullmatch(r"(params/[\w.-]+|params)\.yaml", tok) or re.search(r"\.(py|sh)$", tok):
            out.append(tok)
        elif i and tokens[i - 1] == "-m":
            out.append(tok.replace(".", "/") + ".py")
        elif i and tokens[i - 1] == "make":
            out.append(f"Makefile:{tok}")
        elif tok == "dvc" and i + 1 < len(tokens) and tokens[i + 1] in ("exp", "repro", "queue"):
            out.append("dvc.yaml")
    return out


def test_every_folder_is_a_result():
    assert FOLDERS, "no result folders"
    assert [f.name for f in FOLDERS if not (f / "result.yaml").is_file()] == []
    assert {f.name for f in FOLDERS} == {f.name for f in results_table.result_folders()}


@pytest.mark.parametrize("folder", FOLDERS, ids=ids(FOLDERS))
def test_the_manifest_has_its_fields(folder):
    m = manifest(folder)
    assert [k for k in REQUIRED if k not in m] == []
    assert m["status"] in results_table.STATUSES
    assert m["claim"].strip() and m["shows"].strip()
    if m["status"] != "planned":
        assert m["commit"] and str(m["date"]).startswith("20") and m["ran"], "where, when and how it ran"
        assert m["machine"].startswith(("CPU", "GPU")), "CPU or GPU, with its name"
    if m["status"] == "historical":
        assert m["changed_since"], "a historical result says what changed in the code since it ran"
    for figure in m.get("figures") or []:
        assert (folder / figure).is_file(), figure


@pytest.mark.parametrize("folder", FOLDERS, ids=ids(FOLDERS))
def test_the_command_names_an_existing_preset_or_script(folder):
    m = manifest(folder)
    assert (ROOT / m["preset"]).is_file(), m["preset"]
    named = named_files(m["command"])
    assert named, f"{m['command']!r} names no preset, script or pipeline command"
    scripts = [ROOT / n for n in named if n.endswith((".sh", ".py")) and (ROOT / n).is_file()]
    assert (m["preset"] == "params.yaml" or m["preset"] in m["command"]
            or any(m["preset"] in s.read_text() for s in scripts)), "the command, or a script it runs, runs the preset"
    makefile = (ROOT / "Makefile").read_text()
    for name in named:
        if name.startswith("Makefile:"):
            assert re.search(rf"^{re.escape(name.split(':', 1)[1])}:", makefile, re.M), name
        else:
            assert (ROOT / name).is_file(), name
    params = shipped_keys()
    for key in re.findall(r"-S '?([\w.+]+)=", m["command"]):  # dvc exp run -S key=value: a shipped key
        if key.startswith("+"):
            continue
        node = params
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"-S {key}: no such key in params.yaml"
            node = node[part]


@pytest.mark.parametrize("folder", FOLDERS, ids=ids(FOLDERS))
def test_the_summary_parses(folder):
    m = manifest(folder)
    if m["status"] == "planned":
        assert not (folder / "summary.csv").exists() or m.get("summary")
        return
    files = {"summary.csv", *(s.get("file", "summary.csv") for s in results_table.table_specs(m))}
    for name in files:
        with open(folder / name, newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows, f"{name} has no rows"
        assert all(None not in r and None not in r.values() for r in rows), f"{name}: a row of another width"
    for spec in results_table.table_specs(m):
        header = next(csv.reader(open(folder / spec.get("file", "summary.csv"))))
        assert set(spec["group_by"]) | set(spec["columns"]) <= set(header), spec


def test_the_top_level_table_lists_every_folder_and_the_tables_are_up_to_date():
    index = (RESULTS / "README.md").read_text()
    assert [f.name for f in FOLDERS if f"]({f.name}/)" not in index] == []
    stale = [str(p.relative_to(ROOT)) for p, text in results_table.generated().items() if p.read_text() != text]
    assert stale == [], "run python -m scripts.results_table"


def test_results_hold_summaries_not_raw_runs():
    files = [p for p in RESULTS.rglob("*") if p.is_file()]
    assert len(files) < 300
    assert not [p for p in files if p.name in ("metrics.json", "train.json", "index.html", "checkpoint.pt")]


def test_numbers_are_shown_as_mean_and_sample_std():
    assert results_table.show("test_acc", [0.5]) == "50.0"
    assert results_table.show("test_acc", [0.4, 0.6]) == "50.0 ± 14.1"
    assert results_table.show("ms_per_step", [185.77]) == "186"
    assert results_table.show("probe_first", [0.2493]) == "0.249"
    assert results_table.show("epochs", [8]) == "8"
    assert results_table.show("test_acc", []) == "—"


def test_a_workspaces_runs_become_a_summary_with_one_row_per_run(in_tmp):
    """scripts/summarize_runs.py reads the runs as the report does: every run of the matrix, its
    numbers as its files hold them; a run that is not finished or not its own stops it."""
    from click.testing import CliRunner

    from scripts.summarize_runs import main
    from tests.test_report import fabricate, study

    params = study(seeds=[0, 1])
    fabricate(in_tmp, params)
    result = CliRunner().invoke(main, ["--workspace", str(in_tmp), "--out", "summary.csv"])
    assert result.exit_code == 0, result.output
    with open(in_tmp / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 3 * 2  # setups x methods x seeds
    tiny = {(r["method"], r["seed"]): float(r["test_acc"]) for r in rows if r["setup"] == "tiny"}
    assert tiny[("sgdrop", "1")] == pytest.approx(0.70) and tiny[("vanilla", "0")] == pytest.approx(0.59)
    assert "coverage_last_conv_unit" in rows[0] and "transfer_test_acc" not in rows[0]  # no run has transfer
    result = CliRunner().invoke(main, ["--workspace", str(in_tmp), "--setup", "tiny", "--out", "tiny.csv"])
    assert result.exit_code == 0, result.output
    with open(in_tmp / "tiny.csv", newline="") as f:
        assert {r["setup"] for r in csv.DictReader(f)} == {"tiny"}
    result = CliRunner().invoke(main, ["--workspace", str(in_tmp), "--setup", "tinny", "--out", "x.csv"])
    assert result.exit_code == 1 and "no runs of setup tinny" in result.output and "tiny" in result.output
    (in_tmp / "runs" / "tiny" / "vanilla" / "seed0" / "train.json").unlink()
    result = CliRunner().invoke(main, ["--workspace", str(in_tmp), "--out", "summary.csv"])
    assert result.exit_code == 1 and "runs/tiny/vanilla/seed0" in result.output
