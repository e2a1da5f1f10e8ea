"""Metrics on hand-built inputs with known answers."""
import io
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr
from torch import nn

from pipeline_lib.config.resolve import method_spec
from pipeline_lib.methods import Method, build_method
from pipeline_lib.metrics.clickme import read_clickme
from pipeline_lib.metrics.coverage import neuron_coverage
from pipeline_lib.metrics.harmonization import HUMAN_CEILING, harmonization, spearman
from pipeline_lib.metrics.localization import area_ratio, hit_ratio, iou, pixel_box
from pipeline_lib.metrics.occlusion import occlude, occlusion_curves
from pipeline_lib.models import Head, build_model
from pipeline_lib.models.vgg import plain_net
from tests.conftest import tiny_params


def test_area_ratio_on_hand_built_maps():
    m = torch.zeros(2, 10, 10)
    m[0, :2, :] = 1.0  # 20 of 100 pixels at the max
    m[0, 5, 5] = 0.4  # below half the max
    m[1] = 3.0  # flat map: every pixel at the max
    assert area_ratio(m).tolist() == pytest.approx([0.2, 1.0])


def test_hit_ratio_whole_region_and_largest_component():
    m = torch.zeros(2, 20, 20)
    m[0, 2:8, 2:8] = 1.0  # one blob exactly on the box
    m[1, 2:8, 2:8] = 1.0
    m[1, 15:17, 15:17] = 0.9  # a small second blob stretches the whole-region box
    boxes = [[[0.1, 0.1, 0.4, 0.4]], [[0.1, 0.1, 0.4, 0.4], [0.8, 0.0, 1.0, 0.1]]]
    r = hit_ratio(m, boxes)
    assert r["n"] == 2 and r["largest_component"] == 1.0 and r["whole"] == 0.5
    assert hit_ratio(m, [None, None])["n"] == 0
    assert iou([0, 0, 1, 1], [0, 0, 0.5, 1]) == pytest.approx(0.5)


def test_an_iou_of_exactly_one_half_is_a_hit():
    """Region pixels x 2..6, y 0..4 of a 10 x 10 map against the box x 0..9, y 0..4: IoU 25 / 50
    (on fractional boxes, 0.49999999999999994)."""
    maps = torch.zeros(1, 10, 10)
    maps[0, 0:5, 2:7] = 1.0
    assert hit_ratio(maps, [[[0.0, 0.0, 1.0, 0.5]]])["whole"] == 1.0
    assert pixel_box([0.29, 0.0, 0.71, 0.5], 100, 10) == (29, 0, 71, 5)  # 0.29 * 100 = 28.999999999999996


def test_human_maps_are_resized_to_64_blurred_10x10_sigma_10_and_resized_back():
    """Fel et al.'s ClickMe processing: a point at 128 px spreads over a 10 x 10 window at 64 px,
    that is 20 x 20 pixels at 128; the mass is kept away from the border; sigma 0 changes nothing."""
    from pipeline_lib.metrics.harmonization import blurred, gaussian_kernel
    human = torch.zeros(1, 128, 128)
    human[0, 60:64, 60:64] = 1.0
    out = blurred(human, 10.0)[0]
    assert out.shape == (128, 128)
    support = np.argwhere(out > 1e-9)
    assert support.min() >= 60 - 12 and support.max() <= 64 + 12  # about 20 px wide, not sigma 10 at 128
    assert support.min() <= 50 and support.max() >= 71  # and not 10 x 10 at 128 px, nor a 5 x 5 kernel at 64
    assert out.max() == pytest.approx(0.04317, rel=0.01)  # sigma 10: a nearly flat kernel (sigma 1 peaks at 0.42)
    assert out.sum() == pytest.approx(human.sum().item(), rel=1e-6)
    k = gaussian_kernel(10, 10.0)
    assert k.shape == (10, 10) and k.sum() == pytest.approx(1.0) and k[4, 4] == k[5, 5] and k[0, 0] < k[4, 4]
    assert np.array_equal(blurred(human, 0.0), human.numpy())


