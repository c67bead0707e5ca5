"""Soft (entropy-regularised) dynamic programming: eqs (3), (5)-(7) and (10) of Yang et al. (their Sections 3.1 and 4), the map T and the operator B.

Every log-sum-exp is shifted by its row maximum, so nothing overflows for tau down to 1e-3 and gamma up to
0.999 (tests check it). Arrays: ``Q`` and policies are (S, A), values are (S,).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import xlogy

from .mdp import PolicySystem, TabularMDP


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
    """The soft Bellman optimality operator :math:`B` (Section 4 of Yang et al.): :math:`BQ = r + \\gamma P V_Q`. (S, A) -> (S, A)."""
    Q = _check_Q(mdp, Q)
    return mdp.r + mdp.gamma * mdp.expect(soft_max(Q, mdp.tau))


def soft_value_map(mdp: TabularMDP, V):
    """The fixed-point map :math:`\\mathcal T(V) = \\tau\\log\\sum_a\\exp((r + \\gamma PV)/\\tau)` (Section 4 of Yang et al.). (S,) -> (S,)."""
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


def evaluate_policy(mdp: TabularMDP, pi, system: PolicySystem | None = None):
    """Exact soft policy evaluation, eq. (3): returns ``(V, Q)`` with shapes (S,), (S, A).

    Solves :math:`(I-\\gamma P_\\pi)V = \\sum_a\\pi(a|s)(r(s,a) - \\tau\\log\\pi(a|s))` by one linear solve,
    then :math:`Q = r + \\gamma PV`. ``system`` may pass the factorisation of :math:`I-\\gamma P_\\pi` to reuse.
    """
    pi = _check_policy(mdp, pi)
    rhs = (pi * mdp.r).sum(axis=1) + mdp.tau * entropy(pi)
    V = (PolicySystem(mdp, pi) if system is None else system).solve(rhs)
    return V, mdp.r + mdp.gamma * mdp.expect(V)


class SoftSolution(NamedTuple):
    """Optimal soft quantities: ``V`` (S,), ``Q`` (S, A), ``pi`` (S, A); ``iterations`` taken (Bellman backups
    plus policy evaluations); ``residual`` = :math:`\\|BQ - Q\\|_\\infty`; ``method`` the solver that ran
    (``"value_iteration"``, ``"policy_iteration"`` or ``"value_iteration+policy_iteration"``); ``system`` the
    :class:`~sobirl_lite.mdp.PolicySystem` of the last policy evaluated (None when none was), which
    :func:`~sobirl_lite.hypergrad.hypergradient` reuses instead of factorising :math:`I-\\gamma P_{\\pi^*}` again."""

    V: np.ndarray
    Q: np.ndarray
    pi: np.ndarray
    iterations: int
    residual: float
    method: str = ""
    system: PolicySystem | None = None


def _round_off(Q):
    """The smallest Bellman residual float64 can certify for values of this size (a tolerance below it would
    never be met, whatever the method)."""
    return 64 * np.finfo(np.float64).eps * max(1.0, float(np.max(np.abs(Q))))


def newton_step_cost(mdp: TabularMDP) -> float:
    """Rough cost of one policy-iteration (Newton) step in units of one Bellman backup (one pass over ``P``): a
    factorisation of :math:`I-\\gamma P_\\pi` plus three passes. Dense LU does :math:`\\tfrac23S^3` flops at a
    few times the rate of the memory-bound :math:`2S^2A`-flop backup; a sparse solve (LU of a grid, or GMRES on a
    fast-mixing chain) costs a few dozen backups (measured in ``benchmarks/hypergradient.py``)."""
    if mdp.sparse:
        return 3.0 + 40.0
    return 3.0 + mdp.S / (8.0 * mdp.A)


def solve_soft_mdp(mdp: TabularMDP, tol: float = 1e-10, max_iter: int | None = None, Q0=None,
                   method: str = "auto", span: bool = False) -> SoftSolution:
    """Solve the entropy-regularised MDP: :math:`Q^* = BQ^*`, :math:`\\pi^* = \\mathrm{softmax}_\\tau(Q^*)` (eqs (5)-(7)).

    ``method``:
      * ``"value_iteration"``: :math:`Q \\leftarrow BQ` (a :math:`\\gamma`-contraction, Prop. G.9) until
        :math:`\\|BQ-Q\\|_\\infty \\le` ``tol``;
      * ``"policy_iteration"``: soft policy iteration, :math:`\\pi \\leftarrow \\mathrm{softmax}_\\tau(Q)` then exact
        evaluation of :math:`\\pi` by LU; Newton's method on the soft Bellman equation, so a handful of solves
        suffices even at :math:`\\gamma = 0.999`;
      * ``"auto"`` (default): value iteration first. It runs to the end when that is predicted to cost less than
        three Newton steps (the residual shrinks by :math:`\\gamma` per backup; a Newton step costs
        :func:`newton_step_cost` backups). Otherwise it stops once the policy has settled (no entry moves by more
        than ``1e-3`` in a backup) or after ``min(10, newton_step_cost)`` backups, and policy iteration
        finishes; with sparse ``P`` its evaluations try restarted GMRES first and fall back to sparse LU if that
        does not converge (see :class:`~sobirl_lite.mdp.PolicySystem`). The solution's ``method`` says what ran.

    ``span=True`` measures the residual by its span, :math:`\\max(BQ-Q)-\\min(BQ-Q)`, instead of its sup norm: a
    constant error in :math:`Q` does not move the policy, and :math:`B` contracts the span by :math:`\\gamma`
    too, so a span residual :math:`\\epsilon` still bounds :math:`\\|\\log\\pi-\\log\\pi^*\\|_\\infty` by
    :math:`2\\epsilon/(\\tau(1-\\gamma))` (then ``V`` and ``Q`` may be off by a constant; on fast-mixing chains
    the span falls much faster than the sup norm). :func:`~sobirl_lite.hypergrad.hypergradient` uses it.

    ``Q0`` (S, A) warm-starts the iteration (zeros by default). The loop stops at residual ``<= tol``, or at
    float64 round-off (:math:`64\\,\\epsilon_{\\rm mach}\\max|Q|`) when ``tol`` asks for less than that. Raises
    ``RuntimeError`` if ``max_iter`` is reached first, naming the residual, rather than returning an inaccurate
    answer silently. When policy iteration ran, ``system`` holds a solver for :math:`I-\\gamma P_\\pi` at the
    returned policy (the last factors, refined; see :class:`~sobirl_lite.mdp.PolicySystem`).
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive; got {tol}")
    if method not in ("auto", "value_iteration", "policy_iteration"):
        raise ValueError(f"unknown method {method!r}; use 'value_iteration', 'policy_iteration' or 'auto'")
    if max_iter is None:
        max_iter = 500 if method == "policy_iteration" else 100_000
    Q = np.zeros((mdp.S, mdp.A)) if Q0 is None else _check_Q(mdp, Q0, "Q0").copy()
    step_cost = newton_step_cost(mdp)
    krylov = None if (method == "auto" and mdp.sparse) else False  # None: not tried yet

    def size(d):
        return float(np.max(d) - np.min(d)) if span else float(np.max(np.abs(d)))

    BQ = soft_bellman(mdp, Q)
    residual = size(BQ - Q)
    it, sweeps, system, pi, previous = 0, 0, None, None, 0.0
    current = "policy_iteration" if method == "policy_iteration" else "value_iteration"
    while residual > max(tol, _round_off(Q)):
        if it >= max_iter:
            raise RuntimeError(f"solve_soft_mdp ({method}) did not reach tol={tol:g} in {max_iter} iterations; "
                               f"Bellman residual {residual:.3g}")
        if method == "auto" and current == "value_iteration" and mdp.gamma > 0:
            # backups VI still needs: at rate gamma for the sup norm; the span contracts faster on fast-mixing
            # chains, so there the observed rate of the last backup is used (never slower than gamma)
            rate = mdp.gamma if not (span and previous > 0) else min(mdp.gamma, max(residual / previous, 1e-3))
            left = np.log(max(tol, _round_off(Q)) / residual) / np.log(rate)
            if left > 3 * step_cost:  # the policy matters only while a switch to Newton steps may pay
                new_pi = softmax_policy(BQ, mdp.tau)
                settled = pi is not None and float(np.max(np.abs(new_pi - pi))) <= 1e-3
                pi = new_pi
                if settled or sweeps >= min(step_cost, 10):
                    current = "policy_iteration"
            else:
                pi = None  # not tracked this sweep: the next comparison must not use a stale policy
        previous = residual
        if current == "value_iteration":
            Q = BQ
            sweeps += 1
        else:
            pi = softmax_policy(Q, mdp.tau)
            system = PolicySystem(mdp, pi, krylov=krylov is not False)
            _, Q = evaluate_policy(mdp, pi, system)
            if krylov is None:  # keep what worked for this model
                krylov = system.method == "krylov"
        BQ = soft_bellman(mdp, Q)
        residual = size(BQ - Q)
        it += 1
    ran = current if sweeps in (0, it) else "value_iteration+policy_iteration"
    if it == 0:
        ran = "none (Q0 already solves it)"
    elif system is not None:
        ran += f" ({system.method})"
    pi = softmax_policy(Q, mdp.tau)
    if system is not None:
        if system.method == "krylov":
            system = PolicySystem(mdp, pi, krylov=True)  # forming I - gamma P_pi is one pass over P
        elif system._can_serve(mdp, pi):
            # the factors of the last evaluated policy serve the returned one (refined to round-off): forming
            # I - gamma P_pi for it costs one pass over P here and saves every later solve a factorisation
            system = PolicySystem(mdp, pi, reuse=system)
    return SoftSolution(V=soft_max(Q, mdp.tau), Q=Q, pi=pi, iterations=it, residual=residual, method=ran,
                        system=system)


def solve_tolerance(mdp: TabularMDP, policy_tol: float) -> float:
    """Bellman residual that guarantees :math:`\\|\\log\\pi-\\log\\pi^*\\|_\\infty \\le` ``policy_tol``.

    A residual :math:`\\epsilon` bounds :math:`\\|Q-Q^*\\|_\\infty \\le \\epsilon/(1-\\gamma)`, and
    :math:`\\log\\pi = (Q-V_Q)/\\tau` moves by at most :math:`2\\|Q-Q^*\\|_\\infty/\\tau`; so
    :math:`\\epsilon = \\tau(1-\\gamma)\\,` ``policy_tol`` :math:`/2`. The same holds for the span residual
    (``solve_soft_mdp(..., span=True)``).
    """
    if not policy_tol > 0:
        raise ValueError(f"tolerance must be positive; got {policy_tol}")
    return 0.5 * mdp.tau * (1.0 - mdp.gamma) * float(policy_tol)



def consistency_residuals(mdp: TabularMDP, V, Q, pi) -> dict:
    """Largest violation of the softmax temporal-value consistency equations (5)-(7) of Yang et al.

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
