"""The report as a reader sees it in headless Chromium at 1400x900: the findings on the first
screen, every image loaded, none twice (skipped without Chromium)."""
import struct

import pytest

from scripts.check_report import HEIGHT, WIDTH, chromium, page_state, problems, screenshot
from tests.test_report import build, fabricate, study

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install chromium)")


def test_report_opens_with_the_findings_and_every_image_loaded(in_tmp, tiny_shards):
    params = study(seeds=[0, 1])
    fabricate(in_tmp, params, warn="a warning")
    _, out = build(in_tmp, params, tiny_shards)
    page = out / "index.html"
    state = page_state(page)
    assert problems(state) == [] and state["images"] >= 4
    shot = screenshot(page, in_tmp / "shot.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", shot[16:24]) == (WIDTH, HEIGHT)

    next((out / "figures").glob("*.svg")).write_text("not an svg")  # the check must notice a broken image
    assert page_state(page)["broken-images"] == 1
    html = page.read_text()
    src = html.split('<img src="')[1].split('"')[0]
    page.write_text(html.replace("</body>", f'<img src="{src}"></body>'))  # and an image shown twice
    assert page_state(page)["duplicate-images"] == 1
    page.write_text(html.replace('<section id="findings">', '<div style="height:2000px"></div><section id="findings">'))
    assert any("below the first screen" in p for p in problems(page_state(page)))
