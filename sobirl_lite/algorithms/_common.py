"""Pieces shared by the model-based algorithms: the cost convention, config checks, the true-gradient tracker.

Cost convention (the ``backups`` column of every :class:`~sobirl_lite.algorithms.history.History`)
-------------------------------------------------------------------------------------------------------
The unit is **one Bellman backup**: one application of :math:`B_x` (or of :math:`\\mathcal T`) to all states. Its
cost is one pass over the transition model :math:`P` (``S*A*S`` multiply-adds dense, ``nnz(P)`` sparse). Every
other operation is converted into this unit by what it costs in passes over :math:`P`:

* ``1`` for each product with :math:`P` or :math:`P^\\top` over all pairs (:math:`PV`, :math:`P^\\top u`), for
  forming :math:`P_\\pi` (:math:`\\sum_a\\pi(a|s)P(\\cdot|s,a)`), and for one step of iterative policy evaluation
  :math:`y\\leftarrow b+\\gamma P_\\pi y` done matrix-free;
* ``1/A`` for a product with an already formed ``(S, S)`` matrix such as :math:`I-\\gamma P_\\pi` (``S*S`` work);
* a **direct linear solve** with :math:`I-\\gamma P_\\pi` (LU) is charged :func:`direct_solve_cost`: the number of
  matrix-free policy-evaluation sweeps that reach the same accuracy (``SOLVE_TOL``) from a cold start,
  :math:`\\lceil\\log(\\mathrm{SOLVE\\_TOL})/\\log\\gamma\\rceil` (34 at :math:`\\gamma=0.5`, 219 at
  :math:`\\gamma=0.9`). At the sizes of this book LU is cheaper in flops, but it does not scale to large models,
  which is the regime a model-based method is for; the charge says what a method would pay there;
* reward evaluations and vector-Jacobian products of the reward are not counted (they do not touch :math:`P`);
* the work done only to *monitor* a run (the closed-form :math:`\\nabla\\phi(x_k)` when ``track_true_grad``) is not
  counted.

Each algorithm's docstring lists its per-iteration count under this convention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..hypergrad import hypergradient
from ..soft import soft_max as soft_max_rows  # noqa: F401  (re-exported for the algorithms)
from ..soft import softmax_policy as softmax_rows  # noqa: F401
from ..soft import solve_soft_mdp

#: accuracy a direct solve is assumed to deliver, used to convert it into backup-equivalents
SOLVE_TOL = 1e-10
#: tolerance of the lower-level solve used only to monitor runs (true ‖∇φ(x_k)‖, φ(x_k))
TRACK_TOL = 1e-12


def direct_solve_cost(gamma: float, tol: float = SOLVE_TOL) -> int:
    """Backup-equivalents charged for one direct solve with :math:`I-\\gamma P_\\pi`: the number of
    :math:`\\gamma`-contracting policy-evaluation sweeps that shrink an error by ``tol``."""
    if gamma <= 0:
        return 1
    return int(math.ceil(math.log(tol) / math.log(gamma)))


def check_positive(name, value, integer=False, allow_zero=False):
    """Raise a ValueError naming ``name`` unless ``value`` is a positive (or non-negative) finite number."""
    if integer:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer; got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'} and finite; got {value!r}")
    return value


@dataclass
class RunOptions:
    """Options shared by every model-based run: reproducibility and monitoring, not hyperparameters of the
    algorithm. Each algorithm's config dataclass extends it with its own hyperparameters."""

    seed: int = 0                   # seeds every random draw (M-SoBiRL's w_0); deterministic methods ignore it
    track_true_grad: bool = False   # also record ||∇φ(x_k)|| and φ(x_k) from an exact solve (not counted as cost)
    track_every: int = 1            # when tracking, every how many iterations (NaN in between)
    stop_grad: float | None = None  # when tracking: stop once ||∇φ(x_k)|| <= stop_grad
    progress: bool = True           # tqdm bar (appears only on runs longer than a second)
    keep_iterates: bool = False     # store every x_k in History.xs

    def validate_run_options(self):
        check_positive("track_every", self.track_every, integer=True)
        if self.stop_grad is not None:
            check_positive("stop_grad", self.stop_grad)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        return self


def check_array(name, value, shape):
    """``value`` as a new float64 array of ``shape``; a ValueError naming ``name`` if it has another shape, is
    complex or holds NaN or infinite entries (initial values are checked before any work is done)."""
    if np.iscomplexobj(value):
        raise ValueError(f"{name} is complex; it must be real")
    value = np.array(value, dtype=np.float64)
    if value.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return value


def check_x0(problem, x0):
    return check_array("x0", x0, (problem.n,))


#: a run whose ||x|| grows past this factor times (1 + ||x_0||) has diverged, even while x is still finite
DIVERGENCE_FACTOR = 1e8


class DivergenceError(FloatingPointError, ValueError):
    """An outer loop diverged (x non-finite or exploding). A ValueError too: its cause is a bad setting.
    ``history``: the run up to the divergence, where the algorithm attaches it (M-SoBiRL), else None."""

    def __init__(self, message, history=None):
        super().__init__(message)
        self.history = history


