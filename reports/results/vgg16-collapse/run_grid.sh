#!/usr/bin/env bash
# The VGG16 collapse grid of issue 13 at CPU scale: VGG16 width 0.5, 64 px, no batch norm,
# Adam 1e-4, constant schedule, fp32, no weight decay, no augmentation, Imagenette with 300
# images per class and split, 8 epochs, seed 0; train stage only, one cell after the other.
#
#   reports/results/vgg16-collapse/run_grid.sh WORK_DIR [INIT:METHOD ...]
#
# WORK_DIR gets the shards, one folder per init (params.yaml, configs/, runs/) and logs/.
# Without cells, all of them in the order below. A finished cell (train.json present) is
# skipped; an interrupted one resumes from its checkpoint. THREADS (default 2) sets the torch
# threads; the Imagenette tar is $OVERFOCUS_SHARED_DATA/imagenette2-224sq.tar.
# What ran (2 lanes of 1 thread each, on a shared 2-core machine):
#   THREADS=1 run_grid.sh W pytorch:sgdrop torchvision:sgdrop pytorch:sgdrop_permuted \
#       torchvision:sgdrop_permuted pytorch:sgdrop_warmup
#   THREADS=1 run_grid.sh W pytorch:vanilla torchvision:vanilla pytorch:sgdrop_random \
#       torchvision:sgdrop_random pytorch:sgdrop_curriculum
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=$(mkdir -p "$1" && cd "$1" && pwd)
shift
DATA=${OVERFOCUS_SHARED_DATA:-/work/shared/data}/imagenette2-224sq.tar
export PYTHONPATH=$REPO OMP_NUM_THREADS=${THREADS:-2} MKL_NUM_THREADS=${THREADS:-2}
mkdir -p "$WORK/logs"

write_params() {  # $1: model.init; configures only when the params changed (lanes run side by side)
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/params.override.yaml" <<YAML
data: {dataset: imagenette, root: $DATA, subset: 300, seed: 0}
loader: {image_size: 64, batch_size: 64, eval_batch_size: 256,
         augment: {random_crop: false, flip: false}}
model: {width: 0.5, batch_norm: false, init: $1}
train:
  architectures: [vgg16]
  methods: [vanilla, sgdrop, sgdrop_permuted, sgdrop_random, sgdrop_warmup, sgdrop_curriculum]
  one_seed_methods: []
  seeds: [0]
  epochs: 8
  optimizer: adam
  lr: 0.0001
  weight_decay: 0.0
  schedule: constant
  probe_size: 32
  leakage_size: 256
  device: cpu
rho: 0.01
rho_start: 0.0
rho_end: 0.05
methods:
  vanilla: {}
  sgdrop: {schedule: constant}
  sgdrop_permuted: {type: sgdrop, schedule: constant, mask_label: permuted}
  sgdrop_random: {type: sgdrop, schedule: constant, mask_label: random}
  sgdrop_warmup: {type: sgdrop, schedule: constant, warmup_epochs: 2}
  sgdrop_curriculum: {type: sgdrop, schedule: linear}
YAML
  # every other key from the shipped params.yaml (the one home of every setting)
  python -c "import sys, yaml; from pipeline_lib.config import merged
yaml.safe_dump(merged(yaml.safe_load(open('$REPO/params.yaml')), yaml.safe_load(open(sys.argv[1]))), open(sys.argv[2], 'w'))" \
    "$WORK/$1/params.override.yaml" "$WORK/$1/params.new.yaml"
  if cmp -s "$WORK/$1/params.new.yaml" "$WORK/$1/params.yaml"; then rm "$WORK/$1/params.new.yaml"; return; fi
  mv "$WORK/$1/params.new.yaml" "$WORK/$1/params.yaml"
  (cd "$WORK/$1" && python -m stages.configure --out configs)
}

for init in pytorch torchvision; do write_params $init; done
if [ ! -f "$WORK/shards/manifest.json" ]; then
  (cd "$WORK/pytorch" && python -m stages.shard --which main --out "$WORK/shards")
fi

# most informative first
CELLS=${*:-"pytorch:vanilla pytorch:sgdrop pytorch:sgdrop_permuted pytorch:sgdrop_random
       torchvision:sgdrop torchvision:vanilla torchvision:sgdrop_permuted torchvision:sgdrop_random
       pytorch:sgdrop_warmup pytorch:sgdrop_curriculum"}
for cell in $CELLS; do
  init=${cell%%:*} method=${cell#*:}
  [ -f "$WORK/$init/runs/imagenette/vgg16/$method/seed0/train.json" ] && continue
  echo "$(date -u +%FT%TZ) start $cell"
  (cd "$WORK/$init" && nice -n 10 python -m stages.train \
      --config configs/imagenette/vgg16/$method/seed0.json --shards "$WORK/shards") \
      > "$WORK/logs/$init-$method.log" 2>&1 || echo "$(date -u +%FT%TZ) FAILED $cell"
  echo "$(date -u +%FT%TZ) done $cell"
done
