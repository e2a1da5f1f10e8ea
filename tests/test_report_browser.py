"""The report renders in headless Chromium with every figure loaded (skipped without Chromium)."""
import shutil

import pytest

from scripts.check_report import chromium, rendered_image_counts
from tests.test_report import fabricate  # noqa: F401  (shared fabricated runs)

pytestmark = pytest.mark.skipif(chromium() is None, reason="chromium not installed (apt-get install chromium)")


def test_report_renders_with_every_image_loaded(in_tmp, tiny_shards):
    from pathlib import Path

    from pipeline_lib.reporting.collect import collect
    from pipeline_lib.reporting.report import build_report, write_pages
    from tests.conftest import tiny_params

    fabricate(in_tmp, tiny_params(train={"methods": ["vanilla", "sgdrop"], "seeds": [0, 1, 2]}))
    out = in_tmp / "reports"
    write_pages(build_report(collect(Path("configs")), study_methods=["vanilla", "sgdrop"], out=out,
                             shard_dir=tiny_shards, bench_dir=out / "bench", params_text=""), out)
    images, broken = rendered_image_counts(out / "index.html")
    assert images >= 2 and broken == 0
    figure = next((out / "figures").glob("*.png"))
    figure.write_bytes(b"not a png")  # the check must notice a broken image
    assert rendered_image_counts(out / "index.html")[1] == 1
    shutil.rmtree(out)
