#!/usr/bin/env bash
# The central-claim runs in lanes beside each other on one machine (DVC runs one stage at a time):
#   reports/results/central-claim-cpu/run_lanes.sh WORK "vanilla:0 sgdrop:0 ..." "dropout:0 ..."
# WORK (beside the shared folder: the preset reads ../shared/data) gets a copy of this
# checkout's tracked files with the preset applied to params.yaml; configure and shard
# run there once, then each lane trains, attributes and evaluates its runs one after the other
# with exactly the commands of dvc.yaml's stages. A finished run is skipped, an interrupted one
# resumes from its checkpoint. THREADS (default 1) sets each lane's torch threads. PRESETS (default
# this folder's preset.yaml) lists the presets applied, in order.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=$(mkdir -p "$1" && cd "$1" && pwd)
shift
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
if [ ! -f "$WORK/params.yaml" ]; then
  (cd "$REPO" && git ls-files -z | xargs -0 cp --parents -t "$WORK")
  for preset in ${PRESETS:-reports/results/central-claim-cpu/preset.yaml}; do
    (cd "$WORK" && python -m scripts.apply_preset "$preset")
  done
fi
cd "$WORK"
S=$(python -c "import yaml; print(*yaml.safe_load(open('params.yaml'))['setups'])")
[ -f configs/$S/shard_main.json ] || python -m stages.configure --out configs
[ -f data/shards/$S/main/manifest.json ] || python -m stages.shard --params configs/$S/shard_main.json --out data/shards/$S/main
mkdir -p logs
lane() {
  for cell in $1; do
    local m=${cell%%:*} s=${cell#*:} cfg="--config configs/$S/${cell%%:*}/seed${cell#*:}.json --shards data/shards/$S/main"
    [ -f runs/$S/$m/seed$s/metrics.json ] && continue
    echo "$(date -u +%FT%TZ) start $cell"
    { nice -n 10 python -m stages.train $cfg &&
      nice -n 10 python -m stages.attribute $cfg --params configs/$S/attribute.json &&
      nice -n 10 python -m stages.evaluate $cfg --params configs/$S/evaluate.json; } > logs/$m-$s.log 2>&1 \
      || echo "$(date -u +%FT%TZ) FAILED $cell"
    echo "$(date -u +%FT%TZ) done $cell"
  done
}
for cells in "$@"; do lane "$cells" & done
wait
