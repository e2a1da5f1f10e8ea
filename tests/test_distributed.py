"""Two gloo processes under torchrun train to the same weights as one process with the same
global batch (within float tolerance: gradients are summed in another order)."""
import json
import os
import subprocess
import sys

import torch

from pipeline_lib.config.resolve import run_configs
from pipeline_lib.training.loop import CHECKPOINT
from tests.conftest import tiny_params


def test_two_gloo_processes_match_one(tiny_shards, in_tmp):
    cfg = run_configs(tiny_params(matrix={"methods": ["sgdrop"]}, train={"epochs": 2}, model={"batch_norm": False},
                                  rho=0.05))[0]
    (in_tmp / "cfg.json").write_text(json.dumps(cfg.model_dump()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "1"}
    base = [sys.executable, "-m", "stages.train", "--config", "cfg.json", "--shards", str(tiny_shards)]
    subprocess.run(base, check=True, env=env, capture_output=True)
    single = torch.load(cfg.run_dir / CHECKPOINT, weights_only=False)["model"]
    (cfg.run_dir / CHECKPOINT).unlink()
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
              "-m", "stages.train", "--config", "cfg.json", "--shards", str(tiny_shards)]
    done = subprocess.run(launch, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    double = torch.load(cfg.run_dir / CHECKPOINT, weights_only=False)["model"]
    for key in single:
        assert torch.allclose(single[key], double[key], atol=1e-4, rtol=1e-3), key
    assert any(not torch.equal(single[k], torch.zeros_like(single[k])) for k in single)
