"""What a :class:`~.trainers.Trainer` puts into ``checkpoint.pt`` and how it gets it back.

A checkpoint holds everything a run needs to continue exactly where it stopped: counters, the per-phase SAC
statistics, the agent, the replay buffer's indices (its frames go to separate files, see
:meth:`~.buffer.FrameReplayBuffer.save_frames`), the reward side (:class:`~.reward_phase.RewardPhase`), every random
generator, the game in progress (``gym`` backend) and the length of ``progress.csv`` at that moment. The keys are
those of every checkpoint since format :data:`~.checkpoint.FORMAT`.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from .checkpoint import FORMAT, rng_state, set_rng_state
from .run_files import R_STATS


def device_reseed(seed: int, step: int, stream: int) -> int:
    """A seed for device generator ``stream`` when a run resumes on another device type, fixed by (seed, step)."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def checkpoint_state(t, csv_pos: int, delta) -> dict:
    """The checkpoint of trainer ``t``; ``csv_pos``: length of ``progress.csv``; ``delta``: the replay frames just
    written (:meth:`~.buffer.FrameReplayBuffer.save_frames`)."""
    state = {
        "format": FORMAT, "config": t.cfg.to_dict(), "algo": t.cfg.algo,
        "global_step": t.global_step, "iteration": t.iteration, "phase_steps": t.phase_steps,
        "phase_wall": t.phase_wall + (time.perf_counter() - t.phase_start),
        "wall_s": t._wall(), "sac_sums": t.sac_sums.cpu(), "phase_updates": t.phase_updates,
        "r_sums": t.r_sums.cpu(), "pref_progress": None,
        "lr_frac": t.lr_frac, "last_pref": t.last_pref,
        "agent": t.agent.state_dict(), "device_type": t.device.type,
        "buffer": t.buffer.state_dict(frames=False) | {"frames_delta": delta},
        "np_rng": t.np_rng.bit_generator.state, "act_gen": t.act_gen.get_state(),
        "pref_gen": t.pref_gen.get_state(), "rng": rng_state(),
        "env_state": t.env.get_state(), "obs": t.obs, "tracker": t.tracker.state_dict(),
        "csv_pos": csv_pos,
    }
    if t.learn_reward:
        state |= t.reward.state_dict()
    return state


def restore_state(t, s: dict) -> None:
    """Load checkpoint ``s`` into trainer ``t`` (built with the same settings)."""
    t.global_step, t.iteration, t.phase_steps = s["global_step"], s["iteration"], s["phase_steps"]
    t.phase_wall, t.wall_offset = s["phase_wall"], s["wall_s"]
    t.sac_sums = s["sac_sums"].to(t.device)
    t.r_sums = s.get("r_sums", torch.zeros(len(R_STATS))).to(t.device)
    t.phase_updates, t.lr_frac = s["phase_updates"], s["lr_frac"]
    t.agent.load_state_dict(s["agent"])
    # Generator states of one device type cannot be loaded into another's: after a move between CPU and GPU
    # the device generators (action sampling, replay sampling) are re-seeded from (seed, step) instead.
    saved_type = s.get("device_type", t.device.type)
    moved = saved_type != t.device.type
    t.buffer.load_state_dict(s["buffer"], directory=t.out_dir,
                             reseed=device_reseed(t.cfg.seed, t.global_step, 3) if moved else None)
    if t.learn_reward:
        t.reward.load_state_dict(s)
    t.np_rng.bit_generator.state = s["np_rng"]
    if moved:
        t.act_gen.manual_seed(device_reseed(t.cfg.seed, t.global_step, 1))
        print(f"note: the checkpoint was written on {saved_type}, this run uses {t.device.type}: the device "
              f"random generators were re-seeded from (seed, step), so the run continues correctly but not "
              f"bit-for-bit as it would have on {saved_type}", file=sys.stderr, flush=True)
    else:
        t.act_gen.set_state(s["act_gen"])
    t.pref_gen.set_state(s["pref_gen"])
    set_rng_state(s["rng"])
    t.env.reset(seed=t.cfg.seed)
    if s.get("env_state") is not None and t.cfg.env_backend == "gym":
        t.env.set_state(s["env_state"])  # exact continuation of the game in progress
        t.obs = s["obs"]
        t.tracker.load_state_dict(s["tracker"])
    else:
        # The vector env cannot be snapshotted: start new games (seeded by the step, so they are new ones) and
        # close the stored stream like an autoreset. The unfinished games are dropped from the log.
        t.obs, _ = t.env.reset(seed=t.cfg.seed + t.global_step)
        E = t.env.num_envs
        t.buffer.add(np.zeros(E, np.int64), np.zeros(E), np.zeros(E), t.obs, np.ones(E, bool))
