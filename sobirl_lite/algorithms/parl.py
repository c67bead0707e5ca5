"""PARL: second-order implicit differentiation through a softmax-parameterised lower level (Chakraborty et al. 2024; a baseline of Table 1 of Yang et al.).

Chakraborty et al. (2024) differentiate the lower-level *optimality condition* :math:`\\nabla_\\theta V(x,\\theta^*(x))=0`
of a parameterised policy :math:`\\pi_\\theta`. With tabular softmax logits, :math:`\\pi_\\theta=\\mathrm{softmax}(\\theta)`,
:math:`V(x,\\theta)=\\rho^\\top V^{\\pi_\\theta}_{\\mathcal M_\\tau(x)}`, :math:`H=\\nabla^2_{\\theta\\theta}V` and
:math:`M=\\nabla^2_{\\theta x}V`, the implicit function theorem gives :math:`\\nabla_x\\theta^*=-H^{-1}M`, hence

.. math::
    \\nabla\\phi(x)=\\nabla_xf+M^\\top(-H)^{-1}g_\\theta,\\qquad
    g_\\theta=J_\\pi^\\top\\nabla_\\pi f,\\quad J_\\pi=\\mathrm{blockdiag}_s\\big(\\mathrm{diag}(\\pi_s)-\\pi_s\\pi_s^\\top\\big).

The Hessian is **singular**: adding a constant to the logits of one state changes nothing, so
:math:`\\mathrm{rank}\\,H\\le|\\mathcal S|(|\\mathcal A|-1)` and PARL's "non-singular Hessian" assumption fails. Two
fixes: the pseudo-inverse (``hessian="pinv"``: exact, since :math:`g_\\theta` has no component along the shifts), or
damping (``hessian="damped"``: :math:`(-H+\\delta I)^{-1}`, biased by :math:`\\mathcal O(\\delta)`). With the pinv at
:math:`\\theta^*=Q^*_x/\\tau` this equals the first-order closed form (9).

The algorithm (A-PARL shape): warm-started lower-level iterations, then the second-order hyper-gradient at the
current logits, then a step on :math:`x`. We use soft Bellman backups as the lower-level solver
(:math:`\\theta_k=Q_k/\\tau`, with the same fixed point as softmax policy gradient), so that PARL differs from the
other methods only in its hyper-gradient oracle.

Cost per outer iteration, in backups (convention in :mod:`sobirl_lite.algorithms._common`): ``inner_steps``
backups, plus the second-order oracle. Forming the full :math:`SA\\times SA` Hessian by forward-over-reverse
differentiation of exact policy evaluation takes :math:`2SA+2` policy-evaluation solves (two tangent solves per
column, plus the shared value and occupancy solves) and the mixed product :math:`M^\\top v` two more: we charge
:math:`(2SA+4)` direct solves, each :func:`~sobirl_lite.algorithms._common.direct_solve_cost` backups.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# torch is imported inside the functions that use it: the rest of the package runs without it (Pyodide).

from ..bilevel import BilevelProblem
from ._common import (RunOptions, TrueGradientTracker, check_array, check_positive, check_x0, descend, direct_solve_cost,
                      progress_range, soft_max_rows)
from .history import History


@dataclass
class PARLConfig(RunOptions):
    """Hyperparameters of PARL."""

    beta: float = 8e-3            # step size for x
    inner_steps: int = 10         # soft Bellman backups per outer iteration (warm-started logits θ = Q/τ)
    hessian: str = "pinv"         # "pinv" (Moore-Penrose) or "damped" ((-H + δI)^{-1})
    damping: float = 1e-6         # δ for hessian="damped"
    rcond: float = 1e-12          # relative cut-off of the pseudo-inverse
    iterations: int = 3000

    def validate(self):
        self.validate_run_options()
        check_positive("beta", self.beta)
        check_positive("inner_steps", self.inner_steps, integer=True)
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        check_positive("rcond", self.rcond)
        check_positive("damping", self.damping, allow_zero=True)
        if self.hessian not in ("pinv", "damped"):
            raise ValueError(f"hessian must be 'pinv' or 'damped'; got {self.hessian!r}")
        if self.hessian == "damped" and self.damping == 0:
            raise ValueError("hessian='damped' needs damping > 0 (the softmax Hessian is singular)")
        return self


class _TorchModel:
    """Exact tabular :math:`V(x,\\theta)=\\rho^\\top(I-\\gamma P_{\\pi_\\theta})^{-1}\\sum_a\\pi_\\theta(r_x-\\tau\\log\\pi_\\theta)`
    and its softmax policy gradient as differentiable torch functions."""

    def __init__(self, problem: BilevelProblem):
        import torch

        S, A = problem.S, problem.A
        P = problem.P
        P = P.toarray().reshape(S, A, S) if hasattr(P, "toarray") else np.asarray(P)
        self.P = torch.as_tensor(P, dtype=torch.float64)
        self.rho = torch.as_tensor(problem.rho, dtype=torch.float64)
        self.eye = torch.eye(S, dtype=torch.float64)
        self.problem = problem

    def _evaluate(self, x_t, theta):
        import torch

        p = self.problem
        r = p.reward.value_torch(x_t)
        log_pi = torch.log_softmax(theta, dim=1)
        pi = torch.exp(log_pi)
        M = self.eye - p.gamma * torch.einsum("sa,sat->st", pi, self.P)       # I - γ P_π
        V = torch.linalg.solve(M, (pi * (r - p.tau * log_pi)).sum(dim=1))
        return r, log_pi, pi, M, V

    def value(self, x_t, theta):
        """:math:`V(x,\\theta)=\\rho^\\top V^{\\pi_\\theta}`."""
        return self.rho @ self._evaluate(x_t, theta)[4]

    def policy_gradient(self, x_t, theta):
        """:math:`\\partial V/\\partial\\theta(s,a)=d_\\pi(s)\\,\\pi(a|s)\\,(Q^\\pi(s,a)-\\tau\\log\\pi(a|s)-V^\\pi(s))`,
        :math:`d_\\pi=(I-\\gamma P_\\pi)^{-\\top}\\rho`. (S, A)."""
        import torch

        p = self.problem
        r, log_pi, pi, M, V = self._evaluate(x_t, theta)
        Q = r + p.gamma * torch.einsum("sat,t->sa", self.P, V)
        d = torch.linalg.solve(M.T, self.rho)
        return d[:, None] * pi * (Q - p.tau * log_pi - V[:, None])


def parl_hypergradient(problem: BilevelProblem, x, theta, hessian: str = "pinv", damping: float = 1e-6,
                       rcond: float = 1e-12, model: _TorchModel | None = None):
    """PARL's second-order hyper-gradient at logits ``theta`` (S, A). Returns ``(grad (n,), H (SA, SA))``.

    ``hessian="pinv"``: :math:`v=(-H)^+g_\\theta`; ``"damped"``: :math:`v=(-H+\\delta I)^{-1}g_\\theta`; then
    :math:`\\nabla_xf+M^\\top v` with :math:`M^\\top v=\\nabla_x\\langle\\nabla_\\theta V(x,\\theta),v\\rangle`.
    """
    import torch
    from torch.func import grad

    x = problem.reward._check_x(x)
    theta = np.asarray(theta, dtype=np.float64)
    S, A = problem.S, problem.A
    if theta.shape != (S, A):
        raise ValueError(f"theta must have shape (S, A) = ({S}, {A}); got {theta.shape}")
    model = model or _TorchModel(problem)
    x_t = torch.as_tensor(x)
    th = torch.as_tensor(theta)
    H = hessian_fn(model)(x_t, th).reshape(S * A, S * A).numpy()                # ∇²_θθ V, (SA, SA)

    # g_θ = J_π^T ∇_π f: per state, π ⊙ (∇_π f - <π, ∇_π f>)
    pi = np.exp(theta - theta.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    gpi = np.asarray(problem.upper.grad_pi(x, pi), dtype=np.float64)
    g_theta = pi * (gpi - (pi * gpi).sum(axis=1, keepdims=True))

    H = 0.5 * (H + H.T)                         # symmetric up to round-off; make it exactly so
    negH = -H
    if hessian == "pinv":
        v = np.linalg.pinv(negH, rcond=rcond, hermitian=True) @ g_theta.reshape(-1)
    elif hessian == "damped":
        v = np.linalg.solve(negH + damping * np.eye(S * A), g_theta.reshape(-1))
    else:
        raise ValueError(f"hessian must be 'pinv' or 'damped'; got {hessian!r}")

    # M^T v = ∇_x <∇_θ V(x, θ), v>
    v_t = torch.as_tensor(v.reshape(S, A))
    mixed = grad(lambda xx: (model.policy_gradient(xx, th) * v_t).sum())(x_t).numpy()
    return np.asarray(problem.upper.grad_x(x, pi), dtype=np.float64) + mixed, H


def hessian_fn(model):
    """:math:`(x,\\theta)\\mapsto\\nabla^2_{\\theta\\theta}V(x,\\theta)` (S, A, S, A): the Jacobian of the closed-form
    policy gradient (one level of reverse-mode autodiff; equal to ``torch.func.hessian(model.value)``, tested)."""
    from torch.func import jacrev

    return jacrev(model.policy_gradient, argnums=1)


def parl(problem: BilevelProblem, x0, config: PARLConfig | None = None, Q0=None) -> History:
    """Run PARL from ``x0`` (n,). Returns a :class:`History` (row ``k`` = start of iteration ``k``; ``backups``
    spent to produce :math:`x_k`); ``history.extra["hessian_rank"]`` records the numerical rank of :math:`H` at
    tracked iterations (eigenvalues above ``rcond`` times the largest)."""
    cfg = (config or PARLConfig()).validate()
    x = check_x0(problem, x0)
    S, A, gamma, tau = problem.S, problem.A, problem.gamma, problem.tau
    Q = np.zeros((S, A)) if Q0 is None else check_array("Q0", Q0, (S, A))
    x0_norm = float(np.linalg.norm(x))
    model = _TorchModel(problem)
    oracle_cost = (2 * S * A + 4) * direct_solve_cost(gamma)
    hist = History("PARL", {**asdict(cfg), "oracle_cost": oracle_cost})
    hist.extra["hessian_rank"] = []
    tracker = TrueGradientTracker(problem, cfg.track_true_grad)
    backups = 0.0

    for k in progress_range(cfg.iterations, cfg.progress, "PARL"):
        row = dict(iteration=k, backups=backups, inner_iterations=cfg.inner_steps)
        tracked = cfg.track_true_grad and k % cfg.track_every == 0
        if tracked:
            t = tracker(x)
            row.update(true_grad_norm=t["true_grad_norm"], phi=t["phi"])

        # lower level: warm-started soft Bellman backups; logits θ_k = Q_k / τ
        mdp = problem.mdp(x)
        for _ in range(cfg.inner_steps):
            Q = mdp.r + gamma * mdp.expect(soft_max_rows(Q, tau))
        theta = Q / tau

        # second-order hyper-gradient (implicit function theorem on ∇_θ V = 0)
        g, H = parl_hypergradient(problem, x, theta, cfg.hessian, cfg.damping, cfg.rcond, model)

        row["grad_norm"] = float(np.linalg.norm(g))
        if "phi" not in row:
            pi = np.exp(theta - theta.max(axis=1, keepdims=True))
            row["phi"] = float(problem.upper.value(x, pi / pi.sum(axis=1, keepdims=True)))
        hist.record(**row)
        if tracked:
            eig = np.abs(np.linalg.eigvalsh(H))
            hist.extra["hessian_rank"].append(int(np.sum(eig > cfg.rcond * eig.max())))
        if cfg.keep_iterates:
            hist.xs.append(x.copy())
        if tracked and cfg.stop_grad is not None and row["true_grad_norm"] <= cfg.stop_grad:
            break

        x = descend(x, g, cfg.beta, "PARL", k, x0_norm)
        backups += cfg.inner_steps + oracle_cost

    hist.x = x
    hist.extra["Q"] = Q
    return hist
