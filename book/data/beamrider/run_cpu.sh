#!/usr/bin/env bash
# The CPU runs whose logs are committed beside this script (book/data/beamrider/<algo>_cpu_seed1/).
# One run after another, each on one low-priority CPU thread, on a 2-core machine shared with other jobs.
# Each run is capped at ~32 minutes: `timeout -s INT` sends Ctrl-C, the trainer checkpoints and exits 130 (a run
# cut short that way is marked in its README). Continue any of them with the same command plus --resume.
set -u
cd "$(dirname "$0")/../../.."
ALGOS=${ALGOS:-"sobirl drlhf sac"}
COMMON="--steps 30000 --seed 1 --device cpu --threads 1 --no-progress \
  --learning-starts 2000 --inner-steps 1000 --buffer-size 30000 --target-update-every 1000 \
  --initial-pairs 64 --warmup-epochs 8 --pairs-per-iter 6 --pref-buffer-size 128 --hyper-warmup-steps 3000 \
  --checkpoint-every 2000"
for algo in $ALGOS; do
  out=runs/cpu/${algo}_cpu_seed1
  cmd="python -m sobirl_lite.atari train --algo $algo $COMMON --out $out"
  echo "$cmd"
  start=$(date +%s)
  OMP_NUM_THREADS=1 timeout -s INT 1920 nice -n 19 $cmd
  echo "$algo exit $? after $(( $(date +%s) - start )) s"
done
