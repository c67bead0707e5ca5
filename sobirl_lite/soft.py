"""Soft (entropy-regularised) dynamic programming: spec §2, eqs (3), (5)-(7), (10), the map T and the operator B.

Every log-sum-exp is shifted by its row maximum, so nothing overflows for tau down to 1e-3 and gamma up to
0.999 (tests check it). Arrays: ``Q`` and policies are (S, A), values are (S,).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import xlogy

from .mdp import TabularMDP, solve_policy_system


def _check_Q(mdp: TabularMDP, Q, name="Q"):
    Q = np.asarray(Q, dtype=np.float64)
    if Q.shape != (mdp.S, mdp.A):
        raise ValueError(f"{name} must have shape (S, A) = ({mdp.S}, {mdp.A}); got {Q.shape}")
    if not np.all(np.isfinite(Q)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return Q


def soft_max(Q, tau: float):
    """:math:`V_Q(s) = \\tau\\log\\sum_a \\exp(Q(s,a)/\\tau)` (eq. (6)), computed stably. ``Q`` (S, A) -> (S,)."""
    Q = np.asarray(Q, dtype=np.float64)
    m = Q.max(axis=1)
    return m + tau * np.log(np.exp((Q - m[:, None]) / tau).sum(axis=1))


def softmax_policy(Q, tau: float):
    """:math:`\\pi(a|s) = \\exp((Q(s,a) - V_Q(s))/\\tau)`, the row-wise softmax of eq. (5). ``Q`` (S, A) -> (S, A)."""
    if not tau > 0:
        raise ValueError(f"tau must be positive; got {tau}")
    Q = np.asarray(Q, dtype=np.float64)
    z = np.exp((Q - Q.max(axis=1, keepdims=True)) / tau)
    return z / z.sum(axis=1, keepdims=True)


def log_softmax_policy(Q, tau: float):
    """:math:`\\log\\pi(a|s) = (Q(s,a) - V_Q(s))/\\tau`, exact even where :math:`\\pi` underflows to 0. (S, A)."""
    return (np.asarray(Q, dtype=np.float64) - soft_max(Q, tau)[:, None]) / tau


def entropy(pi):
    """Shannon entropy per state, :math:`\\mathcal H(\\pi(\\cdot|s)) = -\\sum_a \\pi\\log\\pi` (0 log 0 = 0). (S, A) -> (S,)."""
    return -xlogy(pi, pi).sum(axis=1)


def soft_bellman(mdp: TabularMDP, Q):
    """The soft Bellman optimality operator :math:`B` (spec §2): :math:`BQ = r + \\gamma P V_Q`. (S, A) -> (S, A)."""
    Q = _check_Q(mdp, Q)
    return mdp.r + mdp.gamma * mdp.expect(soft_max(Q, mdp.tau))


def soft_value_map(mdp: TabularMDP, V):
    """The fixed-point map :math:`\\mathcal T(V) = \\tau\\log\\sum_a\\exp((r + \\gamma PV)/\\tau)` (spec §2). (S,) -> (S,)."""
    V = np.asarray(V, dtype=np.float64)
    if V.shape != (mdp.S,):
        raise ValueError(f"V must have shape (S,) = ({mdp.S},); got {V.shape}")
    return soft_max(mdp.r + mdp.gamma * mdp.expect(V), mdp.tau)


def _check_policy(mdp: TabularMDP, pi):
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (mdp.S, mdp.A):
        raise ValueError(f"pi must have shape (S, A) = ({mdp.S}, {mdp.A}); got {pi.shape}")
    if not np.all(np.isfinite(pi)) or np.any(pi < 0) or np.any(np.abs(pi.sum(axis=1) - 1) > 1e-8):
        raise ValueError("pi must be a stochastic matrix: non-negative rows summing to 1")
    return pi


def evaluate_policy(mdp: TabularMDP, pi):
    """Exact soft policy evaluation, eq. (3): returns ``(V, Q)`` with shapes (S,), (S, A).

    Solves :math:`(I-\\gamma P_\\pi)V = \\sum_a\\pi(a|s)(r(s,a) - \\tau\\log\\pi(a|s))` by one linear solve,
    then :math:`Q = r + \\gamma PV`.
    """
    pi = _check_policy(mdp, pi)
    rhs = (pi * mdp.r).sum(axis=1) + mdp.tau * entropy(pi)
    V = solve_policy_system(mdp, pi, rhs)
    return V, mdp.r + mdp.gamma * mdp.expect(V)


class SoftSolution(NamedTuple):
    """Optimal soft quantities: ``V`` (S,), ``Q`` (S, A), ``pi`` (S, A); ``iterations`` taken (Bellman backups for
    value iteration, policy evaluations for policy iteration); ``residual`` = :math:`\\|BQ - Q\\|_\\infty`."""

    V: np.ndarray
    Q: np.ndarray
    pi: np.ndarray
    iterations: int
    residual: float


def _round_off(Q):
    """The smallest Bellman residual float64 can certify for values of this size (a tolerance below it would
    never be met, whatever the method)."""
    return 64 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(Q))))


def solve_soft_mdp(mdp: TabularMDP, tol: float = 1e-10, max_iter: int | None = None, Q0=None,
                   method: str = "auto") -> SoftSolution:
    """Solve the entropy-regularised MDP: :math:`Q^* = BQ^*`, :math:`\\pi^* = \\mathrm{softmax}_\\tau(Q^*)` (eqs (5)-(7)).

    ``method``:
      * ``"value_iteration"``: :math:`Q \\leftarrow BQ` (a :math:`\\gamma`-contraction, Prop. G.9) until
        :math:`\\|BQ-Q\\|_\\infty \\le` ``tol``;
      * ``"policy_iteration"``: soft policy iteration, :math:`\\pi \\leftarrow \\mathrm{softmax}_\\tau(Q)` then exact
        evaluation of :math:`\\pi`; Newton's method on the soft Bellman equation, so a handful of solves suffices
        even at :math:`\\gamma = 0.999`;
      * ``"auto"`` (default): value iteration when :math:`\\gamma \\le 0.8`, else policy iteration.

    ``Q0`` (S, A) warm-starts the iteration (zeros by default). The loop stops at residual ``<= tol``, or at
    float64 round-off (:math:`64\\,\\epsilon_{\\rm mach}\\max|Q|`) when ``tol`` asks for less than that. Raises
    ``RuntimeError`` if ``max_iter`` is reached first, naming the residual, rather than returning an inaccurate
    answer silently.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive; got {tol}")
    if method == "auto":
        method = "value_iteration" if mdp.gamma <= 0.8 else "policy_iteration"
    if method not in ("value_iteration", "policy_iteration"):
        raise ValueError(f"unknown method {method!r}; use 'value_iteration', 'policy_iteration' or 'auto'")
    if max_iter is None:
        max_iter = 100_000 if method == "value_iteration" else 500
    Q = np.zeros((mdp.S, mdp.A)) if Q0 is None else _check_Q(mdp, Q0, "Q0").copy()

    BQ = soft_bellman(mdp, Q)
    residual = float(np.max(np.abs(BQ - Q)))
    it = 0
    while residual > max(tol, _round_off(Q)):
        if it >= max_iter:
            raise RuntimeError(f"solve_soft_mdp ({method}) did not reach tol={tol:g} in {max_iter} iterations; "
                               f"Bellman residual {residual:.3g}")
        if method == "value_iteration":
            Q = BQ
        else:
            _, Q = evaluate_policy(mdp, softmax_policy(Q, mdp.tau))
        BQ = soft_bellman(mdp, Q)
        residual = float(np.max(np.abs(BQ - Q)))
        it += 1
    V = soft_max(Q, mdp.tau)
    return SoftSolution(V=V, Q=Q, pi=softmax_policy(Q, mdp.tau), iterations=it, residual=residual)


