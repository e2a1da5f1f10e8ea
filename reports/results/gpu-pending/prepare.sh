#!/usr/bin/env bash
# Fills the git-ignored .gpu/ that run_on_gpu.sh needs on the device machine, here on the CPU,
# so that the one device call spends none of its time on data or installs:
#   PATH=$PWD/.venv/bin:$PATH bash reports/results/gpu-pending/prepare.sh
# A new folder beside the checkout (so beside the shared folder: the preset reads ../shared/data)
# gets params/gpu-pending.yaml applied and its configure and shard stages run (scripts/run_lanes.py
# with no lanes);
# .gpu/ then holds the run configs, the shards, the run names, and wheels of the pinned packages
# the device image lacks. Last, it checks what a call carries against the device's 64 MiB.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
WORK=$(mktemp -d "$REPO/../gpu-prep.XXXXXX")  # new each time: run_lanes keeps a folder's params
trap 'rm -rf "$WORK"' EXIT
G=$REPO/.gpu
(cd "$REPO" && python -m scripts.run_lanes params/gpu-pending.yaml --work "$WORK")
S=$(python -c "import yaml; print(*yaml.safe_load(open('$WORK/params.yaml'))['setups'])")
rm -rf "$G" && mkdir -p "$G/data/shards"
cp -r "$WORK/configs" "$G/configs"
cp -r "$WORK/data/shards/$S" "$G/data/shards/$S"
echo "$S" > "$G/setup"
python -c "import yaml; print(*yaml.safe_load(open('$WORK/params.yaml'))['matrix']['methods'])" > "$G/methods"

# What the stages import (train, attribute, evaluate, bench) less what the device image holds
# (/work/.library/device/KINDS.md, 2026-11-17), at the versions pinned here.
WHEELS="annotated-types atpublic braceexpand captum configobj diskcache dpath dulwich dvc dvc-data dvc-http
  dvc-objects dvc-render dvc-studio-client dvclive flatten-dict flufl.lock funcy orjson platformdirs pydantic
  pydantic-core pydot pygtrie ruamel.yaml scmrepo sqltrie typing-inspection voluptuous wcwidth webdataset
  zc.lockfile zennit"
pins=$(for p in $WHEELS; do echo "$p==$(python -m pip show "$p" | awk '/^Version/{print $2}')"; done)
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$G/wheels" $pins 2>&1 | grep -v '^WARNING: Location' || true

cd "$REPO"
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb | tail -1 | cut -f1)
gpu=$(du -sb "$G" | cut -f1)
limit=$((64 * 1024 * 1024))
echo "a call carries $(((tree + gpu) / 1048576)) MiB (repository $((tree / 1048576)), .gpu $((gpu / 1048576))) of 64"
[ $((tree + gpu)) -lt $limit ] || { echo "over the device's 64 MiB: lower data.subset in params/gpu-pending.yaml" >&2; exit 1; }
