#!/usr/bin/env bash
# Excitation Dropout's two rescalings side by side on the embedded benchmark, seeds 0-2, training
# only (val accuracy). Run from a checkout where `make repro` has run (it leaves the shards and
# configs/default/excitation_dropout/seed0.json); each mode trains as its own setup name, so the
# runs land in runs/rescale-<mode>/ and leave the pipeline's own runs alone.
set -euo pipefail
for mode in sample neuron; do
  for seed in 0 1 2; do
    cfg=configs/rescale-$mode/seed$seed.json
    mkdir -p "$(dirname "$cfg")"
    python - "$mode" "$seed" "$cfg" <<'PY'
import json, sys
mode, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = json.load(open("configs/default/excitation_dropout/seed0.json"))
cfg["method"]["params"]["rescale"] = mode
cfg["seed"], cfg["setup"] = seed, f"rescale-{mode}"
json.dump(cfg, open(out, "w"), indent=2)
PY
    OMP_NUM_THREADS=1 python -m stages.train --config "$cfg" --shards data/shards/default/main
  done
done
