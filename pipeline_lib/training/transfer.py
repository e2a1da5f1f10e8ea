"""Transfer learning with a frozen encoder (the SGDrop paper's Table 5): the source run's
encoder, in evaluation mode, feeds a fresh head (`SplitModel.new_head`: the model contract's head
with a new output layer) trained on the target dataset; the target accuracy measures how general
the learnt features are. Encoder features are computed once, since the encoder never changes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline_lib.data.loader import Splits
from pipeline_lib.training.loop import TrainedRun, seed_everything


@torch.no_grad()
def encode(encoder, images, normalize, device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([encoder(normalize(images[i : i + batch_size].to(device)))
                      for i in range(0, len(images), batch_size)])


def transfer(trained: TrainedRun, target_shards, p) -> dict:
    cfg, device, size = trained.cfg, trained.device, trained.cfg.loader.image_size
    target = Splits(target_shards, size)
    encoder = trained.model.encoder.eval()
    feats = {s: (encode(encoder, d.images, target.normalize, device), d.labels.to(device))
             for s in ("train", "val", "test") for d in [target[s]]}
    seed_everything(cfg.seed)
    head = trained.model.new_head(target.num_classes).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=p.lr)
    z_train, y_train = feats["train"]
    gen = torch.Generator().manual_seed(cfg.seed)
    bs = cfg.loader.batch_size
    for _ in range(p.epochs):
        head.train()
        for idx in torch.randperm(len(y_train), generator=gen).split(bs):
            idx = idx.to(device)
            loss = F.cross_entropy(head(z_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    head.eval()
    with torch.no_grad():
        acc = {s: float((head(z).argmax(1) == y).float().mean()) for s, (z, y) in feats.items()}
    return {"target": target.manifest["dataset"], "target_meta": target.manifest["meta"], "epochs": p.epochs,
            "accuracy": acc, "identity": trained.identity.digest}
