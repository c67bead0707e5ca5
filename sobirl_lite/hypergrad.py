"""The closed-form, fully first-order hyper-gradient (eqs (8), (9) and Prop. 4.1 of Yang et al.) and two references.

Data flow of :func:`hypergradient`::

    reward.value(x) -> problem.mdp(x) -> solve_soft_mdp -> pi*  -> one solve with (I - gamma P_pi*)^T
                    -> reward.vjp                         -> grad phi(x)

Writing :math:`u = \\pi^* \\odot \\nabla_\\pi f` and :math:`w = (I-\\gamma P_{\\pi^*})^{-\\top}(E-\\gamma P)^\\top u`
(the least-squares variable :math:`w^*_x` that Algorithm 1 tracks), eq. (9) becomes

.. math:: \\nabla\\phi(x) = \\nabla_x f + \\tfrac1\\tau \\nabla r_x^\\top\\big(u - \\pi^*\\odot (E w)\\big),

because :math:`\\partial_x\\mathcal T(V^*_x, x) = \\Pi_{\\pi^*}\\nabla r_x`. That is one linear solve in :math:`S`
unknowns and one vector-Jacobian product of the reward: the cost does not grow with ``n`` (the adjoint form).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

# torch is imported where it is used: the rest of the package runs without it (in Pyodide, torch does not exist).

from .bilevel import BilevelProblem
from .soft import SoftSolution, solve_soft_mdp, solve_tolerance
from .mdp import PolicySystem, sharing


def _solve(problem: BilevelProblem, x, solution: SoftSolution | None, tol=1e-10):
    return solution if solution is not None else solve_soft_mdp(problem.mdp(x), tol=tol)


def phi(problem: BilevelProblem, x, solution: SoftSolution | None = None, tol: float = 1e-10) -> float:
    """The hyper-objective :math:`\\phi(x) = f(x, \\pi^*_x)` (eq. (1))."""
    sol = _solve(problem, x, solution, tol)
    return float(problem.upper.value(np.asarray(x, dtype=np.float64), sol.pi))


def adjoint_vector(problem: BilevelProblem, mdp, pi, u, system: PolicySystem | None = None):
    """:math:`w = (I-\\gamma P_\\pi)^{-\\top}(E-\\gamma P)^\\top u` for ``u`` (S, A): the solution :math:`w^*_x` of the
    least-squares problem of Algorithm 1, line 4, when :math:`\\pi = \\pi^*_x`. Returns (S,). ``system`` may pass the
    factorisation of :math:`I-\\gamma P_\\pi` (a fresh one is made otherwise)."""
    b = u.sum(axis=1) - mdp.gamma * mdp.adjoint(u)
    return (PolicySystem(mdp, pi) if system is None else system).solve(b, transpose=True)


def _system(mdp, sol: SoftSolution) -> PolicySystem:
    """The factorisation of :math:`I-\\gamma P_{\\pi}` for ``sol.pi``: the solver's own when it serves (the same
    policy, or a nearby one refined to round-off), GMRES after value iteration on a sparse or large dense model, a
    fresh one otherwise (see :class:`PolicySystem`)."""
    system = getattr(sol, "system", None)
    # value iteration left no factorisation; it ran because the chain mixes fast, where GMRES converges quickly
    # (PolicySystem factorises after all if it does not), unless a factorisation is cheaper anyway (small dense)
    krylov = (system is None and getattr(sol, "method", "") == "value_iteration"
              and PolicySystem.krylov_pays(mdp))
    return PolicySystem(mdp, sol.pi, reuse=system, krylov=krylov)


def centred_policy_gradient(pi, g):
    """:math:`u = \\pi\\odot(g-\\bar g)` with :math:`\\bar g(s)=\\sum_a\\pi(a|s)g(s,a)`, for ``pi``, ``g`` (S, A).

    Since :math:`\\sum_a\\pi\\nabla\\log\\pi=0`, replacing :math:`\\pi\\odot g` by ``u`` in (9) leaves
    :math:`\\nabla\\phi` unchanged, and :math:`(E-\\gamma P)^\\top u=-\\gamma P^\\top u` because every row of
    ``u`` sums to 0. Differences are taken from each state's most likely action :math:`a^*`, so the entry of
    :math:`a^*`, :math:`-\\pi(a^*|s)\\sum_{b}\\pi(b|s)(g(s,b)-g(s,a^*))`, is computed without cancellation even
    when :math:`\\pi` is nearly deterministic (then every entry of ``u`` is as small as the off-mode mass).
    """
    pi = np.asarray(pi, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    a_star = pi.argmax(axis=1)
    d = g - np.take_along_axis(g, a_star[:, None], axis=1)    # d(s, a*) = 0 exactly
    return pi * (d - (pi * d).sum(axis=1, keepdims=True))


class HypergradientParts(NamedTuple):
    """The three terms of eq. (9), each (n,): ``direct`` = :math:`\\nabla_x f`, ``policy`` =
    :math:`\\frac1\\tau\\nabla r_x^\\top(\\pi^*\\odot\\nabla_\\pi f)`, ``value`` = the term with :math:`w^*_x`; and ``w`` (S,)."""

    direct: np.ndarray
    policy: np.ndarray
    value: np.ndarray
    w: np.ndarray

    @property
    def total(self):
        return self.direct + self.policy + self.value


def hypergradient_parts(problem: BilevelProblem, x, solution: SoftSolution | None = None) -> HypergradientParts:
    """Eq. (9) split into its three terms (see :class:`HypergradientParts`); ``solution`` reuses a lower-level solve.

    The split is the paper's, for teaching: near a deterministic policy (small :math:`\\tau`) the policy and value
    terms grow like :math:`1/\\tau` and cancel, so their sum loses digits; :func:`hypergradient` uses the centred
    arrangement, which does not.
    """
    x = problem.reward._check_x(x)
    mdp = problem.mdp(x)
    sol = _solve(problem, x, solution)
    pi, tau = sol.pi, problem.tau
    system = _system(mdp, sol)
    with sharing(system):
        g_pi, g_x = problem.upper.grad_pi(x, pi), problem.upper.grad_x(x, pi)
    u = pi * g_pi                                             # pi* ⊙ ∇_π f, (S, A)
    w = adjoint_vector(problem, mdp, pi, u, system)           # (S,)
    return HypergradientParts(
        direct=np.asarray(g_x, dtype=np.float64),
        policy=problem.reward.vjp(x, u) / tau,
        value=-problem.reward.vjp(x, pi * w[:, None]) / tau,  # -(1/τ) ∂_x T(V*, x)^T w
        w=w,
    )


def hypergradient(problem: BilevelProblem, x, solution: SoftSolution | None = None,
                  tol: float | None = None) -> np.ndarray:
    """The closed-form hyper-gradient :math:`\\nabla\\phi(x)`, eq. (9), in adjoint form. Returns (n,).

    ``x`` (n,). ``solution`` may pass an already computed :func:`solve_soft_mdp` result for ``problem.mdp(x)``;
    otherwise the lower level is solved here, to the Bellman residual that guarantees
    :math:`\\|\\log\\pi-\\log\\pi^*\\|_\\infty\\le` ``tol`` (:func:`~sobirl_lite.soft.solve_tolerance`), or to
    ``1e-10`` when ``tol`` is None. The gradient's error is then ``tol`` times the sensitivity of (9) to the
    policy (about 1 in relative terms on the book's problems; ``benchmarks/hypergradient.py`` measures it).

    Cost given the solution: one transposed solve with :math:`I-\\gamma P_{\\pi^*}`, using the factorisation the
    solver left in ``solution.system`` when it serves (the same or a nearby policy, refined to round-off; see
    :class:`~sobirl_lite.mdp.PolicySystem`) and a fresh one otherwise, one product with :math:`P^\\top` and one
    ``reward.vjp``. The upper level's gradient is evaluated inside :func:`~sobirl_lite.mdp.sharing`, so an upper
    objective on the same dynamics (reward shaping) reuses the factorisation too.

    Arrangement: :math:`\\nabla\\phi=\\nabla_xf+\\frac1\\tau\\nabla r_x^\\top(u-\\pi^*\\odot w)` with the centred
    :math:`u` of :func:`centred_policy_gradient` and :math:`(I-\\gamma P_{\\pi^*})^\\top w=-\\gamma P^\\top u`. It equals
    (9) exactly, and near a deterministic policy it avoids the cancellation of two :math:`O(1/\\tau)` terms that
    the literal form suffers (tested for :math:`\\tau` from :math:`10^{-3}` to 10).
    """
    x = problem.reward._check_x(x)
    mdp = problem.mdp(x)
    if solution is None:  # only pi* enters (9): with a tolerance, stop on the span of the residual
        solution = (solve_soft_mdp(mdp, tol=1e-10) if tol is None
                    else solve_soft_mdp(mdp, tol=solve_tolerance(mdp, tol), span=True))
    pi = solution.pi
    system = _system(mdp, solution)
    with sharing(system):
        g_pi, g_x = problem.upper.grad_pi(x, pi), problem.upper.grad_x(x, pi)
    u = centred_policy_gradient(pi, g_pi)                     # rows sum to 0, so E^T u = 0
    w = system.solve(-mdp.gamma * mdp.adjoint(u), transpose=True)
    # the two reward terms of (9) share one vjp: ∇r^T u - ∇r^T (Π_π^T w)
    return np.asarray(g_x, dtype=np.float64) + problem.reward.vjp(x, u - pi * w[:, None]) / problem.tau


class ImplicitDerivatives(NamedTuple):
    """Forward-form implicit derivatives at :math:`x`: ``dV`` (S, n) = :math:`\\nabla_x V^*_x`, ``dQ`` (S, A, n) =
    :math:`\\nabla_x Q^*_x`, ``dlogpi`` (S, A, n) = :math:`\\nabla_x\\log\\pi^*_x` (eq. (8))."""

    dV: np.ndarray
    dQ: np.ndarray
    dlogpi: np.ndarray


def implicit_derivatives(problem: BilevelProblem, x, solution: SoftSolution | None = None) -> ImplicitDerivatives:
    """:math:`\\nabla V^* = (I-\\gamma P_{\\pi^*})^{-1}\\Pi_{\\pi^*}\\nabla r_x` (Prop. 4.1),
    :math:`\\nabla Q^* = \\nabla r_x + \\gamma P\\nabla V^*` and eq. (8),
    :math:`\\nabla\\log\\pi^* = \\frac1\\tau(\\nabla Q^* - E\\nabla V^*)`.

    Materialises the (S, A, n) reward Jacobian and solves with ``n`` right-hand sides: meant for teaching and
    checks; :func:`hypergradient` is the efficient route.
    """
    x = problem.reward._check_x(x)
    mdp = problem.mdp(x)
    sol = _solve(problem, x, solution)
    J = problem.reward.jacobian(x)                        # (S, A, n)
    dT = np.einsum("sa,san->sn", sol.pi, J)               # ∂_x T(V*, x) = Π_π* ∇r
    dV = _system(mdp, sol).solve(dT)                      # (S, n)
    dQ = J + mdp.gamma * mdp.expect(dV)                   # (S, A, n)
    return ImplicitDerivatives(dV=dV, dQ=dQ, dlogpi=(dQ - dV[:, None, :]) / problem.tau)


def forward_hypergradient(problem: BilevelProblem, x, solution: SoftSolution | None = None) -> np.ndarray:
    """Eq. (9) through the forward derivatives, :math:`\\nabla_x f + (\\mathrm{diag}(\\pi^*)\\nabla\\log\\pi^*)^\\top
    \\nabla_\\pi f`. Costs ``n`` solves; agrees with :func:`hypergradient` to round-off."""
    x = problem.reward._check_x(x)
    sol = _solve(problem, x, solution)
    d = implicit_derivatives(problem, x, sol)
    u = sol.pi * problem.upper.grad_pi(x, sol.pi)
    return np.asarray(problem.upper.grad_x(x, sol.pi), dtype=np.float64) + np.einsum("sa,san->n", u, d.dlogpi)


def finite_difference_hypergradient(problem: BilevelProblem, x, eps: float = 1e-5, tol: float = 1e-12) -> np.ndarray:
    """Central finite differences :math:`(\\phi(x+\\epsilon e_i) - \\phi(x-\\epsilon e_i))/2\\epsilon`, (n,).

    Costs ``2n`` lower-level solves (each warm-started from the solution at ``x``, to tolerance ``tol``): a
    reference for tests, not for use.
    """
    x = problem.reward._check_x(x)
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}")
    Q0 = solve_soft_mdp(problem.mdp(x), tol=tol).Q
    grad = np.empty(problem.n)
    for i in range(problem.n):
        vals = []
        for sign in (1.0, -1.0):
            xi = x.copy()
            xi[i] += sign * eps
            sol = solve_soft_mdp(problem.mdp(xi), tol=tol, Q0=Q0, method="policy_iteration")
            vals.append(problem.upper.value(xi, sol.pi))
        grad[i] = (vals[0] - vals[1]) / (2 * eps)
    return grad


def _torch_transitions(problem: BilevelProblem):
    import torch

    P = problem.P
    if hasattr(P, "tocoo"):
        coo = P.tocoo()
        idx = torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
        return torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data), coo.shape, check_invariants=False).coalesce()
    return torch.as_tensor(P.reshape(problem.S * problem.A, problem.S))


def unrolled_step(problem: BilevelProblem, x, iters: int, Q0=None, P_t=None):
    """Autograd through ``iters`` soft Bellman iterations :math:`Q \\leftarrow B_x Q` from ``Q0`` (zeros by default,
    treated as a constant), then :math:`\\pi_K = \\mathrm{softmax}_\\tau(Q_K)`.

    Returns ``(grad (n,), Q_K (S, A), pi_K (S, A))``: ``grad`` is the exact gradient of
    :math:`x \\mapsto f(x, \\pi_K(x))`; ``Q_K`` lets the ITD baseline warm-start its next unroll. ``P_t`` may pass
    the torch transition matrix to avoid rebuilding it.
    """
    import torch

    x = problem.reward._check_x(x)
    if int(iters) < 0:
        raise ValueError(f"iters must be non-negative; got {iters}")
    S, A, gamma, tau = problem.S, problem.A, problem.gamma, problem.tau
    P_t = _torch_transitions(problem) if P_t is None else P_t
    x_t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    r = problem.reward.value_torch(x_t)
    Q = torch.zeros(S, A, dtype=torch.float64) if Q0 is None else torch.as_tensor(np.asarray(Q0, dtype=np.float64))
    for _ in range(int(iters)):
        V = tau * torch.logsumexp(Q / tau, dim=1)
        Q = r + gamma * (P_t @ V).reshape(S, A)
    pi_t = torch.softmax(Q / tau, dim=1)
    pi = pi_t.detach().numpy()
    g_pi = torch.as_tensor(np.asarray(problem.upper.grad_pi(x, pi), dtype=np.float64))
    (dx,) = torch.autograd.grad(pi_t, x_t, grad_outputs=g_pi, allow_unused=True)
    through_pi = np.zeros(problem.n) if dx is None else dx.numpy()
    grad = np.asarray(problem.upper.grad_x(x, pi), dtype=np.float64) + through_pi
    return grad, Q.detach().numpy().copy(), pi


def unrolled_hypergradient(problem: BilevelProblem, x, iters: int, Q0=None) -> np.ndarray:
    """The ITD baseline: autograd through ``iters`` soft Bellman iterations :math:`Q \\leftarrow B_x Q` from ``Q0``
    (zeros by default), then :math:`\\pi_K = \\mathrm{softmax}_\\tau(Q_K)`. Returns (n,): the exact gradient of
    :math:`x \\mapsto f(x, \\pi_K(x))`, which tends to :math:`\\nabla\\phi(x)` as ``iters`` grows (at rate
    :math:`O(\\gamma^{K})`). Memory and time grow linearly with ``iters``.
    """
    return unrolled_step(problem, x, iters, Q0)[0]
