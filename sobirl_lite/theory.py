"""The constants of the convergence theory (Assumptions 6.1-6.3, Props. G.4 and 6.5, Theorems 6.4 and 6.6).

The paper states its assumptions and rates with constants it does not write out. This module fixes the norms,
computes every constant for a given problem on the ball :math:`\\|x\\|\\le X` (that every iterate stays in it is a
hypothesis of the book's theorems; :func:`check_in_ball` checks it), and assembles from them the Lipschitz constant
of the hyper-gradient and the bias constant of the estimator built from an inexact policy: model-based
(:func:`theory_constants`, Prop. G.4 and the book's variant of Theorem 6.6) and for a trajectory loss
(:func:`trajectory_constants`, the paper's Theorem 6.6). The derivations are in the book's convergence chapter; the
tests check each bound against sampled ratios and against instances where it is attained, and
``tests/test_theory_mutations.py`` records which wrong constants those checks catch.

Norms (the book's choice):

* rewards: :math:`C_r=\\sup|r_x(s,a)|`, :math:`C_{r_x}=\\sup\\|\\nabla_x r_x(s,a)\\|_2`,
  :math:`L_{r_x}` the Lipschitz constant of :math:`x\\mapsto\\nabla_x r_x(s,a)` in :math:`\\|\\cdot\\|_2`;
* policies: :math:`\\delta(\\pi,\\pi')=\\max_s\\|\\pi(\\cdot|s)-\\pi'(\\cdot|s)\\|_1` (twice the largest total variation);
* upper level: :math:`C_f=\\sup\\|\\nabla_\\pi f\\|_\\infty` and :math:`L_f` with
  :math:`\\|\\nabla_x f(x,\\pi)-\\nabla_x f(x',\\pi')\\|_2` and :math:`\\|\\nabla_\\pi f(x,\\pi)-\\nabla_\\pi f(x',\\pi')\\|_\\infty`
  both at most :math:`L_f(\\|x-x'\\|_2+\\delta(\\pi,\\pi'))`.

With :math:`\\kappa=1/(1-\\gamma)`:

* :math:`x\\mapsto\\pi^*_x` is :math:`L_\\pi`-Lipschitz into :math:`\\delta`, :math:`L_\\pi=\\kappa C_{r_x}/\\tau`;
* :math:`x\\mapsto\\nabla V^*_x` is :math:`L_V`-Lipschitz (row-wise 2-norm, max over states),
  :math:`L_V=\\kappa L_{r_x}+\\kappa^2C_{r_x}L_\\pi`, and :math:`L_Q=L_{r_x}+\\gamma L_V`;
* :math:`\\nabla\\phi` is :math:`L_\\phi`-Lipschitz,
  :math:`L_\\phi=L_f(1+L_\\pi)(1+|\\mathcal S|L_\\pi)+|\\mathcal S|C_fL_D` with
  :math:`L_D=(2\\kappa C_{r_x}L_\\pi+L_Q+L_V)/\\tau`;
* the expectation of the estimator (15) built from :math:`\\pi` is off by at most :math:`C_{\\rm est}\\delta(\\pi,\\pi^*_x)`,
  :math:`C_{\\rm est}=L_f(1+|\\mathcal S|L_\\pi)+|\\mathcal S|C_f\\kappa C_{r_x}(2+(1+\\gamma)\\kappa)/\\tau`.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .hypergrad import adjoint_vector
from .bilevel import BilevelProblem
from .instances import AffineReward, QuadraticFormReward
from .rewards import LinearReward, TabularReward
from .soft import evaluate_policy, softmax_policy
from .upper import QuadraticUpper, UpperValue


class RewardConstants(NamedTuple):
    """Assumption 6.3 on the ball of radius ``radius``: ``C_r``, ``C_rx`` (= :math:`C_{r_x}`), ``L_rx``."""

    C_r: float
    C_rx: float
    L_rx: float
    radius: float


class UpperConstants(NamedTuple):
    """Assumption 6.1 (or 6.2 in the trajectory form): ``C_f`` and ``L_f`` in the norms of the module docstring."""

    C_f: float
    L_f: float


class TheoryConstants(NamedTuple):
    """Everything the chapter needs: the assumption constants, :math:`\\kappa`, and the derived
    :math:`L_\\pi, L_V, L_Q, L_D, L_\\phi, C_{\\rm est}`."""

    reward: RewardConstants
    upper: UpperConstants
    kappa: float
    L_pi: float
    L_V: float
    L_Q: float
    L_D: float
    L_phi: float
    C_est: float


def _check_radius(radius):
    radius = float(radius)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a finite non-negative number; got {radius}")
    return radius


def reward_constants(reward, radius: float) -> RewardConstants:
    """Exact :math:`C_r, C_{r_x}, L_{r_x}` of Assumption 6.3 on :math:`\\{\\|x\\|_2\\le R\\}` for the package's reward
    families (quadratic form, affine, linear, tabular). Raises ``TypeError`` for other rewards: use
    :func:`sampled_reward_constants`, which only gives lower bounds."""
    R = _check_radius(radius)
    if isinstance(reward, QuadraticFormReward):
        # r = c x^T M x,  grad = c (M + M^T) x,  |x^T M x| <= ||(M+M^T)/2||_2 R^2
        c_max = float(np.abs(reward.c).max())
        sym_norm = float(np.linalg.norm(reward.M_sym2, 2))
        return RewardConstants(c_max * sym_norm / 2 * R**2, c_max * sym_norm * R, c_max * sym_norm, R)
    if isinstance(reward, (AffineReward, LinearReward)):
        if isinstance(reward, AffineReward):
            base, rows = reward.base.reshape(-1), reward.features.reshape(-1, reward.n)
        else:
            base = np.zeros(reward.S * reward.A)
            rows = reward.jacobian(np.zeros(reward.n)).reshape(-1, reward.n)
        norms = np.linalg.norm(rows, axis=1)
        return RewardConstants(float((np.abs(base) + R * norms).max()), float(norms.max()), 0.0, R)
    if isinstance(reward, TabularReward):
        return RewardConstants(R, 1.0, 0.0, R)
    raise TypeError(f"no closed-form constants for {type(reward).__name__}; use sampled_reward_constants")


def sampled_reward_constants(reward, radius: float, n_points: int = 200, seed: int = 0) -> RewardConstants:
    """Lower estimates of :math:`C_r, C_{r_x}, L_{r_x}` from ``n_points`` random points of the ball (uniform
    direction, radius :math:`R\\,u^{1/n}`), and Lipschitz ratios over consecutive pairs. Any valid bound must be
    at least these."""
    R = _check_radius(radius)
    rng = np.random.default_rng(seed)
    xs = _ball_points(rng, reward.n, R, n_points)
    C_r = C_rx = L_rx = 0.0
    prev = None
    for x in xs:
        J = reward.jacobian(x).reshape(-1, reward.n)
        C_r = max(C_r, float(np.abs(reward.value(x)).max()))
        C_rx = max(C_rx, float(np.linalg.norm(J, axis=1).max()))
        if prev is not None:
            dist = np.linalg.norm(x - prev[0])
            L_rx = max(L_rx, float(np.linalg.norm(J - prev[1], axis=1).max() / dist))
        prev = (x, J)
    return RewardConstants(C_r, C_rx, L_rx, R)


def _ball_points(rng, n, R, m):
    d = rng.standard_normal((m, n))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * (R * rng.random(m) ** (1.0 / n))[:, None]


class LinearPolicyUpper:
    """:math:`f(x,\\pi)=\\sum_{s,a}c(s,a)\\pi(a|s)`, ``c`` (S, A): an upper level with :math:`\\nabla_xf=0` and a
    constant :math:`\\nabla_\\pi f=c`, so :math:`C_f=\\max|c|` and :math:`L_f=0`. The small instances that attain
    the constants of :func:`theory_constants` use it: with :math:`L_f=0` every term of :math:`L_\\phi` and
    :math:`C_{\\rm est}` comes from the lower level."""

    def __init__(self, c):
        c = np.asarray(c, dtype=np.float64)
        if c.ndim != 2 or not np.all(np.isfinite(c)):
            raise ValueError(f"c must be a finite (S, A) array; got shape {c.shape}")
        self.c = c

    def value(self, x, pi):
        return float(np.sum(self.c * np.asarray(pi)))

    def grad_x(self, x, pi):
        return np.zeros_like(np.asarray(x, dtype=np.float64))

    def grad_pi(self, x, pi):
        return self.c.copy()

    def __repr__(self):
        return f"LinearPolicyUpper(c of shape {self.c.shape})"


def upper_constants(upper, S: int, A: int) -> UpperConstants:
    """:math:`C_f, L_f` of Assumption 6.1 for the package's upper levels.

    * :class:`~sobirl_lite.upper.QuadraticUpper`, :math:`f=\\frac12\\|x\\|^2+\\frac12\\|\\pi\\|^2`: :math:`\\nabla_\\pi f=\\pi`,
      so :math:`C_f=1`, :math:`L_f=1`;
    * :class:`~sobirl_lite.upper.UpperValue`, :math:`\\nabla_\\pi f(s,a)=-\\nu^\\pi_u(s)Q^\\pi_u(s,a)` with the
      unnormalised occupancy :math:`\\nu^\\pi_u=(I-\\gamma P_{u,\\pi})^{-\\top}\\mu_u` (total mass :math:`\\kappa_u`) and
      :math:`|Q^\\pi_u|\\le\\kappa_u\\bar r_u`: :math:`C_f=\\kappa_u^2\\bar r_u`,
      :math:`L_f=2\\gamma_u\\kappa_u^3\\bar r_u` (:math:`\\bar r_u=\\max|r_u|`).
    """
    if isinstance(upper, QuadraticUpper):
        return UpperConstants(1.0, 1.0)
    if isinstance(upper, LinearPolicyUpper):
        return UpperConstants(float(np.abs(upper.c).max()), 0.0)
    if isinstance(upper, UpperValue):
        m = upper.mdp
        kappa, r_bar = 1.0 / (1.0 - m.gamma), float(np.abs(m.r).max())
        return UpperConstants(kappa**2 * r_bar, 2.0 * m.gamma * kappa**3 * r_bar)
    raise TypeError(f"no constants for the upper level {type(upper).__name__}")


def policy_lipschitz(kappa: float, C_rx: float, tau: float) -> float:
    """:math:`L_\\pi=\\kappa C_{r_x}/\\tau`: :math:`x\\mapsto\\pi^*_x` into :math:`\\delta`."""
    return kappa * C_rx / tau


def value_gradient_lipschitz(kappa: float, C_rx: float, L_rx: float, L_pi: float) -> float:
    """:math:`L_V=\\kappa L_{r_x}+\\kappa^2C_{r_x}L_\\pi`: :math:`x\\mapsto\\nabla V^*_x` (row-wise 2-norm, max over states)."""
    return kappa * L_rx + kappa**2 * C_rx * L_pi


def q_gradient_lipschitz(gamma: float, L_rx: float, L_V: float) -> float:
    """:math:`L_Q=L_{r_x}+\\gamma L_V`: :math:`x\\mapsto\\nabla Q^*_x`."""
    return L_rx + gamma * L_V


def policy_jacobian_lipschitz(kappa: float, C_rx: float, L_pi: float, L_Q: float, L_V: float,
                              tau: float) -> float:
    """:math:`L_D=(2\\kappa C_{r_x}L_\\pi+L_Q+L_V)/\\tau`: :math:`x\\mapsto\\nabla\\pi^*_x`, summed over actions."""
    return (2 * kappa * C_rx * L_pi + L_Q + L_V) / tau


def hypergradient_lipschitz(L_f: float, C_f: float, S: int, L_pi: float, L_D: float) -> float:
    """:math:`L_\\phi=L_f(1+L_\\pi)(1+|\\mathcal S|L_\\pi)+|\\mathcal S|C_fL_D` (model-based upper level)."""
    return L_f * (1 + L_pi) * (1 + S * L_pi) + S * C_f * L_D


def estimator_bias_constant(L_f: float, C_f: float, S: int, L_pi: float, kappa: float, C_rx: float,
                            gamma: float, tau: float) -> float:
    """:math:`C_{\\rm est}=L_f(1+|\\mathcal S|L_\\pi)+|\\mathcal S|C_f\\kappa C_{r_x}(2+(1+\\gamma)\\kappa)/\\tau`."""
    return L_f * (1 + S * L_pi) + S * C_f * kappa * C_rx * (2 + (1 + gamma) * kappa) / tau


def theory_constants(problem: BilevelProblem, radius: float) -> TheoryConstants:
    """All constants of the module docstring for ``problem`` on the ball of radius ``radius``.

    Each derived constant comes from its own function (:func:`policy_lipschitz`, ...), looked up at call time,
    so that the mutation test can scale one of them and see which checks fail."""
    rc = reward_constants(problem.reward, radius)
    uc = upper_constants(problem.upper, problem.S, problem.A)
    g, tau, S = problem.gamma, problem.tau, problem.S
    kappa = 1.0 / (1.0 - g)
    C, L_r = rc.C_rx, rc.L_rx
    L_pi = policy_lipschitz(kappa, C, tau)
    L_V = value_gradient_lipschitz(kappa, C, L_r, L_pi)
    L_Q = q_gradient_lipschitz(g, L_r, L_V)
    L_D = policy_jacobian_lipschitz(kappa, C, L_pi, L_Q, L_V, tau)
    L_phi = hypergradient_lipschitz(uc.L_f, uc.C_f, S, L_pi, L_D)
    C_est = estimator_bias_constant(uc.L_f, uc.C_f, S, L_pi, kappa, C, g, tau)
    return TheoryConstants(rc, uc, kappa, L_pi, L_V, L_Q, L_D, L_phi, C_est)


def policy_distance(pi, pi_ref) -> float:
    """:math:`\\delta(\\pi,\\pi')=\\max_s\\|\\pi(\\cdot|s)-\\pi'(\\cdot|s)\\|_1`; ``pi``, ``pi_ref`` (S, A)."""
    return float(np.abs(np.asarray(pi) - np.asarray(pi_ref)).sum(axis=1).max())


def expected_estimate(problem: BilevelProblem, x, pi) -> np.ndarray:
    """The expectation of SoBiRL's estimator (15) when it is built from the policy ``pi`` (S, A) instead of
    :math:`\\pi^*_x`: eq. (9) with :math:`\\pi` in place of :math:`\\pi^*_x`. Returns (n,).

    Step 1 of (15) under :math:`\\pi` gives :math:`\\widehat{\\nabla V}=(I-\\gamma P_\\pi)^{-1}\\Pi_\\pi\\nabla r_x` and
    :math:`\\widehat{\\nabla Q}=\\nabla r_x+\\gamma P\\widehat{\\nabla V}`; step 2 averages
    :math:`\\frac1\\tau\\,\\pi\\odot\\nabla_\\pi f` against :math:`\\widehat{\\nabla Q}-E\\widehat{\\nabla V}`, which is (9)'s
    adjoint form with :math:`\\pi`. At :math:`\\pi=\\pi^*_x` it is :math:`\\nabla\\phi(x)`.
    """
    x = problem.reward._check_x(x)
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (problem.S, problem.A):
        raise ValueError(f"pi must have shape (S, A) = ({problem.S}, {problem.A}); got {pi.shape}")
    mdp = problem.mdp(x)
    u = pi * problem.upper.grad_pi(x, pi)
    w = adjoint_vector(problem, mdp, pi, u)
    direct = np.asarray(problem.upper.grad_x(x, pi), dtype=np.float64)
    return direct + problem.reward.vjp(x, u - pi * w[:, None]) / problem.tau


def pmd_errors(mdp, iterations: int, eta: float, pi_star, logits0=None) -> np.ndarray:
    """:math:`\\delta(\\pi^{(t)},\\pi^*)` for :math:`t=0,\\dots,` ``iterations`` along exact policy mirror descent
    (:func:`~sobirl_lite.algorithms.sobirl.policy_mirror_descent`'s update), from ``logits0`` (uniform by default).
    Returns (iterations + 1,)."""
    from .algorithms.sobirl import pmd_update

    z = np.zeros((mdp.S, mdp.A)) if logits0 is None else np.array(logits0, dtype=np.float64)
    errors = []
    for t in range(int(iterations) + 1):
        pi = softmax_policy(z, 1.0)
        errors.append(policy_distance(pi, pi_star))
        if t < iterations:
            z = pmd_update(z, evaluate_policy(mdp, pi)[1], eta, mdp.tau)
    return np.array(errors)


def pmd_rate(gamma: float, tau: float, eta: float) -> float:
    """The linear rate of exact entropy-regularised PMD with step :math:`\\eta` (Cen et al. 2022; Lan 2023):
    :math:`1-(1-\\gamma)\\eta\\tau/(1+\\eta\\tau)`."""
    return 1.0 - (1.0 - gamma) * eta * tau / (1.0 + eta * tau)


def pmd_iterations_for(accuracy: float, gamma: float, tau: float, eta: float, initial_error: float = 2.0) -> int:
    """Iterations :math:`T=\\lceil\\log(\\delta_0/\\epsilon)/\\log(1/\\rho)\\rceil` after which
    :math:`\\delta_0\\rho^T\\le\\epsilon` (:math:`\\rho` from :func:`pmd_rate`, :math:`\\delta_0\\le2`): the
    :math:`\\mathcal O(\\log 1/\\epsilon)` count of Theorem 6.6."""
    if not accuracy > 0:
        raise ValueError(f"accuracy must be positive; got {accuracy}")
    rho = pmd_rate(gamma, tau, eta)
    return max(0, int(np.ceil(np.log(initial_error / accuracy) / np.log(1.0 / rho))))


def check_in_ball(xs, radius: float, what: str = "iterate") -> float:
    """Raise ``ValueError`` unless every row of ``xs`` (K, n) lies in :math:`\\{\\|x\\|_2\\le R\\}`, the ball on
    which the constants hold (a hypothesis of Theorems 6.4 and 6.6 in the book); return the largest norm."""
    R = _check_radius(radius)
    norms = np.linalg.norm(np.atleast_2d(np.asarray(xs, dtype=np.float64)), axis=1)
    if norms.size and not norms.max() <= R:
        k = int(np.argmax(norms))
        raise ValueError(f"{what} {k} has norm {norms[k]:.4g} > R = {R:.4g}: the constants do not hold there")
    return float(norms.max()) if norms.size else 0.0


def inexact_hypergradient_descent(problem: BilevelProblem, x0, beta: float, iterations: int,
                                  pmd_iterations: int, eta: float = 1.0, warm_start: bool = False,
                                  weight_decay: float = 0.0, radius: float | None = None):
    """Algorithm 2 with every expectation exact: at each step :math:`\\pi_k` comes from ``pmd_iterations`` exact
    PMD steps on :math:`\\mathcal M_\\tau(x_k)` (from the uniform policy, or from :math:`\\pi_{k-1}` with
    ``warm_start``), and :math:`x_{k+1}=x_k-\\beta\\,\\mathbb E[\\widehat\\nabla\\phi(x_k)]` (:func:`expected_estimate`).
    This isolates the only error Theorem 6.6 is about, the inner accuracy :math:`\\epsilon`. With
    ``weight_decay`` :math:`\\lambda>0` the objective is :math:`\\phi(x)+\\frac\\lambda2\\|x\\|^2` (as in
    :class:`~sobirl_lite.algorithms.SoBiRLConfig`), and ``grad_norm`` is the norm of its gradient.

    Returns a dict of arrays over :math:`k`: ``grad_norm`` :math:`\\|\\nabla\\phi(x_k)\\|`, ``bias``
    :math:`\\|\\mathbb E\\widehat\\nabla\\phi(x_k)-\\nabla\\phi(x_k)\\|`, ``policy_error`` :math:`\\delta(\\pi_k,\\pi^*_{x_k})`,
    ``phi`` :math:`\\phi(x_k)`, ``x_norm`` :math:`\\|x_k\\|` for :math:`k=0,\\dots,K` (every iterate, the last
    included); and ``x`` the last iterate. With ``radius`` :math:`R`, every iterate is checked to stay in the ball
    :math:`\\|x\\|\\le R` (:func:`check_in_ball`), and a ``ValueError`` names the first one that leaves it."""
    from .algorithms.sobirl import policy_mirror_descent
    from .hypergrad import hypergradient
    from .soft import solve_soft_mdp

    if not beta > 0 or int(iterations) < 0 or int(pmd_iterations) < 0 or weight_decay < 0:
        raise ValueError("need beta > 0, iterations >= 0, pmd_iterations >= 0 and weight_decay >= 0")
    x = problem.reward._check_x(x0).copy()
    logits = None
    out = {k: [] for k in ("grad_norm", "bias", "policy_error", "phi", "x_norm")}
    for k in range(int(iterations)):
        out["x_norm"].append(float(np.linalg.norm(x)))
        if radius is not None:
            check_in_ball(x, radius, what=f"iterate x_{k}")
        mdp = problem.mdp(x)
        sol = solve_soft_mdp(mdp, tol=1e-12)
        z0 = logits if warm_start else None
        if int(pmd_iterations) > 0:
            logits, pi = policy_mirror_descent(mdp, pmd_iterations, eta, logits0=z0)
        else:
            pi = softmax_policy(np.zeros((mdp.S, mdp.A)) if z0 is None else z0, 1.0)
        g_true = hypergradient(problem, x, sol) + weight_decay * x
        g_hat = expected_estimate(problem, x, pi) + weight_decay * x
        out["grad_norm"].append(float(np.linalg.norm(g_true)))
        out["bias"].append(float(np.linalg.norm(g_hat - g_true)))
        out["policy_error"].append(policy_distance(pi, sol.pi))
        out["phi"].append(float(problem.upper.value(x, sol.pi)) + 0.5 * weight_decay * float(x @ x))
        x = x - beta * g_hat
    out["x_norm"].append(float(np.linalg.norm(x)))
    if radius is not None:
        check_in_ball(x, radius, what=f"iterate x_{int(iterations)}")
    result = {k: np.array(v) for k, v in out.items()}
    result["x"] = x
    return result


class LossConstants(NamedTuple):
    """Assumption 6.2 for a trajectory loss :math:`l_x(d)`: ``C_l`` :math:`=\\sup|l_x|`, ``L_l`` the Lipschitz
    constant of :math:`\\nabla_x l_x`, ``L_l_prime`` that of :math:`l_x` itself (on the ball of radius ``radius``)."""

    C_l: float
    L_l: float
    L_l_prime: float


def return_loss_constants(r_u_max: float, gamma_u: float) -> LossConstants:
    """Reward shaping, :math:`l(\\tau)=-\\sum_t\\gamma_u^t r_u(s_t,a_t)`: bounded by :math:`\\bar r_u/(1-\\gamma_u)` and
    independent of :math:`x`, so both Lipschitz constants are zero."""
    return LossConstants(float(r_u_max) / (1.0 - float(gamma_u)), 0.0, 0.0)


def bce_loss_constants(segment_length: int, radius: float) -> LossConstants:
    """RLHF with a tabular reward :math:`r_x=x` and Bradley-Terry on undiscounted segment returns of length
    :math:`H`: :math:`l_x=\\mathrm{BCE}(y,\\sigma(R_x(\\zeta^1)-R_x(\\zeta^2)))` with :math:`\\nabla_xR_x(\\zeta)=c(\\zeta)`
    the visit counts. On the ball of radius :math:`X` (``radius``),
    :math:`|R_x(\\zeta^1)-R_x(\\zeta^2)|\\le\\|c^1-c^2\\|_2X\\le\\sqrt2HX`, so :math:`C_l=\\log(1+e^{\\sqrt2HX})`,
    :math:`L'_l=\\sqrt2H` and, since :math:`\\sigma'\\le\\frac14`, :math:`L_l=\\frac14\\cdot2H^2=H^2/2`. All three are
    attained by two segments on different state-action pairs (``tests/test_theory.py``)."""
    H, R = int(segment_length), _check_radius(radius)
    if H < 1:
        raise ValueError(f"segment_length must be positive; got {H}")
    return LossConstants(float(np.logaddexp(0.0, np.sqrt(2) * H * R)), H**2 / 2.0, float(np.sqrt(2) * H))


def trajectory_drift(n_trajectories: int, horizon: int) -> float:
    """Lemma H.1 of the paper in the book's norms: :math:`\\|\\rho^N(\\pi)-\\rho^N(\\pi')\\|_1\\le NH\\,\\delta(\\pi,\\pi')`
    for tuples of :math:`N` independent trajectories of :math:`H` steps. Returns :math:`NH`."""
    N, H = int(n_trajectories), int(horizon)
    if N < 1 or H < 1:
        raise ValueError(f"need N >= 1 trajectories of H >= 1 steps; got N = {N}, H = {H}")
    return float(N * H)


def trajectory_distribution(mdp, pi, horizon: int):
    """Exact law of one trajectory :math:`(s_0,a_0,\\dots,s_{H-1},a_{H-1})` of ``mdp`` under ``pi`` (S, A), from
    ``mdp.rho``: a flat array over the :math:`(SA)^H` state-action sequences (small problems only)."""
    S, A, H = mdp.S, mdp.A, int(horizon)
    if (S * A) ** H > 1e6:
        raise ValueError(f"(S A)^H = {(S * A) ** H} sequences: too many to enumerate")
    P = mdp.dense_P()
    # index of a prefix (s_0, a_0, ..., s_h, a_h) = previous prefix * SA + s_h A + a_h, so reshaping the
    # flat law to (-1, S, A) exposes the last state-action pair of each prefix
    law = (np.asarray(mdp.rho)[:, None] * np.asarray(pi)).reshape(-1)
    for _ in range(H - 1):
        law = np.einsum("ksa,sat,tb->ksatb", law.reshape(-1, S, A), P, pi).reshape(-1)
    return law.reshape(-1)


class TrajectoryConstants(NamedTuple):
    """The model-free constants of the paper's Theorem 6.6 (Assumptions 6.2 and 6.3), in the book's norms:
    ``drift`` :math:`NH`; ``C_G``, ``L_G`` the bound and Lipschitz constant of the integrand
    :math:`G_x(d)=\\nabla_xl_x(d)+\\frac1\\tau l_x(d)\\sum_{i,h}(\\nabla Q^*_x-\\nabla V^*_x)(s^i_h,a^i_h)` of
    Prop. 5.2; ``L_phi`` (Prop. H.6) and ``C_est`` (Prop. H.7)."""

    drift: float
    C_G: float
    L_G: float
    L_phi: float
    C_est: float


def trajectory_constants(reward: RewardConstants, loss: LossConstants, gamma: float, tau: float,
                         n_trajectories: int, horizon: int) -> TrajectoryConstants:
    """:math:`L_\\phi` and :math:`C_{\\rm est}` of the paper's Theorem 6.6 for a trajectory loss (Assumption 6.2,
    constants ``loss``) and a reward on a ball (Assumption 6.3, ``reward``); :math:`N` trajectories of
    :math:`H` steps. With :math:`D=NH` (:func:`trajectory_drift`):

    * :math:`C_G=L'_l+2D\\kappa C_lC_{r_x}/\\tau`;
    * :math:`L_G=L_l+D\\,(2\\kappa C_{r_x}L'_l+C_l(L_Q+L_V))/\\tau`;
    * :math:`L_\\phi=L_G+D\\,L_\\pi C_G` (the law :math:`\\rho^N(\\pi^*_x)` drifts by :math:`DL_\\pi\\|x-x'\\|`);
    * :math:`C_{\\rm est}=D\\,C_G+D\\,C_l(1+\\gamma)\\kappa^2C_{r_x}/\\tau`.
    """
    kappa = 1.0 / (1.0 - float(gamma))
    D = trajectory_drift(n_trajectories, horizon)
    C, L_r = reward.C_rx, reward.L_rx
    L_pi = policy_lipschitz(kappa, C, tau)
    L_V = value_gradient_lipschitz(kappa, C, L_r, L_pi)
    L_Q = q_gradient_lipschitz(gamma, L_r, L_V)
    C_G = loss.L_l_prime + 2 * D * kappa * loss.C_l * C / tau
    L_G = loss.L_l + D * (2 * kappa * C * loss.L_l_prime + loss.C_l * (L_Q + L_V)) / tau
    L_phi = L_G + D * L_pi * C_G
    C_est = D * C_G + D * loss.C_l * (1 + gamma) * kappa**2 * C / tau
    return TrajectoryConstants(D, C_G, L_G, L_phi, C_est)
