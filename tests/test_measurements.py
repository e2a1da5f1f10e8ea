"""Measurements that can tell methods apart: coverage per image, a leakage probe with a true null,
and attribution maps with non-finite values left out and counted."""
import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pipeline_lib.attribution.latent import grad_x_act
from pipeline_lib.data.loader import SplitData
from pipeline_lib.methods import Method
from pipeline_lib.methods.sgdrop import top_k_mask
from pipeline_lib.metrics.coverage import neuron_coverage
from pipeline_lib.metrics.harmonization import harmonization
from pipeline_lib.metrics.leakage import (ALPHA, binomial_tail, leakage_warning, mask_leakage, metrics_entry,
                                         reads_the_mask)
from pipeline_lib.metrics.localization import area_ratio, hit_ratio
from pipeline_lib.metrics.run_metrics import attribution_metrics
from pipeline_lib.models import FeatureInfo, Head, SplitModel
from pipeline_lib.models.vgg import plain_net


# --- coverage per image (SGDrop paper Sec. 4.2, Table 4) ---------------------------------------

def _coverage_net() -> SplitModel:
    """conv (channel 0 = x, channel 1 = -x) -> ReLU -> 2x2 max-pool; head: Linear -> ReLU -> Linear."""
    encoder = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(), nn.MaxPool2d(2))
    encoder[0].weight.data = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
    encoder[0].bias.data = torch.zeros(2)
    head = Head(nn.Sequential(nn.Flatten(), nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2), gap_linear=False)
    head.body[1].weight.data = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    head.body[1].bias.data = torch.zeros(2)
    return plain_net(encoder, head, channels=2)


def test_coverage_per_image_is_the_mean_over_images_of_the_fraction_of_active_units():
    """Three images: a (channel 0 fires at 1 of 4 pixels, so does the first fc unit), b (channel 1
    at 1 pixel, no fc unit), and a blank one. Conv layer (8 units): 1, 1, 0 active; fc (2 units):
    1, 0, 0. The union covers 2 of 8 and 1 of 2; per image, 1/12 and 1/6."""
    a = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    b = torch.tensor([[[[0.0, 0.0], [0.0, -1.0]]]])
    blank = torch.zeros(1, 1, 2, 2)
    cov = neuron_coverage(_coverage_net(), [torch.cat([a, blank]), b])  # unequal batches: mean over images
    assert cov["last_conv_per_image"] == pytest.approx(1 / 12)
    assert cov["per_layer_per_image"] == pytest.approx([1 / 12, 1 / 6])
    # pooled over all 10 units (2 + 0 + 1 active units per image), not the mean of the layers' 1/12 and 1/6
    assert cov["global_per_image"] == pytest.approx(3 / 30)
    assert cov["encoder_output_per_image"] == pytest.approx(1 / 3)  # pooled maps [1, 0], [0, 0], [0, 1]
    # the union beside it, unchanged
    assert cov["last_conv_unit"] == pytest.approx(2 / 8) and cov["global_unit"] == pytest.approx(3 / 10)
    assert cov["encoder_output_unit"] == 1.0
    assert neuron_coverage(_coverage_net(), [torch.cat([a, blank, b])])["global_per_image"] == pytest.approx(0.1)


def test_coverage_per_image_does_not_saturate_where_the_union_does():
    """Each unit fires on about half of the images: over 64 images the union covers every unit,
    the per-image reading stays near a half, which is what can tell a sparse net from a dense one."""
    torch.manual_seed(0)
    x = torch.randn(64, 1, 2, 2)
    cov = neuron_coverage(_coverage_net(), [x[:32], x[32:]])
    assert cov["last_conv_unit"] == 1.0
    assert 0.4 < cov["last_conv_per_image"] < 0.6
    assert all(p <= u for p, u in zip(cov["per_layer_per_image"], cov["per_layer_unit"]))


# --- the binomial tail against scipy -------------------------------------------------------------

@pytest.mark.parametrize("k, n, p", [(0, 10, 0.1), (1, 10, 0.1), (3, 10, 0.1), (10, 10, 0.1), (11, 10, 0.1),
                                     (30, 256, 0.1), (60, 256, 0.1), (140, 256, 0.25), (9, 12, 0.5),
                                     (512, 1024, 0.5), (300, 1024, 0.1), (5, 7, 1 / 3)])
