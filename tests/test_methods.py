"""Every method of the zoo: its defining property, and a training step on a VGG and a ResNet."""
import pytest
import torch

from pipeline_lib.methods import METHODS, build_method
from pipeline_lib.methods.camdrop import camdrop_masks, candidate_masks
from pipeline_lib.methods.excitation_dropout import retain_probability, winning_probability
from pipeline_lib.methods.focused_dropout import FocusedDropout, focused_mask
from pipeline_lib.methods.reldrop import block_mask, pixel_mask
from pipeline_lib.methods.saliency_training import lowest_saliency_mask
from pipeline_lib.models import ARCHITECTURES, build_model
from pipeline_lib.training.loop import build_run, train_step
from pipeline_lib.config.resolve import RunConfig, method_spec
from tests.conftest import tiny_params

ALL = ["vanilla", "dropout", "spatial_dropout", "dropblock", "sgdrop", "excitation_dropout", "saliency_training",
       "sgqn", "reldrop", "camdrop", "focused_dropout"]


def test_every_registered_method_is_covered_here():
    assert sorted(ALL) == METHODS.names()


@pytest.mark.parametrize("arch", ["vgg11", "resnet20"])
@pytest.mark.parametrize("method", ALL)
def test_method_trains_on_a_vgg_and_a_resnet(method, arch):
    params = tiny_params(matrix={"methods": [method]}, model={"architecture": arch},
                         methods={"focused_dropout": {"participation": 1.0}, "reldrop": {"p": 1.0}})
    cfg = RunConfig(setup="default", method=method_spec(params, method), seed=0, data=params.data,
                    loader=params.loader, model=params.model.model_copy(update={"width": 0.125}), train=params.train)
    run = build_run(cfg, num_classes=4, image_size=32)
    run.method.start_epoch(1)
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 0, 1])
    before = [p.clone() for p in run.model.parameters()]
    loss, logits = train_step(run, x, y)
    assert torch.isfinite(loss) and logits.shape == (6, 4)
    assert any(not torch.equal(b, p) for b, p in zip(before, run.model.parameters()))
    # the method records exactly the statistics it declares: the loop logs those and nothing else
    assert set(run.method.last) == set(run.method.logs)


@pytest.mark.parametrize("method", ALL)
def test_method_builds_on_a_model_already_on_its_device(method):
    """build_run moves the model first (the GPU path): a method probing the encoder must probe it
    on the encoder's device. The meta device stands in for a GPU on the CPU."""
    params = tiny_params(matrix={"methods": [method]})
    model = build_model("tinyvgg", 4, 32, params.model).to("meta")
    built = build_method(method_spec(params, method), model=model, num_classes=4, image_size=32, epochs=2)
    state = torch.utils._pytree.tree_leaves(built.to("meta").state_dict())  # as build_run does
    assert all(t.device.type == "meta" for t in state if isinstance(t, torch.Tensor))  # EMA copy, extra heads


# --- Excitation Dropout --------------------------------------------------------------------------

def test_retain_probability_matches_the_paper_at_its_anchor_points():
    n, base = 8, 0.5
    s = torch.tensor([[1 / n] * n, [0.0] * (n - 1) + [1.0]])
    p = retain_probability(s, base)
    assert torch.allclose(p[0], torch.full((n,), base)) and p[1, -1] == 0 and (p[1, :-1] == 1).all()


def excitation_dropout(model, **params):
    spec = method_spec(tiny_params(matrix={"methods": ["excitation_dropout"]},
                       methods={"excitation_dropout": params}), "excitation_dropout")
    return build_method(spec, model=model, num_classes=2, image_size=32, epochs=1)


def output_layer(weight):
    model = type("M", (), {})()
    model.head = type("H", (), {"fc": torch.nn.Linear(weight.shape[1], weight.shape[0])})()
    model.head.fc.weight.data = weight
    return model


