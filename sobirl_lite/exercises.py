"""Checkers for the book's implementation exercises: a student writes a function, a checker grades it.

Each ``check_*`` function calls the student's function on a handful of random instances and compares the answer with
the one this package computes (``soft_bellman``, ``implicit_derivatives``, ``hypergradient``, line 4 of
``m_sobirl``, ``UpperValue``, ``exploration_weights``, ``PreferenceModel``, ``atari.estimator.hyper_term``). On the
first case that disagrees it raises :class:`ExerciseCheckFailed` naming the case (its sizes and parameters), the
entry that is furthest off and by how much, and, when the wrong answer coincides with a typical slip (a missing
gamma, a transposed matrix, a softmax without its temperature, a flipped sign...), which slip it looks like. When every
case agrees it prints one line and returns a :class:`CheckReport`.

A stub that still raises ``NotImplementedError`` is not caught: the error reaches the notebook unchanged, which is
what the student edition's notebooks expect of an exercise nobody has solved yet.

Conventions: plain numpy arrays in, plain arrays out, so that a solution needs nothing from this package. ``P`` is
(S, A, S) with ``P[s, a, s2]`` = probability of moving from ``s`` to ``s2`` under action ``a``; policies and
``Q`` are (S, A); values are (S,).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .hypergrad import adjoint_vector, hypergradient, implicit_derivatives
from .mdp import TabularMDP
from .bilevel import BilevelProblem
from .rewards import LinearReward, TabularReward
from .soft import evaluate_policy, soft_bellman, soft_max, softmax_policy, solve_soft_mdp
from .upper import QuadraticUpper, UpperValue

__all__ = ["ExerciseCheckFailed", "CheckReport", "check_soft_bellman", "check_implicit_value_derivative",
           "check_adjoint_hypergradient", "check_w_step", "check_true_return", "check_exploration_term",
           "check_preference_loss", "check_hyper_term", "check_soft_policy_value", "check_pmd_step",
           "check_welch_interval", "check_m_sobirl"]


class ExerciseCheckFailed(AssertionError):
    """A student's function disagrees with the package on some case (the message says which and by how much)."""


class CheckReport(NamedTuple):
    """What a passing check saw: its name, how many cases, and the largest absolute difference found."""

    exercise: str
    cases: int
    max_abs_diff: float

    def _ipython_display_(self):
        """Nothing: the check has printed its one line already (a notebook would repeat it as a tuple)."""


@dataclass
class _Case:
    """One random instance: a label for messages, the arguments passed to the student's function, the package's
    answer, and the wrong answers that typical slips would give (name -> value)."""

    label: str
    args: tuple
    expected: np.ndarray
    slips: dict
    overflow_hint: str = ""        # the slip that shows as inf/nan on this case (an unshifted exponential)
    parts: tuple | None = None     # ((name, shape), ...) of a flattened answer


def _fmt_index(idx, shape) -> str:
    return "" if not shape else f" at index {tuple(int(i) for i in idx)}"


def _fmt_pair(y: float, e: float) -> str:
    """``yours ..., expected ...`` with enough significant digits to show their difference to about two digits
    (6 at least, 17 at most: the last is all a float64 holds)."""
    y, e = float(y), float(e)
    digits = 6
    if y != e and np.isfinite(y) and np.isfinite(e):
        scale = max(abs(y), abs(e))
        digits = int(min(17, max(6, np.ceil(np.log10(scale / abs(y - e))) + 2)))
    return f"yours {y:.{digits}g}, expected {e:.{digits}g}"


# Answers in these dtypes carry about this many significant digits; the checks compare to float64 round-off.
_LOW_PRECISION = {"float32": "about 7", "float16": "about 3", "bfloat16": "about 3"}


def _dtype_name(value) -> str:
    """The dtype of a numpy array or torch tensor as a short name ('float32'), '' for anything else."""
    dtype = getattr(value, "dtype", None)
    return "" if dtype is None else str(dtype).replace("torch.", "")


def _locate(idx, parts) -> str:
    """`` in NAME at index (...)`` for a flat index into the concatenation of named parts, else the plain index."""
    if parts is None or len(idx) != 1:
        return _fmt_index(idx, (1,) if idx else ())
    flat = int(idx[0])
    for name, shape in parts:
        size = int(np.prod(shape))
        if flat < size:
            return f" in {name} at index {tuple(int(i) for i in np.unravel_index(flat, shape))}"
        flat -= size
    return _fmt_index(idx, (1,))


