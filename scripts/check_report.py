"""Open reports/index.html in headless Chromium and check that every image loaded.

`python scripts/check_report.py [reports/index.html]`; exits 1 if an image is broken, 2 if
Chromium is missing (Debian: `apt-get install chromium`).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def rendered_image_counts(page: Path) -> tuple[int, int]:
    """(images, broken images) as the page's own load handler counted them in Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    images = re.search(r'data-images="(\d+)"', dom)
    broken = re.search(r'data-broken-images="(\d+)"', dom)
    if not images or not broken:
        raise RuntimeError("the page's load handler did not run: the page did not finish loading")
    return int(images.group(1)), int(broken.group(1))


def main() -> int:
    page = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/index.html")
    if not chromium():
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    images, broken = rendered_image_counts(page)
    print(f"{page}: {images} images, {broken} broken")
    return 1 if broken or not images else 0


if __name__ == "__main__":
    sys.exit(main())
