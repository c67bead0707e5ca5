"""Monte Carlo estimators of SoBiRL (Section 5 of Yang et al.): Prop. 5.1 (reward-gradient sums), eq. (12) (the upper level as an
expectation over trajectory tuples) and the hyper-gradient estimator (15) split into its terms (13) and (14).

Everything model-free here reaches the MDP through :class:`~sobirl_lite.sampling.TabularEnv` only. The one
exception is :func:`exact_discounted_visits`, a model-based reference for tests and for isolating the sampling error.

**Discounted visits, the common currency.** Prop. 5.1 says :math:`\\nabla_x Q^\\pi(s,a)` is the expected discounted
sum of reward gradients along a trajectory that starts with :math:`(s,a)` and then follows :math:`\\pi`. Because
the sum is linear in the visited pairs,

.. math:: \\sum_t \\gamma^t \\nabla_x r_x(s_t, a_t) = \\sum_{s',a'} c(s',a')\\,\\nabla_x r_x(s',a'),
          \\qquad c(s',a') = \\sum_t \\gamma^t\\,\\mathbb 1\\{(s_t,a_t) = (s',a')\\},

so one table of discounted visit counts :math:`C[(s,a),(s',a')]` (a Monte Carlo estimate of the successor matrix
:math:`(I-\\gamma P\\Pi_\\pi)^{-1}`) gives, for any reward parameterisation, :math:`\\widehat{\\nabla Q} = C\\,\\nabla r_x`
(for a tabular reward, :math:`\\nabla r_x = I`: the visit counts *are* the accumulated Jacobian rows), the soft
:math:`\\hat Q^\\pi` that policy mirror descent needs, and, contracted with upper-level weights, term (14) through a
single reward vector-Jacobian product.

**Truncation.** Sums stop after ``horizon`` = :math:`H` steps. With :math:`\\|\\nabla_x r_x(s,a)\\|\\le C_r`, the
neglected tail is at most :math:`\\sum_{t\\ge H}\\gamma^t C_r = \\gamma^H C_r/(1-\\gamma)` per entry of
:math:`\\widehat{\\nabla Q}` and :math:`\\widehat{\\nabla V}`, and :math:`\\gamma^H(\\max|r|+\\tau\\log|\\mathcal A|)/(1-\\gamma)`
for :math:`\\hat Q`. :func:`truncation_horizon` picks the smallest :math:`H` meeting a tolerance.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .mdp import TabularMDP, solve_policy_system
from .sampling import TabularEnv, Trajectories
from .soft import entropy


def truncation_horizon(gamma: float, tol: float, scale: float = 1.0) -> int:
    """Smallest :math:`H\\ge1` with :math:`\\gamma^H\\,\\mathrm{scale}/(1-\\gamma)\\le` ``tol`` (the truncation bound above)."""
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1); got {gamma}")
    if not tol > 0 or not scale >= 0:
        raise ValueError(f"need tol > 0 and scale >= 0; got tol={tol}, scale={scale}")
    if gamma == 0.0 or scale == 0.0:
        return 1
    return max(1, math.ceil(math.log(tol * (1 - gamma) / scale) / math.log(gamma)))


def _check_policy(pi, S, A):
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (S, A):
        raise ValueError(f"pi must have shape (S, A) = ({S}, {A}); got {pi.shape}")
    return pi


# ----------------------------------------------------------------------------------------------------------------
# Discounted visits (step 1 of (15)) and Prop. 5.1
# ----------------------------------------------------------------------------------------------------------------
class DiscountedVisits(NamedTuple):
    """``C`` (S*A, S, A): row ``s*A + a`` estimates :math:`\\mathbb E_\\pi[\\sum_{t<H}\\gamma^t\\mathbb 1\\{(s_t,a_t)=\\cdot\\}
    \\mid s_0=s, a_0=a]`; ``pi`` (S, A) the policy followed; ``gamma``; ``horizon`` (``None`` = exact, infinite);
    ``transitions`` the environment transitions it cost (0 for the exact table)."""

    C: np.ndarray
    pi: np.ndarray
    gamma: float
    horizon: int | None
    transitions: int


def sample_discounted_visits(env: TabularEnv, pi, gamma: float, n_rollouts: int, horizon: int,
                             rng: np.random.Generator | None = None) -> DiscountedVisits:
    """Monte Carlo discounted visit counts from every state-action pair (model-free step 1 of (15)).

    ``n_rollouts`` trajectories of ``horizon`` steps start from each :math:`(s, a)` (the first action is forced to
    ``a``, then ``pi`` acts), so the call costs ``S*A*n_rollouts*horizon`` transitions. Unbiased for the
    ``horizon``-truncated sums; the truncation error is below :math:`\\gamma^H/(1-\\gamma)` per entry.
    """
    if int(n_rollouts) < 1:
        raise ValueError(f"n_rollouts must be a positive integer; got {n_rollouts}")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1); got {gamma}")
    S, A, m = env.S, env.A, int(n_rollouts)
    pi = _check_policy(pi, S, A)
    SA = S * A
    starts = np.repeat(np.arange(SA), m)
    before = env.transitions_sampled
    traj = env.rollouts(pi, SA * m, horizon, s0=starts // A, a0=starts % A, rng=rng, keep_rewards=False)
    sa = traj.states * A + traj.actions                                  # (SA*m, H) flat pair index
    weights = np.broadcast_to(gamma ** np.arange(horizon) / m, sa.shape)  # average over the m rollouts
    # indices as np.intp: bincount refuses int64 where intp is 32-bit (wasm32, the book's live widgets)
    C = np.bincount((starts[:, None] * SA + sa).ravel().astype(np.intp), weights=weights.ravel(), minlength=SA * SA)
    return DiscountedVisits(C.reshape(SA, S, A), pi, float(gamma), int(horizon), env.transitions_sampled - before)


def exact_discounted_visits(mdp: TabularMDP, pi, gamma: float | None = None) -> DiscountedVisits:
    """The exact, untruncated successor matrix :math:`(I-\\gamma P\\Pi_\\pi)^{-1}`, as (S*A, S, A).

    **Model-based** (it reads ``P`` through ``mdp``): a reference for tests and for runs that isolate the upper-level
    sampling error. Uses :math:`(I-\\gamma P\\Pi_\\pi)^{-1} = I + \\gamma P(I-\\gamma P_\\pi)^{-1}\\Pi_\\pi` (one solve with
    ``S*A`` right-hand sides).
    """
    S, A = mdp.S, mdp.A
    gamma = mdp.gamma if gamma is None else float(gamma)
    pi = _check_policy(pi, S, A)
    Pi = np.zeros((S, S * A))
    Pi[np.repeat(np.arange(S), A), np.arange(S * A)] = pi.ravel()      # Π_π (S, SA)
    if gamma != mdp.gamma:
        mdp = TabularMDP(mdp.P, mdp.r, gamma, mdp.tau, mdp.rho)
    D = solve_policy_system(mdp, pi, Pi)                                 # (I - γ P_π)^{-1} Π_π, (S, SA)
    C = np.eye(S * A) + gamma * mdp.expect(D).reshape(S * A, S * A)
    return DiscountedVisits(C.reshape(S * A, S, A), pi, gamma, None, 0)


class RewardGradients(NamedTuple):
    """Prop. 5.1 tables: ``dQ`` (S, A, n) = :math:`\\widehat{\\nabla_x Q}`, ``dV`` (S, n) = :math:`\\widehat{\\nabla_x V}`."""

    dQ: np.ndarray
    dV: np.ndarray


def reward_gradients(visits: DiscountedVisits, reward, x) -> RewardGradients:
    """:math:`\\widehat{\\nabla Q}(s,a) = \\sum_{s',a'}C[(s,a),(s',a')]\\nabla_x r_x(s',a')` and
    :math:`\\widehat{\\nabla V}(s) = \\sum_a\\pi(a|s)\\widehat{\\nabla Q}(s,a)` (Prop. 5.1 and its recursion).

    Materialises ``reward.jacobian(x)`` (S, A, n): for tabular and linear rewards that is just the Jacobian rows
    being accumulated. Use :func:`estimate_hypergradient` for (15), which needs only one ``reward.vjp``.
    """
    SA = visits.C.shape[0]
    S, A = visits.pi.shape
    J = np.asarray(reward.jacobian(x), dtype=np.float64).reshape(SA, -1)
    dQ = (visits.C.reshape(SA, SA) @ J).reshape(S, A, -1)
    return RewardGradients(dQ, np.einsum("sa,san->sn", visits.pi, dQ))


def mc_grad_V(env: TabularEnv, pi, reward, x, gamma: float, n_rollouts: int, horizon: int,
              rng: np.random.Generator | None = None):
    """Prop. 5.1 literally, for :math:`V`: average of :math:`\\sum_{t<H}\\gamma^t\\nabla_x r_x(s_t,a_t)` over
    ``n_rollouts`` trajectories from each start state :math:`s` under ``pi``. Returns (S, n). Bias at most
    :math:`\\gamma^H C_r/(1-\\gamma)` per entry (truncation). Costs ``S*n_rollouts*horizon`` transitions."""
    S, A, m = env.S, env.A, int(n_rollouts)
    pi = _check_policy(pi, S, A)
    starts = np.repeat(np.arange(S), m)
    traj = env.rollouts(pi, S * m, horizon, s0=starts, rng=rng, keep_rewards=False)
    sa = traj.states * A + traj.actions
    w = np.broadcast_to(gamma ** np.arange(horizon) / m, sa.shape)
    C = np.bincount((starts[:, None] * S * A + sa).ravel().astype(np.intp), weights=w.ravel(),
                    minlength=S * S * A)
    J = np.asarray(reward.jacobian(x), dtype=np.float64).reshape(S * A, -1)
    return C.reshape(S, S * A) @ J


def mc_grad_Q(env: TabularEnv, pi, reward, x, gamma: float, n_rollouts: int, horizon: int,
              rng: np.random.Generator | None = None):
    """Prop. 5.1 literally, for :math:`Q`: trajectories start with :math:`(s_0,a_0)=(s,a)`. Returns (S, A, n)."""
    visits = sample_discounted_visits(env, pi, gamma, n_rollouts, horizon, rng)
    return reward_gradients(visits, reward, x).dQ


def soft_q_from_visits(visits: DiscountedVisits, r, tau: float):
    """The soft :math:`Q^\\pi` of eq. (3) from discounted visits, for the policy-mirror-descent inner solver.

    :math:`Q^\\pi(s,a) = r(s,a) + \\mathbb E[\\sum_{t\\ge1}\\gamma^t(r(s_t,a_t) + \\tau\\mathcal H(\\pi(\\cdot|s_t)))]`, i.e.
    ``C @ (r + tau*H_pi)`` minus the entropy bonus of the first step (the first action is given, not drawn).
    ``r`` (S, A) -> (S, A).
    """
    SA = visits.C.shape[0]
    S, A = visits.pi.shape
    H = entropy(visits.pi)                                                # (S,)
    bonus = np.asarray(r, dtype=np.float64) + tau * H[:, None]
    return (visits.C.reshape(SA, SA) @ bonus.ravel()).reshape(S, A) - tau * H[:, None]


# ----------------------------------------------------------------------------------------------------------------
# Upper level: eq. (12)
# ----------------------------------------------------------------------------------------------------------------
class TupleBatch(NamedTuple):
    """``B`` trajectory tuples :math:`d=(\\tau^1,\\dots,\\tau^N)` of ``H`` steps in the upper-level MDP:
    ``states``, ``actions``, ``rewards`` (B, N, H) (rewards are the upper environment's, e.g. :math:`r_u`);
    ``labels`` (B,) optional preference labels :math:`y` (RLHF: 1 means :math:`\\tau^1` preferred)."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    labels: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.states.shape[0]

    def pair_index(self, A: int):
        """Flat state-action indices ``s*A + a``, (B, N, H)."""
        return self.states * A + self.actions

    def take(self, idx) -> "TupleBatch":
        """The sub-batch of rows ``idx``."""
        return TupleBatch(self.states[idx], self.actions[idx], self.rewards[idx],
                          None if self.labels is None else self.labels[idx])


def sample_tuples(env_u: TabularEnv, pi, n_tuples: int, N: int, horizon: int,
                  rng: np.random.Generator | None = None) -> TupleBatch:
    """``n_tuples`` draws of :math:`d\\sim\\rho^N(\\pi)` in the upper MDP (eq. (12)): ``N`` i.i.d. trajectories each,
    starting from :math:`\\mu_u` (the environment's initial distribution). Costs ``n_tuples*N*horizon`` transitions."""
    traj: Trajectories = env_u.rollouts(pi, int(n_tuples) * int(N), horizon, rng=rng)
    shape = (int(n_tuples), int(N), int(horizon))
    return TupleBatch(traj.states.reshape(shape), traj.actions.reshape(shape), traj.rewards.reshape(shape))


class ReturnLoss:
    """Reward shaping's :math:`l(\\tau) = -\\sum_{t<H}\\gamma^t r_u(s_t,a_t)` (eq. (12) with :math:`N=1`): minus the discounted
    upper-level return, read from the rewards the upper environment returned. It does not depend on :math:`x`, so
    term (13) vanishes.

    Two unbiased variance reductions of the score term (14), both resting on the identity
    :math:`\\sum_a\\pi(a|s)(\\widehat{\\nabla Q}-\\widehat{\\nabla V})(s,a) = 0`, which holds *exactly* for the estimated tables
    because :math:`\\widehat{\\nabla V}` is the :math:`\\pi`-average of :math:`\\widehat{\\nabla Q}`: anything that does not
    depend on the action :math:`a_h` (given :math:`s_h`) multiplies it to zero mean.

    * ``causal=True``: the weight at step :math:`h` is the reward-to-go :math:`-\\sum_{t\\ge h}\\gamma^t r_u(s_t,a_t)`
      instead of the whole return, since earlier rewards do not depend on :math:`a_h` (the implementation remark of
      Section 5 of Yang et al.).
    * ``baseline=True`` (needs ``causal``): subtract :math:`-\\gamma^h b(s_h)`, where :math:`b(s)` is the mean
      reward-to-go :math:`\\sum_{t\\ge h}\\gamma^{t-h}r_u` observed at visits of :math:`s` in the *other* trajectories
      of the batch (leave-one-out, so it is independent of the trajectory it is applied to).

    With both off, the weight is :math:`l(\\tau)` itself, the literal form of (14).
    """

    N = 1

    def __init__(self, gamma: float, causal: bool = True, baseline: bool = True):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1]; got {gamma}")
        if baseline and not causal:
            raise ValueError("the state baseline needs causal=True (it is subtracted from the reward-to-go)")
        self.gamma, self.causal, self.baseline = float(gamma), bool(causal), bool(baseline)

    def value(self, x, batch: TupleBatch):
        """:math:`l(d)` for each tuple, (B,)."""
        disc = self.gamma ** np.arange(batch.rewards.shape[-1])
        return -(batch.rewards * disc).sum(axis=(1, 2))

    def grad_x(self, x, batch: TupleBatch):
        """Mean of :math:`\\nabla_x l` over the batch: zero, (n,)."""
        return np.zeros(np.size(x))

    def score_weights(self, x, batch: TupleBatch):
        """Weight of each step's :math:`(\\widehat{\\nabla Q}-\\widehat{\\nabla V})(s_h,a_h)` in (14), (B, N, H)."""
        H = batch.rewards.shape[-1]
        if not self.causal:
            return np.broadcast_to(self.value(x, batch)[:, None, None], batch.rewards.shape)
        disc = self.gamma ** np.arange(H)
        G = np.empty(batch.rewards.shape)                       # G_h = Σ_{t>=h} γ^{t-h} r_t, by backward recursion
        acc = np.zeros(batch.rewards.shape[:-1])
        for h in range(H - 1, -1, -1):
            acc = batch.rewards[..., h] + self.gamma * acc
            G[..., h] = acc
        if not self.baseline:
            return -G * disc
        # leave-one-out mean of G_h at each state, over the other trajectories of the batch
        B = batch.size
        S = int(batch.states.max()) + 1
        traj = np.repeat(np.arange(B * batch.states.shape[1]), H)
        idx = (traj * S + batch.states.reshape(-1)).astype(np.intp)   # bincount needs intp (32-bit on wasm32)
        n_traj = B * batch.states.shape[1]
        sums = np.bincount(idx, weights=G.reshape(-1), minlength=n_traj * S).reshape(n_traj, S)
        counts = np.bincount(idx, minlength=n_traj * S).reshape(n_traj, S)
        others = np.maximum(counts.sum(axis=0) - counts, 1)
        loo = (sums.sum(axis=0) - sums) / others                                   # (n_traj, S)
        base = np.take_along_axis(loo, batch.states.reshape(n_traj, H), axis=1).reshape(G.shape)
        return -(G - base) * disc

    def __repr__(self):
        return f"ReturnLoss(gamma={self.gamma}, causal={self.causal}, baseline={self.baseline})"


