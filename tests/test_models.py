"""Architectures: ours are torchvision's where torchvision has them."""
import torch
import torchvision

from pipeline_lib.models import ARCHITECTURES


def test_vgg11_starts_from_exactly_torchvisions_weights():
    """Same seed, same layers in the same order, same init: identical tensors. A VGG without
    torchvision's init trains far slower without batch norm (its latent map barely depends on the
    image at first), which also lets SGDrop's label-chosen mask leak the label."""
    torch.manual_seed(0)
    ours = ARCHITECTURES.get("vgg11")(num_classes=10, image_size=224)
    torch.manual_seed(0)
    theirs = torchvision.models.vgg11(num_classes=10)
    a, b = list(ours.parameters()), list(theirs.parameters())
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    x = torch.randn(2, 3, 224, 224)
    theirs.eval()
    assert torch.allclose(ours.eval()(x), theirs(x), atol=1e-5)


def test_model_init_pytorch_gives_every_layer_pytorchs_default_init():
    """`model.init: pytorch` reproduces the init of the collapsed VGG16 run: each layer's own
    reset_parameters (Kaiming-uniform with a = sqrt(5)), not torchvision's fan-out normal."""
    from pipeline_lib.models import build_model
    from tests.conftest import tiny_params

    torch.manual_seed(0)
    default = build_model("vgg11", 10, 32, tiny_params(model={"init": "pytorch", "batch_norm": False}).model)
    torch.manual_seed(0)
    ours = build_model("vgg11", 10, 32, tiny_params(model={"init": "torchvision", "batch_norm": False}).model)
    conv = default.encoder[0]
    bound = 1 / (conv.weight[0].numel() ** 0.5)  # PyTorch's conv default: U(-b, b), b = 1/sqrt(fan_in)
    assert conv.weight.abs().max() <= bound and conv.bias.abs().max() > 0
    assert ours.encoder[0].bias.abs().max() == 0 and ours.encoder[0].weight.abs().max() > bound
