#!/usr/bin/env bash
# The CPU runs whose logs are committed beside this script (book/data/beamrider/<algo>_cpu_seed1/).
# The three algorithms run side by side, one process and one torch thread each, at low priority (nice 5) on a
# 2-core machine shared with other jobs. Settings: `--preset cpu` (sobirl_lite/atari/presets.py): 20,000 agent steps,
# a 64-pair reward warm-up of 64 epochs (enough to take the reward model above chance), everything else scaled down
# as listed there. Resumable: run the script again and each unfinished run continues from its checkpoint.
#   TIMEOUT=3600 book/data/beamrider/run_cpu.sh     # stop each run (Ctrl-C, checkpoint) after an hour
#   STEPS=6000 book/data/beamrider/run_cpu.sh       # a shorter budget (total_steps may change on --resume)
# NOTE: the logs committed beside this script are NOT yet from these settings: they were made by the earlier version
# of this script and package (commit 8e75473: 30,000 steps, 8 warm-up epochs, SAC losses summed over actions; exact
# command in each run's README.md). A run with these settings was started on 2026-12-01 (STEPS=6000) but the shared
# 2-core machine gave it about 1 minute of CPU per 50 minutes; stopped in the reward warm-up (epoch 12/32), resumed
# with STEPS=4000 and stopped again at 16:14 UTC: SoBiRL/DRLHF at 3,000 steps, SAC done at 4,000. Those partial logs
# are in partial_cpu_preset/ (not yet read by chapter 8); run this script again to continue them.
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
  ) > "runs/cpu/${algo}_cpu_seed${SEED}.log" 2>&1 &
done
wait