def test_a_constant_saliency_map_scores_zero_and_counts():
    h = torch.rand(2, 8, 8)
    s = torch.stack([torch.ones(8, 8), h[1]])
    assert harmonization(s, h, sigma=0.0)["spearman"] == pytest.approx(0.5)


def test_harmonization_equals_scipy_spearman():
    rng = np.random.default_rng(0)
    s = rng.random((3, 12, 12))
    h = rng.random((3, 12, 12))
    s[0, :6] = 0.5  # ties
    result = harmonization(torch.tensor(s), torch.tensor(h), sigma=0.0, top_fraction=0.1)
    expected = np.mean([spearmanr(a.ravel(), b.ravel()).statistic for a, b in zip(s, h)])
    assert result["spearman"] == pytest.approx(expected)
    assert result["score"] == pytest.approx(expected / HUMAN_CEILING)
    same = harmonization(torch.tensor(h), torch.tensor(h), sigma=0.0)
    assert same["spearman"] == pytest.approx(1.0) and same["dice_top"] == 1.0 and same["iou_top"] == 1.0
    assert spearman(np.ones((4, 4)), h[0, :4, :4]) == 0.0


def test_neuron_coverage_on_a_tiny_net_by_hand():
    # conv -> ReLU -> max-pool: "last conv" is the ReLU's map, "encoder output" the pooled one
    encoder = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.MaxPool2d(2))
    encoder[0].weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
    encoder[0].bias.data = torch.zeros(2)
    head = Head(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2),
                gap_linear=False)
    head.body[2].weight.data = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    head.body[2].bias.data = torch.zeros(2)
    model = plain_net(encoder, head, channels=2)  # declares the ReLUs, the encoder's last one as its last conv
    x = torch.tensor([[[[1.0, 0.0], [2.0, 0.0]]]])  # channel 0 > 0 at 2 of 4 pixels, channel 1 never
    cov = neuron_coverage(model, [x], threshold=0.0, scaled_threshold=0.3)
    # conv ReLU: units (2 ch x 4 px): 2 covered of 8; fc ReLU: [2, 0] -> 1 of 2. Global 3 / 10.
    assert cov["global_unit"] == pytest.approx(3 / 10)
    assert cov["last_conv_unit"] == pytest.approx(2 / 8)
    assert cov["encoder_output_unit"] == pytest.approx(1 / 2)  # pooled to 1 px: [2, 0]
    assert cov["per_layer_unit"] == pytest.approx([2 / 8, 1 / 2])
    # scaled: conv layer scaled to [0, 1] over the layer (max 2): channel means 0.375 and 0 -> 1 of 2
    # over 0.3; the pooled map [2, 0] scales to [1, 0]; fc [2, 0] -> [1, 0]
    assert cov["last_conv_scaled"] == pytest.approx(1 / 2)
    assert cov["global_scaled"] == pytest.approx(2 / 4)
    assert cov["per_layer_scaled"] == pytest.approx([1 / 2, 1 / 2])
    # a higher scaled threshold leaves out the conv channel whose mean is 0.375, not the fc neuron at 1
    high = neuron_coverage(model, [x], threshold=0.0, scaled_threshold=0.5)
    assert high["last_conv_scaled"] == 0 and high["global_scaled"] == pytest.approx(1 / 4)
    assert high["global_unit"] == cov["global_unit"]


