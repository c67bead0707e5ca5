"""Sampling access to a tabular MDP: the only door model-free code has to the dynamics (Section 5 of Yang et al.).

:class:`TabularEnv` is a ``gymnasium.Env`` over a :class:`~sobirl_lite.mdp.TabularMDP` (``Discrete`` observation
and action spaces, seeded through ``reset(seed=...)`` and ``self.np_random`` as gymnasium prescribes). Besides the
one-step ``step``/``reset`` API it samples many trajectories at once with numpy (:meth:`TabularEnv.rollouts`).

The transition matrix lives inside the environment: model-free estimators and algorithms only ever see sampled
states, actions and rewards, never ``P``.

How a batch of next states is drawn (inverse CDF). All non-zero transition probabilities are laid out row after
row, ``row = s*A + a``, as in a CSR matrix; each row's cumulative sums are shifted by the row number, so the whole
table is one increasing array ``cdf`` with row ``i`` covering ``(i, i+1]``. For uniform ``u`` in ``[0, 1)`` the
next state of a pair in row ``i`` is ``indices[searchsorted(cdf, i + u, side="right")]``. That is one C-level
binary search per transition for dense and sparse ``P`` alike, no Python loop over samples, and cost
``O(log nnz)`` per transition. Actions are drawn the same way from the policy's cumulative rows.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from .mdp import TabularMDP

try:
    import gymnasium as gym

    _EnvBase, _Discrete = gym.Env, gym.spaces.Discrete
except ImportError:  # Pyodide (the book's live widgets) has no gymnasium: the few pieces TabularEnv uses
    class _Discrete:
        """Stand-in for ``gymnasium.spaces.Discrete(n)``: the integers ``0..n-1``."""

        def __init__(self, n: int):
            self.n = int(n)

        def contains(self, x) -> bool:
            return isinstance(x, (int, np.integer)) and 0 <= int(x) < self.n

        def __repr__(self):
            return f"Discrete({self.n})"

    class _EnvBase:
        """Stand-in for ``gymnasium.Env``: ``reset(seed=...)`` re-seeds ``np_random`` the way gymnasium does
        (``np.random.Generator(PCG64(SeedSequence(seed)))``, which is ``np.random.default_rng(seed)``)."""

        _np_random = None

        @property
        def np_random(self) -> np.random.Generator:
            if self._np_random is None:
                self._np_random = np.random.default_rng()
            return self._np_random

        def reset(self, *, seed=None, options=None):
            if seed is not None:
                self._np_random = np.random.default_rng(seed)


def _cumulative_table(probs_csr: sp.csr_matrix):
    """Row-shifted inverse-CDF table of a row-stochastic CSR matrix: ``(cdf, indices, row_end)``.

    ``cdf`` (nnz,) increases through the whole table; row ``i``'s entries lie in ``(i, i+1]`` and its last entry
    is exactly ``i + 1``. ``indices`` (nnz,) are the column of each entry; ``row_end`` (rows,) the index of each
    row's last entry (used to clip the rare ``i + u`` that rounds up to ``i + 1``).
    """
    M = probs_csr.tocsr().copy()
    M.eliminate_zeros()  # zero-probability successors can then never be drawn
    M.sort_indices()
    n_rows = M.shape[0]
    counts = np.diff(M.indptr)
    if np.any(counts == 0):
        raise ValueError("every row needs at least one positive probability")
    rows = np.repeat(np.arange(n_rows), counts)
    csum = np.cumsum(M.data)
    # per-row cumulative sums, normalised so each row ends at exactly 1.0
    starts = np.concatenate(([0.0], csum[M.indptr[1:-1] - 1]))
    within = csum - np.repeat(starts, counts)
    totals = within[M.indptr[1:] - 1]
    within = within / np.repeat(totals, counts)
    within[M.indptr[1:] - 1] = 1.0
    return rows + within, M.indices.astype(np.int64), M.indptr[1:] - 1


def _inverse_cdf(cdf, indices, row_end, rows, u):
    """Draw one column per entry of ``rows`` (int array) with uniforms ``u`` of the same shape."""
    pos = np.searchsorted(cdf, rows + u, side="right")
    return indices[np.minimum(pos, row_end[rows])]


class Trajectories(NamedTuple):
    """A batch of ``n`` trajectories of ``H`` steps: ``states``, ``actions`` (n, H) int64, ``rewards`` (n, H) the
    environment's reward :math:`r(s_t, a_t)`, and ``final_states`` (n,) the state reached after the last action."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    final_states: np.ndarray

    @property
    def n(self) -> int:
        return self.states.shape[0]

    @property
    def horizon(self) -> int:
        return self.states.shape[1]


