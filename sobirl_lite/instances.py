"""Ready-made bilevel problems for the model-based chapters.

* :func:`synthetic_problem`: the paper's synthetic instance (chapter 4 of the book; the settings of the authors' public code): a random MDP with
  :math:`|\\mathcal S| = 10`, :math:`|\\mathcal A| = 5`, the quadratic-form reward
  :math:`r_x(s,a) = c_{sa}\\,x^\\top M x` with :math:`x\\in\\mathbb R^{100}`, :math:`\\gamma = 0.5`, :math:`\\tau = 1` and
  :math:`f(x,\\pi) = \\tfrac12\\|x\\|^2 + \\tfrac12\\|\\pi\\|^2`; :func:`hard_synthetic_problem` is the same with
  :math:`\\gamma = 0.9`.
* :func:`shaping_problem`: reward shaping (Section 3.3 of Yang et al.; chapter 5 of the book) on a grid world with a sparse goal reward. The lower level
  learns on :math:`r + F_x`, the upper level scores the resulting policy on the original reward.

Both reward classes below have an analytic, loop-free vector-Jacobian product, so a hyper-gradient costs one
``(n, n)`` matrix-vector product (synthetic) or one tensor contraction (shaping), never a per-state autograd pass.
"""
from __future__ import annotations

import numpy as np

# torch is imported where it is used: the rest of the package runs without it (in Pyodide, torch does not exist).

from .mdp import TabularMDP, gridworld
from .bilevel import BilevelProblem
from .rewards import _Reward, real_array
from .upper import QuadraticUpper, UpperValue


# ----------------------------------------------------------------------------------------------------------------
# Rewards
# ----------------------------------------------------------------------------------------------------------------
class QuadraticFormReward(_Reward):
    """:math:`r_x(s,a) = c_{sa}\\, x^\\top M x` (the synthetic reward of chapter 4).

    ``c`` (S, A), ``M`` (n, n) (not necessarily symmetric). Since :math:`\\nabla_x (x^\\top M x) = (M + M^\\top)x`,

    * ``jacobian(x)[s, a] = c[s, a] * (M + M^T) x``, shape (S, A, n);
    * ``vjp(x, g) = (sum_{s,a} g[s,a] c[s,a]) * (M + M^T) x``, shape (n,): one scalar contraction and one
      matrix-vector product, whatever the number of states.
    """

    def __init__(self, c, M):
        c, M = real_array(c, "c"), real_array(M, "M")
        if c.ndim != 2:
            raise ValueError(f"c must have shape (S, A); got {c.shape}")
        if M.ndim != 2 or M.shape[0] != M.shape[1]:
            raise ValueError(f"M must be a square (n, n) matrix; got {M.shape}")
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(M))):
            raise ValueError("c and M must be finite")
        self.c, self.M = c, M
        self.M_sym2 = M + M.T  # gradient of the quadratic form, precomputed once
        self.S, self.A = c.shape
        self.n = M.shape[0]

    def quadratic_form(self, x):
        """The scalar :math:`x^\\top M x`."""
        x = self._check_x(x)
        return float(x @ self.M @ x)

    def value(self, x):
        return self.c * self.quadratic_form(x)

    def vjp(self, x, g):
        x = self._check_x(x)
        return float(np.sum(self._check_g(g) * self.c)) * (self.M_sym2 @ x)

    def jacobian(self, x):
        x = self._check_x(x)
        return self.c[:, :, None] * (self.M_sym2 @ x)[None, None, :]

    def value_torch(self, x_t):
        import torch

        c, M = (torch.as_tensor(a, dtype=x_t.dtype) for a in (self.c, self.M))
        return c * (x_t @ M @ x_t)