def test_occlusion_removes_the_most_relevant_patches_first():
    x = torch.ones(1, 1, 4, 4)
    scores = torch.tensor([[[0.9, 0.1], [0.5, 0.2]]])
    out = occlude(x, scores, patch=2, fraction=0.5)
    assert out[0, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    cams = torch.rand(3, 4, 4)
    curves = occlusion_curves(model, torch.rand(3, 1, 4, 4), torch.tensor([0, 1, 0]), cams, patch=2,
                              fractions=[0.0, 0.5, 1.0])
    assert len(curves["relevant"]["accuracy"]) == 3 and 0 <= curves["random"]["auc"] <= 1


def _varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(number, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_clickme_reader_round_trip(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 20, 30)).save(buf, format="PNG")
    heat = np.arange(24, dtype="<f4").reshape(4, 6)
    features = b"".join(_field(1, _field(1, name.encode()) + _field(2, feat)) for name, feat in [
        ("image", _field(1, _field(1, buf.getvalue()))),
        ("heatmap", _field(1, _field(1, heat.tobytes()))),
        ("label", _field(3, _field(1, _varint(217)))),
    ])
    example = _field(1, features)
    with open(tmp_path / "clickme.tfrecords", "wb") as f:
        for _ in range(2):
            f.write(struct.pack("<Q", len(example)) + b"\0" * 4 + example + b"\0" * 4)
    records = list(read_clickme(tmp_path / "clickme.tfrecords"))
    assert len(records) == 2
    image, heatmap, label = records[0]
    assert image.shape == (4, 6, 3) and (image == [10, 20, 30]).all()
    assert np.array_equal(heatmap, heat) and label == 217


def write_clickme(path, records) -> None:
    """records: (RGB uint8 image, float32 heatmap, ImageNet label)."""
    with open(path, "wb") as f:
        for image, heat, label in records:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")
            features = b"".join(_field(1, _field(1, name.encode()) + _field(2, feat)) for name, feat in [
                ("image", _field(1, _field(1, buf.getvalue()))),
                ("heatmap", _field(1, _field(1, heat.astype("<f4").tobytes()))),
                ("label", _field(3, _field(1, _varint(label)))),
            ])
            example = _field(1, features)
            f.write(struct.pack("<Q", len(example)) + b"\0" * 4 + example + b"\0" * 4)


def test_clickme_harmonization_uses_the_records_of_our_classes(tmp_path):
    from types import SimpleNamespace

    from pipeline_lib.data.loader import Normalizer
    from pipeline_lib.metrics.run_metrics import clickme_harmonization
    from pipeline_lib.models import ARCHITECTURES

    rng = np.random.default_rng(0)
    records = [(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8), rng.random((40, 30)), label)
               for label in (217, 5, 701)]  # 5 is not one of our classes
    write_clickme(tmp_path / "val.tfrecords", records)
    model = ARCHITECTURES.get("tinyvgg")(num_classes=2, image_size=32, width=0.25).eval()
    p = SimpleNamespace(human_blur_sigma=10.0, top_fraction=0.1)
    result = clickme_harmonization(model, tmp_path, [217, 701], 32, Normalizer((0.5,) * 3, (0.2,) * 3), p,
                                   ["gradcam", "input_grad"], limit=10)
    assert set(result) == {"gradcam", "input_grad"} and result["gradcam"]["n"] == 2
    assert -1 <= result["input_grad"]["spearman"] <= 1


def test_harmonization_and_hits_use_only_images_with_ground_truth():
    from types import SimpleNamespace

    from pipeline_lib.data.loader import SplitData, with_ground_truth_first
    from pipeline_lib.metrics.run_metrics import attribution_metrics

    boxes = [None, [[0.0, 0.0, 0.5, 0.5]], None, [[0.5, 0.5, 1.0, 1.0]]]
    data = SplitData(images=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), labels=torch.zeros(4, dtype=torch.long),
                     keys=list("abcd"), boxes=boxes, masks=None)
    first = with_ground_truth_first(data, 3)
    assert sorted(first.keys[:2]) == ["b", "d"] and first.keys[2] in "ac"
    maps = torch.zeros(4, 8, 8)
    maps[1, :4, :4] = 1.0  # exactly on b's box
    maps[3, 4:, 4:] = 1.0  # exactly on d's box
    p = SimpleNamespace(area_threshold=0.5, iou_threshold=0.5, human_blur_sigma=0.0, top_fraction=0.25)
    out, proxy = attribution_metrics({"m": maps.numpy()}, list("abcd"), data, p)
    assert proxy == "bounding-box masks" and out["m"]["hit_n"] == 2 and out["m"]["hit_largest"] == 1.0
    assert out["m"]["harmonization_n"] == 2 and out["m"]["spearman"] == pytest.approx(1.0)


from pipeline_lib.metrics.leakage import leakage_warning, mask_leakage, reads_the_mask  # noqa: E402