def progress_range(iterations: int, enabled: bool, desc: str):
    """``range(iterations)`` wrapped in a tqdm bar that only appears once a run has lasted a second."""
    return tqdm(range(iterations), desc=desc, disable=not enabled, delay=1.0, leave=False, mininterval=0.5)


def log_iteration(hist, row: dict, x, cfg) -> bool:
    """Record ``row`` in ``hist``, keep :math:`x_k` when ``cfg.keep_iterates``; return True when the monitored
    :math:`\\|\\nabla\\phi(x_k)\\|` has reached ``cfg.stop_grad`` (the run should stop)."""
    hist.record(**row)
    if cfg.keep_iterates:
        hist.xs.append(np.array(x, copy=True))
    return cfg.stop_grad is not None and row.get("true_grad_norm", np.inf) <= cfg.stop_grad


def descend(x, step, beta: float, name: str, k: int, x0_norm: float = 0.0, hint: str = "reduce beta"):
    """The upper-level step :math:`x - \\beta\\,\\text{step}`. Raises :class:`DivergenceError` naming the algorithm
    and the iteration when ``x`` becomes non-finite, or when :math:`\\|x\\|` exceeds ``DIVERGENCE_FACTOR`` times
    :math:`1+\\|x_0\\|` (``x0_norm``): a huge step can leave a finite but meaningless ``x`` of 1e200."""
    x = x - beta * step
    if not np.all(np.isfinite(x)):
        raise DivergenceError(f"{name} diverged at iteration {k} (non-finite x); {hint}")
    size = float(np.linalg.norm(x))
    if size > DIVERGENCE_FACTOR * (1.0 + x0_norm):
        raise DivergenceError(f"{name} diverged at iteration {k}: ||x|| = {size:.3g} grew past "
                              f"{DIVERGENCE_FACTOR:g} x (1 + ||x_0||); {hint}")
    return x


def bellman_to_tolerance(mdp, Q, tol, max_backups):
    """Iterate :math:`Q\\leftarrow B_xQ` until :math:`\\|B_xQ-Q\\|_\\infty\\le` ``tol``. Returns ``(Q, backups)``;
    every application of :math:`B_x` (the last one included: it is what certifies the tolerance) is counted.
    Raises RuntimeError after ``max_backups`` applications."""
    gamma, tau, r = mdp.gamma, mdp.tau, mdp.r
    backups = 0
    while True:
        BQ = r + gamma * mdp.expect(soft_max_rows(Q, tau))
        backups += 1
        residual = float(np.max(np.abs(BQ - Q)))
        Q = BQ
        if residual <= tol:
            return Q, backups
        if backups >= max_backups:
            raise RuntimeError(f"lower level not solved to tol={tol:g} in {max_backups} backups "
                               f"(residual {residual:.3g}); raise max_inner or loosen tol")


def policy_evaluation_iterative(mdp, pi, b, y0, tol, max_sweeps, transpose=False, P_pi=None):
    """Solve :math:`(I-\\gamma P_\\pi)y=b` (or its transpose) by the fixed-point iteration
    :math:`y\\leftarrow b+\\gamma P_\\pi y` from ``y0`` until successive iterates differ by at most ``tol`` (sup norm).

    With ``P_pi`` (an already formed (S, S) matrix) each sweep costs ``1/A`` backup; without it, each sweep is a
    matrix-free pass over :math:`P` (1 backup). Returns ``(y, cost_in_backups, sweeps)``.
    """
    y = np.zeros(mdp.S) if y0 is None else np.asarray(y0, dtype=np.float64).copy()
    gamma = mdp.gamma
    unit = 1.0 / mdp.A if P_pi is not None else 1.0
    sweeps = 0
    while True:
        if P_pi is not None:
            y_new = b + gamma * (P_pi.T @ y if transpose else P_pi @ y)
        elif transpose:
            y_new = b + gamma * mdp.adjoint(pi * y[:, None])
        else:
            y_new = b + gamma * (pi * mdp.expect(y)).sum(axis=1)
        sweeps += 1
        change = float(np.max(np.abs(y_new - y)))
        y = y_new
        if change <= tol:
            return y, sweeps * unit, sweeps
        if sweeps >= max_sweeps:
            raise RuntimeError(f"policy evaluation not converged to tol={tol:g} in {max_sweeps} sweeps "
                               f"(change {change:.3g})")


class TrueGradientTracker:
    """Monitors a run with the exact lower-level solution: :math:`\\|\\nabla\\phi(x_k)\\|` by eq. (9),
    :math:`\\phi(x_k)`, and the solution itself (for the merit terms of Theorem 6.4). Warm-started from the previous
    call, solved to ``TRACK_TOL``; its work is not counted in ``backups``."""

    def __init__(self, problem, enabled: bool):
        self.problem, self.enabled, self._Q = problem, enabled, None

    def __call__(self, x):
        if not self.enabled:
            return None
        mdp = self.problem.mdp(x)
        # solve_soft_mdp itself stops at float64 round-off when TRACK_TOL asks for less
        sol = solve_soft_mdp(mdp, tol=TRACK_TOL, Q0=self._Q)
        self._Q = sol.Q
        g = hypergradient(self.problem, x, sol)
        return {"true_grad_norm": float(np.linalg.norm(g)),
                "phi": float(self.problem.upper.value(x, sol.pi)),
                "solution": sol}
