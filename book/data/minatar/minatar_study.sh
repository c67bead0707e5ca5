#!/bin/bash
# The MinAtar study: 2 games x 3 algorithms x 5 seeds, 30k steps each, 2 local workers. Resumable: run it again.
cd /work/main/runs/minatar_code
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
exec nice -n 0 /work/main/.venv/bin/python -m sobirl_lite.atari sweep --algos sobirl,drlhf,sac --seeds 0-4 \
  --env minatar:breakout,minatar:space_invaders --out /work/main/book/data/minatar/study --workers 2
