"""How fast can BeamRider RLHF run here? Env steps/s (random actions) and training steps/s per algorithm.

    python benchmarks/atari.py                 # device = cuda if available, else cpu
    python benchmarks/atari.py --device cpu --train-steps 200

Prints three tables:

1. **environment** -- agent steps/s with uniformly random actions (the upper limit of any run): one gymnasium-wrapped
   env vs ale-py's C++ ``AtariVectorEnv`` with 1 and several games;
2. **SAC phase** -- agent steps/s of a run while SAC learns (one update of batch 64 every 4 steps, Appendix I.2 of Yang et al.
   settings): acting, stepping, storing, sampling, the learned reward on each batch and the update. SoBiRL and DRLHF
   cost the same here; SAC skips the reward net;
3. **reward mini-batch** -- seconds per reward-learning mini-batch of 64 pairs of 25-step segments, BCE only
   (DRLHF, and SoBiRL during its warm-up) vs estimator (78) (SoBiRL: also the actor's probabilities on 3,200
   observations). At the paper's scale one outer iteration (10^4 steps) runs about 47 of them;
4. **SAC update, speed options side by side** -- seconds per update of batch 64 for the plain update and with each
   option that leaves the algorithm unchanged switched on in turn (one float conversion per batch instead of one per
   network, fused Adam, channels_last), the package's default (all three), bf16 autocast of the encoders (off by
   default), and the default with 1 and 2 torch threads. The variants share weights and batches and are timed in
   interleaved rounds, so a load that comes and goes hits them alike; ratios are against the plain update.
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time

import numpy as np
import torch

from sobirl_lite.atari.config import Config
from sobirl_lite.atari.env import GymAtari, VectorAtari
from sobirl_lite.atari.preferences import PreferenceBuffer, RewardLearner
from sobirl_lite.atari.reward_net import RewardNet
from sobirl_lite.atari.buffer import FrameReplayBuffer
from sobirl_lite.atari.sac import Actor, DiscreteSAC
from sobirl_lite.atari.trainers import Trainer, resolve_device


def env_sps(env, steps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n = env.num_envs
    t0 = time.perf_counter()
    for _ in range(steps // n):
        env.step(rng.integers(0, env.n_actions, size=n))
    sps = (steps // n) * n / (time.perf_counter() - t0)
    env.close()
    return sps


def train_sps(algo: str, steps: int, device: str, env_backend: str = "gym", num_envs: int = 1) -> float:
    """Steps/s of the SAC phase of outer iteration 1 (iteration 0 is the random warm-up, which does not learn)."""
    cfg = Config(algo=algo, device=device, total_steps=2 * steps, inner_steps=steps, learning_starts=steps,
                 buffer_size=max(4 * steps, 2000), initial_pairs=8, warmup_epochs=1, pairs_per_iter=2,
                 pref_buffer_size=64, hyper_warmup_steps=0, checkpoint_every=10 ** 9, progress=False,
                 env_backend=env_backend, num_envs=num_envs)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, os.path.join(out, "run"), command=["benchmark"])
        try:
            trainer.train()
        finally:
            trainer.close()
        with open(os.path.join(out, "run", "progress.csv")) as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] == "iteration"]
    return float(rows[1]["sps"])


def reward_batch_seconds(device: torch.device, coef: float, repeats: int = 3) -> float:
    cfg = Config(reward_batch_size=64)
    T, n = cfg.segment_length, cfg.reward_batch_size
    prefs = PreferenceBuffer(n, T, device=device)
    g = torch.Generator().manual_seed(0)
    prefs.push(torch.randint(0, 256, (n, 2, T + 3, 84, 84), dtype=torch.uint8, generator=g),
               torch.randint(0, 9, (n, 2, T), generator=g), torch.randn(n, 2, generator=g),
               torch.randint(0, 2, (n,), generator=g).float())
    learner = RewardLearner(RewardNet(9).to(device), cfg)
    actor = Actor(9).to(device)
    learner.epoch(prefs, actor, coef)  # warm-up (allocations, cudnn autotune)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        learner.epoch(prefs, actor, coef)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


SAC_VARIANTS = {  # name: (DiscreteSAC options, precision)
    "plain (per-network conversion, Adam, NCHW)": (dict(convert_once=False, fused=False, channels_last=False), "fp32"),
    "+ one float conversion per batch": (dict(convert_once=True, fused=False, channels_last=False), "fp32"),
    "+ fused Adam": (dict(convert_once=False, fused=True, channels_last=False), "fp32"),
    "+ channels_last": (dict(convert_once=False, fused=False, channels_last=True), "fp32"),
    "all three (the default)": (dict(), "fp32"),
    "all three + bf16 encoders (--precision bf16)": (dict(), "bf16"),
}


def sac_update_seconds(device: torch.device, rounds: int = 5, threads=(1, 2)) -> dict:
    """Seconds per SAC update for each of :data:`SAC_VARIANTS` (and the default at each thread count)."""
    buf = FrameReplayBuffer(600, 1, device=device, seed=0)
    g = np.random.default_rng(0)
    buf.start(g.integers(0, 256, (1, 4, 84, 84), dtype=np.uint8))
    for t in range(599):
        buf.add([t % 9], [0.0], [False], g.integers(0, 256, (1, 4, 84, 84), dtype=np.uint8), [False])
    batches = [buf.sample(64) for _ in range(rounds + 1)]
    agents = {}
    for name, (opts, precision) in SAC_VARIANTS.items():
        torch.manual_seed(0)  # same initial weights for every variant
        agents[name] = DiscreteSAC(9, Config(precision=precision), device, **opts)
    runs = [(name, None) for name in agents] + [("all three (the default)", n) for n in threads]
    times = {key: [] for key in runs}
    before = torch.get_num_threads()
    for r in range(rounds + 1):  # round 0 warms up (allocations, oneDNN/cuDNN kernel choice)
        for name, n in runs:
            if n is not None:
                torch.set_num_threads(n)
            b = batches[r]
            t0 = time.perf_counter()
            agents[name].update(b, b["rewards"])
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r > 0:
                times[(name, n)].append(time.perf_counter() - t0)
            torch.set_num_threads(before)
    return {key: float(np.median(v)) for key, v in times.items()}


def print_update_table(device: torch.device, rounds: int) -> None:
    print("\n4. SAC update of batch 64, speed options side by side (median seconds; ratio = plain / variant)")
    sec = sac_update_seconds(device, rounds=rounds)
    plain = sec[(next(iter(SAC_VARIANTS)), None)]
    for (name, n), t in sec.items():
        label = name if n is None else f"default, {n} torch thread(s)"
        print(f"   {label:<46s} {t:>7.3f} s   x{plain / t:4.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device for the networks")
    p.add_argument("--env-steps", type=int, default=3000, help="random-action steps per environment measurement")
    p.add_argument("--train-steps", type=int, default=0,
                   help="measured steps of the SAC phase per algorithm (default: 400 on cpu, 4000 on cuda)")
    p.add_argument("--vector-envs", type=int, default=4, help="games in the larger vector-env measurement")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--update-rounds", type=int, default=5, help="timed rounds of the SAC-update comparison")
    p.add_argument("--only-updates", action="store_true", help="run only table 4 (the SAC-update comparison)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    train_steps = args.train_steps or (4000 if device.type == "cuda" else 400)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    print(f"device: {where}; torch threads {torch.get_num_threads()}")

    if args.only_updates:
        print_update_table(device, args.update_rounds)
        return
    print("\n1. environment, random actions (agent steps/s, 1 step = 4 frames)")
    for name, env in (("gymnasium AtariPreprocessing, 1 env", GymAtari()),
                      ("ale-py AtariVectorEnv, 1 env", VectorAtari(num_envs=1)),
                      (f"ale-py AtariVectorEnv, {args.vector_envs} envs", VectorAtari(num_envs=args.vector_envs))):
        print(f"   {name:<42s} {env_sps(env, args.env_steps):>9,.0f}")

    print(f"\n2. SAC phase while learning (agent steps/s over {train_steps} steps, batch 64, update every 4 steps)")
    for algo in ("sobirl", "drlhf", "sac"):
        print(f"   {algo:<42s} {train_sps(algo, train_steps, str(device)):>9,.1f}")
    if device.type == "cuda":
        print(f"   {'sobirl, vector backend, 4 envs':<42s} {train_sps('sobirl', train_steps, str(device), 'vector', 4):>9,.1f}")

    print("\n3. reward learning, one mini-batch of 64 pairs x 2 x 25 steps (seconds)")
    print(f"   {'BCE only (DRLHF; SoBiRL warm-up)':<42s} {reward_batch_seconds(device, 0.0):>9.3f}")
    print(f"   {'estimator (78) (SoBiRL)':<42s} {reward_batch_seconds(device, 2.0):>9.3f}")

    print_update_table(device, args.update_rounds)


if __name__ == "__main__":
    main()
