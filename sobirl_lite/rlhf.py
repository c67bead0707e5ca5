"""Tabular reinforcement learning from human feedback (Section 3.3 of Yang et al.), with synthetic humans.

The pieces carry the names used by preference-comparison libraries such as ``imitation`` {Gleave et al. 2022}, so a
reader who knows those recognises them:

* the **ground-truth reward** is the environment's reward (``setup.mdp.r``); learners never read it, only the
  gatherer does, to play the human;
* a **fragmenter** (:class:`RandomFragmenter`) cuts trajectory-segment pairs from rollouts of the current policy in
  the upper-level MDP;
* a **gatherer** (:class:`SyntheticGatherer`) labels each pair from the true segment returns with the
  Bradley–Terry model: deterministic (the better segment wins) or sampled (:math:`y\\sim\\mathrm{Bernoulli}`);
* a **preference buffer** (:class:`PreferenceBuffer`) keeps the most recent labelled pairs, first in first out;
* a **preference model** (:class:`PreferenceModel`) turns the learned reward :math:`r_x` into
  :math:`P_x(\\tau^1\\succ\\tau^2)=\\sigma(R_x(\\tau^1)-R_x(\\tau^2))` and scores it with the binary cross-entropy (BCE);
  it is also the pluggable upper-level loss :math:`l_x` of eq. (12) with :math:`N=2` for :mod:`sobirl_lite.estimators`;
* a **reward trainer** (:class:`RewardTrainer`) fits :math:`x` to the buffer by BCE gradient steps (the DRLHF phase).

:class:`RLHFSetup` bundles the environment, the reward model and the labelling budget, so that every algorithm run
on one setup sees the same queries and the same number of labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .estimators import TupleBatch
from .mdp import TabularMDP, gridworld, solve_policy_system
from .rewards import TabularReward
from .sampling import TabularEnv, Trajectories


# ----------------------------------------------------------------------------------------------------------------
# BCE and the Bradley-Terry preference model
# ----------------------------------------------------------------------------------------------------------------
def _softplus(z):
    return np.logaddexp(0.0, z)


def bce_loss(logits, labels):
    """:math:`\\ell_{\\rm BCE}(y,\\sigma(z)) = -y\\log\\sigma(z)-(1-y)\\log(1-\\sigma(z)) = \\mathrm{softplus}(z)-yz`, computed
    stably for any logit ``z``. ``logits``, ``labels`` (B,) (labels in [0, 1], soft labels allowed) -> (B,)."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if z.shape != y.shape:
        raise ValueError(f"logits and labels must have the same shape; got {z.shape} and {y.shape}")
    if np.any((y < 0) | (y > 1)) or not np.all(np.isfinite(y)):
        raise ValueError("labels must lie in [0, 1]")
    return _softplus(z) - y * z


def sigmoid(z):
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-_softplus(-z))


