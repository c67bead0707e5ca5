"""DRLHF, deep RL from human preferences (Christiano et al. 2017), in tabular form; and RL on the true reward.

DRLHF alternates two decoupled phases (Appendix I.2 of Yang et al. compares against it)::

    warm-up: label initial_pairs pairs from the initial policy
    for k = 0, ..., K-1:
        π_k: T PMD iterations on the learned reward r_{x_k}, warm-started               # RL phase
        query pairs_per_iteration new pairs from π_k, label them, push into the FIFO buffer
        x_{k+1}: reward_epochs passes of BCE gradient steps over the buffer               # reward-learning phase

On an :class:`~sobirl_lite.rlhf.RLHFSetup` with the same :class:`~sobirl_lite.algorithms.sobirl.SoBiRLConfig`
values it uses exactly SoBiRL's budgets: the same PMD solver and rollouts, the same queries and labels, the same
step size. With ``reward_epochs=1`` and full-batch steps, the only difference from SoBiRL is that the exploration
term (14) is missing.

:func:`rl_true_reward` runs the same RL phase on the ground-truth reward: the reference a perfect reward learner
would match.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..rlhf import RewardTrainer, RLHFSetup
from ..sampling import TabularEnv
from ..soft import softmax_policy
from ._common import check_positive
from .sobirl import SoBiRLConfig, _check_x0, _Inner, _RLHFLoop


@dataclass
class DRLHFConfig(SoBiRLConfig):
    """:class:`SoBiRLConfig` plus the reward-learning phase: ``reward_epochs`` passes over the buffer per outer step,
    in mini-batches of ``reward_batch_size`` (``None``: full batch), learning rate ``step_size``, weight decay
    ``weight_decay``. The hyper-gradient fields (``terms``, ``exploration_pairs``, ``n_tuples``) are unused."""

    reward_epochs: int = 1
    reward_batch_size: int | None = None

    def validate(self):
        super().validate()
        check_positive("reward_epochs", self.reward_epochs, integer=True, allow_zero=True)
        if self.reward_batch_size is not None:
            check_positive("reward_batch_size", self.reward_batch_size, integer=True)


def _as_drlhf_config(config) -> DRLHFConfig:
    if config is None:
        return DRLHFConfig()
    if isinstance(config, DRLHFConfig):
        return config
    if isinstance(config, SoBiRLConfig):  # same budgets as a SoBiRL run
        return DRLHFConfig(**vars(config))
    raise TypeError(f"config must be a DRLHFConfig or SoBiRLConfig; got {type(config).__name__}")


def drlhf(setup: RLHFSetup, x0, config: DRLHFConfig | SoBiRLConfig | None = None):
    """DRLHF on ``setup`` from reward parameters ``x0`` (n,). Returns a :class:`History` with the same columns and
    RLHF metrics as :func:`~sobirl_lite.algorithms.sobirl.sobirl` (``grad_norm`` is the BCE gradient's norm)."""
    cfg = _as_drlhf_config(config)
    cfg.validate()
    if not isinstance(setup, RLHFSetup):
        raise TypeError(f"drlhf needs an RLHFSetup; got {type(setup).__name__}")
    x = _check_x0(x0, setup.n)
    loop = _RLHFLoop(setup, cfg, "DRLHF")
    mdp, model = setup.mdp, setup.model
    inner = _Inner(TabularEnv(mdp), setup.reward, mdp.gamma, mdp.tau, cfg, loop.rng, exact_mdp_fn=setup.lower_mdp)
    trainer = RewardTrainer(model, cfg.step_size, cfg.reward_epochs, cfg.reward_batch_size, cfg.weight_decay)
    h = loop.h
    logits = np.zeros((mdp.S, mdp.A))
    if setup.initial_pairs:
        loop.buffer.push(loop.query(softmax_policy(logits, 1.0), setup.initial_pairs))
    for k in tqdm(range(int(cfg.iterations)), desc="DRLHF", disable=not cfg.progress):
        logits, pi, _ = inner.solve(x, logits, False)                                 # RL phase on r_{x_k}
        fresh = loop.query(pi, setup.pairs_per_iteration)
        loop.buffer.push(fresh)
        samples = inner.samples + loop.query_samples
        h.record(iteration=k, grad_norm=np.linalg.norm(model.grad_x(x, loop.buffer.batch())),
                 phi=model.loss(x, fresh), inner_iterations=cfg.pmd_iterations, samples=samples)
        if k % cfg.eval_every == 0 or k == cfg.iterations - 1:
            loop.evaluate(k, x, pi, samples)
        if cfg.keep_iterates:
            h.xs.append(x.copy())
        x = trainer.train(x, loop.buffer, loop.rng)                              # reward-learning phase
    return loop.finish(x, logits)


def rl_true_reward(setup: RLHFSetup, config: DRLHFConfig | SoBiRLConfig | None = None):
    """The RL phase alone, on the ground-truth reward ``setup.mdp.r`` (no labels, no reward learning): PMD with the
    same iterations, rollouts and warm starts. Records ``true_return`` (and NaN accuracies) like the RLHF runs."""
    cfg = _as_drlhf_config(config)
    cfg.validate()
    loop = _RLHFLoop(setup, cfg, "RL (true reward)")
    mdp = setup.mdp

    class _TrueReward:  # the environment's reward as a constant "reward model" for the shared PMD machinery
        S, A, n = mdp.S, mdp.A, 0

        @staticmethod
        def value(x):
            return mdp.r

    inner = _Inner(TabularEnv(mdp), _TrueReward, mdp.gamma, mdp.tau, cfg, loop.rng, exact_mdp_fn=lambda x: mdp)
    h = loop.h
    logits = np.zeros((mdp.S, mdp.A))
    for k in tqdm(range(int(cfg.iterations)), desc="RL (true reward)", disable=not cfg.progress):
        logits, pi, _ = inner.solve(None, logits, False)
        h.record(iteration=k, inner_iterations=cfg.pmd_iterations, samples=inner.samples)
        if k % cfg.eval_every == 0 or k == cfg.iterations - 1:
            loop.evaluate(k, None, pi, inner.samples)
    return loop.finish(None, logits)
