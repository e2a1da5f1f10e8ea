"""SGDrop in a training loop of one's own: torchvision's resnet18 and timm's resnet18d, each split
into an encoder and a head, trained for three steps on random 64 px images on the CPU. The loop
calls the method's hooks in the order pipeline_lib.methods documents, so any model with an
`encoder` and a `head` works.

    .venv/bin/python examples/own_loop.py
"""
from collections import OrderedDict

import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pipeline_lib.methods import build_method


class Features(nn.Module):  # timm's forward_features as an encoder (the whole net is its child)
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.forward_features(x)


torch.manual_seed(0)
tv, tm = torchvision.models.resnet18(num_classes=10), timm.create_model("resnet18d", num_classes=10)
models = {  # encoder: the latent map SGDrop masks; head: pooling and output layer
    "torchvision resnet18": nn.Sequential(OrderedDict(
        encoder=nn.Sequential(tv.conv1, tv.bn1, tv.relu, tv.maxpool, tv.layer1, tv.layer2, tv.layer3, tv.layer4),
        head=nn.Sequential(tv.avgpool, nn.Flatten(), tv.fc))),
    "timm resnet18d": nn.Sequential(OrderedDict(encoder=Features(tm), head=nn.Sequential(tm.global_pool, tm.fc))),
}
for name, model in models.items():
    method = build_method("sgdrop", model)  # the paper's values; override any: build_method("sgdrop", model, rho=0.05)
    optimizer = torch.optim.Adam([*model.parameters(), *method.extra_modules.parameters()], lr=1e-3)
    images, labels = torch.randn(3, 8, 3, 64, 64), torch.randint(0, 10, (3, 8))
    model.train()
    method.start_epoch(0)  # once an epoch
    for x, y in zip(images, labels):
        x = method.input(x, y, model)
        z = method.features(model.encoder(x), x, y, model)
        logits = model.head(z)  # Excitation Dropout would also need method.penultimate on fc's input
        extra = method.extra_loss(x, y, model, logits, z)
        loss = F.cross_entropy(logits, y) + (0 if extra is None else extra)
        optimizer.zero_grad()
        loss.backward()
        with method.step_context(optimizer):
            optimizer.step()
        method.after_step(model)
        print(f"{name}: loss {loss.item():.4f} dropped_fraction {float(method.last['dropped_fraction']):.4f}")
