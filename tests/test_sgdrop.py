"""SGDrop, exactly as specified."""
import pytest
import torch

from pipeline_lib.attribution.latent import grad_x_act, latent_gradient
from pipeline_lib.config.resolve import method_spec
from pipeline_lib.methods import build_method
from pipeline_lib.methods.sgdrop import rho_at, top_k_mask
from pipeline_lib.models import ARCHITECTURES, latent_shape
from tests.conftest import tiny_params


def make(arch="tinyvgg", width=0.5, **method):
    torch.manual_seed(0)
    model = ARCHITECTURES.get(arch)(num_classes=5, image_size=32, width=width)
    params = tiny_params(**{"matrix": {"methods": ["sgdrop"]}, "methods": {"sgdrop": method}})
    sg = build_method(method_spec(params, "sgdrop"), model=model, num_classes=5, image_size=32, epochs=4)
    return model, sg


def test_top_k_mask_drops_the_k_largest_positive_with_ties_to_the_lower_index():
    a = torch.tensor([[[[3.0, 1.0], [3.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])
    m = top_k_mask(a, 1)
    assert m.flatten(1).tolist() == [[False, True, True, True], [True, True, True, True]]
    m = top_k_mask(a, 3)
    assert m.flatten(1).tolist() == [[False, False, False, True], [True, True, True, True]]
    # fewer positive features than k: only those are dropped, never the zero-attribution ones
    assert top_k_mask(a, 4).flatten(1)[0].tolist() == [False, False, False, True]


def test_dropped_fraction_is_the_fraction_actually_dropped():
    model, sg = make(rho=0.5, ema=False)
    sg.start_epoch(0)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    z = model.encoder(x) + 0.01
    out = sg.features(z, x, y, model)
    actual = (out == 0).float().mean().item()
    assert float(sg.last["dropped_fraction"]) == pytest.approx(actual)
    assert actual < 0.5  # about half the gradients are negative: fewer positive features than k


def test_mask_label_true_permuted_random_predicted():
    model, sg = make(rho=0.1, ema=False)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    z = model.encoder(x) + 0.01

    def mask(mode, labels, seed=None):
        _, m = make(rho=0.1, ema=False, mask_label=mode)
        m.start_epoch(0)
        if seed is not None:
            torch.manual_seed(seed)
        return m.features(z, x, labels, model) == 0

    def mask_for(labels):
        return ~top_k_mask(grad_x_act(model.head, z, labels), round(0.1 * z[0].numel()))

    assert torch.equal(mask(True, y), mask_for(y))  # YAML's `true` is the paper's default
    perm = sg.permutation
    assert sorted(perm.tolist()) == list(range(5)) and all(perm[c] != c for c in range(5))
    assert torch.equal(mask("permuted", y), mask_for(perm[y]))
    assert torch.equal(mask("predicted", y), mask_for(model.head(z).argmax(1)))
    assert torch.equal(mask("predicted", y), mask("predicted", (y + 1) % 5))  # the label is not read
    first = mask("random", y, seed=1)
    torch.manual_seed(1)
    assert torch.equal(first, mask_for(torch.randint(5, y.shape)))
    assert not torch.equal(mask("random", y, seed=2), first)  # a fresh label every step


def test_mask_label_rejects_an_unknown_mode():
    with pytest.raises(Exception, match="mask_label"):
        make(mask_label="shuffled")


@pytest.mark.parametrize("ema", [True, False])
def test_sgdrop_zeroes_exactly_k_most_attributed_features_for_the_true_label(ema):
    model, sg = make(rho=0.1, ema=ema)
    sg.start_epoch(0)
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    z = model.encoder(x) + 0.01  # no exact zeros, so dropped features are visible as zeros
    out = sg.features(z, x, y, model)
    k = round(0.1 * z[0].numel())
    dropped = (out == 0).flatten(1)
    assert dropped.sum(1).tolist() == [k] * 6
    net = sg.attributing_model(model)
    with torch.no_grad():
        z_attr = net.encoder(x) if ema else z
    attr = grad_x_act(net.head, z_attr, y).flatten(1)
    for i in range(6):
        kth = attr[i].sort(descending=True).values[k - 1]
        assert (attr[i][dropped[i]] >= kth).all() and (attr[i][~dropped[i]] <= kth).all()
    assert torch.equal(out[out != 0], z[out != 0])  # no rescaling
    other = sg.features(z, x, (y + 1) % 5, model)
    assert not torch.equal(other == 0, out == 0)  # the mask depends on the label


def test_no_gradient_flows_through_the_attribution():
    model, sg = make(rho=0.2, ema=False)
    sg.start_epoch(0)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    z = model.encoder(x)
    out = sg.features(z, x, y, model)
    mask = (out != 0) | (z == 0)
    grad_masked = torch.autograd.grad(model.head(out).sum(), z, retain_graph=True)[0]
    grad_plain = torch.autograd.grad(model.head(z * mask).sum(), z)[0]
    assert torch.allclose(grad_masked, grad_plain)


def test_the_ema_model_is_the_one_attributed():
    model, sg = make(rho=0.1, ema=True, ema_decay=0.5)
    assert sg.attributing_model(model) is sg.ema.module and sg.ema.module is not model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    sg.start_epoch(0)
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])
    z = model.encoder(x) + 0.01
    out = sg.features(z, x, y, model)
    with torch.no_grad():
        ema_attr = grad_x_act(sg.ema.module.head, sg.ema.module.encoder(x), y)
    assert torch.equal(out == 0, ~top_k_mask(ema_attr, round(0.1 * z[0].numel())))
    sg.after_step(model)  # AveragedModel's first update copies the online weights
    assert all(torch.equal(a, p) for a, p in zip(sg.ema.module.parameters(), model.parameters()))
    before = [p.clone() for p in sg.ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    sg.after_step(model)
    for b, a, p in zip(before, sg.ema.module.parameters(), model.parameters()):
        assert torch.allclose(a, 0.5 * b + 0.5 * p, atol=1e-6)


def test_evaluation_drops_nothing():
    model, sg = make(rho=0.5)
    sg.start_epoch(0)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), model.head(model.encoder(x)))


@pytest.mark.parametrize("arch,width", [("tinyvgg", 0.5), ("resnet20", 0.5), ("resnet18", 1.0)])
def test_closed_form_equals_autograd(arch, width):
    model, _ = make(arch, width)
    assert model.head.gap_linear
    z, y = torch.rand(3, *latent_shape(model.encoder, 32)), torch.tensor([0, 3, 4])
    assert torch.allclose(latent_gradient(model.head, z, y, closed_form=True),
                          latent_gradient(model.head, z, y, closed_form=False), atol=1e-7)


def test_curriculum_gives_the_right_rho_per_epoch():
    kw = dict(schedule="linear", rho=0.01, rho_start=0.0, rho_end=0.06)
    assert [round(rho_at(e, 4, **kw), 6) for e in range(4)] == [0.0, 0.02, 0.04, 0.06]
    assert [round(rho_at(e, 5, warmup_epochs=2, **kw), 6) for e in range(5)] == [0.0, 0.0, 0.0, 0.03, 0.06]
    assert [rho_at(e, 3, **{**kw, "schedule": "constant"}) for e in range(3)] == [0.01] * 3