class _MaskReader(torch.nn.Module):
    """Sees only ones, so the image tells nothing; predicts the channel that was zeroed."""

    def __init__(self, classes):
        super().__init__()
        self.classes = classes
        self.encoder = torch.nn.Conv2d(3, classes, 1)  # a parameter, so the metric finds the device
        self.head = lambda z: -z.mean(dim=(2, 3)) + 1e-3 * torch.arange(self.classes)

    def forward(self, x):
        return self.head(self.encoder(x))


class _LabelChannelDrop(Method):
    def features(self, z, x, y, model):
        return z * (1 - torch.nn.functional.one_hot(y, z.shape[1]).float()[:, :, None, None])


def test_mask_leakage_tells_a_mask_reading_model_from_an_image_reading_one():

    classes, n = 5, 40
    model = _MaskReader(classes)
    model.encoder.weight.data.zero_()
    model.encoder.bias.data.fill_(1.0)
    images, labels = torch.zeros(n, 3, 4, 4, dtype=torch.uint8), torch.arange(n) % classes
    args = dict(num_classes=classes, batch_size=16)
    leaky = mask_leakage(model, _LabelChannelDrop(Method.Params(), model=model, num_classes=classes,
                                                  image_size=4, epochs=1), images, labels, lambda x: x.float(), **args)
    assert leaky["masked_true"] == 1.0 and leaky["follows_wrong"] == 1.0 and leaky["unmasked"] == pytest.approx(0.2)
    assert leaky["follows_wrong_excess"] == pytest.approx(1.0 - leaky["wrong_chance"]) and reads_the_mask(leaky)
    clean = mask_leakage(model, Method(Method.Params(), model=model, num_classes=classes, image_size=4, epochs=1),
                         images, labels, lambda x: x.float(), **args)
    assert clean["masked_true"] == clean["unmasked"] and clean["follows_wrong"] < 0.5
    assert not reads_the_mask(clean)


def test_leakage_chance_is_the_unmasked_rate_of_predicting_the_wrong_label():
    """A collapsed model that always predicts class 4 'follows' a wrong-label mask whenever that
    label is 4: a fifth of the time, which is chance for it, not leakage."""
    classes, n = 5, 200
    model = _MaskReader(classes)  # sees only ones: with nothing dropped it always predicts class 4
    model.encoder.weight.data.zero_()
    model.encoder.bias.data.fill_(1.0)
    images, labels = torch.zeros(n, 3, 4, 4, dtype=torch.uint8), torch.arange(n) % classes
    clean = mask_leakage(model, Method(Method.Params(), model=model, num_classes=classes, image_size=4, epochs=1),
                         images, labels, lambda x: x.float(), num_classes=classes, batch_size=64)
    assert clean["follows_wrong"] > 0.1 and clean["wrong_chance"] == clean["follows_wrong"]
    assert clean["follows_wrong_excess"] == 0.0 and not reads_the_mask(clean)


def test_leakage_warning_names_the_flagged_epochs():
    ok = {"leak_unmasked": 0.6, "leak_masked_true": 0.62, "leak_follows_wrong": 0.05, "leak_wrong_chance": 0.04,
          "leak_follows_wrong_excess": 0.01}
    bad = {"leak_unmasked": 0.1, "leak_masked_true": 0.9, "leak_follows_wrong": 0.8, "leak_wrong_chance": 0.1,
           "leak_follows_wrong_excess": 0.7}
    assert leakage_warning([{"epoch": 1, **ok}, {"epoch": 2}]) == []
    (warning,) = leakage_warning([{"epoch": 1, **ok}, {"epoch": 2, **bad}, {"epoch": 3, **bad}])
    assert "epoch(s) 2, 3" in warning and "0.900" in warning


def test_either_sign_of_leakage_alone_flags_the_run():
    """A head can gain from the true-label mask without following wrong ones, or follow wrong
    ones (a collapsed model, masked-true near unmasked) without gaining: each alone is leakage."""
    base = {"unmasked": 0.5, "masked_true": 0.52, "follows_wrong": 0.12, "wrong_chance": 0.1, "follows_wrong_excess": 0.02}
    assert not reads_the_mask(base)
    assert reads_the_mask({**base, "masked_true": 0.7})
    assert reads_the_mask({**base, "follows_wrong": 0.5, "follows_wrong_excess": 0.4})
    assert not reads_the_mask({**base, "follows_wrong": 0.5, "wrong_chance": 0.45, "follows_wrong_excess": 0.05})


