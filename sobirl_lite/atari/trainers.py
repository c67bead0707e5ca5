"""Algorithm 3 (practical SoBiRL) and its two baselines, sharing everything but the reward loss (Appendix I of Yang et al.).

=========================  ===========================================================================================
``practical_sobirl``       reward net trained on the surrogate of estimator (78): BCE + BCE.detach() * (1/alpha) * hypers
``drlhf``                  same reward net, same data, BCE only (Christiano et al. 2017)
``sac_true_reward``        no reward net: SAC learns from the clipped true reward
=========================  ===========================================================================================

One outer iteration ``k`` of :meth:`Trainer.train`, top to bottom:

1. **SAC phase** (Algorithm 3 line 2): ``inner_steps`` agent steps of discrete SAC on ``r_{x_k}`` (the learned reward,
   clamped to [-1, 1], evaluated on each replayed batch with the current reward net) or on the true clipped reward.
   Iteration 0 acts uniformly at random and does not learn: it is the warm-up data of the "initial policy".
   SAC updates start at ``learning_starts`` and happen every ``update_every`` steps; targets are copied every
   ``target_update_every`` steps; the learning rates decay linearly.
2. **Preference phase** (lines 3-4, not for ``sac``): cut new segment pairs from this phase's rollouts, label them
   from the clipped true returns, push them into the FIFO buffer, and run one reward epoch over the buffer (iteration
   0: ``initial_pairs`` pairs and ``warmup_epochs`` epochs of pure BCE). For SoBiRL the coefficient is
   ``1/alpha_k`` once ``global_step > hyper_warmup_steps``.

Logging: one CSV row per finished game (``kind=episode``: unclipped score, length), one per outer iteration
(``kind=iteration``: preference accuracy, losses, temperature, steps/s) and one per evaluation every ``eval_every``
steps (``kind=eval``: greedy and stochastic returns on separate games, see :mod:`.evaluation`), plus TensorBoard if it
is installed.
Checkpoints every ``checkpoint_every`` steps and on Ctrl-C; :meth:`Trainer.train` resumes from one exactly (with the
``gym`` backend, bit-for-bit; with the ``vector`` backend the games in progress are restarted).
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import platform
import signal
import sys
import time

import numpy as np
import torch

from .buffer import FrameReplayBuffer
from .checkpoint import (CHECKPOINT_NAME, FORMAT, CheckpointError, atomic_torch_save, check_compatible,
                         load_checkpoint, rng_state, set_rng_state)
from .config import Config
from .env import EpisodeTracker, clip_reward, make_env
from .estimator import sobirl_coefficient
from .evaluation import EVAL_STATS, evaluate
from .preferences import (PreferenceBuffer, RewardLearner, new_pairs_schedule, pair_accuracy, preference_accuracy,
                          sample_segment_pairs, synthetic_labels)
from .networks import make_reward_net
from .presets import estimate_cpu_seconds, format_duration
from .sac import SAC_STATS, DiscreteSAC

CSV_FIELDS = ("kind", "global_step", "iteration", "episode_return", "episode_length", "pref_acc", "label_acc",
              "reward_loss", "bce", "hyper", "surrogate", "coef", "n_pairs", "updates", *SAC_STATS, "alpha",
              "lr_frac", "sps", "wall_s", "heldout_pref_acc", "heldout_label_acc", "heldout_pairs",
              "r_mean", "r_std", "r_clamped", "hyper_weight", "saturated", *EVAL_STATS)
# r_mean, r_std, r_clamped: the learned reward r_x(s, a) on the SAC batches of the iteration, before the clamp (mean
# over updates of the batch mean, of the batch std, and of the fraction of |r| >= reward_clamp).
# heldout_*: accuracy of the reward model on the iteration's new pairs *before* it trains on them.
# hyper_weight, saturated: see preferences.EPOCH_STATS. eval_*: the rows of kind=eval (evaluation.py).
R_STATS = ("r_mean", "r_std", "r_clamped")
CSV_NAME = "progress.csv"
CONFIG_NAME = "config.json"


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without a GPU is an error, not a silent fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was requested but torch sees no CUDA device")
    return torch.device(name)


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """cuDNN: autotuned kernels (``benchmark``) by default, which makes GPU runs fast but not bit-reproducible;
    ``deterministic=True`` asks for deterministic kernels instead (slower on a GPU; a CPU run is deterministic
    either way)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS (read at its first use)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def device_reseed(seed: int, step: int, stream: int) -> int:
    """A seed for device generator ``stream`` when a run resumes on another device type, fixed by (seed, step)."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def hardware_summary(device: torch.device) -> dict:
    """What the run ran on (recorded in config.json and in the book's figure captions)."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device)}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class Trainer:
    """Holds every piece of a run; :meth:`train` runs (or resumes) it.

    Args:
        cfg: the run's :class:`~.config.Config` (validated here).
        out_dir: where ``progress.csv``, ``config.json`` and ``checkpoint.pt`` go.
        resume: continue from ``out_dir/checkpoint.pt`` (error if there is none, or if it belongs to another run).
        command: the command line, recorded in ``config.json``.
    """

    def __init__(self, cfg: Config, out_dir: str, resume: bool = False, command: list[str] | None = None,
                 verbose: bool = True):
        cfg.validate()
        self.cfg, self.out_dir, self.resume = cfg, out_dir, resume
        self.command = command if command is not None else list(sys.argv)
        self.ckpt_path = os.path.join(out_dir, CHECKPOINT_NAME)
        self.csv_path = os.path.join(out_dir, CSV_NAME)
        self.config_path = os.path.join(out_dir, CONFIG_NAME)
        saved = None
        if resume:
            saved = load_checkpoint(self.ckpt_path)  # raises CheckpointError with the reason
            check_compatible(saved["config"], cfg.to_dict(), self.ckpt_path)
        elif os.path.exists(self.ckpt_path) or os.path.exists(self.csv_path):
            raise CheckpointError(f"{out_dir} already holds a run; pass --resume to continue it, or choose a new --out")
        os.makedirs(out_dir, exist_ok=True)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        configure_backends(self.device, cfg.deterministic)
        torch.manual_seed(cfg.seed)  # network initialisation (a resume overwrites the weights anyway)
        np.random.seed(cfg.seed)
        self._build()
        if saved is not None:
            self._restore(saved)
        else:
            self._fresh()
        self._open_logs(truncate_to=saved["csv_pos"] if saved is not None else None)
        self.stop_requested = False
        self.verbose = verbose  # the notes on stderr: disk, wall-time estimate, reward warm-up epochs

    # -- construction -----------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, d = self.cfg, self.device
        self.env = make_env(cfg)
        self.n_actions = self.env.n_actions
        E = self.env.num_envs
        frame_shape = (cfg.screen_size, cfg.screen_size)
        self.agent = DiscreteSAC(self.n_actions, cfg, d, in_frames=cfg.frame_stack)
        self.buffer = FrameReplayBuffer(cfg.buffer_size // E, E, frame_shape, cfg.frame_stack, d, seed=cfg.seed)
        self.tracker = EpisodeTracker(E)
        self.learn_reward = cfg.algo in ("sobirl", "drlhf")
        if self.learn_reward:
            self.reward_net = make_reward_net(cfg, self.n_actions).to(d)  # Atari or MinAtar shape
            self.reward_learner = RewardLearner(self.reward_net, cfg)
            self.prefs = PreferenceBuffer(cfg.pref_buffer_size, cfg.segment_length, frame_shape, cfg.frame_stack, d)
        self.np_rng = np.random.default_rng(cfg.seed)  # random actions before learning starts
        self.act_gen = torch.Generator(device=d)  # policy sampling
        self.pref_gen = torch.Generator()  # segment picks, labels, reward mini-batch order (CPU: device-independent)

    def _fresh(self) -> None:
        cfg = self.cfg
        self.act_gen.manual_seed(cfg.seed + 1)
        self.pref_gen.manual_seed(cfg.seed + 2)
        self.global_step = 0
        self.iteration = 0
        self.phase_steps = 0  # agent steps done in the current SAC phase
        self.phase_wall = 0.0  # seconds spent in the current SAC phase
        self.wall_offset = 0.0  # seconds of earlier sessions of this run
        self.sac_sums = torch.zeros(len(SAC_STATS), device=self.device)
        self.r_sums = torch.zeros(len(R_STATS), device=self.device)
        self.pref_progress = None  # a preference phase stopped between reward epochs (see _preference_phase)
        self.phase_updates = 0
        self.lr_frac = 1.0
        self.last_pref = {"pref_acc": float("nan"), "label_acc": float("nan")}
        self.obs, _ = self.env.reset(seed=cfg.seed)
        self.buffer.start(self.obs)
        for stale in glob.glob(os.path.join(self.out_dir, "replay_*")):  # frames of an abandoned earlier attempt
            os.remove(stale)
        self._write_config(fresh=True)

    def _restore(self, s: dict) -> None:
        self.global_step, self.iteration, self.phase_steps = s["global_step"], s["iteration"], s["phase_steps"]
        self.phase_wall, self.wall_offset = s["phase_wall"], s["wall_s"]
        self.sac_sums = s["sac_sums"].to(self.device)
        self.r_sums = s.get("r_sums", torch.zeros(len(R_STATS))).to(self.device)
        self.pref_progress = s.get("pref_progress")
        self.phase_updates, self.lr_frac, self.last_pref = s["phase_updates"], s["lr_frac"], s["last_pref"]
        self.agent.load_state_dict(s["agent"])
        # Generator states of one device type cannot be loaded into another's: after a move between CPU and GPU
        # the device generators (action sampling, replay sampling) are re-seeded from (seed, step) instead.
        saved_type = s.get("device_type", self.device.type)
        moved = saved_type != self.device.type
        self.buffer.load_state_dict(s["buffer"], directory=self.out_dir,
                                    reseed=device_reseed(self.cfg.seed, self.global_step, 3) if moved else None)
        if self.learn_reward:
            self.reward_net.load_state_dict(s["reward_net"])
            self.reward_learner.optimizer.load_state_dict(s["reward_optimizer"])
            self.prefs.load_state_dict(s["prefs"])
        self.np_rng.bit_generator.state = s["np_rng"]
        if moved:
            self.act_gen.manual_seed(device_reseed(self.cfg.seed, self.global_step, 1))
            print(f"note: the checkpoint was written on {saved_type}, this run uses {self.device.type}: the device "
                  f"random generators were re-seeded from (seed, step), so the run continues correctly but not "
                  f"bit-for-bit as it would have on {saved_type}", file=sys.stderr, flush=True)
        else:
            self.act_gen.set_state(s["act_gen"])
        self.pref_gen.set_state(s["pref_gen"])
        set_rng_state(s["rng"])
        self.env.reset(seed=self.cfg.seed)
        if s.get("env_state") is not None and self.cfg.env_backend == "gym":
            self.env.set_state(s["env_state"])  # exact continuation of the game in progress
            self.obs = s["obs"]
            self.tracker.load_state_dict(s["tracker"])
        else:
            # The vector env cannot be snapshotted: start new games (seeded by the step, so they are new ones) and
            # close the stored stream like an autoreset. The unfinished games are dropped from the log.
            self.obs, _ = self.env.reset(seed=self.cfg.seed + self.global_step)
            E = self.env.num_envs
            self.buffer.add(np.zeros(E, np.int64), np.zeros(E), np.zeros(E), self.obs, np.ones(E, bool))
        self._write_config(fresh=False)

    def _write_config(self, fresh: bool) -> None:
        if fresh:
            meta = {"config": self.cfg.to_dict(), "command": self.command, "resumed_with": [],
                    "n_actions": self.n_actions, "hardware": hardware_summary(self.device),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        else:
            with open(self.config_path) as f:
                meta = json.load(f)
            meta["config"] = self.cfg.to_dict()
            meta.setdefault("resumed_with", []).append({"command": self.command, "at_step": self.global_step,
                                                        "hardware": hardware_summary(self.device)})
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(meta, f, indent=2)
        os.replace(tmp, self.config_path)

    def _open_logs(self, truncate_to: int | None) -> None:
        if truncate_to is not None:  # drop the rows written after the checkpoint: they will be written again
            with open(self.csv_path, "r+b") as f:
                f.truncate(truncate_to)
        new = not os.path.exists(self.csv_path) or os.path.getsize(self.csv_path) == 0
        self.csv_file = open(self.csv_path, "a", newline="")
        fields = CSV_FIELDS
        if not new:  # a log begun by an older version keeps its columns (newer ones are left out, not misaligned)
            with open(self.csv_path, newline="") as f:
                fields = next(csv.reader(f))
        self.csv = csv.DictWriter(self.csv_file, fieldnames=fields, extrasaction="ignore")
        if new:
            self.csv.writeheader()
            self.csv_file.flush()
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency

            self.tb = SummaryWriter(os.path.join(self.out_dir, "tb"), purge_step=self.global_step or None)
        except ImportError:
            pass

    # -- logging ----------------------------------------------------------------------------------------------
    def _log(self, row: dict) -> None:
        row = {k: ("" if (isinstance(v, float) and math.isnan(v)) else v) for k, v in row.items()}
        self.csv.writerow(row)
        self.csv_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("kind", "global_step") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{row['kind']}/{k}", v, row["global_step"])

    def _wall(self) -> float:
        return self.wall_offset + (time.perf_counter() - self.session_start)

    # -- one agent step ---------------------------------------------------------------------------------------
    def _learning(self) -> bool:
        return self.iteration > 0 and self.global_step >= self.cfg.learning_starts

    def _sac_rewards(self, batch: dict) -> torch.Tensor:
        """The rewards SAC learns from: clipped true rewards, or ``r_x(s, a)`` clamped to [-1, 1]."""
        if not self.learn_reward:
            return batch["rewards"]
        r = self.reward_net.reward(batch["obs"], batch["actions"], clamp=None)
        c = self.cfg.reward_clamp
        # on the device, summed per iteration: no host sync per update
        self.r_sums += torch.stack([r.mean(), r.std(), (r.abs() >= c).float().mean()])
        return r.clamp(-c, c)

    def _env_step(self) -> None:
        cfg, E = self.cfg, self.env.num_envs
        if self._learning():
            obs_t = torch.as_tensor(self.obs).to(self.device, non_blocking=True)
            actions = self.agent.act(obs_t, self.act_gen).cpu().numpy()
        else:
            actions = self.np_rng.integers(0, self.n_actions, size=E)
        next_obs, raw_reward, terminated, truncated, info = self.env.step(actions)
        self.buffer.add(actions, clip_reward(raw_reward), terminated, next_obs, info["reset_step"])
        self.obs = next_obs
        prev = self.global_step
        self.global_step += E
        self.phase_steps += E
        for _, ret, length in self.tracker.update(raw_reward, info):
            self._log({"kind": "episode", "global_step": self.global_step, "iteration": self.iteration,
                       "episode_return": ret, "episode_length": length, "alpha": self.agent.alpha,
                       "wall_s": round(self._wall(), 3)})
            self.last_return = ret
        if self._learning():
            for _ in range(self.global_step // cfg.update_every - prev // cfg.update_every):
                self.lr_frac = self.agent.set_learning_rate(self.global_step)
                batch = self.buffer.sample(cfg.batch_size)
                self.sac_sums += self.agent.update(batch, self._sac_rewards(batch))
                self.phase_updates += 1
            if self.global_step // cfg.target_update_every > prev // cfg.target_update_every:
                self.agent.update_targets()

    # -- one preference phase -----------------------------------------------------------------------------------
    def _preference_phase(self, bar=None) -> dict | None:
        """Lines 3-4 of Algorithm 3. Returns the iteration's statistics, or ``None`` when Ctrl-C stopped it between
        two reward epochs (``self.pref_progress`` then records how far it got; a checkpoint resumes from there)."""
        cfg = self.cfg
        if self.pref_progress is None:  # this iteration's new pairs, gathered once (also across a resume)
            n_new = new_pairs_schedule(self.iteration, cfg.total_pairs, cfg.initial_pairs, cfg.schedule_iterations,
                                       cfg.pairs_per_iter)
            window = cfg.inner_steps // self.env.num_envs  # this phase's rollouts: pi_k's segments only
            pairs = sample_segment_pairs(self.buffer, n_new, cfg.segment_length, window, self.pref_gen)
            heldout = {"heldout_pref_acc": float("nan"), "heldout_label_acc": float("nan"), "heldout_pairs": 0}
            if pairs is not None:
                labels = synthetic_labels(pairs["true_returns"], cfg.label_mode, cfg.label_temperature,
                                          cfg.return_diff_clip, self.pref_gen)
                # held-out accuracy: the reward model has not trained on these pairs yet
                acc = pair_accuracy(self.reward_net, pairs["frames"], pairs["actions"], pairs["true_returns"],
                                    labels, self.buffer.stack, clip=cfg.return_diff_clip)
                heldout = {"heldout_pref_acc": acc["pref_acc"], "heldout_label_acc": acc["label_acc"],
                           "heldout_pairs": int(labels.numel())}
                self.prefs.push(pairs["frames"], pairs["actions"], pairs["true_returns"], labels)
            coef = 0.0
            if cfg.algo == "sobirl":
                coef = sobirl_coefficient(self.global_step, self.agent.alpha, cfg.hyper_warmup_steps)
            self.pref_progress = {"epochs_done": 0, "coef": coef, "heldout": heldout, "stats": None}
        progress = self.pref_progress
        epochs = cfg.warmup_epochs if self.iteration == 0 else cfg.reward_epochs
        if len(self.prefs) == 0:
            epochs = 0
        stats = progress["stats"] or {"reward_loss": float("nan"), "bce": float("nan"), "hyper": float("nan"),
                                      "surrogate": float("nan")}
        while progress["epochs_done"] < epochs:
            if self.stop_requested:
                print(f"stopping between reward epochs ({progress['epochs_done']}/{epochs} done); the checkpoint "
                      f"resumes the reward training from there", file=sys.stderr, flush=True)
                return None
            t0 = time.perf_counter()
            stats = self.reward_learner.epoch(self.prefs, self.agent.actor, progress["coef"], self.pref_gen)
            progress["epochs_done"] += 1
            progress["stats"] = stats
            if epochs > 1:  # the warm-up: hours at the paper's settings on a CPU, so say where it is
                done, left = progress["epochs_done"], epochs - progress["epochs_done"]
                dt = time.perf_counter() - t0
                line = (f"reward warm-up epoch {done}/{epochs}: bce {stats['bce']:.4f}, {dt:.1f} s/epoch, "
                        f"about {format_duration(left * dt)} left ({len(self.prefs)} pairs)")
                if bar is not None:
                    bar.write(line)
                elif self.verbose:
                    print(line, file=sys.stderr, flush=True)
        if len(self.prefs) > 0:
            self.last_pref = preference_accuracy(self.reward_net, self.prefs, clip=cfg.return_diff_clip)
        self.pref_progress = None
        return {**stats, **self.last_pref, **progress["heldout"], "coef": progress["coef"],
                "n_pairs": len(self.prefs)}

    # -- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Atomic checkpoint. The replay frames go to disk incrementally (only the slots written since the previous
        checkpoint; see :meth:`~.buffer.FrameReplayBuffer.save_frames`), the rest into ``checkpoint.pt``."""
        self.csv_file.flush()
        os.fsync(self.csv_file.fileno())
        delta = self.buffer.save_frames(self.out_dir, tag=self.global_step)
        state = {
            "format": FORMAT, "config": self.cfg.to_dict(), "algo": self.cfg.algo,
            "global_step": self.global_step, "iteration": self.iteration, "phase_steps": self.phase_steps,
            "phase_wall": self.phase_wall + (time.perf_counter() - self.phase_start),
            "wall_s": self._wall(), "sac_sums": self.sac_sums.cpu(), "phase_updates": self.phase_updates,
            "r_sums": self.r_sums.cpu(), "pref_progress": self.pref_progress,
            "lr_frac": self.lr_frac, "last_pref": self.last_pref,
            "agent": self.agent.state_dict(), "device_type": self.device.type,
            "buffer": self.buffer.state_dict(frames=False) | {"frames_delta": delta},
            "np_rng": self.np_rng.bit_generator.state, "act_gen": self.act_gen.get_state(),
            "pref_gen": self.pref_gen.get_state(), "rng": rng_state(),
            "env_state": self.env.get_state(), "obs": self.obs, "tracker": self.tracker.state_dict(),
            "csv_pos": self.csv_file.tell(),
        }
        if self.learn_reward:
            state |= {"reward_net": self.reward_net.state_dict(),
                      "reward_optimizer": self.reward_learner.optimizer.state_dict(),
                      "prefs": self.prefs.state_dict()}
        atomic_torch_save(state, self.ckpt_path)
        self.buffer.commit_frames(self.out_dir, delta)
        self.last_ckpt_step = self.global_step

    def _announce(self) -> None:
        """Before a run: a rough wall time on a CPU, with a warning when it is hours (paper defaults: days)."""
        if not self.verbose:
            return
        need = self.buffer.disk_bytes(self.cfg.checkpoint_every)
        print(f"checkpoints in {self.out_dir} need about {need / 1e9:.2f} GB of disk (replay frames written "
              f"incrementally, every {self.cfg.checkpoint_every:,} steps)", file=sys.stderr, flush=True)
        if self.device.type != "cpu" or self.global_step >= self.cfg.total_steps:
            return
        left = estimate_cpu_seconds(self.cfg) * (1.0 - self.global_step / self.cfg.total_steps)
        print(f"{self.cfg.algo}: {self.cfg.total_steps - self.global_step:,} agent steps to go on the CPU; rough "
              f"estimate {format_duration(left)} on one core", file=sys.stderr, flush=True)
        if left > 2 * 3600:
            print(f"warning: this is a multi-hour CPU run ({format_duration(left)}). For a first look use "
                  f"--preset smoke (minutes) or --preset cpu (about an hour); the paper's settings want a GPU "
                  f"(--device cuda). Ctrl-C stops with a checkpoint; --resume continues.",
                  file=sys.stderr, flush=True)

    # -- the outer loop -----------------------------------------------------------------------------------------
    def train(self) -> str:
        """Run until ``total_steps`` (or Ctrl-C). Returns ``"done"`` or ``"interrupted"``; checkpoints either way."""
        cfg = self.cfg
        self.session_start = self.phase_start = time.perf_counter()
        self.last_ckpt_step = self.global_step
        self.last_return = float("nan")
        old_handler = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):  # first Ctrl-C: finish the step, checkpoint, stop; second: abort at once
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        signal.signal(signal.SIGINT, on_sigint)
        self._announce()
        bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.total_steps, initial=self.global_step, unit="step", dynamic_ncols=True,
                       desc=f"{cfg.algo} seed {cfg.seed}")
        try:
            while self.global_step < cfg.total_steps and not self.stop_requested:
                # (line 2) SAC on r_{x_k} for inner_steps agent steps
                while (self.phase_steps < cfg.inner_steps and self.global_step < cfg.total_steps
                       and not self.stop_requested):
                    before = self.global_step
                    self._env_step()
                    if bar is not None:
                        bar.update(self.global_step - before)
                        if self.global_step % 500 < self.env.num_envs:
                            bar.set_postfix(ret=self.last_return, alpha=round(self.agent.alpha, 4),
                                            acc=_fmt_acc(self.last_pref.get("pref_acc")),
                                            label_acc=_fmt_acc(self.last_pref.get("label_acc")), refresh=False)
                    if self.global_step // cfg.checkpoint_every > self.last_ckpt_step // cfg.checkpoint_every:
                        self.save_checkpoint()
                if self.phase_steps < cfg.inner_steps:
                    break  # stopped or out of budget mid-phase; the checkpoint below resumes it
                phase_seconds = self.phase_wall + (time.perf_counter() - self.phase_start)
                # (lines 3-4) new labelled pairs from pi_k's rollouts and one reward epoch
                pref = self._preference_phase(bar) if self.learn_reward else {}
                if pref is None:
                    break  # Ctrl-C between reward epochs; the checkpoint below resumes inside the phase
                sac = (self.sac_sums / max(self.phase_updates, 1)).tolist()
                row = {"kind": "iteration", "global_step": self.global_step, "iteration": self.iteration,
                       "updates": self.phase_updates, "alpha": self.agent.alpha, "lr_frac": self.lr_frac,
                       "sps": round(self.phase_steps / max(phase_seconds, 1e-9), 2), "wall_s": round(self._wall(), 3)}
                if self.phase_updates > 0:
                    row |= dict(zip(SAC_STATS, sac))
                    if self.learn_reward:
                        row |= dict(zip(R_STATS, (self.r_sums / self.phase_updates).tolist()))
                row |= pref
                self._log(row)
                if cfg.eval_every and (self.global_step // cfg.eval_every
                                       > (self.global_step - self.phase_steps) // cfg.eval_every):
                    self._log({"kind": "eval", "global_step": self.global_step, "iteration": self.iteration,
                               **evaluate(self.agent.actor, cfg, self.global_step, self.device),
                               "wall_s": round(self._wall(), 3)})
                self.iteration += 1
                self.phase_steps, self.phase_wall, self.phase_updates = 0, 0.0, 0
                self.sac_sums.zero_()
                self.r_sums.zero_()
                self.phase_start = time.perf_counter()
            self.save_checkpoint()
        finally:
            signal.signal(signal.SIGINT, old_handler)
            if bar is not None:
                bar.close()
        return "interrupted" if self.stop_requested else "done"

    def close(self) -> None:
        self.csv_file.close()
        if self.tb is not None:
            self.tb.close()
        self.env.close()


def _fmt_acc(x) -> str:
    """Accuracy for the progress bar: "ties" when every pair is a tie (NaN), "-" before the first measurement."""
    if x is None:
        return "-"
    return "ties" if math.isnan(x) else f"{x:.2f}"


def run(cfg: Config, out_dir: str, resume: bool = False, command: list[str] | None = None,
        verbose: bool = True) -> str:
    """Build a :class:`Trainer`, train, close. Returns ``"done"`` or ``"interrupted"``."""
    trainer = Trainer(cfg, out_dir, resume=resume, command=command, verbose=verbose)
    try:
        return trainer.train()
    finally:
        trainer.close()


def practical_sobirl(cfg: Config, out_dir: str, **kw) -> str:
    """Algorithm 3: SAC lower level, reward net trained with estimator (78)."""
    cfg.algo = "sobirl"
    return run(cfg, out_dir, **kw)


def drlhf(cfg: Config, out_dir: str, **kw) -> str:
    """Deep RL from human preferences: the same pipeline, reward net trained with BCE only."""
    cfg.algo = "drlhf"
    return run(cfg, out_dir, **kw)


def sac_true_reward(cfg: Config, out_dir: str, **kw) -> str:
    """The oracle baseline: SAC on the clipped true reward, no reward learning."""
    cfg.algo = "sac"
    return run(cfg, out_dir, **kw)
