"""Drop dvc.lock's entries of stages that dvc.yaml no longer has: `python -m scripts.prune_lock`.

DVC keeps the entry of a removed or renamed stage (a setup, method or seed taken out of params.yaml)
for ever, and parses and rewrites the whole lock around every stage it runs. 114 such entries,
left by earlier layouts, once made the lock 400 KB instead of 175 KB; with them, and without
ruamel's C loader, a transfer stage took 17.4 s instead of 10.3 s (6.5 s of it its own work).
`make repro` runs this before `dvc repro`; the kept entries are left byte for byte as they were.
"""
from __future__ import annotations

from pathlib import Path

import click
from ruamel.yaml import YAML

from pipeline_lib.io import atomic_path


def stale_entries(root: Path) -> list[str]:
    """Names of dvc.lock's stages that dvc.yaml does not define, in the lock's order."""
    from dvc.repo import Repo

    lock = root / "dvc.lock"
    if not lock.exists():
        return []
    with Repo(str(root)) as repo:
        names = {stage.name for stage in repo.index.stages}
    return [name for name in YAML(typ="safe").load(lock.read_text()).get("stages", {}) if name not in names]


@click.command()
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=Path("."))
def main(root: Path) -> None:
    stale = stale_entries(root)
    if not stale:
        return
    yaml = YAML()  # round-trip, as DVC writes it
    lock = yaml.load((root / "dvc.lock").read_text())
    for name in stale:
        del lock["stages"][name]
    with atomic_path(root / "dvc.lock") as tmp:
        yaml.dump(lock, tmp)
    click.echo(f"dvc.lock: dropped {len(stale)} entries of stages dvc.yaml no longer has ({stale[0]}, ...)")


if __name__ == "__main__":
    main()