class PreferenceModel:
    """Bradley–Terry model on the learned reward (Section 3.3 of Yang et al.), and the RLHF upper-level loss :math:`l_x(d)` of eq. (12).

    :math:`R_x(\\tau) = \\sum_h \\text{discount}^h\\, r_x(s_h,a_h)` (``discount=1``: undiscounted segment sums, the
    DRLHF default), :math:`P_x(\\tau^1\\succ\\tau^2) = \\sigma(R_x(\\tau^1)-R_x(\\tau^2))` and
    :math:`l_x(d) = \\ell_{\\rm BCE}(y, P_x(\\tau^1\\succ\\tau^2))` with the pair's label :math:`y`.

    ``reward``: any reward of :mod:`sobirl_lite.rewards`. ``baseline=True`` makes :meth:`score_weights` subtract the
    leave-one-out mean BCE of the other pairs. That is unbiased when the pairs of a batch are independent (the (14)
    factor of a pair averages to zero over its actions, and the other pairs' losses do not depend on them), which
    :meth:`RLHFSetup.query` guarantees by cutting every pair from its own two trajectories. Pairs that share a
    trajectory make the baseline depend on the pair it is subtracted from, and the estimate biased.
    """

    N = 2

    def __init__(self, reward, discount: float = 1.0, baseline: bool = True):
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must lie in [0, 1]; got {discount}")
        self.reward, self.discount, self.baseline = reward, float(discount), bool(baseline)

    def _check(self, batch: TupleBatch, need_labels=True):
        if batch.states.ndim != 3 or batch.states.shape[1] != 2:
            raise ValueError(f"a preference batch holds pairs: states must be (B, 2, H); got {batch.states.shape}")
        if need_labels and batch.labels is None:
            raise ValueError("this batch has no labels; run a gatherer on it first")

    def segment_counts(self, batch: TupleBatch):
        """Discounted visit counts of each segment, (B, 2, S, A): :math:`R_x(\\tau^i) = \\langle\\text{counts},r_x\\rangle`."""
        S, A = self.reward.S, self.reward.A
        B, N, H = batch.states.shape
        idx = (np.arange(B * N)[:, None] * S * A + batch.pair_index(A).reshape(B * N, H)).ravel()
        w = np.broadcast_to(self.discount ** np.arange(H), (B * N, H)).ravel()
        # indices as np.intp: bincount refuses int64 where intp is 32-bit (wasm32, the book's live widgets)
        return np.bincount(idx.astype(np.intp), weights=w, minlength=B * N * S * A).reshape(B, N, S, A)

    def returns(self, x, batch: TupleBatch):
        """:math:`R_x(\\tau^i)` for both segments of each pair, (B, 2)."""
        self._check(batch, need_labels=False)
        r = self.reward.value(x)
        disc = self.discount ** np.arange(batch.states.shape[-1])
        return (r[batch.states, batch.actions] * disc).sum(axis=-1)

    def logits(self, x, batch: TupleBatch):
        """:math:`z = R_x(\\tau^1)-R_x(\\tau^2)`, (B,)."""
        R = self.returns(x, batch)
        return R[:, 0] - R[:, 1]

    def probability(self, x, batch: TupleBatch):
        """:math:`P_x(\\tau^1\\succ\\tau^2)`, (B,)."""
        return sigmoid(self.logits(x, batch))

    def value(self, x, batch: TupleBatch):
        """:math:`l_x(d) = \\ell_{\\rm BCE}(y, P_x(\\tau^1\\succ\\tau^2))` per pair, (B,)."""
        self._check(batch)
        return bce_loss(self.logits(x, batch), batch.labels)

    def loss(self, x, batch: TupleBatch) -> float:
        """Mean BCE over the batch."""
        return float(np.mean(self.value(x, batch)))

    def grad_x(self, x, batch: TupleBatch):
        """Mean of :math:`\\nabla_x l_x` (term (13) for RLHF): :math:`\\frac1B\\sum_b(P_x-y_b)(\\nabla R_x(\\tau^1_b)-\\nabla R_x(\\tau^2_b))`,
        computed with one ``reward.vjp``. Returns (n,)."""
        self._check(batch)
        coef = (self.probability(x, batch) - batch.labels) / batch.size               # (B,)
        counts = self.segment_counts(batch)
        g = np.einsum("b,bsa->sa", coef, counts[:, 0] - counts[:, 1])
        return self.reward.vjp(x, g)

    def score_weights(self, x, batch: TupleBatch):
        """Weights of (14): :math:`l_x(d_b)` for every step of both segments (minus the leave-one-out mean when
        ``baseline``), (B, 2, H)."""
        l = self.value(x, batch)
        if self.baseline and batch.size > 1:
            l = l - (l.sum() - l) / (batch.size - 1)
        return np.broadcast_to(l[:, None, None], batch.states.shape)

    def accuracy(self, x, batch: TupleBatch) -> float:
        """Fraction of pairs whose preferred segment (label > 1/2) the model also prefers (logit > 0). Pairs labelled
        exactly 1/2 (ties) are skipped; NaN if none is left."""
        self._check(batch)
        y = np.asarray(batch.labels, dtype=np.float64)
        keep = y != 0.5
        if not np.any(keep):
            return float("nan")
        return float(np.mean((self.logits(x, batch)[keep] > 0) == (y[keep] > 0.5)))

    def __repr__(self):
        return f"PreferenceModel({self.reward!r}, discount={self.discount}, baseline={self.baseline})"


