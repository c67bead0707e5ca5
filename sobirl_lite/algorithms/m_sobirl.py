"""M-SoBiRL, the model-based algorithm of the paper (Algorithm 1 of Yang et al., Section 4), top to bottom in one function.

Each outer iteration does three cheap things instead of solving the lower level:

* it reads the policy and value off the current soft-Q estimate (line 2, eqs. (5) and (10));
* it takes **one** gradient step on the least-squares problem whose solution is the adjoint vector
  :math:`w^*_x` of eq. (9) (lines 3-4);
* it forms the hyper-gradient estimate of line 5, moves :math:`x`, and refreshes :math:`Q` with a *constant* number
  :math:`N` of soft Bellman backups warm-started from the previous :math:`Q` (lines 6-10).

Theorem 6.4 says this is enough for :math:`\\frac1K\\sum_k\\|\\nabla\\phi(x_k)\\|^2=\\mathcal O(1/K)`.

Cost per outer iteration, in backups (convention in :mod:`sobirl_lite.algorithms._common`):
forming :math:`P_{\\pi_k}` (1) + :math:`(E-\\gamma P)^\\top u` (1) + two products with the (S, S) matrix
:math:`A_k` (2/A) + :math:`N` backups = :math:`N + 2 + 2/A`. The product :math:`PV_k` behind the auxiliary policy
of line 5 is the one the first backup of line 9 needs (:math:`B_{x_{k+1}}Q_k=r_{x_{k+1}}+\\gamma PV_k`), so it is
computed once (with :math:`N=0` it costs one extra backup). The ablation ``w_update="exact"`` replaces line 4 by
the solve :math:`w=A_k^{-1}b_k`, charged :func:`~sobirl_lite.algorithms._common.direct_solve_cost` instead of 2/A.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve, svds

from ..hypergrad import adjoint_vector
from ..bilevel import BilevelProblem
from ._common import (DIVERGENCE_FACTOR, DivergenceError, RunOptions, TrueGradientTracker, check_array,
                      check_positive, check_x0, descend, direct_solve_cost, log_iteration, progress_range,
                      soft_max_rows, softmax_rows)
from .history import History


@dataclass
class MSoBiRLConfig(RunOptions):
    """Hyperparameters of Algorithm 1, defaults from the authors' synthetic experiment (chapter 4 of the book)."""

    beta: float = 8e-3            # step size for x (line 6)
    xi: float = 0.5               # step size for the least-squares variable w (line 4; the code's `zeta`)
    inner_steps: int = 10         # N, soft Bellman backups per outer iteration (lines 7-9); a constant
    iterations: int = 3000        # K, outer iterations
    w_update: str = "step"        # "step": line 4 as written; "exact": w = A_k^{-1} b_k (an ablation, not Alg. 1)

    def validate(self):
        self.validate_run_options()
        check_positive("beta", self.beta)
        check_positive("xi", self.xi)
        check_positive("inner_steps", self.inner_steps, integer=True, allow_zero=True)
        check_positive("iterations", self.iterations, integer=True, allow_zero=True)
        if self.w_update not in ("step", "exact"):
            raise ValueError(f"w_update must be 'step' or 'exact'; got {self.w_update!r}")
        return self


def _I_minus_gamma(P_pi, gamma):
    """:math:`I - \\gamma P_\\pi` as a dense array or, for a sparse model, a CSR matrix."""
    if sp.issparse(P_pi):
        return (sp.identity(P_pi.shape[0], format="csr") - gamma * P_pi).tocsr()
    return np.eye(P_pi.shape[0]) - gamma * P_pi