class TabularEnv(_EnvBase):
    """A gymnasium environment that simulates a tabular MDP, and a vectorised trajectory sampler.

    Parameters
    ----------
    mdp : TabularMDP
        Supplies the dynamics ``P``, the reward ``r`` returned by :meth:`step` and the initial distribution
        ``rho`` used by :meth:`reset` (gamma and tau are the learner's business and are not used here).
    max_episode_steps : int, optional
        :meth:`step` reports ``truncated=True`` after this many steps (the MDP itself never terminates).

    The environment keeps ``P`` private; an agent sees only observations (state indices), rewards and the
    ``Discrete`` spaces. ``transitions_sampled`` counts every next state it has drawn (``step`` and
    :meth:`rollouts`), so algorithms can report their sample use.
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp: TabularMDP, max_episode_steps: int | None = None):
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp must be a TabularMDP; got {type(mdp).__name__}")
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be a positive integer; got {max_episode_steps}")
        self.S, self.A = mdp.S, mdp.A
        self.observation_space = _Discrete(self.S)
        self.action_space = _Discrete(self.A)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        P = mdp.P if mdp.sparse else sp.csr_matrix(mdp.P.reshape(self.S * self.A, self.S))
        self._cdf, self._next, self._row_end = _cumulative_table(P)
        rho_csr = sp.csr_matrix(mdp.rho[None, :])
        self._rho_cdf, self._rho_states, self._rho_end = _cumulative_table(rho_csr)
        self._reward = np.array(mdp.r, dtype=np.float64)
        self._state = None
        self._t = 0
        self.transitions_sampled = 0

    # --- gymnasium API ---------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode at ``s0 ~ rho``. ``seed`` re-seeds ``self.np_random`` (gymnasium convention)."""
        super().reset(seed=seed)
        self._state = int(self.sample_initial_states(1)[0])
        self._t = 0
        return self._state, {}

    def step(self, action):
        """One transition: returns ``(next_state, r(s, a), terminated=False, truncated, info)``."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer in [0, {self.A}); got {action!r}")
        s, a = self._state, int(action)
        reward = float(self._reward[s, a])
        self._state = int(self.sample_next_states(np.array([s]), np.array([a]))[0])
        self._t += 1
        truncated = self.max_episode_steps is not None and self._t >= self.max_episode_steps
        return self._state, reward, False, truncated, {}

    # --- vectorised sampling ---------------------------------------------------------------------------------
    def sample_initial_states(self, n: int, rng: np.random.Generator | None = None):
        """``n`` i.i.d. draws from ``rho``, (n,) int64."""
        rng = self.np_random if rng is None else rng
        return _inverse_cdf(self._rho_cdf, self._rho_states, self._rho_end, np.zeros(n, dtype=np.int64),
                            rng.random(n))

    def sample_next_states(self, states, actions, rng: np.random.Generator | None = None):
        """``s' ~ P(.|s, a)`` for each pair; ``states``, ``actions`` int arrays of one shape -> same shape."""
        rng = self.np_random if rng is None else rng
        states, actions = np.asarray(states), np.asarray(actions)
        rows = states * self.A + actions
        self.transitions_sampled += rows.size
        return _inverse_cdf(self._cdf, self._next, self._row_end, rows, rng.random(rows.shape))

    def rollouts(self, pi, n: int, horizon: int, *, s0=None, a0=None, rng: np.random.Generator | None = None,
                 keep_rewards: bool = True) -> Trajectories:
        """Sample ``n`` trajectories of ``horizon`` steps under policy ``pi`` (S, A), all at once.

        ``s0`` (n,) fixes the start states (default: ``s0 ~ rho``); ``a0`` (n,) fixes the first action (then
        ``s0`` must be given), which is what the :math:`\\nabla Q` estimator of Prop. 5.1 conditions on.
        Draws ``n * horizon`` transitions (the last one produces ``final_states``).
        """
        rng = self.np_random if rng is None else rng
        n, horizon = int(n), int(horizon)
        if n < 0 or horizon < 1:
            raise ValueError(f"need n >= 0 and horizon >= 1; got n={n}, horizon={horizon}")
        pi = np.asarray(pi, dtype=np.float64)
        if pi.shape != (self.S, self.A):
            raise ValueError(f"pi must have shape (S, A) = ({self.S}, {self.A}); got {pi.shape}")
        if np.any(pi < 0) or np.any(np.abs(pi.sum(axis=1) - 1.0) > 1e-8) or not np.all(np.isfinite(pi)):
            raise ValueError("pi must be a stochastic matrix: non-negative rows summing to 1")
        if a0 is not None and s0 is None:
            raise ValueError("a0 needs s0: give the start states of the trajectories too")
        pol_cdf, pol_act, pol_end = _cumulative_table(sp.csr_matrix(pi))
        s = self.sample_initial_states(n, rng) if s0 is None else self._check_index(s0, n, self.S, "s0")
        states = np.empty((n, horizon), dtype=np.int64)
        actions = np.empty((n, horizon), dtype=np.int64)
        for t in range(horizon):
            if t == 0 and a0 is not None:
                a = self._check_index(a0, n, self.A, "a0")
            else:
                a = _inverse_cdf(pol_cdf, pol_act, pol_end, s, rng.random(n))
            states[:, t], actions[:, t] = s, a
            s = self.sample_next_states(s, a, rng)
        rewards = self._reward[states, actions] if keep_rewards else np.empty((n, horizon))
        return Trajectories(states, actions, rewards, s)

    @staticmethod
    def _check_index(values, n, bound, name):
        values = np.broadcast_to(np.asarray(values, dtype=np.int64), (n,))
        if values.size and (values.min() < 0 or values.max() >= bound):
            raise ValueError(f"{name} entries must lie in [0, {bound})")
        return values

    def __repr__(self):
        return f"TabularEnv(S={self.S}, A={self.A})"