# ----------------------------------------------------------------------------------------------------------------
# Fragmenter, gatherer, buffer
# ----------------------------------------------------------------------------------------------------------------
class RandomFragmenter:
    """Cut ``n_pairs`` pairs of ``segment_length``-step segments from a batch of trajectories.

    Each pair takes two *different* trajectories at random and a random window of each. When there are at least
    ``2 * n_pairs`` trajectories, no trajectory serves two pairs (the trajectories are dealt out in a random order),
    so the pairs of a batch are independent: the leave-one-out baseline of :class:`PreferenceModel` needs that to stay
    unbiased. With fewer trajectories pairs reuse them and the baseline is biased. When the trajectories are exactly
    ``segment_length`` long (the default in :class:`RLHFSetup`) every window starts at :math:`t=0`, so a pair is a
    draw of :math:`d\\sim\\rho^2(\\pi)` of eq. (12); longer rollouts give Christiano-style windows from later in the
    episode, whose start-state distribution the score term (14) does not account for.
    """

    def __init__(self, segment_length: int):
        if int(segment_length) < 1:
            raise ValueError(f"segment_length must be a positive integer; got {segment_length}")
        self.segment_length = int(segment_length)

    def __call__(self, trajectories: Trajectories, n_pairs: int, rng: np.random.Generator) -> TupleBatch:
        n, T = trajectories.states.shape
        L = self.segment_length
        if T < L:
            raise ValueError(f"trajectories of {T} steps are shorter than the segment length {L}")
        if n < 2:
            raise ValueError("need at least two trajectories to make a pair")
        n_pairs = int(n_pairs)
        if n >= 2 * n_pairs:                                                        # disjoint: independent pairs
            which = rng.permutation(n)[:2 * n_pairs].reshape(n_pairs, 2)
        else:                                                                       # too few: pairs share some
            first = rng.integers(n, size=n_pairs)
            second = (first + rng.integers(1, n, size=n_pairs)) % n                # a different trajectory
            which = np.stack([first, second], axis=1)                              # (B, 2)
        start = rng.integers(T - L + 1, size=(n_pairs, 2))
        cols = start[..., None] + np.arange(L)                                      # (B, 2, L)
        rows = which[..., None]
        return TupleBatch(trajectories.states[rows, cols], trajectories.actions[rows, cols],
                          trajectories.rewards[rows, cols])


class SyntheticGatherer:
    """A synthetic human: labels pairs by the Bradley–Terry model on their *true* segment returns.

    :math:`G^i = \\sum_h \\text{discount}^h r(s^i_h,a^i_h)` with the environment's reward, and
    :math:`p = \\sigma((G^1-G^2)/\\text{temperature})`. ``sample=True``: :math:`y\\sim\\mathrm{Bernoulli}(p)` (noisy human);
    ``sample=False``: the soft label :math:`y=p`. ``temperature=0``: deterministic labels
    :math:`y=\\mathbb 1\\{G^1>G^2\\}` (and 1/2 on exact ties).
    """

    def __init__(self, temperature: float = 1.0, sample: bool = True, discount: float = 1.0):
        if not temperature >= 0 or not np.isfinite(temperature):
            raise ValueError(f"temperature must be a finite number >= 0; got {temperature}")
        self.temperature, self.sample, self.discount = float(temperature), bool(sample), float(discount)

    def true_returns(self, pairs: TupleBatch):
        """:math:`(G^1, G^2)` per pair, (B, 2)."""
        disc = self.discount ** np.arange(pairs.rewards.shape[-1])
        return (pairs.rewards * disc).sum(axis=-1)

    def probabilities(self, pairs: TupleBatch):
        """:math:`P_H(\\tau^1\\succ\\tau^2)`, (B,)."""
        G = self.true_returns(pairs)
        diff = G[:, 0] - G[:, 1]
        if self.temperature == 0:
            return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
        return sigmoid(diff / self.temperature)

    def __call__(self, pairs: TupleBatch, rng: np.random.Generator) -> TupleBatch:
        """The same pairs with ``labels`` filled in."""
        p = self.probabilities(pairs)
        y = (rng.random(p.shape) < p).astype(np.float64) if (self.sample and self.temperature > 0) else p
        return pairs._replace(labels=y)

    def __repr__(self):
        return f"SyntheticGatherer(temperature={self.temperature}, sample={self.sample})"


