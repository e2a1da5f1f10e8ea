"""The methods as a library: each built by name with its paper's values, in a loop of one's own, on
a model of one's own; params.yaml agrees with those values or says why not; SGDrop's target."""
import math
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from pipeline_lib.config.resolve import method_spec
from pipeline_lib.methods import METHODS, MethodNeeds, build_method
from pipeline_lib.methods.sgdrop import attribution, top_k_mask
from pipeline_lib.models import ARCHITECTURES
from tests.conftest import ROOT, shipped_raw, tiny_params

# Where the committed params.yaml differs from the papers' values, on purpose.
DIFFERS = {
    "dropblock": {"block_size": "tinyvgg's latent map at 64 px is 8 x 8: the paper's 7 x 7 block (for ResNet-50's "
                                "14 x 14 and 7 x 7 maps at 224 px) would blank most of a channel from one seed"},
    "sgdrop_curriculum": {"schedule": "the variant is the paper's curriculum (Sec. 4.5)"},
    "sgdrop_no_ema": {"ema": "the variant is the EMA ablation (Sec. 4.6, Table 8)"},
    "reldrop": {"variant": "the study has run the pixel variant since its first version; its results stand on it",
                "top_k": "the block variant's pool of box centres, unused by the pixel variant the study runs"},
}


def tiny_model(plain_head: bool = False, classes: int = 5):
    """tinyvgg at width 0.25; `plain_head`: its head as a user would write it, nn.Sequential(pool,
    flatten, linear), without the pipeline's Head (no `fc`, no `penultimate`, no `gap_linear`)."""
    torch.manual_seed(0)
    model = ARCHITECTURES.get("tinyvgg")(num_classes=classes, image_size=32, width=0.25)
    if plain_head:
        head = nn.Sequential(*model.head.body, model.head.fc)
        model = nn.Sequential(OrderedDict(encoder=model.encoder, head=head))
    return model


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_builds_by_name_with_its_papers_values(name):
    cls = METHODS.get(name)
    assert set(cls.Params.defaults) == set(cls.Params.model_fields)  # a new setting comes with its default
    method = build_method(name, tiny_model(), num_classes=5, image_size=32, epochs=2)
    assert method.params == cls.Params(**cls.Params.defaults)
    if cls.Params.model_fields:  # a misspelt override is refused, never ignored
        with pytest.raises(ValidationError, match="not_a_setting"):
            build_method(name, tiny_model(), num_classes=5, image_size=32, epochs=2, not_a_setting=1)


def test_keyword_overrides_replace_only_what_they_name():
    method = build_method("sgdrop", tiny_model(), rho=0.05, ema=False)
    assert (method.params.rho, method.params.ema) == (0.05, False)
    assert method.params.ema_decay == METHODS.get("sgdrop").Params.defaults["ema_decay"]


def test_params_yaml_agrees_with_the_papers_values_or_says_why():
    params = tiny_params()
    differs = {}
    for name in shipped_raw()["methods"]:
        spec = method_spec(params, name)
        defaults = METHODS.get(spec.type).Params.defaults
        differs[name] = {key for key, value in spec.params.items() if value != defaults[key]}
    assert {name: keys for name, keys in differs.items() if keys} == {name: set(why) for name, why in DIFFERS.items()}


# --- start_epoch ---------------------------------------------------------------------------------

def test_a_constant_rho_is_set_at_construction():
    model = tiny_model()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    z = model.encoder(x) + 0.01
    built = build_method("sgdrop", model, rho=0.1, ema=False)
    dropped = built.features(z, x, y, model) == 0
    assert float(built.last["dropped_fraction"]) > 0  # a forgotten start_epoch used to drop nothing
    built.start_epoch(0)
    assert torch.equal(built.features(z, x, y, model) == 0, dropped)  # the first epoch's rho


@pytest.mark.parametrize("schedule", [dict(schedule="linear"), dict(warmup_epochs=1)])
def test_a_rho_that_follows_the_epochs_refuses_to_step_before_start_epoch(schedule):
    model = tiny_model()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    built = build_method("sgdrop", model, epochs=3, ema=False, **schedule)
    with pytest.raises(MethodNeeds, match=r"start_epoch\(epoch\)"):
        built.features(model.encoder(x), x, y, model)
    built.start_epoch(2)
    built.features(model.encoder(x), x, y, model)
    assert built.last["rho"] == (0.05 if "schedule" in schedule else 0.01)


def test_a_linear_schedule_needs_epochs():
    with pytest.raises(MethodNeeds, match="epochs="):
        build_method("sgdrop", tiny_model(), schedule="linear")
    with pytest.raises(MethodNeeds, match="epochs="):
        build_method("camdrop", tiny_model(), schedule="linear")


def test_camdrop_keep_schedule_is_set_at_construction_or_refuses_to_step():
    model = tiny_model()
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    assert build_method("camdrop", model).keep == 0.9
    linear = build_method("camdrop", model, schedule="linear", epochs=3)
    with pytest.raises(MethodNeeds, match=r"start_epoch\(epoch\)"):
        linear.features(model.encoder(x), x, y, model)
    linear.start_epoch(0)
    assert linear.keep == 1.0


# --- a model of one's own ------------------------------------------------------------------------

