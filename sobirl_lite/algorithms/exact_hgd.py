"""Exact hyper-gradient descent: the baseline that M-SoBiRL amortises.

Every outer iteration solves the lower level to a tolerance, forms the closed-form hyper-gradient (9) at that
solution and takes a gradient step:

.. code-block:: text

    for k = 0..K-1:
        Q_k  = B_{x_k}^m Q_{k-1}   until ||B_{x_k} Q - Q||_inf <= tol        (warm-started from Q_{k-1})
        π_k  = softmax_τ(Q_k)
        w_k  = (I - γ P_{π_k})^{-T} (E - γP)^T (π_k ⊙ ∇_π f)                (adjoint solve, warm-started)
        g_k  = ∇_x f + (1/τ) ∇r^T (π_k ⊙ ∇_π f) - (1/τ) (Π_{π_k} ∇r)^T w_k  (eq. (9))
        x_{k+1} = x_k - β g_k

Cost per outer iteration, in backups (convention in :mod:`sobirl_lite.algorithms._common`): the :math:`m` Bellman
backups of the lower-level solve (the last one certifies the tolerance), :math:`P^\\top u` (1), forming
:math:`P_{\\pi_k}` (1), and the adjoint solve: with ``adjoint="iterative"`` (default) the fixed-point sweeps
:math:`w\\leftarrow b+\\gamma P_{\\pi_k}^\\top w` on the formed (S, S) matrix, warm-started from :math:`w_{k-1}`,
``1/A`` each; with ``adjoint="direct"`` an LU solve charged :func:`~sobirl_lite.algorithms._common.direct_solve_cost`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..bilevel import BilevelProblem
from ._common import (RunOptions, TrueGradientTracker, bellman_to_tolerance, check_array, check_positive, check_x0,
                      descend,
                      direct_solve_cost, log_iteration, policy_evaluation_iterative, progress_range,
                      softmax_rows)
from .history import History
from ..mdp import solve_policy_system


@dataclass
class ExactHGDConfig(RunOptions):
    """Hyperparameters of exact hyper-gradient descent."""

    beta: float = 8e-3            # step size for x
    tol: float = 1e-10            # lower-level tolerance ||B Q - Q||_inf, and adjoint tolerance
    iterations: int = 3000        # outer iterations
    warm_start: bool = True       # start each lower-level (and adjoint) solve from the previous solution
    adjoint: str = "iterative"    # "iterative" (fixed-point sweeps, counted) or "direct" (LU, charged)
    max_inner: int = 100_000      # safety cap on backups per lower-level solve

    def validate(self):
        self.validate_run_options()
        check_positive("beta", self.beta)
        check_positive("tol", self.tol)
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        check_positive("max_inner", self.max_inner, integer=True)
        if self.adjoint not in ("iterative", "direct"):
            raise ValueError(f"adjoint must be 'iterative' or 'direct'; got {self.adjoint!r}")
        return self


def exact_hgd(problem: BilevelProblem, x0, config: ExactHGDConfig | None = None, Q0=None) -> History:
    """Hyper-gradient descent with the lower level solved to ``config.tol`` at every step. Returns a
    :class:`History` (``.x`` = final iterate); row ``k`` = start of iteration ``k``, ``backups`` = spent to produce
    :math:`x_k`, ``inner_iterations`` = Bellman backups of the lower-level solve at iteration ``k``."""
    cfg = (config or ExactHGDConfig()).validate()
    x = check_x0(problem, x0)
    S, A, gamma, tau = problem.S, problem.A, problem.gamma, problem.tau
    reward, upper = problem.reward, problem.upper
    Q = np.zeros((S, A)) if Q0 is None else check_array("Q0", Q0, (S, A))
    x0_norm = float(np.linalg.norm(x))
    w = np.zeros(S)
    hist = History("exact HGD", asdict(cfg))
    tracker = TrueGradientTracker(problem, cfg.track_true_grad)
    solve_charge = direct_solve_cost(gamma)
    backups = 0.0

    for k in progress_range(cfg.iterations, cfg.progress, "exact HGD"):
        row = dict(iteration=k, backups=backups)
        if cfg.track_true_grad and k % cfg.track_every == 0:
            t = tracker(x)
            row.update(true_grad_norm=t["true_grad_norm"], phi=t["phi"])
        mdp = problem.mdp(x)

        # lower level to tolerance (warm start: from Q_{k-1})
        Q_start = Q if cfg.warm_start else np.zeros((S, A))
        Q, m = bellman_to_tolerance(mdp, Q_start, cfg.tol, cfg.max_inner)
        pi = softmax_rows(Q, tau)

        # adjoint vector of eq. (9): (I - γ P_π)^T w = (E - γP)^T (π ⊙ ∇_π f)
        u = pi * upper.grad_pi(x, pi)
        b = u.sum(axis=1) - gamma * mdp.adjoint(u)                             # 1 backup
        if cfg.adjoint == "iterative":
            P_pi = mdp.policy_matrix(pi)                                       # 1 backup
            w, adj_cost, _ = policy_evaluation_iterative(
                mdp, pi, b, w if cfg.warm_start else None, cfg.tol, cfg.max_inner, transpose=True, P_pi=P_pi)
            adj_cost += 1.0
        else:
            w = solve_policy_system(mdp, pi, b, transpose=True)
            adj_cost = float(solve_charge)

        # eq. (9) at the computed solution
        g = (np.asarray(upper.grad_x(x, pi), dtype=np.float64)
             + reward.vjp(x, u) / tau
             - reward.vjp(x, pi * w[:, None]) / tau)

        row.update(grad_norm=float(np.linalg.norm(g)), inner_iterations=m)
        row.setdefault("phi", float(upper.value(x, pi)))
        if log_iteration(hist, row, x, cfg):
            break

        x = descend(x, g, cfg.beta, "exact HGD", k, x0_norm)
        backups += m + 1.0 + adj_cost

    hist.x = x
    hist.extra["Q"] = Q
    return hist