def test_binomial_tail_equals_scipys_one_sided_binomial_test(k, n, p):
    from scipy.stats import binomtest

    expected = binomtest(k, n, p, alternative="greater").pvalue if k <= n else 0.0
    assert binomial_tail(k, n, p) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_binomial_tail_does_not_underflow_before_scipy():
    """400 of 1024 at 1/10: 0.1^400 is below the smallest float, so a sum of p^k (1 - p)^(n - k) C(n, k)
    gives 0, but the tail itself is a float far from 0."""
    from scipy.stats import binomtest

    tail = binomial_tail(400, 1024, 0.1)
    assert 0 < tail < 1e-100 and tail == pytest.approx(binomtest(400, 1024, 0.1, alternative="greater").pvalue, rel=1e-9)


# --- the content-free leakage probe --------------------------------------------------------------

K = 4  # classes; the latent has K "mask" channels (constant 1) and K "image" channels (one-hot), 2 x 2


def _latent_model() -> SplitModel:
    """z = [1 (K channels), x (K channels)] at 2 x 2: the first half carries no image, the second the
    class channel of a one-hot image. The head reads the flattened map, as VGG's classifier does."""
    encoder = nn.Conv2d(K, 2 * K, 1)
    with torch.no_grad():
        encoder.weight.zero_()
        encoder.weight[K:, :, 0, 0] = torch.eye(K)
        encoder.bias.copy_(torch.cat([torch.ones(K), torch.zeros(K)]))
    head = Head(nn.Flatten(), nn.Linear(2 * K * 4, K, bias=False), gap_linear=False)
    return SplitModel(encoder, head, FeatureInfo(activations=[], last_conv=None, stages=[encoder]), num_features=2 * K)


def _set_head(model: SplitModel, on_mask: float, on_image: float) -> None:
    """Class c's weights: `on_mask` on mask channel c's four positions, `on_image` on image channel c's."""
    w = torch.zeros(K, 2 * K, 2, 2)
    for c in range(K):
        w[c, c], w[c, K + c] = on_mask, on_image
    model.head.fc.weight.data = w.flatten(1)


class _FrozenSGDrop(Method):
    """SGDrop's mask with its EMA frozen at a copy of the model as it is now (so the online head can
    be changed after): the attributing network re-encodes x, A = ReLU(d s_y / d z') * z', and the
    top-k features of A are zeroed, 4 of the 32 here, one channel's positions. Built on SGDrop's own
    `top_k_mask` and `grad_x_act`, not on its params, which change with params.yaml."""

    def __init__(self, model):
        super().__init__(Method.Params(), model=model, num_classes=K, image_size=2, epochs=1)
        self.ema = copy.deepcopy(model)

    def features(self, z, x, y, model):
        attribution = grad_x_act(self.ema.head, self.ema.encoder(x), y, closed_form=False)
        return z * top_k_mask(attribution, 4).to(z.dtype)


def _images(n: int = 200):
    labels = torch.arange(n) % K
    images = nn.functional.one_hot(labels, K).float()[:, :, None, None].expand(-1, -1, 2, 2).contiguous()
    return images, labels


def _leak(model, method, n=200, seed=0):
    images, labels = _images(n)
    return mask_leakage(model, method, images, labels, lambda x: x.float(), num_classes=K, batch_size=64, seed=seed)


def _honest():
    """The head SGDrop attributes with: its evidence for c is mask channel c (weight 1, the
    positions SGDrop drops for c) and image channel c (0.5). Dropping c's features lowers c's score."""
    model = _latent_model()
    _set_head(model, on_mask=1.0, on_image=0.5)
    return model, _FrozenSGDrop(model)


def _reads_the_mask_under_the_image():
    """The attributing (EMA) head is the honest one, so SGDrop drops mask channel c for label c; the
    online head reads exactly those positions (-1: zeros there raise c's score) and the image (+2),
    which outweighs them on every real image."""
    model = _latent_model()
    _set_head(model, on_mask=1.0, on_image=0.5)
    method = _FrozenSGDrop(model)
    _set_head(model, on_mask=-1.0, on_image=2.0)
    return model, method


def test_the_mask_for_a_label_is_that_label_s_mask_channel_in_this_setup():
    model, method = _honest()
    x = torch.zeros(K, K, 2, 2)
    z = model.encoder(x)
    dropped = (method.features(z, x, torch.arange(K), model) == 0) & (z != 0)
    assert [dropped[c].nonzero()[:, 0].unique().tolist() for c in range(K)] == [[c] for c in range(K)]