def _compare(yours, expected, rtol, atol, parts=None):
    """(ok, message, max_abs_diff) for one answer against one expected array.

    ``parts``: ((name, shape), ...) when the answer is several tensors flattened into one vector (a value and its
    gradients); a mismatch is then reported by the tensor's name and its own index.
    """
    expected = np.asarray(expected, dtype=np.float64)
    precision = _dtype_name(yours)
    try:
        yours = np.asarray(yours, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        return False, f"returned {type(yours).__name__}, which is not an array of numbers ({err})", np.inf
    if yours.shape != expected.shape:
        return False, f"returned shape {yours.shape}; expected {expected.shape}", np.inf
    if not np.all(np.isfinite(yours)):
        bad = np.argwhere(~np.isfinite(yours))[0] if yours.ndim else ()
        return False, f"returned a non-finite value{_locate(tuple(bad), parts) if yours.ndim else ''}", np.inf
    diff = np.abs(yours - expected)
    tol = atol + rtol * np.abs(expected)
    if np.all(diff <= tol):
        return True, "", float(diff.max(initial=0.0))
    idx = np.unravel_index(int(np.argmax(diff - tol)), diff.shape) if diff.ndim else ()
    y, e = (yours[idx], expected[idx]) if diff.ndim else (float(yours), float(expected))
    rel = float(np.linalg.norm(yours - expected) / max(np.linalg.norm(expected), 1e-300))
    where = _locate(idx, parts) if diff.ndim else ""
    msg = (f"largest error {float(diff.max()):.3g}{where} ({_fmt_pair(y, e)}); "
           f"relative error of the whole answer {rel:.2g}")
    if precision in _LOW_PRECISION:
        agrees = rel < 1e-4
        msg += (f". Your answer is {precision} ({_LOW_PRECISION[precision]} significant digits) and the check "
                f"compares to float64 round-off: " + ("it agrees to " + precision + " precision, so compute in "
                "float64 (np.float64 arrays, torch.float64 tensors)" if agrees else
                "compute in float64 (np.float64 arrays, torch.float64 tensors), then look at the error again"))
    return False, msg, float(diff.max())


# The package's own files, except this one: an answer that calls into them is the package's answer, not the
# student's. Watched with a profile hook, so a function imported under any name is caught.
_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep
_THIS_FILE = str(Path(__file__).resolve())


class _PackageCalls:
    """Context manager that records the first function of ``sobirl_lite`` (outside this module) called inside it."""

    def __init__(self):
        self.first: str | None = None

    def _hook(self, frame, event, arg):
        if event == "call" and self.first is None:
            name = frame.f_code.co_filename
            if name.startswith(_PACKAGE_DIR) and name != _THIS_FILE:
                module = "sobirl_lite." + name[len(_PACKAGE_DIR):-3].replace(os.sep, ".")
                self.first = f"{module}.{frame.f_code.co_qualname}"

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


def _run(exercise: str, fn: Callable, cases: list[_Case], rtol: float = 1e-7, atol: float = 1e-9,
         verbose: bool = True, parts=None) -> CheckReport:
    """Grade ``fn`` on every case; ``parts`` names the pieces of a flattened answer (see :func:`_compare`)."""
    if not callable(fn):
        raise TypeError(f"{exercise}: pass your function itself (not its result); got {type(fn).__name__}")
    worst = 0.0
    for k, case in enumerate(cases, 1):
        args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in case.args)  # a solution may not mutate ours
        with _PackageCalls() as calls:
            out = fn(*args)                  # NotImplementedError from a stub propagates on purpose
        if calls.first is not None:
            raise ExerciseCheckFailed(
                f"{exercise}: your function calls {calls.first}, part of the package it is checked against, so "
                "the check would compare the package with itself. Write the computation yourself (numpy, or "
                "torch where the exercise asks for it).")
        ok, msg, diff = _compare(out, case.expected, rtol, atol, case.parts or parts)
        if not ok:
            hints = []
            for slip, wrong in case.slips.items():
                same, _, _ = _compare(out, wrong, 1e-6, 1e-8)
                if same:
                    hints.append(slip)
            if not hints and case.overflow_hint and msg.startswith("returned a non-finite value"):
                hints.append(case.overflow_hint)
            hint = (" Your answer matches what one gets with this mistake: " + "; ".join(hints) + ".") if hints else ""
            raise ExerciseCheckFailed(f"{exercise}: case {k} of {len(cases)} ({case.label}) is wrong: {msg}.{hint}")
        worst = max(worst, diff)
    if verbose:
        print(f"{exercise}: all {len(cases)} random cases agree with sobirl_lite (largest difference {worst:.1e}).")
    return CheckReport(exercise, len(cases), worst)


def _random_transitions(rng, S, A):
    return rng.dirichlet(np.full(S, 0.5), size=(S, A))           # (S, A, S), rows sum to 1


def _sizes(rng, n_cases):
    """Distinct S and A (so that an axis mix-up changes the shape or the numbers), gamma and tau far from 1."""
    out = []
    for _ in range(n_cases):
        S = int(rng.integers(3, 9))
        A = int(rng.choice([a for a in range(2, 6) if a != S]))
        out.append((S, A, float(rng.uniform(0.5, 0.95)), float(10 ** rng.uniform(-0.7, 0.5))))
    return out


