"""Named run sizes for ``train --preset`` and a rough wall-time estimate for a run on a CPU.

* ``smoke``: a few minutes on one core; checks that everything runs, learns nothing;
* ``cpu``: the settings of the book's committed CPU runs (``book/data/beamrider/``; those stopped earlier, see their
  READMEs): a reward warm-up of 64 AdamW steps (32 epochs of 2 mini-batches of 32 over 64 pairs), enough to take the
  reward model above chance, and SAC steps far too few to leave random play;
* ``paper``: the paper's settings (the :class:`~.config.Config` defaults, 4.3M steps): days on a CPU, a GPU run.

A preset sets the fields below; flags given on the command line override them.
"""
from __future__ import annotations

import sys

PRESETS: dict[str, dict] = {
    "smoke": dict(total_steps=3_000, learning_starts=1_000, inner_steps=500, buffer_size=5_000, batch_size=32,
                  initial_pairs=20, warmup_epochs=2, pairs_per_iter=4, pref_buffer_size=100,
                  hyper_warmup_steps=1_000, target_update_every=1_000, checkpoint_every=1_000),
    "cpu": dict(total_steps=20_000, learning_starts=2_000, inner_steps=1_000, buffer_size=30_000,
                target_update_every=1_000, initial_pairs=64, warmup_epochs=32, reward_batch_size=32,
                pairs_per_iter=6, pref_buffer_size=128, hyper_warmup_steps=3_000, checkpoint_every=1_000),
    "paper": {},
}

# Seconds per unit on one core of the machine the book was written on (torch 2.13 CPU, one thread): an agent step
# before learning starts (random actions), an agent step while SAC learns, and one pair through one reward epoch.
# Atari (benchmarks/atari.py): gym backend, one update every 4 steps, 2 x 25 frames of 84x84 per pair. MinAtar: the
# medians over the runs of book/data/minatar/eval_study/ (their progress.csv wall times; one update every 8 steps,
# 2 x 10 frames of 10x10 per pair), about fifteen times cheaper per step.
CPU_SECONDS = {
    "atari": {"random_step": 0.003, "learning_step": 0.042, "pair_epoch": 0.032},
    "minatar": {"random_step": 0.0003, "learning_step": 0.0035, "pair_epoch": 0.0008},
}


def estimate_cpu_seconds(cfg) -> float:
    """Rough wall time of a whole run of ``cfg`` on one CPU core (the ``CPU_SECONDS`` rates of its environment)."""
    rate = CPU_SECONDS["minatar" if cfg.env_id.startswith("minatar:") else "atari"]
    random_steps = min(max(cfg.learning_starts, cfg.inner_steps), cfg.total_steps)
    learning_steps = max(cfg.total_steps - random_steps, 0)
    seconds = random_steps * rate["random_step"] + learning_steps * rate["learning_step"]
    if cfg.algo in ("sobirl", "drlhf"):
        iterations = max(cfg.total_steps // cfg.inner_steps - 1, 0)
        per_iter = cfg.pairs_per_iter or 5  # the paper's schedule gives 6 -> 3 new pairs
        # the buffer fills up, then holds pref_buffer_size pairs; average over the run
        held = [min(cfg.initial_pairs + per_iter * k, cfg.pref_buffer_size) for k in range(1, iterations + 1)]
        pair_epochs = cfg.initial_pairs * cfg.warmup_epochs + cfg.reward_epochs * sum(held)
        seconds += pair_epochs * rate["pair_epoch"]
    return seconds


def format_duration(seconds: float) -> str:
    """``5400`` -> ``"1.5 h"``; ``90`` -> ``"1.5 min"``; ``200_000`` -> ``"2.3 days"``."""
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


__all__ = ["PRESETS", "CPU_SECONDS", "estimate_cpu_seconds", "format_duration"]


def announce_run(cfg, out_dir: str, disk_bytes: int, global_step: int, device_type: str) -> None:
    """Before a run, on stderr: the disk its checkpoints need and, on a CPU, a rough wall time, with a warning when
    it is hours (the paper's settings: days)."""
    print(f"checkpoints in {out_dir} need about {disk_bytes / 1e9:.2f} GB of disk (replay frames written "
          f"incrementally, every {cfg.checkpoint_every:,} steps)", file=sys.stderr, flush=True)
    if device_type != "cpu" or global_step >= cfg.total_steps:
        return
    left = estimate_cpu_seconds(cfg) * (1.0 - global_step / cfg.total_steps)
    print(f"{cfg.algo}: {cfg.total_steps - global_step:,} agent steps to go on the CPU; rough "
          f"estimate {format_duration(left)} on one core", file=sys.stderr, flush=True)
    if left > 2 * 3600:
        print(f"warning: this is a multi-hour CPU run ({format_duration(left)}). For a first look use "
              f"--preset smoke (minutes) or --preset cpu (about an hour); the paper's settings want a GPU "
              f"(--device cuda). Ctrl-C stops with a checkpoint; --resume continues.",
              file=sys.stderr, flush=True)
