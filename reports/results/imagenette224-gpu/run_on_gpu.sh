#!/usr/bin/env bash
# What ran on the lent H100 (no DVC there, so each stage's dvc.yaml command is run by hand, in
# dvc.yaml's order). The data was at /tmp/data (see params.yaml); run from the repository root.
set -euo pipefail
cp reports/results/imagenette224-gpu/params.yaml params.yaml
python3 -m stages.shard --which main --out data/shards/main
python3 -m stages.configure --out configs

run() {  # train, then attribute and evaluate, one run of the matrix; wall time in <run>/wall_s
  local cfg=configs/imagenette/$1/$2/seed0.json dir=runs/imagenette/$1/$2/seed0 start=$SECONDS
  python3 -m stages.train --config "$cfg"
  echo $((SECONDS - start)) > "$dir/wall_s"
  python3 -m stages.attribute --config "$cfg"
  python3 -m stages.evaluate --config "$cfg"
}

# vgg16 sgdrop alone on the GPU (its wall time is the run-time measurement), then the other three
# side by side, to fit the session's 30 minutes of device time.
run vgg16 sgdrop
run vgg16 vanilla > log_vgg16_vanilla.txt 2>&1 &
(run resnet50 sgdrop && run resnet50 vanilla) > log_resnet50.txt 2>&1 &
wait
python3 -m stages.report --out reports
