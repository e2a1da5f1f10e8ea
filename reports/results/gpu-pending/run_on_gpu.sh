#!/usr/bin/env bash
# The GPU work that issue 13 (and issue 18's measurement) still needs, in ONE device call: the
# device time of a task is 15 minutes, its start included, and one call runs at most 10.
# Prepared here first by prepare.sh, which fills the git-ignored .gpu/ (shards, run configs,
# wheels); then, from the repository root on the device machine, with `carry: [".gpu"]`:
#   bash reports/results/gpu-pending/run_on_gpu.sh
# The seven runs of params/gpu-pending.yaml train side by side (one VGG16 at batch 64 leaves the GPU mostly
# idle). Each stage gets what is left of BUDGET seconds, so the call ends inside its limit and
# what finished comes back, unfinished runs with their per-epoch series as far as they went.
# Then, if 60 s remain, issue 18's per-step cost of SGDrop with and without EMA on VGG16.
# What comes back (the device returns at most 8 files): $OUT/results.tgz (logs, configs, each
# run's train.json, metrics.json, wall time and dvclive series; no checkpoints) and
# $OUT/summary.txt (each run's last log lines, the GPU, the software).
set -uo pipefail
BUDGET=${BUDGET:-550}
OUT=${OUT:-/tmp/out}
G=.gpu
mkdir -p "$OUT" logs
left() { local l=$((BUDGET - SECONDS)); echo $((l > 1 ? l : 1)); }  # timeout 0 would mean none
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 --version; } > logs/gpu.txt 2>&1

# The image lacks some of the pinned packages (dvclive, webdataset, pydantic, captum, zennit, ...):
# prepare.sh brought them as wheels; the image's own torch, torchvision and numpy are used.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $G/wheels/*.whl \
  >> logs/gpu.txt 2>&1 || { cp logs/gpu.txt "$OUT/summary.txt"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" >> logs/gpu.txt

S=$(cat $G/setup)
rm -rf configs && cp -r $G/configs configs
run() {  # train (wall time kept), attribute, evaluate: one run, each stage within the time left
  local cfg=configs/$S/$1/seed0.json args="--shards $G/data/shards/$S/main" start=$SECONDS
  timeout "$(left)" python3 -m stages.train --config "$cfg" $args || return
  echo $((SECONDS - start)) > "runs/$S/$1/seed0/wall_s"
  timeout "$(left)" python3 -m stages.attribute --config "$cfg" --params configs/$S/attribute.json $args || return
  timeout "$(left)" python3 -m stages.evaluate --config "$cfg" --params configs/$S/evaluate.json $args
}
for m in $(cat $G/methods); do run "$m" > "logs/$m.log" 2>&1 & done
wait

if [ "$(left)" -gt 60 ]; then  # issue 18: the shipped params.yaml names sgdrop and sgdrop_no_ema
  timeout "$(left)" python3 -m stages.bench --arch vgg16 --image-size 224 --batch-size 64 --width 1.0 \
    --no-batch-norm --methods sgdrop,sgdrop_no_ema --steps 30 --out bench > logs/bench.log 2>&1
fi

{ cat logs/gpu.txt; for f in logs/*.log; do echo "== $f"; tail -n 4 "$f"; done; } > "$OUT/summary.txt"
tar czf "$OUT/results.tgz" logs configs bench $(find runs -name train.json -o -name metrics.json \
  -o -name wall_s -o -path '*/live/plots/*' -type f) 2>/dev/null
ls -la "$OUT"