def test_the_content_free_probe_catches_a_head_that_reads_the_mask_where_the_paired_readings_cannot():
    """On real images the image decides, so the paired readings see nothing (masked accuracy equals
    unmasked, a wrong-label mask is never followed); on the encoder's output for the mean image only
    the mask is left, and the head follows it every time."""
    leak = _leak(*_reads_the_mask_under_the_image())
    assert leak["unmasked"] == 1.0 and leak["masked_true"] == 1.0 and leak["follows_wrong_excess"] == 0.0
    assert leak["content_free_follows_label"] == 1.0 and leak["content_free_chance"] == 1 / K
    assert leak["content_free_n"] == 200 and leak["content_free_p_value"] == pytest.approx(0.25**200, rel=1e-9)
    assert reads_the_mask(leak)
    epochs = [{"epoch": e, **{f"leak_{k}": v for k, v in leak.items()}} for e in range(1, 7)]
    (warning,) = leakage_warning(epochs)
    assert "epoch(s) 1, 2, 3, 4, 5, 6" in warning and "content-free" in warning
    assert "follow the mask's label 1.000 of the time against a chance of 0.250" in warning
    assert "reads the label from where the mask is" in warning


def test_the_content_free_probe_stays_quiet_for_an_honest_head():
    """SGDrop drops what speaks for the label, so an honest head follows the mask's label less
    than a mask-blind one (never, here), and no reading says leakage."""
    leak = _leak(*_honest())
    assert leak["content_free_follows_label"] <= leak["content_free_chance"]
    assert leak["content_free_p_value"] == 1.0 and not reads_the_mask(leak)
    assert leakage_warning([{"epoch": e, **{f"leak_{k}": v for k, v in leak.items()}} for e in range(1, 7)]) == []


def test_a_mask_blind_head_follows_the_label_at_chance_one_over_k():
    """The null: a head that gives the mask positions no weight predicts one class whatever the
    mask; the labels of the probe are uniform draws, so it follows them about 1/K of the time."""
    model = _latent_model()
    _set_head(model, on_mask=1.0, on_image=0.5)
    method = _FrozenSGDrop(model)
    _set_head(model, on_mask=0.0, on_image=1.0)
    leak = _leak(model, method, n=1000)
    assert abs(leak["content_free_follows_label"] - 1 / K) < 0.05 and leak["content_free_p_value"] > ALPHA


def test_a_head_trained_on_masked_latents_that_carry_no_image_learns_the_mask_and_is_caught():
    """The collapse: the encoder's features carry no image, the head fits the labels through the
    mask. A few hundred steps of a linear head on SGDrop-masked latents are enough."""
    torch.manual_seed(0)
    model = _latent_model()
    _set_head(model, on_mask=1.0, on_image=0.5)
    method = _FrozenSGDrop(model)
    nn.init.normal_(model.head.fc.weight, std=0.1)
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    x = torch.zeros(64, K, 2, 2)
    for _ in range(200):
        y = torch.randint(K, (64,))
        with torch.no_grad():
            z = method.features(model.encoder(x), x, y, model)
        loss = nn.functional.cross_entropy(model.head(z), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    leak = _leak(model, method)
    assert leak["content_free_follows_label"] > 0.9 and leak["content_free_p_value"] < 1e-50 and reads_the_mask(leak)


def test_mask_leakage_returns_flat_numbers_and_metrics_json_nests_the_content_free_probe():
    """The training loop logs every key of the result as a per-epoch metric, so each is a number;
    metrics.json groups the probe under `content_free`."""
    leak = _leak(*_honest())
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in leak.values())
    out = metrics_entry(leak)
    assert set(out["content_free"]) == {"follows_label", "chance", "n", "p_value"}
    assert not any(k.startswith("content_free_") for k in out) and out["reads_the_mask"] is False
    assert out["unmasked"] == leak["unmasked"] and out["masked_true_p_value"] == leak["masked_true_p_value"]


# --- the warning's significance rule -------------------------------------------------------------

QUIET = {"unmasked": 0.6, "masked_true": 0.6, "follows_wrong": 0.05, "wrong_chance": 0.05, "follows_wrong_excess": 0.0,
         "masked_true_p_value": 0.5, "follows_wrong_p_value": 0.5, "content_free_follows_label": 0.1,
         "content_free_chance": 0.1, "content_free_n": 256, "content_free_p_value": 0.5}


def _history(*records):
    return [{"epoch": e, **{f"leak_{k}": v for k, v in r.items()}} for e, r in enumerate(records, 1)]


def test_the_warning_is_bonferroni_corrected_over_the_run_s_epochs():
    """p = 1e-5 passes the level of a one-epoch run (0.001 / 3 tests), not that of a 100-epoch
    run (0.001 / 300): a run that probes often must not be warned by chance."""
    odd = {**QUIET, "content_free_follows_label": 0.2, "content_free_p_value": 1e-5}
    assert len(leakage_warning(_history(odd))) == 1
    assert leakage_warning(_history(*[QUIET] * 99, odd)) == []
    assert len(leakage_warning(_history(*[QUIET] * 99, {**odd, "content_free_p_value": 1e-7}))) == 1


