#!/usr/bin/env bash
# SoBiRL, DRLHF and SAC side by side on one CUDA GPU for a fixed wall time, with the paper's settings
# (`--preset paper`: 4.3M steps, 10^6-frame replay buffers on the GPU), one process each, ale-py's C++ vector
# environment. Each run is stopped with Ctrl-C after MINUTES (checkpoint written) and can be continued by running
# the script again (it adds --resume where a checkpoint exists). The logs go to book/data/beamrider/<algo>_gpu_seed<S>/
# (progress.csv, config.json with the command and the GPU, stderr.log), which chapter 8 reads when they exist;
# checkpoints and replay frames stay in runs/gpu/ (about 7 GB of disk per run, printed at start).
#   MINUTES=60 SEED=3 book/data/beamrider/run_gpu.sh
# Three paper-size runs need about 3 x (7 GB replay + 1.2 GB preference buffer + networks) of GPU memory: an 80 GB card.
# Not run for the book yet: no GPU was available when it was written.
# ARMS picks the learners (default the paper's three). Two variants of SoBiRL's (78) term, which are not the paper's
# algorithm (chapter 9): sobirl-uniform (--hyper-expectation uniform) and sobirl-loo (--hyper-baseline
# leave-one-out). Three processes share the card best; chapter 8 says which runs to make first, e.g.
#   ARMS="sobirl sobirl-uniform sobirl-loo" MINUTES=60 book/data/beamrider/run_gpu.sh
set -u
cd "$(dirname "$0")/../../.."
MINUTES=${MINUTES:-60}
SEED=${SEED:-3}
NUM_ENVS=${NUM_ENVS:-1}  # the paper plays one game; >1 batches the actor over several (steps count all games)
PY=${PY:-python}
EXTRA=${EXTRA:-}  # further train flags, e.g. "--deterministic" or "--precision bf16"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
ARMS=${ARMS:-sobirl drlhf sac}
mkdir -p runs/gpu
pids=()
for arm in $ARMS; do
  case $arm in
    sobirl|drlhf|sac) algo=$arm; variant="" ;;
    sobirl-uniform) algo=sobirl; variant="--hyper-expectation uniform" ;;
    sobirl-loo) algo=sobirl; variant="--hyper-baseline leave-one-out" ;;
    *) echo "error: unknown arm '$arm' in ARMS; choose from sobirl drlhf sac sobirl-uniform sobirl-loo" >&2; exit 2 ;;
  esac
  run=runs/gpu/${arm}_gpu_seed${SEED}
  resume=""
  [ -f "$run/checkpoint.pt" ] && resume="--resume"
  cmd="$PY -m sobirl_lite.atari train --algo $algo $variant --preset paper --seed $SEED --device cuda \
--env-backend vector --num-envs $NUM_ENVS --no-progress --out $run $resume $EXTRA"
  echo "$cmd"
  mkdir -p "$run"
  timeout -s INT "$(( MINUTES * 60 ))" $cmd > "$run/stderr.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for arm in $ARMS; do  # copy the logs (not the checkpoints) next to this script
  run=runs/gpu/${arm}_gpu_seed${SEED}
  dest=book/data/beamrider/${arm}_gpu_seed${SEED}
  mkdir -p "$dest"
  cp "$run/progress.csv" "$run/config.json" "$run/stderr.log" "$dest/"
done
$PY -m sobirl_lite.atari summary book/data/beamrider/*_gpu_seed${SEED}
$PY -m sobirl_lite.atari plot book/data/beamrider/*_gpu_seed${SEED} --out book/data/beamrider/gpu_seed${SEED}.png
