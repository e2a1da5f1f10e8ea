"""The random latent dropouts and SGQN: the property that defines each, which a plausible bug breaks."""
import pytest
import torch
import torch.nn.functional as F

from pipeline_lib.config.resolve import method_spec
from pipeline_lib.methods import build_method
from pipeline_lib.methods.sgqn import top_quantile_mask
from pipeline_lib.models import build_model
from tests.conftest import tiny_params


def method(name, **params):
    torch.manual_seed(0)
    model = build_model("tinyvgg", 4, 32, tiny_params(**{"model": {"width": 0.25}}).model)
    spec = method_spec(tiny_params(matrix={"methods": [name]}, methods={name: params}), name)
    return build_method(spec, model=model, num_classes=4, image_size=32, epochs=2), model


def dropped(name, z, **params):
    m, model = method(name, **params)
    torch.manual_seed(1)
    return m.features(z, None, None, model)


def test_dropout_zeroes_units_independently_at_rate_p_and_rescales_the_rest():
    z = torch.rand(64, 16, 4, 4) + 0.5
    out = dropped("dropout", z, p=0.3)
    zero = out == 0
    assert zero.float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.allclose(out[~zero], z[~zero] / 0.7)
    # independent units: channels are neither all kept nor all dropped together
    per_channel = zero.flatten(2).float().mean(2)
    assert ((per_channel > 0) & (per_channel < 1)).float().mean() > 0.5


def test_spatial_dropout_drops_whole_channels_at_rate_p():
    z = torch.rand(64, 32, 4, 4) + 0.5
    out = dropped("spatial_dropout", z, p=0.25)
    per_channel = (out == 0).flatten(2).float().mean(2)
    assert set(per_channel.unique().tolist()) <= {0.0, 1.0}
    assert per_channel.mean().item() == pytest.approx(0.25, abs=0.03)
    kept = per_channel == 0
    assert torch.allclose(out[kept], z[kept] / 0.75)


def test_dropblock_drops_square_blocks_and_keeps_the_expected_sum():
    z = torch.rand(32, 8, 12, 12) + 0.5
    out = dropped("dropblock", z, p=0.2, block_size=3)
    zero = (out == 0).float()
    assert 0.1 < zero.mean().item() < 0.3
    # every dropped unit lies inside a fully dropped 3x3 window (the opening of the dropped set
    # is the set itself): blocks, not scattered units
    eroded = -F.max_pool2d(-zero, 3, stride=1)
    assert torch.equal(F.max_pool2d(F.pad(eroded, (2, 2, 2, 2)), 3, stride=1), zero)
    kept = out != 0
    assert out.sum().item() == pytest.approx(z.sum().item(), rel=0.05)  # inverted scaling
    assert torch.all(out[kept] >= z[kept])


def test_sgqn_mask_keeps_the_top_quantile_of_the_attribution():
    a = torch.rand(4, 10, 10)
    mask = top_quantile_mask(a, 0.9)
    assert mask.flatten(1).float().mean(1).tolist() == pytest.approx([0.1] * 4, abs=0.011)
    for m, s in zip(mask, a):
        assert s[m].min() >= s[~m].max()


def test_sgqn_consistency_pulls_the_masked_prediction_not_the_full_one():
    m, model = method("sgqn", consistency_weight=1.0, aux_weight=0.0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    z = model.encoder(x)
    logits = model.head(z)
    logits.retain_grad()
    m.extra_loss(x, y, model, logits, z).backward()
    assert logits.grad is None or torch.all(logits.grad == 0)  # the full prediction is the target
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_sgqn_auxiliary_head_learns_the_saliency_mask():
    m, model = method("sgqn", consistency_weight=0.0, aux_weight=1.0)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 4, (8,))
    z = model.encoder(x)
    m.extra_loss(x, y, model, model.head(z), z).backward()
    head = m.extra_modules["aux_head"]
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    assert m.last["aux_bce"] > 0


@pytest.mark.parametrize("name, params", [("dropout", {"p": 0.3}), ("spatial_dropout", {"p": 0.25}),
                                          ("dropblock", {"p": 0.2, "block_size": 3})])
def test_a_random_dropout_logs_the_fraction_it_actually_dropped(name, params):
    z = torch.rand(32, 16, 12, 12) + 0.5
    z[:, :, :2] = 0  # post-ReLU zeros are not drops
    m, model = method(name, **params)
    torch.manual_seed(1)
    out = m.features(z, None, None, model)
    live = z != 0
    actual = ((out == 0) & live).sum().item() / live.sum().item()
    assert float(m.last["dropped_fraction"]) == pytest.approx(actual)
    assert actual == pytest.approx(params["p"], abs=0.1)