def m_sobirl(problem: BilevelProblem, x0, config: MSoBiRLConfig | None = None, Q0=None, w0=None) -> History:
    """Run M-SoBiRL (Algorithm 1) from ``x0`` (n,). Returns a :class:`History` whose ``.x`` is :math:`x_K`.

    ``Q0`` (S, A) is the initial soft-Q estimate (zeros, i.e. the uniform policy, by default); ``w0`` (S,) the
    initial least-squares variable (:math:`\\mathcal N(0, I)` drawn from ``config.seed`` by default).

    Row ``k`` of the history describes the start of iteration ``k``: ``grad_norm`` = :math:`\\|\\hat g_k\\|`,
    ``true_grad_norm`` = :math:`\\|\\nabla\\phi(x_k)\\|` and ``phi`` = :math:`\\phi(x_k)` when tracked (else
    ``phi`` = :math:`f(x_k,\\pi_k)`), ``inner_iterations`` = N, ``backups`` = backups spent to produce
    :math:`x_k` and :math:`Q_k`. When tracking, ``history.extra`` holds the merit terms of Theorem 6.4:
    ``"w_error"`` = :math:`\\|w_k-w^*_{x_k}\\|` and ``"q_error"`` = :math:`\\|Q_k-Q^*_{x_k}\\|_\\infty`.
    """
    cfg = (config or MSoBiRLConfig()).validate()
    x = check_x0(problem, x0)
    S, A, gamma, tau = problem.S, problem.A, problem.gamma, problem.tau
    reward, upper = problem.reward, problem.upper
    rng = np.random.default_rng(cfg.seed)
    w = rng.standard_normal(S) if w0 is None else check_array("w0", w0, (S,))
    Q = np.zeros((S, A)) if Q0 is None else check_array("Q0", Q0, (S, A))
    x0_norm, w0_norm = float(np.linalg.norm(x)), float(np.linalg.norm(w))

    hist = History("M-SoBiRL", asdict(cfg))
    hist.extra.update(w_error=[], q_error=[], tracked_iterations=[])
    tracker = TrueGradientTracker(problem, cfg.track_true_grad)
    N = int(cfg.inner_steps)
    cost_per_iteration = max(N, 1) + 2 + 2.0 / A     # see the module docstring
    if cfg.w_update == "exact":                       # a direct solve instead of the two products with A_k
        cost_per_iteration += direct_solve_cost(gamma) - 2.0 / A
    backups = 0.0
    mdp = problem.mdp(x)                                          # M_tau(x_0): its reward r_{x_0}

    for k in progress_range(cfg.iterations, cfg.progress, "M-SoBiRL"):
        row = dict(iteration=k, inner_iterations=N, backups=backups)
        if cfg.track_true_grad and k % cfg.track_every == 0:   # monitoring only: not part of the algorithm
            row.update(_merit_terms(problem, tracker, mdp, x, Q, w, hist.extra, k))

        # line 2: recover the policy (eq. (5)) and the value by eq. (10), V = Σ_a π (Q - τ log π)
        pi = softmax_rows(Q, tau)
        log_pi = (Q - soft_max_rows(Q, tau)[:, None]) / tau       # exact even where π underflows
        V = (pi * (Q - tau * log_pi)).sum(axis=1)

        # line 3: least-squares data  A_k = (I - γ P_{π_k})^T,  b_k = (E - γP)^T (π_k ⊙ ∇_π f(x_k, π_k))
        A_k = _I_minus_gamma(mdp.policy_matrix(pi), gamma).T
        u = pi * upper.grad_pi(x, pi)                             # (S, A)
        b = u.sum(axis=1) - gamma * mdp.adjoint(u)                # E^T u - γ P^T u, (S,)

        # line 4: ONE gradient step on ½||A_k w - b_k||² (or, as an ablation, its exact minimiser)
        if cfg.w_update == "exact":
            w = spsolve(A_k.tocsc(), b) if sp.issparse(A_k) else np.linalg.solve(A_k, b)
        else:
            w = w - cfg.xi * (A_k.T @ (A_k @ w - b))
        if not (np.all(np.isfinite(w)) and np.linalg.norm(w) <= DIVERGENCE_FACTOR * (1.0 + w0_norm)):
            hist.x = x
            raise DivergenceError(_w_step_diagnosis(A_k, cfg.xi, k, "w"), history=hist)

        # line 5: the estimator; ∂_x T(V_k, x_k) = Π_{π̃} ∇r_x with the auxiliary policy π̃ = softmax_τ(r_x + γPV_k)
        PV = mdp.expect(V)                                         # (S, A); reused by the first backup of line 9
        pi_aux = softmax_rows(mdp.r + gamma * PV, tau)
        g = (np.asarray(upper.grad_x(x, pi), dtype=np.float64)
             + reward.vjp(x, u) / tau                              # (1/τ) ∇r^T (π ⊙ ∇_π f)
             - reward.vjp(x, pi_aux * w[:, None]) / tau)           # (1/τ) ∂_x T(V_k, x_k)^T w_{k+1}

        row["grad_norm"] = float(np.linalg.norm(g))
        row.setdefault("phi", float(upper.value(x, pi)))
        if log_iteration(hist, row, x, cfg):
            break

        # line 6: the upper-level step
        try:
            x = descend(x, g, cfg.beta, "M-SoBiRL", k, x0_norm)
        except DivergenceError as err:                            # name xi when the w-step is the culprit
            hist.x = x
            raise DivergenceError(_w_step_diagnosis(A_k, cfg.xi, k, "x", str(err)), history=hist) from None

        # lines 7-10: N soft Bellman backups Q <- B_{x_{k+1}} Q, warm-started from Q_k
        mdp = problem.mdp(x)
        for t in range(N):
            # B_{x_{k+1}} Q = r_{x_{k+1}} + γ P V_Q; for t = 0, V_Q = V_k and P V_k is already known from line 5
            Q = mdp.r + gamma * (PV if t == 0 else mdp.expect(soft_max_rows(Q, tau)))
        backups += cost_per_iteration

    hist.x = x
    hist.extra["Q"], hist.extra["w"] = Q, w
    hist.extra["cost_per_iteration"] = cost_per_iteration
    return hist


