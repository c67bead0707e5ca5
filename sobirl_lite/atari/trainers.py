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

import glob
import os
import signal
import sys
import time

import numpy as np
import torch

from .buffer import FrameReplayBuffer
from .checkpoint import CHECKPOINT_NAME, CheckpointError, atomic_torch_save, check_compatible, load_checkpoint
from .config import Config
from .env import EpisodeTracker, clip_reward, make_env
from .evaluation import evaluate
from .presets import announce_run
from .reward_phase import NO_ACCURACY, RewardPhase
from .run_files import (CONFIG_NAME, CSV_FIELDS, CSV_NAME, R_STATS, ProgressBar, ProgressWriter,  # noqa: F401 (re-exported)
                        hardware_summary, write_config)
from .sac import SAC_STATS, DiscreteSAC
from .trainer_state import checkpoint_state, restore_state


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
            restore_state(self, saved)
            self._write_config(fresh=False)
        else:
            self._fresh()
        self.log = ProgressWriter(out_dir, saved["csv_pos"] if saved is not None else None, self.global_step)
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
        # lines 3-4 of Algorithm 3 (see reward_phase.py); None for SAC on the true reward
        self.reward = RewardPhase(cfg, self.n_actions, frame_shape, d) if self.learn_reward else None
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
        self.phase_updates = 0
        self.lr_frac = 1.0
        self.obs, _ = self.env.reset(seed=cfg.seed)
        self.buffer.start(self.obs)
        for stale in glob.glob(os.path.join(self.out_dir, "replay_*")):  # frames of an abandoned earlier attempt
            os.remove(stale)
        self._write_config(fresh=True)

    def _write_config(self, fresh: bool) -> None:
        write_config(os.path.join(self.out_dir, CONFIG_NAME), self.cfg.to_dict(), self.command, self.device, fresh,
                     self.n_actions, self.global_step)

    @property
    def last_pref(self) -> dict:
        """The reward model's latest accuracy on the preference buffer (NaN before the first, and for SAC)."""
        return self.reward.last_pref if self.learn_reward else NO_ACCURACY

    # -- one agent step ---------------------------------------------------------------------------------------
    def _wall(self) -> float:
        return self.wall_offset + (time.perf_counter() - self.session_start)

    def _learning(self) -> bool:
        return self.iteration > 0 and self.global_step >= self.cfg.learning_starts

    def _sac_rewards(self, batch: dict) -> torch.Tensor:
        """The rewards SAC learns from: clipped true rewards, or ``r_x(s, a)`` clamped to [-1, 1]."""
        if not self.learn_reward:
            return batch["rewards"]
        r, stats = self.reward.sac_rewards(batch)
        self.r_sums += stats  # on the device, summed per iteration: no host sync per update
        return r

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
            self.log.write({"kind": "episode", "global_step": self.global_step, "iteration": self.iteration,
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

    # -- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Atomic checkpoint. The replay frames go to disk incrementally (only the slots written since the previous
        checkpoint; see :meth:`~.buffer.FrameReplayBuffer.save_frames`), the rest into ``checkpoint.pt``."""
        csv_pos = self.log.sync()
        delta = self.buffer.save_frames(self.out_dir, tag=self.global_step)
        atomic_torch_save(checkpoint_state(self, csv_pos, delta), self.ckpt_path)
        self.buffer.commit_frames(self.out_dir, delta)
        self.last_ckpt_step = self.global_step

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
        if self.verbose:
            announce_run(self.cfg, self.out_dir, self.buffer.disk_bytes(self.cfg.checkpoint_every),
                         self.global_step, self.device.type)
        bar = ProgressBar(cfg, self.global_step, self.verbose)
        try:
            while self.global_step < cfg.total_steps and not self.stop_requested:
                # (line 2) SAC on r_{x_k} for inner_steps agent steps
                while (self.phase_steps < cfg.inner_steps and self.global_step < cfg.total_steps
                       and not self.stop_requested):
                    before = self.global_step
                    self._env_step()
                    bar.advance(before, self.global_step, self.env.num_envs, self.last_return, self.agent.alpha,
                                self.last_pref)
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
                self.log.write(row)
                if cfg.eval_every and (self.global_step // cfg.eval_every
                                       > (self.global_step - self.phase_steps) // cfg.eval_every):
                    self.log.write({"kind": "eval", "global_step": self.global_step, "iteration": self.iteration,
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
            bar.close()
        return "interrupted" if self.stop_requested else "done"

    def _preference_phase(self, bar) -> dict | None:
        """Lines 3-4 of Algorithm 3 on this SAC phase's rollouts (:meth:`.reward_phase.RewardPhase.run`)."""
        return self.reward.run(self.iteration, self.global_step, self.agent.alpha, self.agent.actor, self.buffer,
                               self.cfg.inner_steps // self.env.num_envs, self.pref_gen,
                               lambda: self.stop_requested, bar.say)

    def close(self) -> None:
        self.log.close()
        self.env.close()


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
