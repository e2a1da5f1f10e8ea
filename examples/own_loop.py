"""SGDrop in a training loop of one's own: torchvision's resnet18, split into an encoder and a head,
trained for three steps on random 64 px images on the CPU. The loop calls the method's hooks in the
order pipeline_lib.methods documents, so any model with an `encoder` and a `head` works.

    .venv/bin/python examples/own_loop.py
"""
from collections import OrderedDict

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from pipeline_lib.methods import build_method

torch.manual_seed(0)
net = torchvision.models.resnet18(num_classes=10)
# encoder: everything up to layer4 (the latent map SGDrop masks); head: pooling and output layer
encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
model = nn.Sequential(OrderedDict(encoder=encoder, head=nn.Sequential(net.avgpool, nn.Flatten(), net.fc)))

method = build_method("sgdrop", model)  # the paper's values; override any: build_method("sgdrop", model, rho=0.05)
optimizer = torch.optim.Adam([*model.parameters(), *method.extra_modules.parameters()], lr=1e-3)
images, labels = torch.randn(3, 8, 3, 64, 64), torch.randint(0, 10, (3, 8))

model.train()
for epoch in range(1):
    method.start_epoch(epoch)
    for x, y in zip(images, labels):
        x = method.input(x, y, model)
        z = method.features(model.encoder(x), x, y, model)
        logits = model.head(z)  # Excitation Dropout would also need method.penultimate on fc's input
        loss = F.cross_entropy(logits, y)
        extra = method.extra_loss(x, y, model, logits, z)
        loss = loss if extra is None else loss + extra
        optimizer.zero_grad()
        loss.backward()
        with method.step_context(optimizer):
            optimizer.step()
        method.after_step(model)
        print(f"loss {loss.item():.4f} dropped_fraction {float(method.last['dropped_fraction']):.4f}")
