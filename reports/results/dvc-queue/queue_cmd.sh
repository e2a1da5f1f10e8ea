#!/usr/bin/env bash
# The README's DVC-queue recipe on the CPU: two workers, three queued experiments.
set -x
dvc exp run --queue -n rho-0.02 -S rho=0.02 -S train.device=cpu
dvc exp run --queue -n with-resnet20 -S 'train.architectures=[tinyvgg,resnet20]'
dvc queue start -j 2
sleep 30
while dvc queue status | grep -qE "Running|Queued"; do sleep 30; done
dvc queue status
dvc exp show --no-pager --only-changed --md
for e in rho-0.02 with-resnet20; do dvc queue logs $e > queue_logs_$e.txt 2>&1; done