def test_winning_probability_is_excitation_backprop_through_the_output_layer():
    h = torch.tensor([[1.0, 2.0, 0.0, 3.0], [1.0, 2.0, 0.0, 3.0]])
    weight = torch.tensor([[0.5, -1.0, 2.0, 0.5], [-1.0, -1.0, 1.0, -1.0]])
    mwp = winning_probability(h, weight, torch.tensor([0, 1]))
    assert torch.allclose(mwp[0], torch.tensor([0.5, 0.0, 0.0, 1.5]) / 2.0)  # h_j W+_yj / sum
    assert torch.allclose(mwp[1], torch.full((4,), 0.25))  # no evidence for class 1: uniform


def test_excitation_dropout_drops_salient_neurons_more_often():
    torch.manual_seed(0)
    weight = torch.zeros(2, 10)
    weight[0] = torch.linspace(0.1, 1.0, 10)  # class 0 weighs neuron j more as j grows
    h = torch.ones(4000, 10)
    y = torch.zeros(4000, dtype=torch.long)
    s = winning_probability(h, weight, y)
    assert torch.allclose(s.sum(1), torch.ones(4000))
    model = output_layer(weight)
    out = excitation_dropout(model).penultimate(h, y, model)
    drop_rate = (out == 0).float().mean(0)
    assert drop_rate[-1] > drop_rate[0] + 0.2
    assert torch.corrcoef(torch.stack([drop_rate, s[0]]))[0, 1] > 0.95


def test_excitation_dropout_rescales_each_sample_by_its_kept_fraction():
    """The authors' code divides a sample's kept neurons by the fraction kept, one bounded factor
    per sample; dividing each neuron by its own retain probability is unbounded as it goes to 0."""
    torch.manual_seed(0)
    n = 50
    weight = torch.zeros(2, n)
    weight[0, 0] = 1.0  # neuron 0 carries nearly all the evidence: its retain probability is tiny
    weight[0, 1:] = 1e-4
    h = torch.rand(2000, n) + 0.5
    y = torch.zeros(2000, dtype=torch.long)
    model = output_layer(weight)
    out = excitation_dropout(model).penultimate(h, y, model)
    kept = out != 0
    assert kept[:, 0].any()  # the rarely kept neuron was kept somewhere
    factor = out / h
    per_sample = kept.sum(1, keepdim=True) / n
    assert torch.allclose(factor[kept], (1 / per_sample).expand_as(factor)[kept])
    assert factor.max() <= n
    retain = retain_probability(winning_probability(h, weight, y), 0.5)
    assert (1 / retain[kept]).max() > 10 * factor.max()  # the per-neuron factor would have exploded


def test_excitation_dropout_per_neuron_rescaling_divides_by_each_retain_probability():
    torch.manual_seed(0)
    weight = torch.zeros(2, 10)
    weight[0] = torch.linspace(0.1, 1.0, 10)
    h = torch.rand(500, 10) + 0.5
    y = torch.zeros(500, dtype=torch.long)
    model = output_layer(weight)
    out = excitation_dropout(model, rescale="neuron").penultimate(h, y, model)
    kept = out != 0
    retain = retain_probability(winning_probability(h, weight, y), 0.5)
    assert torch.allclose(out[kept], (h / retain)[kept])


def test_excitation_dropout_leaves_a_sample_with_nothing_kept_at_zero():
    torch.manual_seed(0)
    model = output_layer(torch.ones(2, 2))  # uniform saliency: each of 2 neurons kept with p 0.5
    h = torch.ones(400, 2)
    out = excitation_dropout(model).penultimate(h, torch.zeros(400, dtype=torch.long), model)
    none_kept = (out == 0).all(1)
    assert none_kept.any() and torch.isfinite(out).all()
    assert set(out[~none_kept].sum(1).tolist()) == {2.0}  # the others keep their total activity


# --- Saliency-guided training --------------------------------------------------------------------

