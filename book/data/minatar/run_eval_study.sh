#!/bin/bash
# The MinAtar study of chapter 9 (issue 19): MinAtar Breakout (30,000 agent steps per run) and Space Invaders
# (60,000), SoBiRL with the paper's (78), DRLHF and SAC on seeds 0-9, and two variants of SoBiRL's term (uniform
# expectation; leave-one-out baseline) on seeds 0-4; every run evaluates greedy and stochastic play every 5,000 steps.
# Resumable: run it again and finished runs are skipped, interrupted ones resume from their checkpoints.
# CODE is a frozen copy of the package (so that edits to the repository during the study cannot change it).
set -u
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
CODE=${CODE:-$REPO}
PY=${PY:-$REPO/.venv/bin/python}
OUT=$REPO/book/data/minatar/eval_study
export PYTHONPATH=$CODE OMP_NUM_THREADS=1
cd "$CODE"
sweep() { "$PY" -m sobirl_lite.atari sweep --out "$OUT" --workers "${WORKERS:-2}" "$@"; }
for game in "minatar:breakout --steps 30000" "minatar:space_invaders --steps 60000"; do
  sweep --env $game --algos sobirl,drlhf,sac --seeds 0-9
  sweep --env $game --algos sobirl --seeds 0-4 --hyper-expectation uniform
  sweep --env $game --algos sobirl --seeds 0-4 --hyper-baseline leave-one-out
done
