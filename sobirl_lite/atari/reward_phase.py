"""The upper level of Algorithm 3 (lines 3-4, Appendix I.1 of Yang et al.): the reward model a run learns, and one
preference phase per outer iteration.

A preference phase, top to bottom:

1. cut this iteration's new segment pairs from the rollouts of the SAC phase just ended (pi_k's only), label them
   from their clipped true returns, measure the reward model on them (held out: it has not trained on them yet),
   and push them into the FIFO preference buffer;
2. fix the coefficient of the (78) term: ``1/alpha_k`` for SoBiRL once past ``hyper_warmup_steps``, else 0 (DRLHF
   always 0);
3. run the reward epochs over the buffer (iteration 0: ``warmup_epochs`` on the initial pairs; later
   ``reward_epochs``), checking for Ctrl-C between two epochs;
4. measure the preference accuracy on the whole buffer.

Step 1 runs once per iteration even across a resume: :attr:`RewardPhase.progress` records the gathered pairs'
statistics and how many epochs are done, and a checkpoint stores it.
"""
from __future__ import annotations

import sys
import time

import torch

from .estimator import sobirl_coefficient
from .networks import make_reward_net
from .preferences import (PreferenceBuffer, RewardLearner, new_pairs_schedule, pair_accuracy, preference_accuracy,
                          sample_segment_pairs, synthetic_labels)
from .presets import format_duration

NO_ACCURACY = {"pref_acc": float("nan"), "label_acc": float("nan")}
NO_EPOCH = {"reward_loss": float("nan"), "bce": float("nan"), "hyper": float("nan"), "surrogate": float("nan")}
NO_HELDOUT = {"heldout_pref_acc": float("nan"), "heldout_label_acc": float("nan"), "heldout_pairs": 0}


class RewardPhase:
    """The reward net ``r_x``, its optimiser and the preference buffer of a SoBiRL or DRLHF run.

    Args:
        cfg: the run's :class:`~.config.Config`.
        n_actions: size of the action set (the reward net has one output per action).
        frame_shape: (H, W) of one frame; ``device``: where the net and the buffer live.
    """

    def __init__(self, cfg, n_actions: int, frame_shape: tuple[int, int], device: torch.device):
        self.cfg = cfg
        self.reward_net = make_reward_net(cfg, n_actions).to(device)  # Atari or MinAtar shape
        self.reward_learner = RewardLearner(self.reward_net, cfg)
        self.prefs = PreferenceBuffer(cfg.pref_buffer_size, cfg.segment_length, frame_shape, cfg.frame_stack, device)
        self.progress = None  # a phase stopped between reward epochs (see run)
        self.last_pref = dict(NO_ACCURACY)

    def sac_rewards(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """``r_x(s, a)`` of a replay batch clamped to [-1, 1] (what SAC learns from), and the (3,) statistics of
        :data:`~.run_files.R_STATS` before the clamp (kept on the device: no host sync per update)."""
        r = self.reward_net.reward(batch["obs"], batch["actions"], clamp=None)
        c = self.cfg.reward_clamp
        return r.clamp(-c, c), torch.stack([r.mean(), r.std(), (r.abs() >= c).float().mean()])

    def _gather(self, iteration: int, global_step: int, alpha: float, buffer, window: int,
                generator: torch.Generator) -> dict:
        """Step 1-2: the iteration's new labelled pairs into the buffer; returns the phase's fresh progress."""
        cfg = self.cfg
        n_new = new_pairs_schedule(iteration, cfg.total_pairs, cfg.initial_pairs, cfg.schedule_iterations,
                                   cfg.pairs_per_iter)
        pairs = sample_segment_pairs(buffer, n_new, cfg.segment_length, window, generator)
        heldout = dict(NO_HELDOUT)
        if pairs is not None:
            labels = synthetic_labels(pairs["true_returns"], cfg.label_mode, cfg.label_temperature,
                                      cfg.return_diff_clip, generator)
            # held-out accuracy: the reward model has not trained on these pairs yet
            acc = pair_accuracy(self.reward_net, pairs["frames"], pairs["actions"], pairs["true_returns"],
                                labels, buffer.stack, clip=cfg.return_diff_clip)
            heldout = {"heldout_pref_acc": acc["pref_acc"], "heldout_label_acc": acc["label_acc"],
                       "heldout_pairs": int(labels.numel())}
            self.prefs.push(pairs["frames"], pairs["actions"], pairs["true_returns"], labels)
        coef = 0.0
        if cfg.algo == "sobirl":
            coef = sobirl_coefficient(global_step, alpha, cfg.hyper_warmup_steps)
        return {"epochs_done": 0, "coef": coef, "heldout": heldout, "stats": None}

    def run(self, iteration: int, global_step: int, alpha: float, actor, buffer, window: int,
            generator: torch.Generator, should_stop, say) -> dict | None:
        """One preference phase. ``window``: agent steps per environment of the SAC phase just ended;
        ``should_stop()``: true once Ctrl-C was pressed; ``say(line)``: where the warm-up's progress lines go.
        Returns the iteration's statistics, or ``None`` when Ctrl-C stopped it between two reward epochs
        (:attr:`progress` then records how far it got; a checkpoint resumes from there)."""
        cfg = self.cfg
        if self.progress is None:  # this iteration's new pairs, gathered once (also across a resume)
            self.progress = self._gather(iteration, global_step, alpha, buffer, window, generator)
        progress = self.progress
        epochs = cfg.warmup_epochs if iteration == 0 else cfg.reward_epochs
        if len(self.prefs) == 0:
            epochs = 0
        stats = progress["stats"] or dict(NO_EPOCH)
        while progress["epochs_done"] < epochs:
            if should_stop():
                print(f"stopping between reward epochs ({progress['epochs_done']}/{epochs} done); the checkpoint "
                      f"resumes the reward training from there", file=sys.stderr, flush=True)
                return None
            t0 = time.perf_counter()
            stats = self.reward_learner.epoch(self.prefs, actor, progress["coef"], generator)
            progress["epochs_done"] += 1
            progress["stats"] = stats
            if epochs > 1:  # the warm-up: hours at the paper's settings on a CPU
                done, left = progress["epochs_done"], epochs - progress["epochs_done"]
                dt = time.perf_counter() - t0
                say(f"reward warm-up epoch {done}/{epochs}: bce {stats['bce']:.4f}, {dt:.1f} s/epoch, "
                    f"about {format_duration(left * dt)} left ({len(self.prefs)} pairs)")
        if len(self.prefs) > 0:
            self.last_pref = preference_accuracy(self.reward_net, self.prefs, clip=cfg.return_diff_clip)
        self.progress = None
        return {**stats, **self.last_pref, **progress["heldout"], "coef": progress["coef"],
                "n_pairs": len(self.prefs)}

    def state_dict(self) -> dict:
        """The checkpoint entries of the reward side (keys as in every checkpoint since format 1)."""
        return {"reward_net": self.reward_net.state_dict(),
                "reward_optimizer": self.reward_learner.optimizer.state_dict(),
                "prefs": self.prefs.state_dict(), "pref_progress": self.progress, "last_pref": self.last_pref}

    def load_state_dict(self, s: dict) -> None:
        self.reward_net.load_state_dict(s["reward_net"])
        self.reward_learner.optimizer.load_state_dict(s["reward_optimizer"])
        self.prefs.load_state_dict(s["prefs"])
        self.progress = s.get("pref_progress")
        self.last_pref = s["last_pref"]