def test_saliency_training_masks_exactly_the_lowest_k_percent():
    sal = torch.rand(3, 10, 10)
    mask = lowest_saliency_mask(sal, 0.1)
    assert mask.flatten(1).sum(1).tolist() == [10, 10, 10]
    for s, m in zip(sal, mask):
        assert s[m].max() <= s[~m].min()


def _method(name, model, **params):
    spec = method_spec(tiny_params(**{"matrix": {"methods": [name]}, "methods": {name: params}}), name)
    return build_method(spec, model=model, num_classes=5, image_size=32, epochs=2)


def test_saliency_training_kl_is_that_of_the_masked_prediction_from_the_clean_one():
    """Ismail et al., Eq. 2: KL(f(x) || f(x_masked)), saliency from the evaluation-mode model."""
    from pipeline_lib.attribution.latent import input_gradient
    from pipeline_lib.methods.saliency_training import fill_from_range

    torch.manual_seed(0)
    model = ARCHITECTURES.get("tinyvgg")(num_classes=5, image_size=32, width=0.5, batch_norm=True)
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    method = _method("saliency_training", model, mask_fraction=0.3)
    model.train()
    logits = model(x)
    torch.manual_seed(1)
    loss = method.extra_loss(x, y, model, logits, None)
    model.eval()
    mask = lowest_saliency_mask(input_gradient(model, x, y).abs().sum(1), 0.3)
    model.train()
    torch.manual_seed(1)
    p, q = logits.softmax(1), model(fill_from_range(x, mask)).softmax(1)
    assert loss.item() == pytest.approx((p * (p.log() - q.log())).sum(1).mean().item(), rel=1e-4)
    assert loss.item() != pytest.approx((q * (q.log() - p.log())).sum(1).mean().item(), rel=1e-4)
    (grad,) = torch.autograd.grad(loss, logits)  # through the clean prediction too, as their code
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["saliency_training", "sgqn", "reldrop"])
def test_extra_forward_passes_leave_batch_norm_running_statistics_unchanged(name):
    torch.manual_seed(0)
    model = ARCHITECTURES.get("tinyvgg")(num_classes=5, image_size=32, width=0.5, batch_norm=True)
    method = _method(name, model, **({"p": 1.0} if name == "reldrop" else {}))
    model.train()
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    x_in = method.input(x, y, model)
    state = model.state_dict()  # RelDrop's attribution pass runs here, before the training forward
    assert all(torch.equal(before[k], state[k]) for k in before), "the attribution pass moved the running statistics"
    if name == "reldrop":
        assert (x_in == 0).any()  # something was occluded
    z = model.encoder(x_in)
    logits = model.head(z)
    after_main = {k: v.clone() for k, v in model.state_dict().items() if k in before}
    assert any(not torch.equal(before[k], after_main[k]) for k in before)  # the training forward updates them
    loss = method.extra_loss(x_in, y, model, logits, z)
    if loss is not None:
        (loss + logits.sum()).backward()  # the swapped statistics leave autograd's saved tensors intact
    state = model.state_dict()
    assert all(torch.equal(after_main[k], state[k]) for k in before), "an extra pass moved the running statistics"
    assert model.training


def test_frozen_norm_stats_still_normalises_with_the_batch_statistics():
    from pipeline_lib.methods import frozen_norm_stats
    bn = torch.nn.BatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    with frozen_norm_stats(bn):
        out = bn(x)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.equal(bn.running_mean, torch.zeros(3)) and bn.num_batches_tracked.item() == 0


# --- RelDrop -------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha,beta", [(0.0, 0.5), (0.0, 0.2), (1.0, 0.3), (0.3, 0.5)])
def test_reldrop_pixel_mask_follows_alpha_and_beta(alpha, beta):
    torch.manual_seed(0)
    relevance = torch.rand(50, 40, 40)  # R ~ U(0, 1)
    dropped = pixel_mask(relevance, alpha, beta).float().mean().item()
    # P(alpha U + (1 - alpha) R >= 1 - beta) for independent uniforms U and R
    t = 1 - beta
    if alpha in (0.0, 1.0):
        expected = beta
    else:
        a, b = sorted([alpha, 1 - alpha])
        cdf = t * t / (2 * a * b) if t <= a else (t - a / 2) / b if t <= b else 1 - (1 - t) ** 2 / (2 * a * b)
        expected = 1 - cdf
    assert dropped == pytest.approx(expected, abs=0.01)
    if alpha == 0.0:  # deterministic: exactly the pixels with R >= 1 - beta
        assert torch.equal(pixel_mask(relevance, 0.0, beta), relevance >= 1 - beta)