class AffineReward(_Reward):
    """:math:`r_x(s,a) = r_0(s,a) + \\sum_j F(s,a,j)\\,x_j`: a fixed base reward plus a linear shaping term.

    ``base`` (S, A), ``features`` (S, A, n). Used for reward shaping, where ``base`` is the sparse environment reward
    and ``features`` encode the shaping family (see :func:`state_bonus_features`, :func:`potential_features`).
    """

    def __init__(self, base, features):
        base, features = real_array(base, "base"), real_array(features, "features")
        if features.ndim != 3 or base.shape != features.shape[:2]:
            raise ValueError(f"need base (S, A) and features (S, A, n); got {base.shape} and {features.shape}")
        if not (np.all(np.isfinite(base)) and np.all(np.isfinite(features))):
            raise ValueError("base and features must be finite")
        self.base, self.features = base, features
        self.S, self.A, self.n = features.shape
        self._flat = features.reshape(self.S * self.A, self.n)

    def value(self, x):
        return self.base + (self._flat @ self._check_x(x)).reshape(self.S, self.A)

    def vjp(self, x, g):
        self._check_x(x)
        return self._check_g(g).reshape(-1) @ self._flat

    def jacobian(self, x):
        self._check_x(x)
        return self.features

    def value_torch(self, x_t):
        import torch

        flat = torch.as_tensor(self._flat, dtype=x_t.dtype)
        return torch.as_tensor(self.base, dtype=x_t.dtype) + (flat @ x_t).reshape(self.S, self.A)


def state_bonus_features(S: int, A: int):
    """Per-state bonus shaping :math:`F_x(s,a) = x_s` (``n = S``): features (S, A, S) with ``F[s, a, j] = [s = j]``."""
    F = np.zeros((S, A, S))
    F[np.arange(S), :, np.arange(S)] = 1.0
    return F


def potential_features(mdp: TabularMDP):
    """Potential-based shaping (Ng et al., 1999) :math:`F_\\Phi(s,a) = \\gamma\\,\\mathbb E_{s'}\\Phi(s') - \\Phi(s)` with a
    tabular potential :math:`\\Phi = x \\in\\mathbb R^S`: features (S, A, S) with
    ``F[s, a, j] = gamma * P(j|s,a) - [s = j]``.

    It leaves the optimal *soft* policy unchanged too (:math:`Q^*` shifts by :math:`-\\Phi(s)` per state), so the
    hyper-gradient with respect to :math:`\\Phi` is zero: a useful sanity check, not a useful shaping family here.
    """
    return mdp.gamma * mdp.dense_P() - state_bonus_features(mdp.S, mdp.A)


# ----------------------------------------------------------------------------------------------------------------
# The synthetic problem (chapter 4 of the book)
# ----------------------------------------------------------------------------------------------------------------
def synthetic_transitions(S: int, A: int, rng):
    """Random transitions as in the authors' generator: each (s, a) gets a support of size uniform in
    ``[1, S-1]``, drawn without replacement, with uniform[0, 1) weights normalised to one. Returns (S, A, S)."""
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            k = rng.integers(1, S) if S > 1 else 1           # support size in [1, S-1]
            support = rng.choice(S, size=k, replace=False)
            weights = rng.random(k) + 1e-12                   # +1e-12: never an all-zero row
            P[s, a, support] = weights / weights.sum()
    return P


def synthetic_problem(seed: int = 0, gamma: float = 0.5, tau: float = 1.0, S: int = 10, A: int = 5,
                      n: int = 100) -> BilevelProblem:
    """The paper's synthetic bilevel problem (chapter 4 of the book: the settings of the authors' M-SoBiRL code).

    * transitions: :func:`synthetic_transitions` (support size in [1, S-1]);
    * reward: :class:`QuadraticFormReward` with :math:`c_{sa} = U_{sa}U'_{sa}`, :math:`U, U'\\sim\\mathcal U[0,1]`
      and :math:`M` with standard normal entries, (n, n);
    * upper level: :class:`~sobirl_lite.upper.QuadraticUpper`, :math:`f = \\tfrac12\\|x\\|^2 + \\tfrac12\\|\\pi\\|^2`;
    * ``rho`` uniform.

    The returned problem carries ``problem.x0`` (n,), a standard normal starting point drawn from the same seed
    (the paper's :math:`x_0\\sim\\mathcal N(0, I)`). Same ``seed``, same problem and same ``x0``.
    """
    if S < 2 or A < 1 or n < 1:
        raise ValueError(f"need S >= 2, A >= 1, n >= 1; got S={S}, A={A}, n={n}")
    rng = np.random.default_rng(seed)
    P = synthetic_transitions(S, A, rng)
    c = rng.random((S, A)) * rng.random((S, A))
    M = rng.standard_normal((n, n))
    x0 = rng.standard_normal(n)
    problem = BilevelProblem(P, QuadraticFormReward(c, M), QuadraticUpper(), gamma, tau)
    problem.x0 = x0
    problem.name = f"synthetic(seed={seed}, gamma={gamma})"
    return problem


