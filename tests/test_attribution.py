"""Attribution maps cross-checked against the libraries they stand beside."""
import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn
from zennit.attribution import Gradient

from pipeline_lib.attribution import ATTRIBUTIONS, attribute
from pipeline_lib.attribution.latent import gradcam
from pipeline_lib.attribution.lrp import lrp_composite, lrp_relevance
from pipeline_lib.models import ARCHITECTURES, Head
from pipeline_lib.models.vgg import plain_net


class Whole(nn.Module):
    """captum attributes a layer of a module; our split model, seen as one module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)


@pytest.mark.parametrize("arch,width", [("tinyvgg", 0.5), ("vgg11", 0.125), ("resnet20", 0.5)])
def test_our_gradcam_equals_captums_layer_gradcam(arch, width):
    torch.manual_seed(0)
    model = ARCHITECTURES.get(arch)(num_classes=4, image_size=32, width=width).eval()
    x, y = torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 2, 3, 1])
    ours = gradcam(model.head, model.encoder(x), y)
    theirs = LayerGradCam(Whole(model), Whole(model).model.encoder).attribute(x, target=y, relu_attributions=True)
    assert torch.allclose(ours, theirs[:, 0], atol=1e-5)


def test_every_attribution_gives_input_sized_maps():
    torch.manual_seed(0)
    model = ARCHITECTURES.get("resnet20")(num_classes=3, image_size=32, width=0.25).eval()
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    for name in ATTRIBUTIONS.names():
        maps = attribute(name, model, x, y, ig_steps=4)
        assert maps.shape == (2, 32, 32) and torch.isfinite(maps).all(), name


def small_vgg(bias: bool):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU())
    head = Head(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(8, 3, bias=bias), gap_linear=True)
    return plain_net(encoder, head, channels=8).eval()


def test_lrp_matches_zennit_used_directly():
    model = small_vgg(bias=True)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    ours = lrp_relevance(model, x, y)
    with Gradient(model, lrp_composite(model)) as attributor:
        _, theirs = attributor(x.clone().requires_grad_(True), lambda out: out * torch.eye(3)[y])
    assert torch.allclose(ours, theirs)


def test_lrp_one_hot_start_is_the_logit_map_divided_by_the_logit():
    """RelDrop's official start: conserves 1 instead of f_y, and inverts the map where f_y < 0
    (inputs scaled up so that the logits dwarf epsilon)."""
    model = small_vgg(bias=False)
    x, y = 10 * torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    logit = lrp_relevance(model, x, y)
    one_hot = lrp_relevance(model, x, y, start="one_hot")
    f_y = model(x).gather(1, y[:, None])[:, 0]
    assert torch.allclose(one_hot * f_y[:, None, None, None], logit, rtol=1e-3, atol=1e-6)
    big = f_y.abs() > 0.1  # where the logit is near 0, epsilon absorbs much of the relevance
    assert big.sum() >= 2 and torch.allclose(one_hot.flatten(1).sum(1)[big], torch.ones(int(big.sum())), rtol=0.02)


def test_lrp_runs_in_fp32_with_epsilon_1e_3_under_autocast():
    from pipeline_lib.attribution.lrp import EPSILON
    model = small_vgg(bias=True)
    x, y = torch.rand(2, 3, 16, 16), torch.tensor([0, 1])
    plain = lrp_relevance(model, x, y)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = lrp_relevance(model, x, y)
    assert EPSILON == 1e-3 and mixed.dtype == torch.float32 and torch.equal(mixed, plain)


def test_lrp_conserves_relevance_without_biases():
    """With no biases and the epsilon rule (epsilon 1e-3), the input relevance sums to the
    target logit within 2% (max-pooling and average-pooling conserve exactly; epsilon absorbs
    a little where denominators are tiny)."""
    model = small_vgg(bias=False)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    relevance = lrp_relevance(model, x, y)
    logits = model(x).gather(1, y[:, None])[:, 0]
    assert torch.allclose(relevance.flatten(1).sum(1), logits, rtol=0.02, atol=1e-3)


def test_lrp_works_through_resnet_blocks_with_batch_norm():
    torch.manual_seed(0)
    model = ARCHITECTURES.get("resnet20")(num_classes=3, image_size=32, width=0.25)
    model.train()
    relevance = lrp_relevance(model, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]))
    assert relevance.shape == (2, 3, 32, 32) and torch.isfinite(relevance).all()
    assert model.training  # restored
