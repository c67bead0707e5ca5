"""PBRL: the value-penalty reformulation of Shen, Yang & Chen (2024), a baseline of Table 1 of Yang et al., on a tabular lower level.

The policy becomes a free variable next to :math:`x`, and the lower-level optimality is enforced by a penalty:

.. math::
    \\min_{x,\\ \\pi\\in\\Pi}\\ F_\\lambda(x,\\pi)=f(x,\\pi)+\\lambda\\,p(x,\\pi),\\qquad
    p(x,\\pi)=V_x(\\pi^*_x)-V_x(\\pi)\\ \\ge 0,\\qquad V_x(\\pi)=\\rho^\\top V^\\pi_{\\mathcal M_\\tau(x)} .

Gradients (Danskin's theorem for the max term; :math:`d_\\pi=(I-\\gamma P_\\pi)^{-\\top}\\rho` is the
unnormalised discounted occupancy, :math:`d^\\pi_\\rho/(1-\\gamma)`):

.. math::
    \\nabla_x p=\\nabla r_x^\\top\\big(d_{\\pi^*}\\odot\\pi^*-d_\\pi\\odot\\pi\\big),\\qquad
    \\frac{\\partial p}{\\partial\\pi(a|s)}=-d_\\pi(s)\\big(Q^\\pi_x(s,a)-\\tau\\log\\pi(a|s)-\\tau\\big).

The algorithm (double loop): :math:`\\hat\\pi_k\\approx\\pi^*_{x_k}` by ``inner_steps`` soft Bellman backups
warm-started (the :math:`\\mathcal O(\\log(\\lambda/\\epsilon))` inner iterations of Table 1), then one gradient step
on :math:`x` and one mirror-descent (exponentiated-gradient) step on :math:`\\pi` for :math:`F_\\lambda`. The mirror
step keeps :math:`\\pi` inside the simplex, where :math:`\\log\\pi` is finite (Shen, Yang & Chen's penalty
method works with either step in place of the Euclidean projection). Its stationary points solve the bilevel problem only up to :math:`\\mathcal O(1/\\lambda)`,
which is why PBRL needs :math:`\\lambda=\\Omega(\\epsilon^{-1/2})` and :math:`\\mathcal O(\\lambda\\epsilon^{-1})` iterations.

Cost per outer iteration, in backups (convention in :mod:`sobirl_lite.algorithms._common`): ``inner_steps``
backups, forming :math:`P_{\\pi_k}` and :math:`P_{\\hat\\pi_k}` (2), :math:`Q^{\\pi_k}=r+\\gamma PV^{\\pi_k}` (1), and
three policy-evaluation solves (:math:`V^{\\pi_k}`, :math:`d_{\\pi_k}`, :math:`d_{\\hat\\pi_k}`): with
``solver="iterative"`` (default) warm-started fixed-point sweeps on the formed (S, S) matrices, ``1/A`` per sweep; with
``solver="direct"`` LU solves charged :func:`~sobirl_lite.algorithms._common.direct_solve_cost` each.

Where this differs from Shen, Yang & Chen (2024): their penalty method is analysed for a generic inner solver, a
penalty weight that grows as :math:`\\lambda=\\Omega(\\epsilon^{-1/2})` and a projected step on the policy; here the
inner solver is soft Bellman backups (shared with the other methods), :math:`\\lambda` is fixed (10 in the book), the
policy step is a mirror step, and the step size on :math:`x` must be about :math:`1/\\lambda` times smaller than the
other methods' (the penalised objective is :math:`\\lambda` times stiffer). Too large a step does not always blow
up: :math:`x` can settle into a period-2 cycle with a constant :math:`\\|\\nabla_xF_\\lambda\\|`. The run detects such
a cycle, warns, records its start in ``history.extra["cycle"]`` and stops.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ..mdp import solve_policy_system
from ..bilevel import BilevelProblem
from ..soft import solve_soft_mdp
from ._common import (RunOptions, TrueGradientTracker, check_array, check_positive, check_x0, descend,
                      direct_solve_cost, log_iteration, policy_evaluation_iterative, progress_range, soft_max_rows,
                      softmax_rows)
from .history import History


@dataclass
class PBRLConfig(RunOptions):
    """Hyperparameters of value-penalty PBRL."""

    lam: float = 10.0             # penalty weight λ
    beta: float = 1e-3            # step size for x (≈ 1/L_λ = O(1/λ))
    eta: float | None = None      # mirror step for π; None: (1-γ) / (2 λ τ), a stable policy-mirror step
    inner_steps: int = 10         # backups per outer iteration for π̂ ≈ π*_x (warm-started)
    iterations: int = 3000
    solve_tol: float = 1e-10      # tolerance of the iterative policy-evaluation solves
    max_sweeps: int = 100_000
    solver: str = "iterative"     # "iterative" (warm-started sweeps, counted) or "direct" (LU, charged)
    cycle_window: int = 20        # stop after this many consecutive iterations of a period-2 cycle in x

    def validate(self):
        self.validate_run_options()
        check_positive("lam", self.lam)
        check_positive("beta", self.beta)
        if self.eta is not None:
            check_positive("eta", self.eta)
        check_positive("inner_steps", self.inner_steps, integer=True)
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        check_positive("solve_tol", self.solve_tol)
        check_positive("max_sweeps", self.max_sweeps, integer=True)
        check_positive("cycle_window", self.cycle_window, integer=True)
        if self.solver not in ("iterative", "direct"):
            raise ValueError(f"solver must be 'iterative' or 'direct'; got {self.solver!r}")
        return self


def _policy_logs(pi):
    return np.log(np.maximum(pi, np.finfo(float).tiny))


def penalty_gradients_from_parts(problem, x, pi, pi_star, d_pi, d_star, Q_pi):
    """:math:`(\\nabla_x p, \\nabla_\\pi p)` from the pieces (module docstring). Shapes (n,), (S, A)."""
    grad_x = problem.reward.vjp(x, d_star[:, None] * pi_star - d_pi[:, None] * pi)
    grad_pi = -d_pi[:, None] * (Q_pi - problem.tau * _policy_logs(pi) - problem.tau)
    return grad_x, grad_pi


def value_penalty(problem: BilevelProblem, x, pi, solution=None) -> float:
    """:math:`p(x,\\pi)=\\rho^\\top(V^{\\pi^*_x}-V^\\pi)` with exact solves (for tests and figures). ``pi`` (S, A) may be
    any positive array (the direct parameterisation extends off the simplex)."""
    mdp = problem.mdp(x)
    sol = solution if solution is not None else solve_soft_mdp(mdp, tol=1e-12)
    return float(problem.rho @ (sol.V - _soft_value(mdp, pi)))


def _soft_value(mdp, pi):
    rhs = (pi * (mdp.r - mdp.tau * _policy_logs(pi))).sum(axis=1)
    return solve_policy_system(mdp, pi, rhs)


def value_penalty_gradients(problem: BilevelProblem, x, pi, solution=None):
    """Exact :math:`(\\nabla_x p(x,\\pi), \\nabla_\\pi p(x,\\pi))` by direct solves (reference for tests)."""
    x = problem.reward._check_x(x)
    mdp = problem.mdp(x)
    sol = solution if solution is not None else solve_soft_mdp(mdp, tol=1e-12)
    V_pi = _soft_value(mdp, pi)
    Q_pi = mdp.r + mdp.gamma * mdp.expect(V_pi)
    d_pi = solve_policy_system(mdp, pi, problem.rho, transpose=True)
    d_star = solve_policy_system(mdp, sol.pi, problem.rho, transpose=True)
    return penalty_gradients_from_parts(problem, x, pi, sol.pi, d_pi, d_star, Q_pi)


def pbrl(problem: BilevelProblem, x0, config: PBRLConfig | None = None, pi0=None) -> History:
    """Run value-penalty PBRL from ``x0`` (n,) and ``pi0`` (S, A; uniform by default). Returns a :class:`History`;
    ``grad_norm`` is :math:`\\|\\nabla_xF_\\lambda(x_k,\\pi_k)\\|`, ``history.extra["pi"]`` the final policy variable and
    ``history.extra["penalty"]`` the penalty :math:`p(x_k,\\pi_k)` at tracked iterations."""
    cfg = (config or PBRLConfig()).validate()
    x = check_x0(problem, x0)
    S, A, gamma, tau, rho = problem.S, problem.A, problem.gamma, problem.tau, problem.rho
    upper = problem.upper
    pi = np.full((S, A), 1.0 / A) if pi0 is None else check_array("pi0", pi0, (S, A))
    if np.any(pi <= 0) or np.any(np.abs(pi.sum(axis=1) - 1) > 1e-8):
        raise ValueError(f"pi0 must be a strictly positive stochastic (S, A) = ({S}, {A}) array")
    eta = cfg.eta if cfg.eta is not None else (1.0 - gamma) / (2.0 * cfg.lam * tau)
    Q_hat = np.zeros((S, A))
    V_pi = d_pi = d_hat = None
    hist = History("PBRL", {**asdict(cfg), "eta_used": eta})
    hist.extra["penalty"] = []
    hist.extra["cycle"] = None
    tracker = TrueGradientTracker(problem, cfg.track_true_grad)
    backups = 0.0
    x0_norm, x_prev, in_cycle = float(np.linalg.norm(x)), None, 0

    for k in progress_range(cfg.iterations, cfg.progress, "PBRL"):
        row = dict(iteration=k, backups=backups, inner_iterations=cfg.inner_steps)
        if cfg.track_true_grad and k % cfg.track_every == 0:
            t = tracker(x)
            row.update(true_grad_norm=t["true_grad_norm"], phi=t["phi"])
            hist.extra["penalty"].append(value_penalty(problem, x, pi, t["solution"]))
        mdp = problem.mdp(x)
        r = mdp.r

        # inner loop: π̂_k ≈ π*_{x_k} by warm-started soft Bellman backups
        for _ in range(cfg.inner_steps):
            Q_hat = r + gamma * mdp.expect(soft_max_rows(Q_hat, tau))
        pi_hat = softmax_rows(Q_hat, tau)

        # evaluate π_k (value, Q) and the two occupancies, by warm-started iterative solves
        rhs = (pi * (r - tau * _policy_logs(pi))).sum(axis=1)
        if cfg.solver == "direct":
            V_pi = solve_policy_system(mdp, pi, rhs)
            d_pi = solve_policy_system(mdp, pi, rho, transpose=True)
            d_hat = solve_policy_system(mdp, pi_hat, rho, transpose=True)
            c1 = c2 = c3 = float(direct_solve_cost(gamma))
        else:
            P_pi, P_hat = mdp.policy_matrix(pi), mdp.policy_matrix(pi_hat)
            V_pi, c1, _ = policy_evaluation_iterative(mdp, pi, rhs, V_pi, cfg.solve_tol, cfg.max_sweeps, P_pi=P_pi)
            d_pi, c2, _ = policy_evaluation_iterative(mdp, pi, rho, d_pi, cfg.solve_tol, cfg.max_sweeps,
                                                      transpose=True, P_pi=P_pi)
            d_hat, c3, _ = policy_evaluation_iterative(mdp, pi_hat, rho, d_hat, cfg.solve_tol, cfg.max_sweeps,
                                                       transpose=True, P_pi=P_hat)
        Q_pi = r + gamma * mdp.expect(V_pi)

        # gradients of F_λ = f + λ p  (Danskin for the max term)
        px, ppi = penalty_gradients_from_parts(problem, x, pi, pi_hat, d_pi, d_hat, Q_pi)
        g_x = np.asarray(upper.grad_x(x, pi), dtype=np.float64) + cfg.lam * px
        g_pi = np.asarray(upper.grad_pi(x, pi), dtype=np.float64) + cfg.lam * ppi

        row["grad_norm"] = float(np.linalg.norm(g_x))
        row.setdefault("phi", float(upper.value(x, pi)))
        if log_iteration(hist, row, x, cfg):
            break

        # steps: gradient on x, mirror (exponentiated gradient) on each simplex π(·|s)
        x_before = x
        x = descend(x, g_x, cfg.beta, "PBRL", k, x0_norm, hint="reduce beta or eta")
        logits = _policy_logs(pi) - eta * g_pi
        pi = softmax_rows(logits, 1.0)
        if not np.all(np.isfinite(pi)):
            raise FloatingPointError(f"PBRL diverged at iteration {k} (non-finite policy); reduce eta or beta")
        backups += cfg.inner_steps + 3.0 + c1 + c2 + c3

        # a period-2 cycle: x comes back to x_{k-1} while the step itself stays large
        step = float(np.linalg.norm(x - x_before))
        if x_prev is not None and step > 1e-8 * (1.0 + float(np.linalg.norm(x))) \
                and np.linalg.norm(x - x_prev) < 0.05 * step:
            in_cycle += 1
        else:
            in_cycle = 0
        x_prev = x_before
        if in_cycle >= cfg.cycle_window:
            hist.extra["cycle"] = k + 1 - cfg.cycle_window
            warnings.warn(f"PBRL is not converging: x has alternated between two points since iteration "
                          f"{hist.extra['cycle']} (||grad_x F|| stays near {row['grad_norm']:.3g}); reduce beta",
                          RuntimeWarning, stacklevel=2)
            break

    hist.x = x
    hist.extra["pi"] = pi
    return hist


__all__ = ["PBRLConfig", "pbrl", "value_penalty", "value_penalty_gradients", "penalty_gradients_from_parts"]
