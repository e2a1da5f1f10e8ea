"""Runs of a params preset in lanes side by side on one machine, outside DVC (which runs one stage
at a time), each run with dvc.yaml's own `run` command:

    python -m scripts.run_lanes params/central-claim-cpu.yaml --work ../cc-run --lanes 2
    python -m scripts.run_lanes params/central-claim-cpu.yaml --work ../cc-run \\
        --lane "vanilla:0 sgdrop:0" --lane "dropout:0 sgdrop_curriculum:0"
    python -m scripts.run_lanes params/gpu-pending.yaml --work ../gpu-prep     # no lanes: configure and shard only

WORK (best beside the checkout: the presets' data roots are ../shared/data/...) gets, when it has
no params.yaml yet, a copy of this checkout's files (tracked and untracked, not ignored; not
reports/results/) with the committed params.yaml and the presets applied to it, in order
(`scripts.apply_preset`). A WORK that has a params.yaml keeps it: a second call resumes there.
Then, in WORK, `configure` once and each setup's `shard` (main and transfer) once, as dvc.yaml
runs them; then each lane runs its cells one after the other with
`python -m stages.run --config configs/<setup>/<method>/seed<k>.json ...` (train, attribution
maps, metrics, transfer in one process), the lanes at the same time. A cell is `method:seed`, or
`setup/method:seed` when the params have several setups; `--lanes N` deals the matrix's cells
(`Params.cells`, dvc.yaml's order) round-robin over N lanes. A cell whose transfer.json (a run's
last output) exists is skipped; an interrupted one resumes from its checkpoint, and a run of
another identity trains again (stages.run says why). Each cell's output goes to
WORK/logs/<setup>-<method>-<seed>.log; `--report` then runs the report stage (WORK/reports).
`--threads` sets each lane's torch threads. The exit status is 1 when a cell failed.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import yaml

from pipeline_lib.config.schema import ParamsError, load_yaml, parse_schema

ROOT = Path(__file__).resolve().parents[1]


def copy_checkout(work: Path) -> None:
    """This checkout's files (tracked and untracked, not ignored, results left out) into `work`,
    with params.yaml as committed (git's index), so that an experiment's edits to the working copy
    do not leak into a preset's runs."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith("reports/results/"):
            (work / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, work / f)
    committed = subprocess.run(["git", "show", ":params.yaml"], cwd=ROOT, capture_output=True, text=True)
    if committed.returncode == 0:
        (work / "params.yaml").write_text(committed.stdout)


def parse_cell(cell: str, setups: list[str]) -> tuple[str, str, int]:
    """`method:seed` or `setup/method:seed` as (setup, method, seed)."""
    name, sep, seed = cell.rpartition(":")
    setup, _, method = name.rpartition("/")
    if not sep or not method or not seed.isdigit():
        raise click.BadParameter(f"cell {cell!r}: write method:seed or setup/method:seed")
    if not setup:
        if len(setups) > 1:
            raise click.BadParameter(f"cell {cell!r}: the params have {len(setups)} setups "
                                     f"({', '.join(setups)}); write setup/method:seed")
        setup = setups[0]
    if setup not in setups:
        raise click.BadParameter(f"cell {cell!r}: no setup {setup!r} (setups: {', '.join(setups)})")
    return setup, method, int(seed)


def stage_command(stage: str, **item) -> list[str]:
    """dvc.yaml's command of `stage` (its one home), with `${item.<key>}` filled in and this Python
    in place of `python3`."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]["cmd"]
    for key, value in item.items():
        cmd = cmd.replace(f"${{item.{key}}}", str(value))
    program, *args = shlex.split(cmd)
    return [sys.executable if program == "python3" else program, *args]


def run_command(setup: str, method: str, seed: int) -> list[str]:
    """dvc.yaml's `run` stage command for one cell."""
    return stage_command("run", setup=setup, method=method, seed=seed)


def say(message: str) -> None:
    click.echo(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}")


def step(work: Path, cmd: list[str], env: dict) -> None:
    """One set-up command in WORK, its output shown; a failure stops the script."""
    done = subprocess.run(cmd, cwd=work, env=env)
    if done.returncode:
        raise click.ClickException(f"`{' '.join(cmd[1:])}` failed in {work}")


def run_lane(work: Path, cells: list[tuple[str, str, int]], env: dict, failed: list) -> None:
    for setup, method, seed in cells:
        name = f"{setup}/{method}:{seed}"
        run_dir = work / "runs" / setup / method / f"seed{seed}"
        if (run_dir / "transfer.json").exists():
            say(f"finished already: {name}")
            continue
        config = work / "configs" / setup / method / f"seed{seed}.json"
        if not config.exists():
            say(f"FAILED {name}: no {config.relative_to(work)} (not a cell of the params' matrix)")
            failed.append(name)
            continue
        say(f"start {name}")
        log = work / "logs" / f"{setup}-{method}-{seed}.log"
        with open(log, "w") as out:
            done = subprocess.run(run_command(setup, method, seed), cwd=work, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
        if done.returncode:
            failed.append(name)
            say(f"FAILED {name} (exit {done.returncode}; {log.relative_to(work)})")
        else:
            say(f"done {name}")


@click.command()
@click.argument("presets", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="the folder the runs live in (a copy of this checkout); beside the checkout is best")
@click.option("--lane", "lanes", multiple=True,
              help='cells run one after the other: "vanilla:0 sgdrop:0" (repeat for more lanes)')
@click.option("--lanes", "n_lanes", type=click.IntRange(min=1), default=None,
              help="deal every cell of the matrix round-robin over this many lanes")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch threads per lane")
@click.option("--report", is_flag=True, help="then run the report stage (WORK/reports)")
def main(presets: tuple[Path, ...], work: Path, lanes: tuple[str, ...], n_lanes: int | None, threads: int,
         report: bool) -> None:
    """Run PRESETS (params files of the keys that differ from the shipped params.yaml) in WORK."""
    if lanes and n_lanes:
        raise click.UsageError("give --lane or --lanes, not both")
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(work), os.environ.get("PYTHONPATH")]))}
    if not (work / "params.yaml").exists():
        copy_checkout(work)
        for preset in presets:
            step(work, [sys.executable, "-m", "scripts.apply_preset", str(preset.resolve())], env)
    elif presets:
        say(f"{work / 'params.yaml'} exists: kept as it is (the presets are applied to a new WORK only)")
    try:
        params = parse_schema(load_yaml((work / "params.yaml").read_text()))
    except ParamsError as err:
        raise click.ClickException(str(err)) from None
    setups = list(params.setups)
    if n_lanes:
        cells = params.cells()
        plan = [cells[i::n_lanes] for i in range(n_lanes)]
    else:
        plan = [[parse_cell(c, setups) for c in lane.split()] for lane in lanes]

    if not all((work / "configs" / s / "shard_main.json").exists() for s in setups):
        step(work, stage_command("configure"), env)
    for setup in setups:
        for split in ("main", "transfer"):
            if not (work / "data" / "shards" / setup / split / "manifest.json").exists():
                step(work, stage_command("shard", setup=setup, split=split), env)
    (work / "logs").mkdir(exist_ok=True)
    failed: list[str] = []
    lanes_ = [threading.Thread(target=run_lane, args=(work, cells, env, failed)) for cells in plan if cells]
    for lane in lanes_:
        lane.start()
    for lane in lanes_:
        lane.join()
    if report and not failed:
        step(work, stage_command("report"), env)
    if failed:
        raise click.ClickException(f"{len(failed)} cell(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
