#!/usr/bin/env bash
# The CPU runs whose logs are committed beside this script (book/data/beamrider/<algo>_cpu_seed1/).
# The three algorithms run side by side, one process and one torch thread each, at low priority (nice 5) on a
# 2-core machine shared with other jobs. Settings: `--preset cpu` (sobirl_lite/atari/presets.py): 20,000 agent steps,
# a reward warm-up of 64 pairs, 32 epochs of 2 mini-batches (64 AdamW steps, enough to take the reward model above
# chance), everything else scaled down as listed there.
# Resumable: run the script again and each unfinished run continues from its checkpoint.
#   TIMEOUT=3600 book/data/beamrider/run_cpu.sh     # stop each run (Ctrl-C, checkpoint) after an hour
#   STEPS=6000 book/data/beamrider/run_cpu.sh       # a shorter budget (total_steps may change on --resume)
# The committed logs were made by this script in three invocations (STEPS=6000, stopped; STEPS=4000 --resume,
# stopped; STEPS=20000 --resume, finished on 2026-12-01 at 18:09 UTC); each run's README.md lists its commands and
# stderr.log what they printed. runs/cpu/<run>.log collects each invocation's output (appended, not overwritten).
set -u
cd "$(dirname "$0")/../../.."
ALGOS=${ALGOS:-"sobirl drlhf sac"}
SEED=${SEED:-1}
TIMEOUT=${TIMEOUT:-0}
STEPS=${STEPS:-20000}
PY=${PY:-.venv/bin/python}
mkdir -p runs/cpu
for algo in $ALGOS; do
  out=runs/cpu/${algo}_cpu_seed${SEED}
  resume=""
  [ -f "$out/checkpoint.pt" ] && resume="--resume"
  cmd="-m sobirl_lite.atari train --algo $algo --preset cpu --steps $STEPS --seed $SEED --device cpu --threads 1 --no-progress --out $out $resume"
  echo "python $cmd"
  (
    start=$(date +%s)
    OMP_NUM_THREADS=1 timeout -s INT "$TIMEOUT" nice -n 5 $PY $cmd
    echo "$algo exit $? after $(( $(date +%s) - start )) s"
  ) >> "runs/cpu/${algo}_cpu_seed${SEED}.log" 2>&1 &
done
wait
