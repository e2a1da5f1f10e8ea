"""Transfer learning with a frozen encoder (the SGDrop paper's Table 5): the source run's
encoder, in evaluation mode, feeds a new head (the architecture's own head, freshly
initialised) trained on the target dataset; the target accuracy measures how general the
learnt features are. Encoder features are computed once, since the encoder never changes."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pipeline_lib.data.loader import Normalizer, load_split
from pipeline_lib.data.shards import read_manifest
from pipeline_lib.models import build_model
from pipeline_lib.training.loop import seed_everything


@torch.no_grad()
def encode(encoder, images, normalize, device, batch_size: int = 256) -> torch.Tensor:
    return torch.cat([encoder(normalize(images[i : i + batch_size].to(device)))
                      for i in range(0, len(images), batch_size)])


def transfer(source_model, cfg, target_shards, p) -> dict:
    manifest = read_manifest(target_shards)
    normalize = Normalizer(manifest["mean"], manifest["std"])
    device = next(source_model.parameters()).device
    encoder = source_model.encoder.eval()
    size = cfg.loader.image_size
    feats = {s: (encode(encoder, d.images, normalize, device), d.labels.to(device))
             for s in ("train", "val", "test") for d in [load_split(target_shards, s, size)]}
    seed_everything(cfg.seed)
    head = build_model(cfg.arch, len(manifest["classes"]), size, cfg.model).head.to(device)
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
    return {"target": manifest["dataset"], "target_meta": manifest["meta"], "epochs": p.epochs,
            "accuracy": acc, "config_digest": cfg.digest()}
