"""The ``train`` settings that ``cli`` and ``sweep`` share: the flag table, the ``train`` subcommand, and the
:class:`~.config.Config` a parsed ``train`` command line describes.

Both :mod:`.cli` (which builds the whole command line) and :mod:`.sweep` (which passes the same settings to every
run and parses each run's ``train`` arguments in its worker) import this module; it imports neither.
"""
from __future__ import annotations

import argparse

from .config import (ALGOS, ENV_BACKENDS, HYPER_BASELINES, HYPER_EXPECTATIONS, LABEL_MODES, MINATAR_SETTINGS,
                     PRECISIONS, Config)
from .presets import PRESETS

D = Config()  # the defaults shown in --help

# (flag, Config field, type, help). Order = the order in --help.
FLAGS = [
    ("--learning-starts", "learning_starts", int, f"agent steps of uniformly random actions before SAC updates start (default {D.learning_starts})"),
    ("--buffer-size", "buffer_size", int, f"replay buffer capacity in transitions, summed over environments (default {D.buffer_size:,}; ~7 KB each)"),
    ("--batch-size", "batch_size", int, f"SAC mini-batch size (default {D.batch_size})"),
    ("--inner-steps", "inner_steps", int, f"N: SAC agent steps per outer iteration, between reward updates (default {D.inner_steps:,})"),
    ("--update-every", "update_every", int, f"agent steps per SAC gradient update (default {D.update_every})"),
    ("--target-update-every", "target_update_every", int, f"agent steps between hard target-critic copies (default {D.target_update_every})"),
    ("--gamma", "gamma", float, f"discount factor (default {D.gamma})"),
    ("--policy-lr", "policy_lr", float, f"initial actor learning rate (default {D.policy_lr})"),
    ("--q-lr", "q_lr", float, f"initial critic and temperature learning rate (default {D.q_lr})"),
    ("--lr-anneal-steps", "lr_anneal_steps", int, f"SAC learning rates decay linearly to 0 at this step (default {D.lr_anneal_steps:,})"),
    ("--alpha0", "alpha0", float, f"initial SAC temperature (default {D.alpha0})"),
    ("--target-entropy-scale", "target_entropy_scale", float, f"target entropy = scale * log|A| (default {D.target_entropy_scale})"),
    ("--segment-length", "segment_length", int, f"steps per preference segment (default {D.segment_length})"),
    ("--initial-pairs", "initial_pairs", int, f"labelled pairs gathered from the random policy for the warm-up (default {D.initial_pairs})"),
    ("--warmup-epochs", "warmup_epochs", int, f"reward epochs on the warm-up pairs (default {D.warmup_epochs})"),
    ("--pairs-per-iter", "pairs_per_iter", int, "new labelled pairs per outer iteration; 0 = the paper's hyperbolic schedule (about 6 -> 3) (default 0)"),
    ("--total-pairs", "total_pairs", int, f"total comparisons of the hyperbolic schedule (default {D.total_pairs:,})"),
    ("--schedule-iterations", "schedule_iterations", int, f"length of the hyperbolic schedule in outer iterations (default {D.schedule_iterations})"),
    ("--pref-buffer-size", "pref_buffer_size", int, f"FIFO capacity of the preference buffer in pairs (default {D.pref_buffer_size})"),
    ("--reward-batch-size", "reward_batch_size", int, f"pairs per reward mini-batch (default {D.reward_batch_size})"),
    ("--reward-epochs", "reward_epochs", int, f"reward epochs over the buffer per outer iteration (default {D.reward_epochs})"),
    ("--reward-lr", "reward_lr", float, f"AdamW learning rate of the reward net (default {D.reward_lr})"),
    ("--labels", "label_mode", str, f"synthetic labels: 'sampled' from Bradley-Terry (authors' code) or 'deterministic' (default {D.label_mode})"),
    ("--hyper-warmup-steps", "hyper_warmup_steps", int, f"SoBiRL uses pure BCE until this global step, then adds the (78) term (default {D.hyper_warmup_steps:,})"),
    ("--hyper-expectation", "hyper_expectation", str, "SoBiRL's (78) term: E_a r_x(s, a) under the current policy ('policy', the paper) or under the uniform distribution ('uniform', what the authors' code computes in effect; not the paper's algorithm) (default policy)"),
    ("--hyper-baseline", "hyper_baseline", str, "weight of a pair's (78) term: its preference loss ('none', the paper) or that loss minus the mean loss of the other pairs of the mini-batch ('leave-one-out'; not the paper's algorithm) (default none)"),
    ("--eval-every", "eval_every", int, f"agent steps between evaluations (greedy and stochastic policy on separate games); 0 = none (default {D.eval_every:,}; MinAtar {MINATAR_SETTINGS['eval_every']:,})"),
    ("--eval-episodes", "eval_episodes", int, f"games per evaluation and policy (default {D.eval_episodes})"),
    ("--env-backend", "env_backend", str, f"'gym' (gymnasium wrappers; exact resume) or 'vector' (ale-py C++ AtariVectorEnv; faster) (default {D.env_backend})"),
    ("--num-envs", "num_envs", int, f"parallel games (needs --env-backend vector when > 1) (default {D.num_envs})"),
    ("--env-threads", "env_threads", int, "worker threads of the vector backend; 0 = ale-py's choice (default 0)"),
    ("--max-episode-frames", "max_episode_frames", int, f"emulator frames after which a game is truncated (default {D.max_episode_frames:,})"),
    ("--checkpoint-every", "checkpoint_every", int, f"agent steps between checkpoints; one is also written on Ctrl-C and at the end (default {D.checkpoint_every:,})"),
    ("--threads", "threads", int, "torch CPU threads; 0 = torch's default (default 0)"),
]
CHOICES = {"label_mode": LABEL_MODES, "env_backend": ENV_BACKENDS, "hyper_expectation": HYPER_EXPECTATIONS,
           "hyper_baseline": HYPER_BASELINES}



