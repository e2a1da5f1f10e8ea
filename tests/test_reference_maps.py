"""Reference maps: measured by the function that measures the methods' maps, with the areas they
are meant to have, so that a method's gain can be read against what area alone gains."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage

from pipeline_lib.data.loader import SplitData
from pipeline_lib.metrics.harmonization import spearman
from pipeline_lib.metrics.localization import area_ratio
from pipeline_lib.metrics.reference_maps import ranked_blob, reference_metrics

SIZE = 32
P = SimpleNamespace(area_threshold=0.5, iou_threshold=0.5, human_blur_sigma=0.0, top_fraction=0.1)


def split(masks: bool = True) -> SplitData:
    """Four images with objects of 1/4, 1/16, 9/64 and 1/4 of the image (mean 45/256), each as a
    mask and as its box."""
    corners = [(0, 0, 16, 16), (8, 8, 16, 16), (4, 20, 16, 32), (16, 0, 32, 16)]  # x1, y1, x2, y2
    gt = torch.zeros(4, SIZE, SIZE, dtype=torch.bool)
    for g, (x1, y1, x2, y2) in zip(gt, corners):
        g[y1:y2, x1:x2] = True
    return SplitData(images=torch.zeros(4, 3, SIZE, SIZE, dtype=torch.uint8), labels=torch.zeros(4, dtype=torch.long),
                     keys=list("abcd"), boxes=[[[c / SIZE for c in box]] for box in corners],
                     masks=gt if masks else None)


def method_maps() -> np.ndarray:
    """Maps of assorted areas: a peaked one, a flat-topped one, an all-zero one, a non-finite one."""
    rng = np.random.default_rng(1)
    maps = rng.random((4, SIZE, SIZE)).astype(np.float32) * 0.4
    maps[0, 3, 5] = 1.0
    maps[1, 10:30, 2:12] = 0.9
    maps[2] = 0.0
    maps[3, 0, 0] = np.nan
    return maps


def test_a_uniform_map_covers_the_whole_image_and_ranks_nothing():
    ref = reference_metrics({}, list("abcd"), split(), P, seed=0)
    assert ref["uniform"]["area_ratio"] == 1.0  # max-normalised to 1 everywhere, all above 0.5
    assert ref["uniform"]["spearman"] == 0.0 and ref["uniform"]["harmonization_n"] == 4
    assert ref["uniform"]["hit_n"] == 4 and ref["uniform"]["hit_whole"] == 0.0  # no object covers half the image


@pytest.mark.parametrize("masks", [True, False])
def test_the_centred_gaussian_has_the_mean_object_area_and_is_a_gaussian_for_ranks(masks):
    ref = reference_metrics({}, list("abcd"), split(masks), P, seed=0)
    assert ref["object_area"] == pytest.approx(45 / 256)  # boxes and masks agree here
    assert ref["centred_gaussian"]["area_ratio"] == pytest.approx(45 / 256, abs=0.5 / SIZE**2)
    blob = ranked_blob((SIZE / 2, SIZE / 2), 180, SIZE, SIZE, 0.5)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    gaussian = np.exp(-((xs - SIZE / 2) ** 2 + (ys - SIZE / 2) ** 2) / 50.0)
    assert spearman(blob, gaussian) > 0.999  # only equidistant pixels are ordered differently
    assert blob[15:17, 15:17].min() > np.sort(blob.ravel())[-5]  # the four central pixels rank first


@pytest.fixture()
def drawn(monkeypatch) -> list[np.ndarray]:
    """The same-area blobs reference_metrics draws, call by call."""
    from pipeline_lib.metrics import reference_maps
    out, real = [], reference_maps.same_area_blobs
    monkeypatch.setattr(reference_maps, "same_area_blobs", lambda *a: out.append(real(*a)) or out[-1])
    return out


def test_same_area_blobs_have_each_maps_area_image_by_image(drawn):
    maps = method_maps()
    ref = reference_metrics({"m": maps}, list("abcd"), split(), P, seed=3)
    want, got = (area_ratio(torch.from_numpy(x), 0.5).numpy() for x in (maps, drawn[0]))
    assert np.array_equal(np.isnan(want), np.isnan(got)) and np.isnan(got[3])  # the same images left out
    assert np.array_equal(want[:3], got[:3]) and want[0] > 0 and want[1] > want[0] and want[2] == 0
    assert ref["same_area"]["m"]["area_ratio"] == pytest.approx(np.nanmean(want))
    assert ref["same_area"]["m"]["non_finite_maps"] == 1
    for b in drawn[0][:2]:
        assert ndimage.label(b > 0.5, structure=np.ones((3, 3)))[1] == 1  # one blob, not scattered pixels


def test_blobs_are_seeded_and_placed_alike_for_every_method(drawn):
    maps = method_maps()[:3]
    for seed in (0, 0, 1):
        reference_metrics({"m": maps, "other": maps * 0.5}, list("abc"), split(), P, seed=seed)
    assert np.array_equal(drawn[0], drawn[1])  # another method with maps of the same areas: the same blobs
    assert np.array_equal(drawn[0], drawn[2])  # the same seed again
    assert not np.array_equal(drawn[0], drawn[4])  # another seed, other places


def test_a_blob_puts_exactly_k_pixels_on_either_side_of_the_threshold_in_float32():
    for k in (1, 7, 300, SIZE * SIZE - 1, SIZE * SIZE):
        for threshold in (0.5, 0.3):
            b = ranked_blob((3.7, 29.2), k, SIZE, SIZE, threshold)
            assert b.dtype == np.float32 and b.max() == 1.0
            assert (b > threshold).sum() == k and (b >= threshold).sum() == k  # area counts >, hit ratio >=
            assert len(np.unique(b)) == SIZE * SIZE  # strictly ranked: no ties for Spearman
    assert not ranked_blob((3.7, 29.2), 0, SIZE, SIZE, 0.5).any()


def test_run_metrics_writes_the_references_of_the_runs_own_maps(tiny_shards, in_tmp):
    """Wired to the attributed images and maps: each method's same-area blobs have its mean area."""
    from pipeline_lib.attribution.extract import extract_maps
    from pipeline_lib.config.resolve import run_configs
    from pipeline_lib.data.loader import with_ground_truth_first
    from pipeline_lib.metrics.run_metrics import run_metrics
    from pipeline_lib.training.loop import train
    from tests.conftest import tiny_params

    params = tiny_params(train={"epochs": 1}, evaluate={"coverage_batches": 1, "coverage_batch_size": 4,
                                                        "occlusion_images": 4, "leakage_images": 4})
    cfg = run_configs(params)[0]
    trained = train(cfg, tiny_shards, cfg.run_dir)
    data = with_ground_truth_first(trained.splits["test"], 8, seed=cfg.seed)
    maps = extract_maps(trained.model, data.images, data.labels, trained.splits.normalize, ["gradcam", "input_grad"],
                        device=trained.device)
    result = run_metrics(trained, params.evaluate, "test", 8, maps, data.keys)
    ref = result["reference_maps"]
    assert set(ref["same_area"]) == {"gradcam", "input_grad"}
    for name, measured in result["attribution"].items():
        assert ref["same_area"][name]["area_ratio"] == pytest.approx(measured["area_ratio"])
        assert ref["same_area"][name]["hit_n"] == measured["hit_n"] == 8
    assert ref["uniform"]["area_ratio"] == 1.0 and 0 < ref["object_area"] < 1
