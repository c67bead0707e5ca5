"""ITD (iterative differentiation): autograd through unrolled soft Bellman iterations.

The lower-level solution is replaced by :math:`K` unrolled backups :math:`Q^{(t+1)}=B_xQ^{(t)}` and the upper-level
loss :math:`f(x,\\mathrm{softmax}_\\tau(Q^{(K)}(x)))` is differentiated end to end by reverse-mode autograd
(:func:`sobirl_lite.hypergrad.unrolled_hypergradient` is the one-shot version). With ``warm_start=True`` the
unroll starts from the previous iteration's :math:`Q^{(K)}`, treated as a constant (truncated back-propagation).

Cost per outer iteration, in backups (convention in :mod:`sobirl_lite.algorithms._common`): :math:`K` forward
backups plus :math:`K` reverse sweeps (each reverse step multiplies by :math:`P^\\top`, one pass over the model),
so :math:`2K`. Memory grows linearly with :math:`K` (the tape).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..hypergrad import _torch_transitions
from ..problem import BilevelProblem
from ._common import TrueGradientTracker, check_positive, check_x0, progress_range
from .history import History


@dataclass
class ITDConfig:
    """Hyperparameters of ITD."""

    beta: float = 8e-3            # step size for x
    unroll: int = 10              # K, backups differentiated through per outer iteration
    iterations: int = 3000        # outer iterations
    warm_start: bool = True       # unroll from the previous Q^{(K)} (detached) instead of zeros
    seed: int = 0                 # unused (deterministic); kept for a uniform interface
    track_true_grad: bool = False
    track_every: int = 1
    stop_grad: float | None = None  # when tracking: stop once ||∇φ(x_k)|| <= stop_grad
    progress: bool = True
    keep_iterates: bool = False

    def validate(self):
        check_positive("beta", self.beta)
        check_positive("unroll", self.unroll, integer=True)
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        check_positive("track_every", self.track_every, integer=True)
        if self.stop_grad is not None:
            check_positive("stop_grad", self.stop_grad)
        return self


def unrolled_step(problem: BilevelProblem, x, unroll: int, Q0=None, P_t=None):
    """One ITD gradient: autograd through ``unroll`` backups from ``Q0`` (zeros by default).

    Returns ``(grad (n,), Q_K (S, A), pi_K (S, A))``. Same value as
    :func:`sobirl_lite.hypergrad.unrolled_hypergradient`, plus the last iterate for warm starts.
    """
    S, A, gamma, tau = problem.S, problem.A, problem.gamma, problem.tau
    P_t = _torch_transitions(problem) if P_t is None else P_t
    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    r = problem.reward.value_torch(x_t)
    Q = torch.zeros(S, A, dtype=torch.float64) if Q0 is None else torch.as_tensor(np.asarray(Q0, dtype=np.float64))
    for _ in range(int(unroll)):
        V = tau * torch.logsumexp(Q / tau, dim=1)
        Q = r + gamma * (P_t @ V).reshape(S, A)
    pi_t = torch.softmax(Q / tau, dim=1)
    pi = pi_t.detach().numpy()
    g_pi = torch.as_tensor(np.asarray(problem.upper.grad_pi(x, pi), dtype=np.float64))
    (dx,) = torch.autograd.grad(pi_t, x_t, grad_outputs=g_pi, allow_unused=True)
    through_pi = np.zeros(problem.n) if dx is None else dx.numpy()
    grad = np.asarray(problem.upper.grad_x(x, pi), dtype=np.float64) + through_pi
    return grad, Q.detach().numpy().copy(), pi


def itd(problem: BilevelProblem, x0, config: ITDConfig | None = None) -> History:
    """Gradient descent on :math:`x\\mapsto f(x,\\pi_K(x))` with :math:`\\pi_K` from ``config.unroll`` unrolled
    backups. Returns a :class:`History` (row ``k`` = start of iteration ``k``; ``backups`` spent to produce
    :math:`x_k`; ``inner_iterations`` = ``unroll``)."""
    cfg = (config or ITDConfig()).validate()
    x = check_x0(problem, x0)
    P_t = _torch_transitions(problem)
    hist = History("ITD", asdict(cfg))
    tracker = TrueGradientTracker(problem, cfg.track_true_grad)
    Q = None
    backups = 0.0
    for k in progress_range(cfg.iterations, cfg.progress, "ITD"):
        row = dict(iteration=k, backups=backups, inner_iterations=cfg.unroll)
        if cfg.track_true_grad and k % cfg.track_every == 0:
            t = tracker(x)
            row.update(true_grad_norm=t["true_grad_norm"], phi=t["phi"])
        g, Q_K, pi = unrolled_step(problem, x, cfg.unroll, Q if cfg.warm_start else None, P_t)
        Q = Q_K
        row["grad_norm"] = float(np.linalg.norm(g))
        row.setdefault("phi", float(problem.upper.value(x, pi)))
        hist.record(**row)
        if cfg.keep_iterates:
            hist.xs.append(x.copy())
        if cfg.stop_grad is not None and row.get("true_grad_norm", np.inf) <= cfg.stop_grad:
            break
        x = x - cfg.beta * g
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"ITD diverged at iteration {k} (non-finite x); reduce beta")
        backups += 2.0 * cfg.unroll
    hist.x = x
    hist.extra["Q"] = Q
    return hist