def add_settings(group) -> None:
    """Add one optional flag per row of :data:`FLAGS` to ``group`` (an argparse parser or argument group); each
    defaults to ``None`` so that :func:`config_from_args` can tell a flag given from one left out."""
    for flag, field, typ, text in FLAGS:
        kw = {"type": typ, "default": None, "help": text, "metavar": field.upper()}
        if field in CHOICES:
            kw["choices"] = CHOICES[field]
            kw.pop("metavar")
        group.add_argument(flag, dest=field, **kw)


def add_train_parser(sub) -> argparse.ArgumentParser:
    """The ``train`` subcommand, added to the subparsers ``sub``."""
    p = sub.add_parser("train", help="train one algorithm (see 'train --help')",
                       description="Train one algorithm on BeamRider. Writes progress.csv, config.json and "
                                   "checkpoint.pt into --out.")
    p.add_argument("--algo", required=True, choices=ALGOS,
                   help="sobirl = estimator (78); drlhf = BCE-only reward learning; sac = SAC on the true clipped reward")
    p.add_argument("--env", default=D.env_id,
                   help=f"environment: {D.env_id} (Atari) or minatar:GAME with GAME in breakout, space_invaders, asterix, "
                        f"freeway; a MinAtar game brings its own settings (config.MINATAR_SETTINGS) (default {D.env_id})")
    p.add_argument("--steps", type=int, default=None,
                   help=f"total agent steps (1 Atari step = 4 frames), summed over environments (default: the environment's, "
                        f"{D.total_steps:,} for Atari, the paper's budget; {MINATAR_SETTINGS['total_steps']:,} for MinAtar)")
    p.add_argument("--seed", type=int, default=D.seed, help=f"random seed of environment, networks and sampling (default {D.seed})")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where networks and buffers live; auto = cuda if available, else cpu (default auto)")
    p.add_argument("--out", required=True, help="run directory, e.g. runs/NAME (must be new unless --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (same settings required; --steps may grow)")
    p.add_argument("--no-progress", action="store_true", help="hide the tqdm progress bar")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN/cuBLAS kernels: a GPU run repeats bit for bit, at some cost in speed "
                        "(default: autotuned kernels, fast but not reproducible on a GPU; CPU runs are reproducible "
                        "either way)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="bf16 runs the convolutional encoders under bfloat16 autocast (heads, TD targets and losses "
                        "stay fp32); faster on CPUs and GPUs with bf16 units, off until an A/B check shows it learns "
                        "the same (default fp32)")
    p.add_argument("--preset", choices=tuple(PRESETS), default=None,
                   help="run size: smoke (minutes, learns nothing), cpu (the book's CPU runs, ~1 h on a core), "
                        "paper (the paper's settings, a GPU run); explicit flags override it (default: paper)")
    add_settings(p.add_argument_group("scaled-down and advanced settings (defaults = the paper's, Appendix I.2)"))
    return p


def train_parser() -> argparse.ArgumentParser:
    """A parser for ``train ...`` argument lists alone (what a sweep worker parses for each of its runs)."""
    parser = argparse.ArgumentParser(prog="python -m sobirl_lite.atari")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def config_from_args(args) -> Config:
    preset = PRESETS[args.preset] if args.preset else {}
    if preset and args.env.startswith("minatar:"):
        raise ValueError(f"--preset {args.preset} describes a BeamRider run; MinAtar games bring their own "
                         f"settings (drop --preset)")
    cfg = Config.for_env(args.env, algo=args.algo, seed=args.seed, device=args.device, progress=not args.no_progress,
                         **preset)
    if args.steps is not None:
        cfg.total_steps = args.steps
    cfg.deterministic = args.deterministic
    if args.precision is not None:
        cfg.precision = args.precision
    for _, field, _, _ in FLAGS:
        value = getattr(args, field)
        if value is not None:
            setattr(cfg, field, value)
    return cfg

