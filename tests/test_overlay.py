"""The attribution grids: each map drawn max-normalised over its own image."""
import matplotlib
import numpy as np
import pytest
from PIL import Image

from pipeline_lib.reporting.overlay import OPACITY, blend, overlay_grid


def test_blend_normalises_each_map_by_its_maximum_and_ignores_negative_values():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    maps = rng.normal(size=(3, 8, 8))
    scaled = maps * np.array([1.0, 7.0, 0.01])[:, None, None]  # per-image scale: no change
    assert np.allclose(blend(images, maps), blend(images, scaled))
    negative = -np.abs(maps)  # no positive evidence: the bottom colour of jet everywhere
    bottom = np.array(matplotlib.colormaps["jet"](0.0)[:3])
    assert np.allclose(blend(images, negative), (1 - OPACITY) * images / 255 + OPACITY * bottom)
    peak = np.unravel_index(maps[0].argmax(), maps[0].shape)
    top = np.array(matplotlib.colormaps["jet"](1.0)[:3])
    assert np.allclose(blend(images, maps)[0][peak], (1 - OPACITY) * images[0][peak] / 255 + OPACITY * top)


def test_overlay_grid_writes_one_figure_and_refuses_maps_of_another_size(tmp_path):
    images = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    overlay_grid(images, {"a": np.ones((2, 16, 16)), "b": np.zeros((2, 16, 16))}, tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size == (480, 320)  # 1.6 in per cell at 100 dpi, 3 x 2 cells
    with matplotlib.rc_context({"axes.grid": True}):  # the report's seaborn style draws grids
        overlay_grid(np.zeros((3, 16, 16, 3), dtype=np.uint8), {"a": np.zeros((3, 16, 16)), "b": np.zeros((3, 16, 16))},
                     tmp_path / "styled.png")
    centre = np.asarray(Image.open(tmp_path / "styled.png").convert("RGB"))[230:250, 230:250]
    assert (centre == centre[0, 0]).all()  # inside the middle cell: one colour, no grid line through it
    with pytest.raises(ValueError, match="upsample the maps"):
        overlay_grid(images, {"a": np.ones((2, 4, 4))}, tmp_path / "small.png")


def test_row_titles_leave_no_blank_bands_above_and_below_the_grid(tmp_path):
    images = np.full((4, 16, 16, 3), 128, dtype=np.uint8)
    overlay_grid(images, {"a": np.ones((4, 16, 16))}, tmp_path / "titled.png", titles_left=["a long row title"] * 4)
    pixels = np.asarray(Image.open(tmp_path / "titled.png").convert("L"))
    inked = np.nonzero((pixels < 250).any(axis=1))[0]  # the rows with anything drawn
    assert inked[0] <= 12 and len(pixels) - 1 - inked[-1] <= 12


def test_saliency_strip_draws_each_methods_probe_image_with_its_own_maps_at_the_shown_epochs(tmp_path, monkeypatch):
    from pipeline_lib.reporting import figures

    calls = []
    monkeypatch.setattr(figures, "overlay_grid", lambda images, columns, path, titles_left: calls.append(
        (images, columns, titles_left)) or path)
    rng = np.random.default_rng(0)
    # every map constant, its value naming its method (10, 20) and epoch: upsampling keeps it
    strips = {m: {"cams": np.broadcast_to(10.0 * (r + 1) + np.arange(10.0)[:, None, None, None], (10, 2, 4, 4)),
                  "images": rng.integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)}
              for r, m in enumerate(("vanilla", "sgdrop"))}
    assert figures.saliency_strip(strips, tmp_path / "strip.png", max_epochs=4) == tmp_path / "strip.png"
    images, columns, rows = calls[0]
    assert rows == ["vanilla", "sgdrop"] and list(columns) == ["epoch 1", "epoch 4", "epoch 7", "epoch 10"]
    for r, m in enumerate(rows):
        assert (images[r] == strips[m]["images"][0].transpose(1, 2, 0)).all()
        for e, maps in zip((0, 3, 6, 9), columns.values()):
            assert maps.shape == (2, 16, 16) and np.allclose(maps[r], 10.0 * (r + 1) + e)
