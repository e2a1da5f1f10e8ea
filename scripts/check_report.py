"""Open reports/index.html in headless Chromium as a reader would, at 1400x900, and check it:
every image loads, no image appears twice, and the findings start on the first screen. Saves a
screenshot of that first screen to look at.

`python scripts/check_report.py [reports/index.html] [--screenshot PATH]`; exits 1 when a check
fails, 2 when Chromium is missing (Debian: `apt-get install chromium`).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

WIDTH, HEIGHT = 1400, 900
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--allow-file-access-from-files", "--virtual-time-budget=10000",
                  f"--window-size={WIDTH},{HEIGHT}"]
STATE = ("images", "broken-images", "duplicate-images", "findings-top", "viewport-height")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _run(page: Path, *flags: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags,
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout


def page_state(page: Path) -> dict[str, int]:
    """What the page's own load handler recorded in Chromium: image counts and where the findings start."""
    dom = _run(page, "--dump-dom")
    state = {key: re.search(rf'data-{key}="(-?\d+)"', dom) for key in STATE}
    if not all(state.values()):
        raise RuntimeError("the page's load handler did not run: the page did not finish loading")
    return {key: int(m.group(1)) for key, m in state.items()}


def screenshot(page: Path, path: Path) -> Path:
    _run(page, f"--screenshot={path.resolve()}")
    return path


def problems(state: dict[str, int]) -> list[str]:
    out = []
    if not state["images"]:
        out.append("no image on the page")
    if state["broken-images"]:
        out.append(f"{state['broken-images']} broken images")
    if state["duplicate-images"]:
        out.append(f"{state['duplicate-images']} images shown twice")
    if not 0 <= state["findings-top"] < state["viewport-height"]:
        out.append(f"the findings start at {state['findings-top']} px, below the first screen")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", type=Path, default=Path("reports/index.html"))
    parser.add_argument("--screenshot", type=Path, default=Path(tempfile.gettempdir()) / "overfocus_report.png")
    args = parser.parse_args()
    if not chromium():
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    state = page_state(args.page)
    print(f"{args.page}: {state}; first screen ({WIDTH}x{HEIGHT}) -> {screenshot(args.page, args.screenshot)}")
    for p in problems(state):
        print("FAIL:", p, file=sys.stderr)
    return 1 if problems(state) else 0


if __name__ == "__main__":
    sys.exit(main())