def own_step(method, model, optimizer, x, y):
    """One step through the hooks, as examples/own_loop.py takes it."""
    x = method.input(x, y, model)
    z = method.features(model.encoder(x), x, y, model)
    logits = model.head(z)
    loss = F.cross_entropy(logits, y)
    extra = method.extra_loss(x, y, model, logits, z)
    loss = loss if extra is None else loss + extra
    optimizer.zero_grad()
    loss.backward()
    with method.step_context(optimizer):
        optimizer.step()
    method.after_step(model)
    return loss


@pytest.mark.parametrize("name", [n for n in METHODS.names() if n != "excitation_dropout"])
def test_every_method_but_excitation_dropout_trains_a_model_with_a_plain_head(name):
    model = tiny_model(plain_head=True)
    method = build_method(name, model, num_classes=5, image_size=32, epochs=2)
    method.start_epoch(0)
    optimizer = torch.optim.SGD([*model.parameters(), *method.extra_modules.parameters()], lr=0.1)
    before = [p.clone() for p in model.parameters()]
    model.train()
    loss = own_step(method, model, optimizer, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(loss) and set(method.last) == set(method.logs)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


class FcHead(nn.Module):
    """A head with an output layer `fc` whose forward has no penultimate hook."""

    def __init__(self, channels, classes):
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, z):
        return self.fc(z.mean((2, 3)))


def test_excitation_dropout_says_it_needs_the_heads_penultimate_neurons():
    plain = tiny_model(plain_head=True)
    with pytest.raises(MethodNeeds, match=r"model\.head\.fc .* method\.penultimate\(h, y, model\)"):
        build_method("excitation_dropout", plain)
    model = nn.Sequential(OrderedDict(encoder=plain.encoder, head=FcHead(16, 5)))
    method = build_method("excitation_dropout", model)  # never dropping would be silent: the step says so
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(MethodNeeds, match=r"method\.penultimate\(h, y, model\)"):
        own_step(method, model, optimizer, torch.randn(2, 3, 32, 32), torch.tensor([0, 1]))
    model = tiny_model()  # the pipeline's step calls it between the contract's head.pre_logits and head.fc
    method = build_method("excitation_dropout", model)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 1])
    z = method.features(model.encoder(x), x, y, model)
    model.head.fc(method.penultimate(model.head.pre_logits(z), y, model))
    method.after_step(model)


def test_methods_say_what_they_need_of_a_model():
    plain = tiny_model(plain_head=True)
    with pytest.raises(MethodNeeds, match=r"model\.head\.fc .* model\.head\.gap_linear = True"):
        build_method("camdrop", plain, shallow_layers=[1])
    with pytest.raises(MethodNeeds, match="image_size="):
        build_method("sgqn", plain)
    with pytest.raises(MethodNeeds, match="num_classes="):
        build_method("sgdrop", plain, mask_label="permuted")


def test_the_example_trains_a_torchvision_and_a_timm_resnet_with_sgdrop_on_its_own_loop():
    run = subprocess.run([sys.executable, "examples/own_loop.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    steps = [line.rsplit(": ", 1) for line in run.stdout.splitlines() if ": loss " in line]
    assert [name for name, _ in steps] == ["torchvision resnet18"] * 3 + ["timm resnet18d"] * 3
    for _, values in steps:  # a finite loss, and features dropped at every step
        _, loss, _, dropped = values.split()
        assert math.isfinite(float(loss)) and float(dropped) > 0


# --- SGDrop's target -----------------------------------------------------------------------------

def test_log_softmax_target_is_the_logit_gradient_less_its_probability_weighted_mean():
    """For GAP + Linear, d log p_y / dz = (W_y - sum_k p_k W_k) / (H W): the closed form, autograd
    and the formula agree, and the mask differs from the logit target's."""
    model = tiny_model()
    head = model.head
    z, y = torch.rand(6, 16, 4, 4), torch.tensor([0, 1, 2, 3, 4, 0])
    closed = attribution(head, z, y, target="log_softmax", closed_form=True)
    autograd = attribution(head, z, y, target="log_softmax", closed_form=False)
    w = head.fc.weight.detach()
    p = head(z).softmax(1).detach()
    formula = ((w[y] - p @ w) / 16).clamp_min(0)[:, :, None, None] * z
    assert torch.allclose(closed, formula, atol=1e-7) and torch.allclose(autograd, formula, atol=1e-7)
    k = round(0.1 * z[0].numel())
    logit = attribution(head, z, y, target="logit", closed_form=True)
    assert not torch.equal(top_k_mask(closed, k), top_k_mask(logit, k))


def test_log_softmax_target_drops_nothing_where_the_class_is_certain_and_logit_drops_k():
    """The two targets differ only through the softmax normalisation: a bias that makes class 0
    certain leaves the logit's gradient as it was but zeroes log p_0's."""
    model = tiny_model()
    with torch.no_grad():
        model.head.fc.bias[0] = 1000.0
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 2])
    z = model.encoder(x) + 0.01
    k = round(0.1 * z[0].numel())
    dropped = {}
    for target in ("logit", "log_softmax"):
        sg = build_method("sgdrop", model, rho=0.1, ema=False, target=target)
        dropped[target] = (sg.features(z, x, y, model) == 0).flatten(1).sum(1).tolist()
    assert dropped["logit"][:2] == [k, k] and dropped["log_softmax"][:2] == [0, 0]
    assert all(n > 0 for n in dropped["log_softmax"][2:])  # samples of the other classes still lose features