def _w_step_diagnosis(A_k, xi, k, what, fallback=None):
    """Why ``what`` (w or x) exploded at iteration ``k``: line 4 contracts iff :math:`0<\\xi<2/\\sigma_{\\max}(A_k)^2`;
    if xi is below that bound the cause is the step on x (``fallback``, or a generic message)."""
    if sp.issparse(A_k):
        sigma = float(svds(A_k.astype(np.float64), k=1, return_singular_vectors=False)[0])
    else:
        sigma = float(np.linalg.norm(A_k, 2))
    limit = 2.0 / sigma ** 2
    if xi >= limit:
        return (f"M-SoBiRL: {what} diverged at iteration {k} because the w-step (line 4) is unstable: xi = {xi:g} "
                f"is above 2/sigma_max(A_k)^2 = {limit:.4g}; reduce xi")
    return fallback or f"M-SoBiRL: {what} diverged at iteration {k} (xi = {xi:g} is below {limit:.4g}); reduce beta"


def _merit_terms(problem, tracker, mdp, x, Q, w, extra, k):
    """The three terms of the merit function of Theorem 6.4 at the start of an iteration: :math:`\\phi(x_k)`,
    :math:`\\|w_k-w^*_{x_k}\\|` and :math:`\\|Q_k-Q^*_{x_k}\\|_\\infty` (plus :math:`\\|\\nabla\\phi(x_k)\\|`).
    Monitoring only; appends to ``extra`` and returns the History columns."""
    t = tracker(x)
    pi_star = t["solution"].pi
    w_star = adjoint_vector(problem, mdp, pi_star, pi_star * problem.upper.grad_pi(x, pi_star))
    extra["w_error"].append(float(np.linalg.norm(w - w_star)))
    extra["q_error"].append(float(np.max(np.abs(Q - t["solution"].Q))))
    extra["tracked_iterations"].append(k)
    return {"true_grad_norm": t["true_grad_norm"], "phi": t["phi"]}