# ------------------------------------------------------------------------------------------------------------------
# Chapter 1: the soft Bellman operator B
def check_soft_bellman(fn, n_cases: int = 8, seed: int = 0) -> CheckReport:
    """Grade ``fn(P, r, gamma, tau, Q) -> (S, A)``, the soft Bellman operator
    :math:`(BQ)(s,a) = r(s,a) + \\gamma\\sum_{s'}P(s'|s,a)\\,\\tau\\log\\sum_{a'}e^{Q(s',a')/\\tau}`,
    against :func:`sobirl_lite.soft_bellman`. One case has large ``Q`` (an unshifted log-sum-exp overflows)."""
    rng = np.random.default_rng(seed)
    cases = []
    for k, (S, A, gamma, tau) in enumerate(_sizes(rng, n_cases)):
        P, r = _random_transitions(rng, S, A), rng.normal(size=(S, A))
        scale = 800.0 if k == n_cases - 1 else 3.0
        Q = rng.normal(scale=scale, size=(S, A))
        mdp = TabularMDP(P, r, gamma, tau)
        V = soft_max(Q, tau)
        slips = {
            "gamma left out": r + np.einsum("sat,t->sa", P, V),
            "log-sum-exp without the temperature tau": r + gamma * np.einsum("sat,t->sa", P, soft_max(Q, 1.0)),
            "hard max instead of the soft maximum": r + gamma * np.einsum("sat,t->sa", P, Q.max(axis=1)),
            "P read with its state axes swapped (P[s2, a, s] for P[s, a, s2])":
                r + gamma * np.einsum("tas,t->sa", P, V),
            "the policy's average of Q (eq. (7) without the entropy) instead of the soft maximum":
                r + gamma * np.einsum("sat,t->sa", P, (softmax_policy(Q, tau) * Q).sum(axis=1)),
        }
        label = f"S={S}, A={A}, gamma={gamma:.3f}, tau={tau:.3f}" + (", large Q" if scale > 100 else "")
        overflow = ("an unshifted log-sum-exp: exp(Q/tau) overflows for Q in the hundreds; subtract each row's "
                    "maximum m first, tau log sum_a exp(Q/tau) = m + tau log sum_a exp((Q - m)/tau)")
        cases.append(_Case(label, (P, r, gamma, tau, Q), soft_bellman(mdp, Q), slips,
                           overflow_hint=overflow if scale > 100 else ""))
    return _run("check_soft_bellman", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 2: the implicit derivative of V* (Prop. 4.1)
def check_implicit_value_derivative(fn, n_cases: int = 6, seed: int = 1) -> CheckReport:
    """Grade ``fn(P, gamma, pi, J) -> (S, n)``: :math:`\\nabla_x V^*_x = (I-\\gamma P_\\pi)^{-1}\\Pi_\\pi\\nabla r_x` with
    ``pi`` (S, A) the optimal policy and ``J`` (S, A, n) the reward Jacobian, against
    :func:`sobirl_lite.implicit_derivatives` on a linear reward with those features."""
    rng = np.random.default_rng(seed)
    cases = []
    for S, A, gamma, tau in _sizes(rng, n_cases):
        n = int(rng.integers(2, 6))
        P, J = _random_transitions(rng, S, A), rng.normal(size=(S, A, n))
        problem = BilevelProblem(P, LinearReward(J), QuadraticUpper(), gamma, tau)
        x = rng.normal(size=n)
        pi = solve_soft_mdp(problem.mdp(x), tol=1e-12).pi
        expected = implicit_derivatives(problem, x).dV
        P_pi = np.einsum("sa,sat->st", pi, P)
        rhs = np.einsum("sa,san->sn", pi, J)
        slips = {
            "the sign in I - gamma P_pi flipped": np.linalg.solve(np.eye(S) + gamma * P_pi, rhs),
            "P_pi transposed": np.linalg.solve(np.eye(S) - gamma * P_pi.T, rhs),
            "the plain mean over actions instead of the policy's average":
                np.linalg.solve(np.eye(S) - gamma * P_pi, J.mean(axis=1)),
            "the inverse left out (only the one-step term)": rhs,
        }
        cases.append(_Case(f"S={S}, A={A}, n={n}, gamma={gamma:.3f}", (P, gamma, pi, J), expected, slips))
    return _run("check_implicit_value_derivative", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 3: the hyper-gradient (9) in adjoint form
def check_adjoint_hypergradient(fn, n_cases: int = 6, seed: int = 2) -> CheckReport:
    """Grade ``fn(P, gamma, tau, pi, J, grad_pi_f, grad_x_f) -> (n,)``, eq. (9) in adjoint form:
    :math:`u=\\pi\\odot\\nabla_\\pi f`, :math:`w=(I-\\gamma P_\\pi)^{-\\top}(E-\\gamma P)^\\top u`,
    :math:`\\nabla\\phi=\\nabla_x f+\\frac1\\tau\\nabla r^\\top(u-\\pi\\odot Ew)`, against
    :func:`sobirl_lite.hypergradient` (linear reward with features ``J``, the synthetic quadratic upper level)."""
    rng = np.random.default_rng(seed)
    cases = []
    for S, A, gamma, tau in _sizes(rng, n_cases):
        n = int(rng.integers(2, 6))
        P, J = _random_transitions(rng, S, A), rng.normal(size=(S, A, n))
        problem = BilevelProblem(P, LinearReward(J), QuadraticUpper(), gamma, tau)
        x = rng.normal(size=n)
        pi = solve_soft_mdp(problem.mdp(x), tol=1e-12).pi
        gpi, gx = problem.upper.grad_pi(x, pi), problem.upper.grad_x(x, pi)
        expected = hypergradient(problem, x)
        u = pi * gpi
        P_pi = np.einsum("sa,sat->st", pi, P)
        b = u.sum(axis=1) - gamma * np.einsum("sat,sa->t", P, u)

        def grad(w, inv_tau=1.0 / tau, sign=-1.0):
            return gx + inv_tau * np.einsum("san,sa->n", J, u + sign * pi * w[:, None])

        slips = {
            "the solve with I - gamma P_pi instead of its transpose":
                grad(np.linalg.solve(np.eye(S) - gamma * P_pi, b)),
            "gamma left out of b = (E - gamma P)^T u":
                grad(np.linalg.solve((np.eye(S) - gamma * P_pi).T, u.sum(axis=1) - np.einsum("sat,sa->t", P, u))),
            "the value term added instead of subtracted":
                grad(np.linalg.solve((np.eye(S) - gamma * P_pi).T, b), sign=1.0),
            "the factor 1/tau left out": grad(np.linalg.solve((np.eye(S) - gamma * P_pi).T, b), inv_tau=1.0),
            "the direct term grad_x f left out": grad(np.linalg.solve((np.eye(S) - gamma * P_pi).T, b)) - gx,
        }
        cases.append(_Case(f"S={S}, A={A}, n={n}, gamma={gamma:.3f}, tau={tau:.3f}",
                           (P, gamma, tau, pi, J, gpi, gx), expected, slips))
    return _run("check_adjoint_hypergradient", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 4: line 4 of Algorithm 1
def check_w_step(fn, n_cases: int = 8, seed: int = 3) -> CheckReport:
    """Grade ``fn(P, gamma, pi, u, w, xi) -> (S,)``, one gradient step on :math:`\\frac12\\|A w - b\\|^2` with
    :math:`A=(I-\\gamma P_\\pi)^\\top` and :math:`b=(E-\\gamma P)^\\top u` (line 4 of Algorithm 1), as
    :func:`sobirl_lite.algorithms.m_sobirl` takes it. A further case starts at :math:`w^*`
    (:func:`sobirl_lite.adjoint_vector`), which one correct step must leave where it is."""
    rng = np.random.default_rng(seed)
    cases = []
    for k, (S, A, gamma, tau) in enumerate(_sizes(rng, n_cases)):
        P = _random_transitions(rng, S, A)
        mdp = TabularMDP(P, np.zeros((S, A)), gamma, tau)
        pi = rng.dirichlet(np.ones(A), size=S)
        u = rng.normal(size=(S, A))
        xi = float(rng.uniform(0.1, 0.6))
        at_fixed_point = k == n_cases - 1
        problem = BilevelProblem(P, TabularReward(S, A), QuadraticUpper(), gamma, tau)
        w = adjoint_vector(problem, mdp, pi, u) if at_fixed_point else rng.normal(size=S)
        A_k = (np.eye(S) - gamma * mdp.policy_matrix(pi)).T            # as line 3 of m_sobirl builds it
        b = u.sum(axis=1) - gamma * mdp.adjoint(u)
        A_0 = (np.eye(S) - mdp.policy_matrix(pi)).T                     # the same without gamma
        expected = w - xi * (A_k.T @ (A_k @ w - b))
        slips = {
            "A_k not transposed (I - gamma P_pi used where its transpose belongs)":
                w - xi * (A_k @ (A_k.T @ w - b)),
            "gamma left out": w - xi * (A_0.T @ (A_0 @ w - (u.sum(axis=1) - mdp.adjoint(u)))),
            "a step up the gradient (sign)": w + xi * (A_k.T @ (A_k @ w - b)),
            "b without the E^T u part": w - xi * (A_k.T @ (A_k @ w + gamma * mdp.adjoint(u))),
        }
        label = f"S={S}, A={A}, gamma={gamma:.3f}, xi={xi:.3f}" + (", w = w*" if at_fixed_point else "")
        cases.append(_Case(label, (P, gamma, pi, u, w, xi), expected, slips))
    return _run("check_w_step", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 5: the designer's objective, the true return of a policy
def check_true_return(fn, n_cases: int = 8, seed: int = 4) -> CheckReport:
    """Grade ``fn(P, r_true, gamma, rho, pi) -> float``: :math:`\\rho^\\top V^\\pi_u` with
    :math:`V^\\pi_u=(I-\\gamma P_\\pi)^{-1}r_{u,\\pi}`, the unregularised return that the reward designer scores
    (no entropy bonus), against :class:`sobirl_lite.UpperValue` (whose ``value`` is minus this number)."""
    rng = np.random.default_rng(seed)
    cases = []
    for S, A, gamma, tau in _sizes(rng, n_cases):
        P, r = _random_transitions(rng, S, A), rng.normal(size=(S, A))
        rho = rng.dirichlet(np.ones(S))
        pi = rng.dirichlet(np.ones(A), size=S)
        expected = -UpperValue(P, r, gamma, rho).value(None, pi)
        P_pi = np.einsum("sa,sat->st", pi, P)
        r_pi = (pi * r).sum(axis=1)
        ent = -(pi * np.log(pi)).sum(axis=1)
        slips = {
            "an entropy bonus added (the agent's soft value, not the designer's return)":
                rho @ np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi + ent),
            "gamma left out of the discounted sum (only the first step counted)": rho @ r_pi,
            "P_pi transposed": rho @ np.linalg.solve(np.eye(S) - gamma * P_pi.T, r_pi),
            "the sign of f (UpperValue.value is minus the return)":
                -(rho @ np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi)),
            "the uniform start instead of rho": np.linalg.solve(np.eye(S) - gamma * P_pi, r_pi).mean(),
        }
        cases.append(_Case(f"S={S}, A={A}, gamma={gamma:.3f}", (P, r, gamma, rho, pi), np.float64(expected), slips))
    return _run("check_true_return", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 6: the exploration term (14) of estimator (15)
def check_exploration_term(fn, n_cases: int = 6, seed: int = 5) -> CheckReport:
    """Grade ``fn(C, pi, J, tau, states, actions, weights) -> (n,)``, term (14):
    :math:`\\frac1{\\tau B}\\sum_b\\sum_{i,h}w_{b,i,h}\\,(\\widehat{\\nabla Q}-\\widehat{\\nabla V})(s^i_h,a^i_h)` with
    :math:`\\widehat{\\nabla Q}(s,a)=\\sum_{s',a'}C[(s,a),(s',a')]\\nabla r(s',a')` and
    :math:`\\widehat{\\nabla V}(s)=\\sum_a\\pi(a|s)\\widehat{\\nabla Q}(s,a)`. ``C`` is (S*A, S, A): its row for the
    pair (s, a) is ``C[s * A + a]`` (row-major, ``C.reshape(S, A, S, A)[s, a]``), and ``C[s * A + a, s2, a2]`` weighs
    ``grad r(s2, a2)``. ``J`` (S, A, n), ``states``/``actions``/``weights`` (B, N, H). Reference:
    :func:`sobirl_lite.estimators.exploration_weights`."""
    from .estimators import TupleBatch, exact_discounted_visits, exploration_weights

    rng = np.random.default_rng(seed)
    cases = []
    for S, A, gamma, tau in _sizes(rng, n_cases):
        n, B, N, H = int(rng.integers(2, 5)), int(rng.integers(3, 7)), int(rng.integers(1, 3)), int(rng.integers(2, 6))
        mdp = TabularMDP(_random_transitions(rng, S, A), np.zeros((S, A)), gamma, tau)
        pi = rng.dirichlet(np.ones(A), size=S)
        visits = exact_discounted_visits(mdp, pi)
        J = rng.normal(size=(S, A, n))
        states, actions = rng.integers(0, S, size=(B, N, H)), rng.integers(0, A, size=(B, N, H))
        weights = rng.normal(size=(B, N, H))
        batch = TupleBatch(states, actions, np.zeros((B, N, H)))
        reward = LinearReward(J)
        expected = reward.vjp(np.zeros(n), exploration_weights(visits, batch, weights)) / tau
        C = visits.C
        dQ = (C.reshape(S * A, S * A) @ J.reshape(S * A, n)).reshape(S, A, n)
        dV = np.einsum("sa,san->sn", pi, dQ)

        def term(table_Q, table_V, scale=1.0 / (tau * B)):
            diff = table_Q[states, actions] - table_V[states]
            return scale * np.einsum("bnh,bnhk->k", weights, diff)

        dQ_T = (C.reshape(S * A, S * A).T @ J.reshape(S * A, n)).reshape(S, A, n)
        # rows read as a * S + s instead of s * A + a
        dQ_rows = (C.reshape(A, S, S * A).transpose(1, 0, 2).reshape(S * A, S * A)
                   @ J.reshape(S * A, n)).reshape(S, A, n)
        slips = {
            "the factor 1/tau left out": term(dQ, dV, 1.0 / B),
            "grad V not subtracted (only grad Q)": term(dQ, np.zeros_like(dV)),
            "C transposed": term(dQ_T, np.einsum("sa,san->sn", pi, dQ_T)),
            "C's rows read in the order a * S + s (they are s * A + a)":
                term(dQ_rows, np.einsum("sa,san->sn", pi, dQ_rows)),
            "averaged over every step instead of over the B tuples": term(dQ, dV, 1.0 / (tau * B * N * H)),
            "the plain mean over actions in grad V instead of the policy's average": term(dQ, dQ.mean(axis=1)),
        }
        cases.append(_Case(f"S={S}, A={A}, n={n}, B={B}, N={N}, H={H}, tau={tau:.3f}",
                           (C, pi, J, tau, states, actions, weights), expected, slips))
    return _run("check_exploration_term", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 7: the Bradley-Terry loss
def check_preference_loss(fn, n_cases: int = 8, seed: int = 6) -> CheckReport:
    """Grade ``fn(r, states, actions, labels) -> float``: the mean over pairs of
    :math:`\\ell_{\\rm BCE}(y,\\sigma(R(\\tau^1)-R(\\tau^2)))` with undiscounted segment returns
    :math:`R(\\tau)=\\sum_h r(s_h,a_h)`. ``r`` (S, A), ``states``/``actions`` (B, 2, H), ``labels`` (B,) in [0, 1]
    (1 = first segment preferred). Reference: :class:`sobirl_lite.rlhf.PreferenceModel` on a tabular reward. The
    last case has return gaps in the hundreds, where an unstable ``log(sigmoid(z))`` gives infinities."""
    from .estimators import TupleBatch
    from .rlhf import PreferenceModel

    rng = np.random.default_rng(seed)
    cases = []
    for k, (S, A, gamma, tau) in enumerate(_sizes(rng, n_cases)):
        B, H = int(rng.integers(4, 12)), int(rng.integers(2, 8))
        scale = 200.0 if k == n_cases - 1 else 1.5
        r = rng.normal(scale=scale, size=(S, A))
        states, actions = rng.integers(0, S, size=(B, 2, H)), rng.integers(0, A, size=(B, 2, H))
        labels = rng.integers(0, 2, size=B).astype(np.float64)
        if k % 2:
            labels = rng.uniform(size=B)                             # soft labels
        model = PreferenceModel(TabularReward(S, A))
        batch = TupleBatch(states, actions, np.zeros((B, 2, H)), labels)
        expected = model.loss(r.ravel(), batch)
        R = r[states, actions].sum(axis=-1)

        def bce(z, y):
            return float(np.mean(np.logaddexp(0.0, z) - y * z))

        slips = {
            "the logit with its sign flipped (R2 - R1)": bce(R[:, 1] - R[:, 0], labels),
            "the labels read the other way round (1 = second segment preferred)": bce(R[:, 0] - R[:, 1], 1 - labels),
            "summed over pairs instead of averaged": B * bce(R[:, 0] - R[:, 1], labels),
            "segment returns averaged over steps instead of summed": bce((R[:, 0] - R[:, 1]) / H, labels),
        }
        label = f"B={B} pairs, H={H}, S={S}, A={A}" + (", soft labels" if k % 2 else "") + (
            ", return gaps in the hundreds" if scale > 100 else "")
        overflow = ("log(sigmoid(z)) computed as written: sigmoid underflows to 0 for gaps in the hundreds; use "
                    "log(1 + exp(z)) = np.logaddexp(0, z)")
        cases.append(_Case(label, (r, states, actions, labels), np.float64(expected), slips,
                           overflow_hint=overflow if scale > 100 else ""))
    return _run("check_preference_loss", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Chapter 8: the exploration term of the practical estimator (78)
def check_hyper_term(fn, n_cases: int = 6, seed: int = 7) -> CheckReport:
    """Grade ``fn(r_all, actions, probs) -> (B,)`` (torch tensors), the per-pair sum of (78)'s second factor,
    :math:`\\sum_{i,t}[r_x(s^i_t,a^i_t)-\\sum_a\\pi_k(a|s^i_t)r_x(s^i_t,a)]`, with ``r_all`` (B, 2, T, |A|),
    ``actions`` (B, 2, T) int64 and ``probs`` (B, 2, T, |A|), against
    :func:`sobirl_lite.atari.estimator.hyper_term`. Both the values and the gradient with respect to ``r_all`` are
    compared: ``probs`` must be treated as a constant (detached), as in the paper's code."""
    from .atari.estimator import hyper_term

    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_cases):
        B, T, A = int(rng.integers(2, 6)), int(rng.integers(2, 9)), int(rng.integers(3, 10))
        r_np = rng.normal(size=(B, 2, T, A))
        probs_np = rng.dirichlet(np.ones(A), size=(B, 2, T))
        actions_np = rng.integers(0, A, size=(B, 2, T))
        g_np = rng.normal(size=B)                      # a random upstream gradient: compares full vector-Jacobians

        expected = _value_and_grad(hyper_term, r_np, actions_np, probs_np, g_np)

        def taken(r, a):
            return r.gather(-1, a[..., None]).squeeze(-1)

        def slip(f):
            return _value_and_grad(f, r_np, actions_np, probs_np, g_np)

        slips = {
            "probs not detached (gradient flows into the policy)":
                slip(lambda r, a, p: (taken(r, a) - (p * r).sum(-1)).sum(dim=(1, 2))),
            "the expectation subtracted from the wrong side (sign)":
                slip(lambda r, a, p: ((p.detach() * r).sum(-1) - taken(r, a)).sum(dim=(1, 2))),
            "the plain mean over actions instead of the policy's average":
                slip(lambda r, a, p: (taken(r, a) - r.mean(-1)).sum(dim=(1, 2))),
            "only the first segment of each pair":
                slip(lambda r, a, p: (taken(r, a) - (p.detach() * r).sum(-1))[:, 0].sum(-1)),
        }
        cases.append(_Case(f"B={B}, T={T}, |A|={A}; compared: the (B,) values, then d/dr_all, then d/dprobs",
                           (r_np, actions_np, probs_np, g_np), expected, slips,
                           parts=(("the (B,) values", (B,)), ("d/dr_all (the gradient with respect to r_all)",
                                                             (B, 2, T, A)),
                                  ("d/dprobs (the gradient with respect to probs)", (B, 2, T, A)))))

    def graded(r_np, actions_np, probs_np, g_np):
        return _value_and_grad(fn, r_np, actions_np, probs_np, g_np)

    if not callable(fn):
        raise TypeError(f"check_hyper_term: pass your function itself (not its result); got {type(fn).__name__}")
    return _run("check_hyper_term", graded, cases, rtol=1e-9, atol=1e-10)


def _value_and_grad(f, r_np, actions_np, probs_np, g_np):
    """``f``'s (B,) output, then the vector-Jacobian products with a random upstream ``g`` with respect to ``r_all``
    and ``probs``, flattened into one array (the output alone when it is not a differentiable (B,) tensor)."""
    import torch

    r = torch.tensor(r_np, requires_grad=True)
    probs = torch.tensor(probs_np, requires_grad=True)
    out = f(r, torch.tensor(actions_np), probs)
    if not isinstance(out, torch.Tensor):
        return np.asarray(out, dtype=np.float64)
    if out.shape != (r_np.shape[0],) or not out.requires_grad:
        return out.detach().numpy()
    (out * torch.tensor(g_np, dtype=out.dtype)).sum().backward()
    gp = probs.grad if probs.grad is not None else torch.zeros_like(probs)
    flat = np.concatenate([out.detach().numpy(), r.grad.numpy().ravel(), gp.numpy().ravel()])
    # an answer computed in lower precision keeps its dtype, so that the message can name it
    return flat.astype(np.float32) if out.dtype in (torch.float32, torch.float16, torch.bfloat16) else flat


# ------------------------------------------------------------------------------------------------------------------
# Background chapter: exact soft policy evaluation, eq. (3)
def check_soft_policy_value(fn, n_cases: int = 8, seed: int = 8) -> CheckReport:
    """Grade ``fn(P, r, gamma, tau, pi) -> (S,)``: the soft value of a policy,
    :math:`V^\\pi=(I-\\gamma P_\\pi)^{-1}\\big(r_\\pi+\\tau\\mathcal H(\\pi)\\big)` with
    :math:`r_\\pi(s)=\\sum_a\\pi(a|s)r(s,a)` and the entropy :math:`\\mathcal H(\\pi)(s)=-\\sum_a\\pi\\log\\pi`, against
    :func:`sobirl_lite.evaluate_policy`. One case has a deterministic row (0 log 0 = 0)."""
    rng = np.random.default_rng(seed)
    cases = []
    for k, (S, A, gamma, tau) in enumerate(_sizes(rng, n_cases)):
        P, r = _random_transitions(rng, S, A), rng.normal(size=(S, A))
        pi = rng.dirichlet(np.ones(A), size=S)
        if k == n_cases - 1:
            pi[0] = np.eye(A)[0]                                   # a deterministic state
        expected = evaluate_policy(TabularMDP(P, r, gamma, tau), pi)[0]
        P_pi = np.einsum("sa,sat->st", pi, P)
        r_pi = (pi * r).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.nansum(pi * np.log(pi), axis=1)

        def solve(M, b):
            return np.linalg.solve(M, b)

        slips = {
            "the entropy subtracted instead of added": solve(np.eye(S) - gamma * P_pi, r_pi - tau * ent),
            "the entropy without the temperature tau": solve(np.eye(S) - gamma * P_pi, r_pi + ent),
            "no entropy at all (the unregularised value)": solve(np.eye(S) - gamma * P_pi, r_pi),
            "P_pi transposed": solve(np.eye(S) - gamma * P_pi.T, r_pi + tau * ent),
            "gamma left out of the discounting (one step only)": r_pi + tau * ent,
        }
        label = f"S={S}, A={A}, gamma={gamma:.3f}, tau={tau:.3f}" + (
            ", pi deterministic in state 0" if k == n_cases - 1 else "")
        cases.append(_Case(label, (P, r, gamma, tau, pi), expected, slips))
    return _run("check_soft_policy_value", fn, cases)


# ------------------------------------------------------------------------------------------------------------------
# Convergence chapter: one step of policy mirror descent (the inner solver of SoBiRL)
def check_pmd_step(fn, n_cases: int = 8, seed: int = 9) -> CheckReport:
    """Grade ``fn(pi, Q, eta, tau) -> (S, A)``: one KL-proximal policy mirror descent step with entropy,
    :math:`\\pi^+(a|s)\\propto\\pi(a|s)^{1/(1+\\eta\\tau)}\\exp\\big(\\eta Q(s,a)/(1+\\eta\\tau)\\big)`, against
    :func:`sobirl_lite.algorithms.sobirl.pmd_update`. The last case has :math:`\\eta Q` in the thousands, where an
    unshifted exponential overflows."""
    from .algorithms.sobirl import pmd_update

    rng = np.random.default_rng(seed)
    cases = []
    for k, (S, A, gamma, tau) in enumerate(_sizes(rng, n_cases)):
        pi = rng.dirichlet(np.ones(A), size=S)
        scale = 1000.0 if k == n_cases - 1 else 2.0
        Q = rng.normal(scale=scale, size=(S, A))
        eta = float(10 ** rng.uniform(-1, 1))
        if scale > 100:
            eta, tau = 5.0, 0.3                 # eta Q / (1 + eta tau) reaches thousands: exp overflows
        expected = softmax_policy(pmd_update(np.log(pi), Q, eta, tau), 1.0)

        def normalised(z):
            return softmax_policy(z, 1.0)

        c = 1.0 + eta * tau
        slips = {
            "pi not raised to the power 1/(1 + eta tau) (the entropy's pull left out)":
                normalised(np.log(pi) + eta * Q / c),
            "Q not divided by 1 + eta tau": normalised(np.log(pi) / c + eta * Q),
            "a step away from Q (sign)": normalised((np.log(pi) - eta * Q) / c),
            "eta left out": normalised((np.log(pi) + Q) / (1.0 + tau)),
            "the old policy ignored (softmax of Q / tau, soft policy iteration)": normalised(Q / tau),
        }
        label = f"S={S}, A={A}, eta={eta:.3f}, tau={tau:.3f}" + (", eta Q in the thousands" if scale > 100 else "")
        overflow = ("an unshifted exponential: exp(eta Q / (1 + eta tau)) overflows for eta Q in the thousands; "
                    "subtract each row's maximum exponent before exponentiating (a softmax is shift-invariant)")
        cases.append(_Case(label, (pi, Q, eta, tau), expected, slips, overflow_hint=overflow if scale > 100 else ""))
    return _run("check_pmd_step", fn, cases, rtol=1e-7, atol=1e-10)


# ------------------------------------------------------------------------------------------------------------------
# MinAtar chapter: Welch's interval for the difference of two learners' mean returns over seeds
def check_welch_interval(fn, n_cases: int = 8, seed: int = 10) -> CheckReport:
    """Grade ``fn(a, b, level) -> (difference, low, high)``: Welch's ``level`` confidence interval for
    ``mean(a) - mean(b)`` from two independent samples of unequal size and variance (sample variances with
    ``ddof=1``, Welch-Satterthwaite degrees of freedom, a two-sided Student-t quantile), against
    :func:`sobirl_lite.atari.study.difference_ci`. Samples have 3 to 8 values, as seeds in a study do."""
    from scipy import stats

    from .atari.study import difference_ci

    rng = np.random.default_rng(seed)
    cases = []
    for k in range(n_cases):
        na, nb = int(rng.integers(3, 9)), int(rng.integers(3, 9))
        a = rng.normal(loc=rng.normal(scale=5), scale=10 ** rng.uniform(-0.5, 1.5), size=na)
        b = rng.normal(loc=rng.normal(scale=5), scale=10 ** rng.uniform(-0.5, 1.5), size=nb)
        level = float(rng.choice([0.9, 0.95, 0.99]))
        expected = np.array(difference_ci(a, b, level))
        diff = a.mean() - b.mean()
        va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
        se = np.sqrt(va + vb)
        dof = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
        t = stats.t.ppf(0.5 + level / 2, dof)

        def interval(half):
            return np.array([diff, diff - half, diff + half])

        va0, vb0 = a.var() / na, b.var() / nb
        dof0 = (va0 + vb0) ** 2 / (va0 ** 2 / (na - 1) + vb0 ** 2 / (nb - 1))
        slips = {
            "variances with ddof=0 (population) instead of ddof=1": interval(
                stats.t.ppf(0.5 + level / 2, dof0) * np.sqrt(va0 + vb0)),
            "the normal quantile instead of Student's t": interval(stats.norm.ppf(0.5 + level / 2) * se),
            "the pooled degrees of freedom na + nb - 2 instead of Welch's": interval(
                stats.t.ppf(0.5 + level / 2, na + nb - 2) * se),
            "a one-sided quantile (ppf(level) instead of ppf(1/2 + level/2))": interval(stats.t.ppf(level, dof) * se),
            "the standard deviations added instead of the variances": interval(
                t * (np.sqrt(va) + np.sqrt(vb))),
        }
        cases.append(_Case(f"{na} and {nb} seeds, level {level}", (a, b, level), expected, slips))

    def graded(a, b, level):
        out = fn(a, b, level)
        return np.asarray(out, dtype=np.float64) if isinstance(out, (tuple, list)) else out

    if not callable(fn):
        raise TypeError(f"check_welch_interval: pass your function itself (not its result); got {type(fn).__name__}")
    return _run("check_welch_interval", graded, cases)


# ------------------------------------------------------------------------------------------------------------------
# Capstone (chapter 4's exercises): Algorithm 1, M-SoBiRL, end to end
def check_m_sobirl(fn, n_cases: int = 4, seed: int = 11) -> CheckReport:
    """Grade ``fn(P, J, gamma, tau, x0, w0, beta, xi, N, K) -> (n,)``: ``K`` iterations of Algorithm 1 (M-SoBiRL)
    from ``x0`` (n,), ``Q_0 = 0`` (S, A) and ``w_0 = w0`` (S,), on the bilevel problem with the linear reward
    :math:`r_x(s,a)=J(s,a,:)\\cdot x` (``J`` (S, A, n)) and the upper level
    :math:`f(x,\\pi)=\\frac12\\|x\\|^2+\\frac12\\|\\pi\\|^2`, with step sizes ``beta`` (line 6) and ``xi`` (line 4) and
    ``N`` warm-started soft Bellman backups per iteration (lines 7-9). Returns :math:`x_K`. Against
    :func:`sobirl_lite.algorithms.m_sobirl` on fresh random problems (not the book's synthetic one)."""
    from .algorithms.m_sobirl import MSoBiRLConfig, m_sobirl

    rng = np.random.default_rng(seed)
    cases = []
    for S, A, gamma, tau in _sizes(rng, n_cases):
        n, N, K = int(rng.integers(2, 5)), int(rng.integers(1, 4)), int(rng.integers(15, 30))
        P, J = _random_transitions(rng, S, A), rng.normal(size=(S, A, n))
        x0, w0 = rng.normal(size=n), rng.normal(size=S)
        beta, xi = float(rng.uniform(0.02, 0.1)), float(rng.uniform(0.1, 0.4))
        problem = BilevelProblem(P, LinearReward(J), QuadraticUpper(), gamma, tau)
        config = MSoBiRLConfig(beta=beta, xi=xi, inner_steps=N, iterations=K, progress=False)
        expected = m_sobirl(problem, x0, config, Q0=np.zeros((S, A)), w0=w0).x
        args = (P, J, gamma, tau, x0, w0, beta, xi, N, K)
        slips = {
            "Q restarted from zero every iteration (no warm start)": _m_sobirl_np(*args, warm=False),
            "the exact solve w = A_k^{-1} b_k instead of one gradient step (line 4)": _m_sobirl_np(*args, exact=True),
            "pi_k instead of the auxiliary policy softmax((r_x + gamma P V_k) / tau) in line 5":
                _m_sobirl_np(*args, aux=False),
            "the w-term added instead of subtracted in line 5": _m_sobirl_np(*args, sign=1.0),
            "an ascent step on x (line 6)": _m_sobirl_np(*args, ascent=True),
        }
        cases.append(_Case(f"S={S}, A={A}, n={n}, gamma={gamma:.3f}, tau={tau:.3f}, N={N}, K={K}, "
                           f"beta={beta:.3f}, xi={xi:.3f}", args, expected, slips))
    return _run("check_m_sobirl", fn, cases, rtol=1e-7, atol=1e-9)


def _m_sobirl_np(P, J, gamma, tau, x0, w0, beta, xi, N, K, warm=True, exact=False, aux=True, sign=-1.0,
                 ascent=False):
    """Algorithm 1 in plain numpy with one slip switched on (the checker's catalogue of wrong answers)."""
    S, A, n = J.shape
    x, w, Q = np.array(x0, dtype=np.float64), np.array(w0, dtype=np.float64), np.zeros((S, A))
    for _ in range(K):
        pi = softmax_policy(Q, tau)
        V = soft_max(Q, tau)
        A_k = (np.eye(S) - gamma * np.einsum("sa,sat->st", pi, P)).T
        u = pi * pi                                            # pi ⊙ grad_pi f with f = ½||pi||²
        b = u.sum(axis=1) - gamma * np.einsum("sat,sa->t", P, u)
        w = np.linalg.solve(A_k, b) if exact else w - xi * (A_k.T @ (A_k @ w - b))
        r = J @ x
        pi_aux = softmax_policy(r + gamma * P @ V, tau) if aux else pi
        g = x + np.einsum("san,sa->n", J, u + sign * pi_aux * w[:, None]) / tau
        x = x + beta * g if ascent else x - beta * g
        r = J @ x
        Q = Q if warm else np.zeros((S, A))
        for _ in range(N):
            Q = r + gamma * P @ soft_max(Q, tau)
    return x