def test_a_margin_that_is_not_significant_does_not_warn():
    """Masked-true accuracy 0.15 above the unmasked one on few images (p = 0.2) is noise, not a leak;
    the same margin with p = 1e-6 is one."""
    gain = {**QUIET, "masked_true": 0.75}
    assert not reads_the_mask({**gain, "masked_true_p_value": 0.2})
    assert reads_the_mask({**gain, "masked_true_p_value": 1e-6})
    follows = {**QUIET, "follows_wrong": 0.3, "follows_wrong_excess": 0.25}
    assert not reads_the_mask({**follows, "follows_wrong_p_value": 0.01})
    assert reads_the_mask({**follows, "follows_wrong_p_value": 1e-6})
    # significant but below the margin: masks seen in training may help an honest head a little
    assert not reads_the_mask({**QUIET, "masked_true": 0.65, "masked_true_p_value": 1e-9})


# --- non-finite attribution maps (localization, harmonization) -----------------------------------

def _maps_with_one_bad(bad_value: float) -> torch.Tensor:
    """Map 0: 20 of 100 pixels at 1, one at 0.4. Map 1: the same at 3x scale with one bad pixel."""
    m = torch.zeros(2, 10, 10)
    m[:, :2, :] = 1.0
    m[:, 5, 5] = 0.4
    m[1] *= 3.0
    m[1, 9, 9] = bad_value
    return m


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_map_with_a_non_finite_pixel_has_no_area_ratio(bad):
    """The reproducer: one NaN pixel used to turn max-normalisation off (its max is NaN), so the
    map's area ratio was read at the map's own scale: 0.21 at 3x (0.4 x 3 > 0.5), 0.2 at 1x."""
    area = area_ratio(_maps_with_one_bad(bad))
    assert area[0].item() == pytest.approx(0.2)
    assert torch.isnan(area[1])


def test_hit_ratio_leaves_out_and_counts_non_finite_maps():
    """Map 1 lies on its box but at a scale under 0.5 with a NaN: read unnormalised, it was a miss."""
    maps = torch.zeros(3, 20, 20)
    maps[0, 2:8, 2:8] = 1.0
    maps[1, 2:8, 2:8] = 0.3
    maps[1, 0, 0] = float("nan")
    box = [[0.1, 0.1, 0.4, 0.4]]
    r = hit_ratio(maps, [box, box, None])
    assert r["n"] == 1 and r["non_finite"] == 1 and r["whole"] == 1.0 and r["largest_component"] == 1.0


def test_harmonization_leaves_out_and_counts_non_finite_maps():
    rng = np.random.default_rng(0)
    human = torch.tensor(rng.random((2, 8, 8)))
    saliency = human.clone()
    saliency[1, 3, 3] = float("nan")
    h = harmonization(saliency, human, sigma=0.0)
    assert h["n"] == 1 and h["non_finite"] == 1 and h["spearman"] == pytest.approx(1.0)
    assert harmonization(saliency[1:], human[1:], sigma=0.0)["spearman"] is None


def test_metrics_json_counts_the_non_finite_maps_of_each_attribution_method():
    boxes = [[[0.0, 0.0, 0.5, 0.5]]] * 3
    data = SplitData(images=torch.zeros(3, 3, 8, 8, dtype=torch.uint8), labels=torch.zeros(3, dtype=torch.long),
                     keys=list("abc"), boxes=boxes, masks=None)
    maps = torch.zeros(3, 8, 8)
    maps[:, :4, :4] = 1.0  # each on its box: area 0.25, a hit, a perfect ranking
    maps[2] *= 0.2
    maps[2, 7, 7] = float("nan")
    p = SimpleNamespace(area_threshold=0.5, iou_threshold=0.5, human_blur_sigma=0.0, top_fraction=0.25)
    out, _ = attribution_metrics({"m": maps.numpy()}, list("abc"), data, p)
    m = out["m"]
    assert m["non_finite_maps"] == 1 and m["area_ratio"] == pytest.approx(0.25)
    assert m["hit_n"] == 2 and m["hit_whole"] == 1.0 and m["harmonization_n"] == 2
    assert m["spearman"] == pytest.approx(1.0)
    clean, _ = attribution_metrics({"m": maps[:2].numpy()}, list("ab"), data, p)
    assert clean["m"]["non_finite_maps"] == 0
