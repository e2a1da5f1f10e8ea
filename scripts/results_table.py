"""The tables of reports/results/, written from each result's manifest and summary, never by hand:

    python -m scripts.results_table           # rewrites the generated tables
    python -m scripts.results_table --check   # exit status 1 when one is out of date (tests/test_results.py)

A result is a folder of reports/results/ with a `result.yaml` (its claim, command, preset, commit,
machine, date, seeds, status) and, once run, a `summary.csv` (one row per run, the numbers as its
files hold them: accuracies and ratios as fractions). This writes two things:

- in each folder's README.md, between the `<!-- summary -->` and `<!-- /summary -->` lines, the
  summary per group of runs (`table.group_by`, e.g. setup and method; `table` may be a list of such tables, each
  with its `file`; `render: false` for a table whose source is the README's own, as printed by
  the command when its output files were lost): mean ± sample std over the
  group's runs (its seeds), n, for the columns `table.columns`;
- in reports/results/README.md, between the same lines, one row per result: its claim, ours, the
  paper's, its seeds and status, with a link to its folder.

`ours` and `paper` in a manifest are text with fields: `{sgdrop:test_acc}` is the mean ± std of the
column test_acc over the runs whose group_by columns are sgdrop (`{setup/method:column}` with two
group_by columns), and `{paper:acc/vgg16/imagenette/sgdrop}` the SGDrop paper's number
(pipeline_lib/reporting/paper.yaml: `acc/<arch>/<dataset>/<method>`, `overhead/<arch>`,
`attribution/<method>/<column>`). Accuracies, gaps, areas, hit ratios, coverage and leakage
columns are shown in %.
"""
from __future__ import annotations

import csv
import re
import statistics
import sys
from pathlib import Path

import click
import yaml

from pipeline_lib.reporting.paper import PAPER_FILE, Paper

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports" / "results"
START, END = "<!-- summary -->", "<!-- /summary -->"
PERCENT = re.compile(r"(acc|^gap.*|hit_whole|hit_largest|^coverage_.*|_area|leak_.*)$")
STATUSES = ("current", "historical", "planned")


def result_folders(root: Path = RESULTS) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/result.yaml"))


def manifest(folder: Path) -> dict:
    return yaml.safe_load((folder / "result.yaml").read_text())


def summary_rows(folder: Path, name: str = "summary.csv") -> list[dict]:
    with open(folder / name, newline="") as f:
        return list(csv.DictReader(f))


def number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def decimals(x: float) -> int:
    """Digits after the point for a value shown alone: 3 below 1, 2 below 10, 1 below 100, else 0."""
    x = abs(x)
    return 3 if x < 1 else 2 if x < 10 else 1 if x < 100 else 0


def show(column: str, values: list[float], spread: bool = True) -> str:
    """Mean ± sample std (the mean alone for one value) in the column's unit: % with one decimal
    for the PERCENT columns, an integer as it is, others with the digits `decimals` gives the mean."""
    if not values:
        return "—"
    if not PERCENT.search(column) and len(values) == 1 and float(values[0]).is_integer():
        return f"{int(values[0])}"
    scale = 100 if PERCENT.search(column) else 1
    mean = statistics.mean(values) * scale
    d = 1 if scale == 100 else 2 if "ratio" in column else decimals(mean)
    if len(values) > 1 and spread:
        return f"{mean:.{d}f} ± {statistics.stdev(values) * scale:.{d}f}"
    return f"{mean:.{d}f}"


