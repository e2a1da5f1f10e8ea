"""Time one short training run (epoch wall time and median step) with the checkout in the cwd."""
import json, sys, time
from pathlib import Path
from pipeline_lib.config.checks import params_with
from pipeline_lib.config.resolve import run_configs
from pipeline_lib.training.loop import train
shards = Path(sys.argv[1]); out = Path(sys.argv[2])
cfg = run_configs(params_with({"train": {"methods": [sys.argv[3]], "epochs": 2}}))[0]
t = time.perf_counter(); final = train(cfg, shards, out); wall = time.perf_counter() - t
print(json.dumps({"wall_s": wall, "step_ms": final["step_ms"], "images_per_s": final["train_images_per_s"], "val_acc": final["val_acc"]}))
