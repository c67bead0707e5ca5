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

from ..hypergrad import _torch_transitions, unrolled_step
from ..bilevel import BilevelProblem
from ._common import RunOptions, TrueGradientTracker, check_positive, check_x0, descend, log_iteration, progress_range
from .history import History


@dataclass
class ITDConfig(RunOptions):
    """Hyperparameters of ITD."""

    beta: float = 8e-3            # step size for x
    unroll: int = 10              # K, backups differentiated through per outer iteration
    iterations: int = 3000        # outer iterations
    warm_start: bool = True       # unroll from the previous Q^{(K)} (detached) instead of zeros

    def validate(self):
        self.validate_run_options()
        check_positive("beta", self.beta)
        check_positive("unroll", self.unroll, integer=True)
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        return self


def itd(problem: BilevelProblem, x0, config: ITDConfig | None = None) -> History:
    """Gradient descent on :math:`x\\mapsto f(x,\\pi_K(x))` with :math:`\\pi_K` from ``config.unroll`` unrolled
    backups. Returns a :class:`History` (row ``k`` = start of iteration ``k``; ``backups`` spent to produce
    :math:`x_k`; ``inner_iterations`` = ``unroll``)."""
    cfg = (config or ITDConfig()).validate()
    x = check_x0(problem, x0)
    x0_norm = float(np.linalg.norm(x))
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
        if log_iteration(hist, row, x, cfg):
            break
        x = descend(x, g, cfg.beta, "ITD", k, x0_norm)
        backups += 2.0 * cfg.unroll
    hist.x = x
    hist.extra["Q"] = Q
    return hist