def groups(rows: list[dict], by: list[str]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(tuple(r[c] for c in by), []).append(r)
    return out


def column_values(rows: list[dict], column: str) -> list[float]:
    return [v for v in (number(r.get(column)) for r in rows) if v is not None]


def table_specs(m: dict) -> list[dict]:
    """A manifest's `table`: one spec, or a list of them (the first is the one `ours` reads)."""
    spec = m.get("table") or []
    return spec if isinstance(spec, list) else [spec]


def folder_table(folder: Path, spec: dict) -> str:
    """The README's summary table: one row per group, mean ± std over its runs, n."""
    rows = summary_rows(folder, spec.get("file", "summary.csv"))
    by, columns = spec["group_by"], spec["columns"]
    lines = ["| " + " | ".join([*by, "n", *columns]) + " |", "|" + "---|" * len(by) + "---:|" + "---:|" * len(columns)]
    for key, runs in groups(rows, by).items():
        cells = [show(c, column_values(runs, c)) for c in columns]
        lines.append("| " + " | ".join([*key, str(len(runs)), *cells]) + " |")
    unit = ("accuracies, gaps, areas, hit ratios, coverage and leakage in %; " if
            any(PERCENT.search(c) for c in columns) else "")
    note = (f"Mean ± sample std over each group's rows (n); {unit}from `{spec.get('file', 'summary.csv')}`. "
            "Written by `python -m scripts.results_table`.")
    return "\n".join([*lines, "", note])


def paper_value(path: str, paper: Paper) -> str:
    kind, *keys = path.split("/")
    if kind == "acc":
        arch, dataset, method = keys
        cell = paper.accuracy(method, dataset, arch)
        if cell:
            mean, std = cell[0]
            return f"{mean:.2f} ± {std:.2f}"
    elif kind == "overhead":
        return f"+{paper.data['overhead']['rows'][keys[0]]['overhead_percent']:.1f}%"
    elif kind == "attribution":
        method, column = keys
        return f"{paper.data['attribution']['rows'][method][column]:.2f}"
    raise KeyError(f"no paper number {path!r} in {PAPER_FILE.relative_to(ROOT)}")


def fill(text: str, folder: Path, m: dict, paper: Paper) -> str:
    """`{group:column}` and `{paper:...}` fields of a manifest's text, from its summary tables (the
    first whose group_by has a group of that name) and paper.yaml."""
    def field(match: re.Match) -> str:
        selector, column = match.group(1), match.group(2)
        if selector == "paper":
            return paper_value(column, paper)
        wanted = tuple(selector.split("/"))
        for spec in table_specs(m):
            if len(wanted) > len(spec["group_by"]):
                continue
            by = spec["group_by"][len(spec["group_by"]) - len(wanted):]
            rows = summary_rows(folder, spec.get("file", "summary.csv"))
            runs = [r for r in rows if tuple(r[c] for c in by) == wanted]
            if runs:
                return show(column, column_values(runs, column))
        raise KeyError(f"{folder.name}/result.yaml: no group {selector!r} in its summary tables")

    return re.sub(r"\{([^{}:]+):([^{}]+)\}", field, text or "")


def seeds(m: dict) -> str:
    s = m.get("seeds")
    return ", ".join(str(x) for x in s) if isinstance(s, list) else str(s or "—")


def top_table(folders: list[Path], paper: Paper) -> str:
    lines = ["| result | claim | ours | paper | seeds | status |", "|---|---|---|---|---|---|"]
    for status in STATUSES:
        for folder in folders:
            m = manifest(folder)
            if m["status"] != status:
                continue
            cells = [f"[{folder.name}]({folder.name}/)", m["claim"], fill(m.get("ours"), folder, m, paper) or "—",
                     fill(m.get("paper"), folder, m, paper) or "—", seeds(m), status]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def replace_block(text: str, block: str, where: Path) -> str:
    """`text` with what lies between its START and END lines (each a line of its own) replaced by `block`."""
    lines = text.split("\n")
    if START not in lines or END not in lines[lines.index(START):]:
        raise click.ClickException(f"{where}: no {START} and {END} lines to write the table between")
    i = lines.index(START)
    j = i + lines[i:].index(END)
    return "\n".join([*lines[: i + 1], block, *lines[j:]])


def generated(root: Path = RESULTS) -> dict[Path, str]:
    """Every file this writes, with its new text."""
    paper = Paper.load()
    folders = result_folders(root)
    out = {}
    for folder in folders:
        specs = [s for s in table_specs(manifest(folder)) if s.get("render", True)]
        if specs:
            readme = folder / "README.md"
            block = "\n\n".join(folder_table(folder, spec) for spec in specs)
            out[readme] = replace_block(readme.read_text(), block, readme)
    index = root / "README.md"
    out[index] = replace_block(index.read_text(), top_table(folders, paper), index)
    return out


@click.command()
@click.option("--check", is_flag=True, help="write nothing; exit 1 when a table is out of date")
def main(check: bool) -> None:
    stale = []
    for path, text in generated().items():
        if path.read_text() != text:
            stale.append(path)
            if not check:
                path.write_text(text)
    names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
    if check and stale:
        click.echo(f"out of date: {names} (python -m scripts.results_table)", err=True)
        sys.exit(1)
    click.echo(f"rewrote {names}" if stale and not check else "every table is up to date")


if __name__ == "__main__":
    main()