def hard_synthetic_problem(seed: int = 0, **kwargs) -> BilevelProblem:
    """:func:`synthetic_problem` with :math:`\\gamma = 0.9`: Bellman iterations contract 6.6 times more slowly
    (:math:`\\log 0.5/\\log 0.9`), so every method that solves the lower level pays more."""
    kwargs.setdefault("gamma", 0.9)
    return synthetic_problem(seed, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Reward shaping on a grid world (Section 3.3 of Yang et al.)
# ----------------------------------------------------------------------------------------------------------------
DEFAULT_WALLS = ((1, 1), (1, 2), (1, 3), (3, 2), (3, 3), (3, 4), (4, 1))


def shaping_problem(height: int = 6, width: int = 6, walls=DEFAULT_WALLS, goal=None, start=(0, 0),
                    slip: float = 0.1, gamma: float = 0.9, tau: float = 1.0, shaping: str = "state_bonus",
                    goal_reward: float = 1.0) -> BilevelProblem:
    """Reward shaping on a grid world with a sparse goal reward (Section 3.3 of Yang et al.).

    * Environment: :func:`~sobirl_lite.mdp.gridworld` (absorbing goal paying ``goal_reward`` per step, zero
      elsewhere, slip probability ``slip``, start cell ``start``).
    * Lower level: the entropy-regularised MDP (temperature ``tau``) with the shaped reward
      :math:`r_x = r + F_x`, an :class:`AffineReward`; ``shaping="state_bonus"`` gives :math:`F_x(s,a) = x_s`,
      ``shaping="potential"`` gives :math:`F_x(s,a) = \\gamma\\mathbb E\\,x_{s'} - x_s` (Ng et al., 1999).
    * Upper level: :class:`~sobirl_lite.upper.UpperValue` on the *original* reward with initial distribution
      ``start``: :math:`f(x,\\pi) = -V^\\pi_{\\mathcal M_u}(\\mu_u)`, no entropy.

    The defaults (6x6 maze, gamma = 0.9, tau = 1) make the entropy bonus dominate the sparse reward: the soft-optimal
    policy for the sparse reward alone wanders and rarely reaches the goal, which is where shaping pays off.
    ``x = 0`` is "training on the sparse reward alone". The problem carries ``problem.env`` (the grid-world
    :class:`~sobirl_lite.mdp.TabularMDP` with ``.layout``) and ``problem.x0 = zeros(n)``.
    """
    env = gridworld(height, width, walls=walls, goal=goal, start=start, slip=slip, goal_reward=goal_reward,
                    gamma=gamma, tau=tau, sparse=False)
    if shaping == "state_bonus":
        features = state_bonus_features(env.S, env.A)
    elif shaping == "potential":
        features = potential_features(env)
    else:
        raise ValueError(f"unknown shaping {shaping!r}; use 'state_bonus' or 'potential'")
    reward = AffineReward(env.r, features)
    upper = UpperValue.from_mdp(env, n=reward.n)
    problem = BilevelProblem.from_mdp(env, reward, upper)
    problem.env = env
    problem.x0 = np.zeros(reward.n)
    problem.name = f"shaping({height}x{width}, {shaping}, tau={tau})"
    return problem