def upper_objective_estimate(loss, x, batch: TupleBatch) -> float:
    """Eq. (12): :math:`\\hat f(x,\\pi) = \\frac1B\\sum_b l_x(d_b)` with :math:`d_b\\sim\\rho^N(\\pi)`."""
    return float(np.mean(loss.value(x, batch)))


# ----------------------------------------------------------------------------------------------------------------
# The hyper-gradient estimator (15) = (13) + (14)
# ----------------------------------------------------------------------------------------------------------------
class HypergradientEstimate(NamedTuple):
    """Estimator (15): ``total`` = ``exploitation`` (13) + ``exploration`` (14), each (n,); ``upper_value`` the
    eq. (12) estimate :math:`\\frac1B\\sum_b l_x(d_b)` from the same tuples."""

    total: np.ndarray
    exploitation: np.ndarray
    exploration: np.ndarray
    upper_value: float


def exploration_weights(visits: DiscountedVisits, batch: TupleBatch, weights):
    """The (S, A) table :math:`g` with :math:`\\text{(14)} = \\frac1\\tau\\nabla r_x^\\top g`.

    Steps :math:`(s_h,a_h)` of the tuples carry weights ``weights`` (B, N, H); their batch average is the table
    :math:`G(s,a)`. Then :math:`\\sum_{s,a}G(s,a)(\\widehat{\\nabla Q}(s,a)-\\widehat{\\nabla V}(s)) = \\nabla r_x^\\top C^\\top\\tilde G`
    with :math:`\\tilde G(s,a) = G(s,a) - \\pi(a|s)\\sum_b G(s,b)`.
    """
    SA = visits.C.shape[0]
    S, A = visits.pi.shape
    G = np.bincount(batch.pair_index(A).ravel().astype(np.intp), weights=np.asarray(weights, dtype=np.float64).ravel(),
                    minlength=SA).reshape(S, A) / batch.size
    G_tilde = G - visits.pi * G.sum(axis=1, keepdims=True)
    return (visits.C.reshape(SA, SA).T @ G_tilde.ravel()).reshape(S, A)