def test_the_wrong_label_is_never_the_true_one():
    """A model that is always right never predicts a wrong label, so its chance of following
    one is exactly 0; were a wrong label ever the true one, it would be about 1 / classes."""
    classes = 3
    model = _MaskReader(classes)
    with torch.no_grad():  # the identity: the image's zeroed channel is its label, and is predicted
        model.encoder.weight.copy_(torch.eye(classes)[:, :, None, None])
        model.encoder.bias.zero_()
    labels = torch.arange(300) % classes
    images = 1 - torch.nn.functional.one_hot(labels, classes).float()[:, :, None, None].expand(-1, -1, 2, 2)
    leak = mask_leakage(model, Method(Method.Params(), model=model, num_classes=classes, image_size=2, epochs=1),
                        images, labels, lambda x: x.float(), num_classes=classes, batch_size=64, seed=3)
    assert leak["unmasked"] == 1.0 and leak["wrong_chance"] == 0.0 and leak["follows_wrong"] == 0.0


def test_mask_leakage_of_a_random_method_does_not_depend_on_what_was_drawn_before():
    """The fan-out found it: the same run's evaluate gave 0.15 in one process and 0.2 in another."""
    from pipeline_lib.metrics.leakage import mask_leakage

    classes, n = 5, 200
    model = _MaskReader(classes)  # predicts the channel a random spatial dropout zeroed
    model.encoder.weight.data.zero_()
    model.encoder.bias.data.fill_(1.0)
    method = build_method(method_spec(tiny_params(matrix={"methods": ["spatial_dropout"]}), "spatial_dropout"),
                          model=model, num_classes=classes, image_size=4, epochs=1)
    images, labels = torch.zeros(n, 3, 4, 4, dtype=torch.uint8), torch.arange(n) % classes
    args = dict(num_classes=classes, batch_size=50)
    first = mask_leakage(model, method, images, labels, lambda x: x.float(), **args)
    torch.rand(1000)  # another stage's draws
    assert mask_leakage(model, method, images, labels, lambda x: x.float(), **args) == first


def test_the_attributed_subset_is_a_class_stratified_draw():
    from pipeline_lib.data.loader import SplitData, with_ground_truth_first
    labels = torch.arange(4).repeat_interleave(5)  # stored class by class
    data = SplitData(images=torch.zeros(20, 3, 4, 4, dtype=torch.uint8), labels=labels,
                     keys=[str(i) for i in range(20)], boxes=[None] * 20, masks=None)
    assert sorted(with_ground_truth_first(data, 4, seed=0).labels.tolist()) == [0, 1, 2, 3]


def test_coverage_occlusion_and_leakage_images_are_stratified_draws(tiny_shards, in_tmp, monkeypatch):
    """The synthetic splits interleave their classes, so storage order would look balanced here:
    check that each of these metrics draws its test images with stratified_sample."""
    import pipeline_lib.metrics.run_metrics as rm
    from pipeline_lib.config.resolve import run_configs
    from pipeline_lib.training.loop import train
    params = tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 1},
                         evaluate={"coverage_batches": 2, "coverage_batch_size": 4, "occlusion_images": 6,
                                   "leakage_images": 10})
    cfg = run_configs(params)[0]
    trained = train(cfg, tiny_shards, cfg.run_dir)
    monkeypatch.setattr(rm, "attribution_metrics", lambda maps, keys, split, p: ({}, "none"))
    calls, real = [], rm.stratified_sample
    monkeypatch.setattr(rm, "stratified_sample", lambda labels, n, seed: calls.append(n) or real(labels, n, seed))
    rm.run_metrics(trained, params.evaluate, "test", 64, {}, [])  # no attribute step here
    assert {8, 6, 10} <= set(calls)  # coverage (2 x 4), occlusion, leakage