def consistency_residuals(mdp: TabularMDP, V, Q, pi) -> dict:
    """Largest violation of the softmax temporal-value consistency equations (spec §2).

    Returns a dict of sup-norm residuals: ``"eq5"``: :math:`\\pi - \\exp((Q-V)/\\tau)`; ``"eq6"``:
    :math:`V - \\tau\\log\\sum_a e^{Q/\\tau}`; ``"eq7"``: :math:`V - \\sum_a\\pi(Q-\\tau\\log\\pi)`; ``"eq3"``: the
    Bellman relation :math:`Q - (r + \\gamma PV)`. All are ~0 at the optimum; ``V`` (S,), ``Q`` and ``pi`` (S, A).
    """
    V = np.asarray(V, dtype=np.float64)
    Q = _check_Q(mdp, Q)
    pi = np.asarray(pi, dtype=np.float64)
    tau = mdp.tau
    return {
        "eq5": float(np.max(np.abs(pi - np.exp((Q - V[:, None]) / tau)))),
        "eq6": float(np.max(np.abs(V - soft_max(Q, tau)))),
        "eq7": float(np.max(np.abs(V - (pi * Q).sum(axis=1) - tau * entropy(pi)))),
        "eq3": float(np.max(np.abs(Q - mdp.r - mdp.gamma * mdp.expect(V)))),
    }