class PreferenceBuffer:
    """First-in-first-out store of labelled pairs, at most ``capacity`` of them (older pairs drop out first)."""

    def __init__(self, capacity: int):
        if int(capacity) < 1:
            raise ValueError(f"capacity must be a positive integer; got {capacity}")
        self.capacity = int(capacity)
        self._parts: list[TupleBatch] = []
        self._size = 0
        self.total_pushed = 0

    def __len__(self):
        return self._size

    def push(self, pairs: TupleBatch):
        """Append labelled ``pairs``; evict the oldest beyond ``capacity``."""
        if pairs.labels is None:
            raise ValueError("only labelled pairs go into the buffer; run a gatherer first")
        if self._parts and pairs.states.shape[1:] != self._parts[0].states.shape[1:]:
            raise ValueError(f"pair shape {pairs.states.shape[1:]} differs from the buffer's "
                             f"{self._parts[0].states.shape[1:]}")
        self._parts.append(pairs)
        self._size += pairs.size
        self.total_pushed += pairs.size
        all_pairs = self.batch()
        if self._size > self.capacity:
            all_pairs = all_pairs.take(slice(self._size - self.capacity, None))
            self._size = self.capacity
        self._parts = [all_pairs]

    def batch(self) -> TupleBatch:
        """All stored pairs, oldest first, as one :class:`TupleBatch`."""
        if not self._parts:
            raise ValueError("the preference buffer is empty")
        if len(self._parts) == 1:
            return self._parts[0]
        return TupleBatch(*(np.concatenate([getattr(p, f) for p in self._parts]) for f in TupleBatch._fields))


class RewardTrainer:
    """BCE-only reward learning on a preference buffer (the DRLHF reward phase; Christiano et al. 2017).

    ``epochs`` passes over the buffer in shuffled mini-batches of ``batch_size`` (``None``: full batch), each a
    gradient step :math:`x\\leftarrow x-\\text{lr}(\\nabla\\overline{\\ell}_{\\rm BCE}+\\lambda x)` with weight decay
    :math:`\\lambda` = ``weight_decay``.
    """

    def __init__(self, model: PreferenceModel, lr: float, epochs: int = 1, batch_size: int | None = None,
                 weight_decay: float = 0.0):
        if not lr > 0 or int(epochs) < 0 or weight_decay < 0:
            raise ValueError(f"need lr > 0, epochs >= 0, weight_decay >= 0; got {lr}, {epochs}, {weight_decay}")
        self.model, self.lr, self.epochs = model, float(lr), int(epochs)
        self.batch_size, self.weight_decay = batch_size, float(weight_decay)

    def train(self, x, buffer: PreferenceBuffer, rng: np.random.Generator):
        """Return the new ``x`` (n,) after ``epochs`` passes; ``x`` itself is not modified."""
        x = np.array(x, dtype=np.float64)
        data = buffer.batch()
        bs = data.size if self.batch_size is None else int(self.batch_size)
        for _ in range(self.epochs):
            order = rng.permutation(data.size) if bs < data.size else np.arange(data.size)
            for i in range(0, data.size, bs):
                mb = data.take(order[i:i + bs])
                x = x - self.lr * (self.model.grad_x(x, mb) + self.weight_decay * x)
        return x


