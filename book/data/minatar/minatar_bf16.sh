#!/bin/bash
# bf16 A/B arm: SAC on MinAtar Breakout, seeds 0-4, 30k steps, --precision bf16 (code at BASE_COMMIT, committed HEAD).
cd /work/main/runs/minatar_code_bf16
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
exec nice -n 0 /work/main/.venv/bin/python -m sobirl_lite.atari sweep --algos sac --seeds 0-4 \
  --env minatar:breakout --precision bf16 --out /work/main/book/data/minatar/bf16 --workers 1
