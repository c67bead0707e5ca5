#!/bin/bash
# The MinAtar study, second pass: Space Invaders runs extended (or run) to 60k steps; Breakout stays at 30k.
# Same code snapshot as runs/minatar_study.sh. Resumable: run it again.
cd /work/main/runs/minatar_code
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
exec nice -n 0 /work/main/.venv/bin/python -m sobirl_lite.atari sweep --algos sobirl,drlhf,sac --seeds 0-4 \
  --env minatar:space_invaders --steps 60000 --out /work/main/book/data/minatar/study --workers 2