def test_reldrop_block_is_centred_on_a_top_relevant_pixel():
    torch.manual_seed(0)
    relevance = torch.zeros(20, 32, 32)
    relevance[:, 5, 7] = 1.0
    masks = block_mask(relevance, top_k=1)
    assert masks[:, 5, 7].all()
    areas = masks.flatten(1).float().mean(1)
    assert (areas > 0).all() and (areas < 0.6).all()


# --- CamDrop -------------------------------------------------------------------------------------

def test_camdrop_never_seeds_outside_both_candidate_sets():
    torch.manual_seed(0)
    z = torch.rand(8, 16, 10, 10)
    weights = torch.randn(8, 16)
    for _ in range(5):
        seeds, keep = camdrop_masks(z, weights, keep_prob=0.3, block_size=3, spatial_top=0.2, channel_fraction=0.125)
        spatial, channels = candidate_masks(z, weights, 0.2, 0.125)
        assert seeds.any()
        assert not (seeds & ~(spatial[:, None] & channels[:, :, None, None])).any()
        assert spatial.flatten(1).sum(1).tolist() == [20] * 8 and channels.sum(1).tolist() == [2] * 8
        assert ((keep == 0) & ~channels[:, :, None, None]).sum() == 0  # blocks stay in candidate channels


def test_camdrop_normalises_its_mask_per_sample_and_seeds_at_one_minus_keep():
    """The slides: M * CHW / sum(M) per sample; seeds ~ not Bernoulli(keep) in the candidates."""
    torch.manual_seed(0)
    z, weights = torch.rand(6, 16, 8, 8), torch.randn(6, 16)
    seeds, mask = camdrop_masks(z, weights, keep_prob=0.7, block_size=1, spatial_top=0.5, channel_fraction=0.5)
    assert torch.allclose(mask.flatten(1).sum(1), torch.full((6,), 16 * 8 * 8.0))
    candidates = 6 * 32 * 8
    assert abs(seeds.sum().item() / candidates - 0.3) < 0.05
    kept = (mask > 0).flatten(1).sum(1).float()
    assert torch.allclose(mask.flatten(1).max(1).values, 16 * 8 * 8 / kept)  # a per-sample factor


def test_camdrop_at_shallow_layers_uses_the_channel_grouped_cam_and_only_in_training():
    from pipeline_lib.methods.camdrop import grouped_weights
    alpha = torch.arange(8.0)[None]
    assert grouped_weights(alpha, 4).tolist() == [[1.0, 5.0, 9.0, 13.0]]  # pairs of latent channels
    torch.manual_seed(0)
    model = ARCHITECTURES.get("tinyvgg")(num_classes=3, image_size=32, width=1.0)
    spec = method_spec(tiny_params(**{"matrix": {"methods": ["camdrop"]},
                         "methods": {"camdrop": {"shallow_layers": [1], "keep_prob": 0.5}}}), "camdrop")
    method = build_method(spec, model=model, num_classes=3, image_size=32, epochs=1)
    method.start_epoch(0)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    seen = []
    model.encoder[1].register_forward_hook(lambda m, i, o: seen.append(o))
    model.train()
    z = model.encoder(method.input(x, y, model))  # the shallow ReLU output is dropped
    assert (seen[-1] == 0).float().mean() > (torch.relu(model.encoder[0](x)) == 0).float().mean()
    method.features(z, x, y, model)
    model.encoder(x)  # after features: no label, nothing dropped
    assert torch.equal(seen[-1], torch.relu(model.encoder[0](x)))


