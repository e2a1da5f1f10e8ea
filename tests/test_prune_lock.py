"""dvc.lock holds the stages of dvc.yaml only: DVC rewrites the whole lock around every stage it
runs, so each stale entry slows every stage of `make repro`."""
import shutil
from pathlib import Path

from click.testing import CliRunner

from scripts.prune_lock import main, stale_entries

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_lock_has_no_entries_of_removed_stages():
    assert stale_entries(ROOT) == [], "run `python -m scripts.prune_lock` and commit dvc.lock"


def test_prune_drops_only_the_stale_entries_and_keeps_the_rest_byte_for_byte(tmp_path):
    from dvc.repo import Repo

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path)
    Repo.init(str(tmp_path), no_scm=True).close()
    kept = "\n".join((ROOT / "dvc.lock").read_text().splitlines()[:40]) + "\n"
    assert "  configure:\n" in kept
    stale = "  train@old_setup-vanilla-0:\n    cmd: python -m stages.train\n"
    head, _, tail = kept.partition("  configure:\n")
    (tmp_path / "dvc.lock").write_text(head + stale + "  configure:\n" + tail)
    assert stale_entries(tmp_path) == ["train@old_setup-vanilla-0"]

    result = CliRunner().invoke(main, ["--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "dropped 1 entries" in result.output
    assert (tmp_path / "dvc.lock").read_text() == kept
    assert stale_entries(tmp_path) == []