# ----------------------------------------------------------------------------------------------------------------
# The setup shared by every RLHF algorithm
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class RLHFSetup:
    """An RLHF problem in the bilevel form of Section 3.3 of Yang et al., with its labelling budget.

    * ``mdp``: the environment. Its dynamics, ``gamma``, ``tau`` and ``rho`` define both the lower-level MDP
      :math:`\\mathcal M_\\tau(x)` (reward :math:`r_x`) and the upper-level MDP :math:`\\mathcal M_u` (:math:`\\mu_u=\\rho`);
      ``mdp.r`` is the hidden ground-truth reward.
    * ``reward``: the learned reward model :math:`r_x` (tabular by default).
    * ``segment_length``: :math:`H` of each segment; ``rollout_length`` (default :math:`H`) of the rollouts cut into
      segments.
    * ``pairs_per_iteration`` new labelled pairs per outer iteration; ``initial_pairs`` labelled from the initial
      policy before the first iteration; ``buffer_capacity`` of the FIFO buffer.
    * ``gatherer``: the synthetic human; ``eval_pairs`` fresh pairs per evaluation of preference accuracy.
    """

    mdp: TabularMDP
    reward: object = None
    segment_length: int = 10
    rollout_length: int | None = None
    pairs_per_iteration: int = 16
    initial_pairs: int = 64
    buffer_capacity: int = 500
    gatherer: SyntheticGatherer = field(default_factory=SyntheticGatherer)
    eval_pairs: int = 200

    def __post_init__(self):
        if self.reward is None:
            self.reward = TabularReward(self.mdp.S, self.mdp.A)
        if (self.reward.S, self.reward.A) != (self.mdp.S, self.mdp.A):
            raise ValueError("the reward model must live on the environment's (S, A)")
        if self.rollout_length is None:
            self.rollout_length = self.segment_length
        if self.rollout_length < self.segment_length:
            raise ValueError("rollout_length must be at least segment_length")
        for name in ("segment_length", "pairs_per_iteration", "buffer_capacity", "eval_pairs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)}")
        if int(self.initial_pairs) < 0:
            raise ValueError(f"initial_pairs must be >= 0; got {self.initial_pairs}")
        self.fragmenter = RandomFragmenter(self.segment_length)
        self.model = PreferenceModel(self.reward)

    @property
    def n(self) -> int:
        return self.reward.n

    def lower_mdp(self, x) -> TabularMDP:
        """:math:`\\mathcal M_\\tau(x)`: the environment's dynamics with the learned reward (model-based uses only)."""
        return self.mdp.with_reward(self.reward.value(x))

    def make_env(self) -> TabularEnv:
        """A fresh environment (ground-truth reward inside, which only the gatherer reads)."""
        return TabularEnv(self.mdp)

    def query(self, env: TabularEnv, pi, n_pairs: int, rng: np.random.Generator) -> TupleBatch:
        """Roll out ``pi`` in the upper MDP, fragment into ``n_pairs`` pairs and label them: a batch of
        preference queries. Every pair gets its own two rollouts, so the pairs are independent draws of
        :math:`d\\sim\\rho^2(\\pi)`. Costs ``2*n_pairs*rollout_length`` transitions."""
        n_traj = max(2, 2 * int(n_pairs))
        traj = env.rollouts(pi, n_traj, self.rollout_length, rng=rng)
        return self.gatherer(self.fragmenter(traj, n_pairs, rng), rng)

    def true_return(self, pi) -> float:
        """:math:`\\rho^\\top V^\\pi` of the ground-truth reward, *without* entropy (a metric; model-based)."""
        V = solve_policy_system(self.mdp, pi, (pi * self.mdp.r).sum(axis=1))
        return float(self.mdp.rho @ V)

    def preference_accuracy(self, x, env: TabularEnv, pi, rng: np.random.Generator, n_pairs: int | None = None):
        """Accuracy of :math:`P_x` on ``n_pairs`` held-out pairs freshly drawn from ``pi`` and labelled
        deterministically by the true returns (ties skipped)."""
        n_pairs = self.eval_pairs if n_pairs is None else int(n_pairs)
        traj = env.rollouts(pi, max(2, 2 * n_pairs), self.rollout_length, rng=rng)
        pairs = self.fragmenter(traj, n_pairs, rng)
        labels = SyntheticGatherer(temperature=0.0, discount=self.gatherer.discount).probabilities(pairs)
        return self.model.accuracy(x, pairs._replace(labels=labels))


def example_setup(size: int = 4, slip: float = 0.1, gamma: float = 0.9, tau: float = 0.1, seed: int = 0,
                  **kwargs) -> RLHFSetup:
    """A small RLHF problem: a ``size`` x ``size`` grid with a ground-truth reward of +1 at the goal corner, a
    tempting +0.3 in a side cell, -0.5 on a random trap cell and a -0.05 cost per step elsewhere; start uniform over
    cells (so segments cover the grid); not absorbing. Extra keyword arguments go to :class:`RLHFSetup`."""
    rng = np.random.default_rng(seed)
    mdp = gridworld(size, size, goal=(size - 1, size - 1), start=None, slip=slip, goal_reward=1.0,
                    step_reward=-0.05, gamma=gamma, tau=tau, absorbing_goal=False)
    r = mdp.r.copy()
    side = (0, size - 1)
    r[side[0] * size + side[1]] = 0.3
    cells = [c for c in range(size * size) if c not in (size * size - 1, side[1], 0)]
    r[rng.choice(cells)] = -0.5
    env_mdp = mdp.with_reward(r)
    env_mdp.layout = mdp.layout
    return RLHFSetup(env_mdp, **kwargs)
