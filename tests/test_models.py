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