def estimate_hypergradient(x, visits: DiscountedVisits, reward, tau: float, loss, batch: TupleBatch,
                           exploration_batch: TupleBatch | None = None) -> HypergradientEstimate:
    """The model-free hyper-gradient (15) at :math:`x`, both steps built from the policy ``visits.pi``:

    .. math:: \\widehat\\nabla\\phi = \\underbrace{\\tfrac1B\\textstyle\\sum_b\\nabla_x l_x(d_b)}_{(13)}
              + \\underbrace{\\tfrac1{\\tau B}\\textstyle\\sum_b\\sum_{i,h} w_{b,i,h}\\,
              (\\widehat{\\nabla Q}-\\widehat{\\nabla V})(s^i_h,a^i_h)}_{(14)},

    with :math:`w = l_x(d_b)` (or a causal version, see ``loss.score_weights``). ``visits`` (sampled or exact)
    supplies :math:`\\widehat{\\nabla Q},\\widehat{\\nabla V}` (Prop. 5.1); ``batch`` the tuples :math:`d_b`; ``loss`` the
    pluggable :math:`l_x` (``value``, ``grad_x``, ``score_weights``: see :class:`ReturnLoss` and
    :class:`sobirl_lite.rlhf.PreferenceModel`). ``exploration_batch`` (default ``batch``) lets (14) use other tuples
    than (13), e.g. only fresh on-policy pairs. Cost: two ``reward.vjp`` calls, no ``P``.
    """
    if not tau > 0:
        raise ValueError(f"tau must be positive; got {tau}")
    if batch.size == 0:
        raise ValueError("the tuple batch is empty")
    eb = batch if exploration_batch is None else exploration_batch
    exploitation = np.asarray(loss.grad_x(x, batch), dtype=np.float64)
    g = exploration_weights(visits, eb, loss.score_weights(x, eb))
    exploration = reward.vjp(x, g) / tau
    return HypergradientEstimate(exploitation + exploration, exploitation, exploration,
                                 upper_objective_estimate(loss, x, batch))
