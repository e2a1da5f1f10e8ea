#!/usr/bin/env bash
# The GPU work that issues 13 and 18 still need, ready for the next session lent a GPU (none was
# lent when this was written). Run from the repository root on the device machine, with the
# Imagenette archive at $DATA (see README.md beside this file for bringing it over in parts) and
# $OUT the folder whose files come back. No DVC there: each stage's dvc.yaml command by hand.
#   PART=bench  EPOCHS=80 bash reports/results/gpu-pending/run_on_gpu.sh   # issue 18: per-step cost
#   PART=vgg16  EPOCHS=80 bash reports/results/gpu-pending/run_on_gpu.sh   # issue 13: the collapse at 224
set -euo pipefail
DATA=${DATA:-/tmp/data}
OUT=${OUT:-/tmp/out}
EPOCHS=${EPOCHS:-80}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps -e . >/dev/null 2>&1 || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt"
python3 -c "import torch; print(torch.__version__)" >> "$OUT/gpu.txt"

# params.yaml for Imagenette at 224 with the paper's VGG16 protocol (Appendix B): the shipped file
# with these keys changed, so that every other value is the shipped one.
python3 - "$DATA" "$EPOCHS" <<'PY'
import sys, yaml
from pipeline_lib.config import merged
data, epochs = sys.argv[1], int(sys.argv[2])
raw = merged(yaml.safe_load(open("params.yaml")), {
    "data": {"dataset": "imagenette", "root": f"{data}/imagenette2-224sq.tar",
             "boxes_csv": f"{data}/imagenette2-224sq-boxes.csv"},
    "loader": {"image_size": 224, "batch_size": 64, "augment": {"random_crop": False, "flip": False}},
    "model": {"architecture": "vgg16", "width": 1.0, "batch_norm": False},
    "train": {"methods": ["vanilla", "dropout", "sgdrop", "sgdrop_rho025", "sgdrop_rho05",
              "sgdrop_curriculum"], "seeds": [0], "epochs": epochs, "lr": 0.0001, "weight_decay": 0.0,
              "schedule": "constant", "checkpoint_every": 10, "device": "cuda"},
    "methods": {"sgdrop_rho025": {"type": "sgdrop", "rho": 0.025}, "sgdrop_rho05": {"type": "sgdrop", "rho": 0.05}},
    "attribute": {"max_images": 256}, "transfer": {"enabled": False},
})
if "one_seed_methods" in raw["train"]:  # every run here is in train.methods
    raw["train"]["one_seed_methods"] = []
yaml.safe_dump(raw, open("params.yaml", "w"), sort_keys=False)
PY
cp params.yaml "$OUT/params.yaml"

if [ "${PART:-bench}" = bench ]; then
  # issue 18: SGDrop with and without EMA against vanilla, 224 px, batch 64, eager and compiled
  for a in vgg16 resnet50 convnext_tiny; do
    python3 -m stages.bench --arch $a --image-size 224 --batch-size 64 --width 1.0 --no-batch-norm \
      --methods sgdrop,sgdrop_no_ema --steps 30 --out "$OUT/bench" 2>&1 | tee -a "$OUT/bench.log"
  done
  exit 0
fi

python3 -m stages.configure --out configs
python3 -m stages.shard --params configs/default/shard_main.json --out data/shards/default/main
run() {  # train (wall time kept), then evaluate; logs per run
  local cfg=configs/default/$1/seed0.json dir=runs/default/$1/seed0 start=$SECONDS shards=data/shards/default/main
  python3 -m stages.train --config "$cfg" --shards $shards > "$OUT/train_$1.log" 2>&1
  echo $((SECONDS - start)) > "$dir/wall_s"
  python3 -m stages.attribute --config "$cfg" --params configs/default/attribute.json --shards $shards \
    >> "$OUT/train_$1.log" 2>&1
  python3 -m stages.evaluate --config "$cfg" --params configs/default/evaluate.json --shards $shards \
    >> "$OUT/train_$1.log" 2>&1
  cp "$dir/train.json" "$OUT/$1_train.json"; cp "$dir/metrics.json" "$OUT/$1_metrics.json"
}
# issue 13: SGDrop alone first (its wall time is the end-to-end measurement of issue 18), then the
# rest two at a time (the GPU is far from saturated by one VGG16 run at batch 64)
run sgdrop
(run sgdrop_rho025; run sgdrop_curriculum; run vanilla) &
(run sgdrop_rho05; run dropout) &
wait
tar czf "$OUT/series.tgz" runs/default/*/seed0/live/plots runs/default/*/seed0/wall_s