# --- FocusedDropout ------------------------------------------------------------------------------

def test_focused_mask_keeps_exactly_the_focused_area_of_the_max_mean_channel():
    z = torch.zeros(1, 3, 4, 4)
    z[0, 0] = 0.1
    z[0, 1] = torch.arange(16.0).view(4, 4)  # max-mean channel
    z[0, 2, 0, 0] = 100.0
    keep = focused_mask(z, torch.tensor([0.5]))
    assert torch.equal(keep[0, 0], z[0, 1] > 7.5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("own", [None, 0.01])
def test_focused_dropout_acts_and_magnifies_weight_decay_only_on_participating_batches(optimizer, own):
    """MWD as a decoupled decay of (factor - 1) * base after the step: it acts under Adam, and
    with the method's own base decay when the optimizer has none."""
    torch.manual_seed(0)
    model = ARCHITECTURES.get("tinyvgg")(num_classes=2, image_size=32, width=0.25)
    spec = method_spec(tiny_params(methods={"focused_dropout": {"participation": 0.3, "weight_decay_factor": 10.0,
                                                    "weight_decay": own}}), "focused_dropout")
    fd = FocusedDropout(FocusedDropout.Params(**spec.params), model=model, num_classes=2, image_size=32, epochs=1)
    cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = cls(model.parameters(), lr=0.1, weight_decay=0.01 if own is None else 0.0)
    z = torch.rand(4, 8, 4, 4)
    flags = []
    for _ in range(300):
        out = fd.features(z, None, None, model)
        flags.append(fd.participating)
        assert torch.equal(out, z) != fd.participating
        before = [p.clone() for p in model.parameters()]
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        with fd.step_context(opt):
            opt.step()
        shrink = 1 - 0.1 * 9 * 0.01 if fd.participating else 1.0
        if own is None and optimizer == "sgd":  # SGD's own (coupled) decay of the zero-gradient step
            shrink *= 1 - 0.1 * 0.01
        if own is not None or optimizer == "sgd":  # Adam's coupled step is not a plain shrink
            ratios = [p[b.abs() > 1e-3] / b[b.abs() > 1e-3] for p, b in zip(model.parameters(), before)]
            assert all(torch.allclose(r, torch.full_like(r, shrink), rtol=1e-5) for r in ratios)
    assert 0.2 < sum(flags) / len(flags) < 0.4


def test_focused_dropout_default_ratio_is_the_papers_0_3_to_0_6():
    params = method_spec(tiny_params(), "focused_dropout").params
    assert (params["low"], params["high"]) == (0.3, 0.6)


def test_reldrop_passes_its_lrp_start_and_epsilon_defaulting_to_logit_and_1e_3(monkeypatch):
    import pipeline_lib.attribution.lrp as lrp
    seen = {}
    monkeypatch.setattr(lrp, "lrp_relevance", lambda m, x, y, **kw: seen.update(kw) or torch.rand(x.shape))
    model = ARCHITECTURES.get("tinyvgg")(num_classes=5, image_size=32, width=0.25)
    _method("reldrop", model).input(torch.randn(2, 3, 32, 32), torch.tensor([0, 1]), model)
    assert seen == {"start": "logit", "epsilon": 1e-3}


def test_camdrop_shallow_hook_weighs_channels_by_the_grouped_cam(monkeypatch):
    import pipeline_lib.methods.camdrop as camdrop
    calls = []
    real = camdrop.grouped_weights
    monkeypatch.setattr(camdrop, "grouped_weights", lambda a, c: calls.append(c) or real(a, c))
    model = ARCHITECTURES.get("tinyvgg")(num_classes=3, image_size=32, width=1.0)
    method = _method("camdrop", model, shallow_layers=[1], keep_prob=0.5)
    model.train()
    model.encoder(method.input(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]), model))
    assert calls == [model.encoder[0].out_channels]
