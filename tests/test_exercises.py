"""The exercise checkers of sobirl_lite.exercises: a correct solution passes, each typical mistake fails with a
message that names the case, the size of the error and, where it can, the mistake.

The correct solutions below are written from the formulas, independently of the package (the chapters' reference
implementations are checked by the notebook tests, which call the same checkers on them).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sobirl_lite import exercises as ex


# ---------------------------------------------------------------------------------------------------------------
# Correct solutions, and each one with a typical mistake.
def _lse(Q, tau):
    m = Q.max(axis=1, keepdims=True)
    return (m + tau * np.log(np.exp((Q - m) / tau).sum(axis=1, keepdims=True)))[:, 0]


def soft_bellman(P, r, gamma, tau, Q):
    return r + gamma * P @ _lse(Q, tau)


def soft_bellman_no_gamma(P, r, gamma, tau, Q):
    return r + P @ _lse(Q, tau)


def soft_bellman_no_tau(P, r, gamma, tau, Q):
    return r + gamma * P @ _lse(Q, 1.0)


def soft_bellman_transposed(P, r, gamma, tau, Q):
    return r + gamma * np.einsum("tas,t->sa", P, _lse(Q, tau))


def soft_bellman_unstable(P, r, gamma, tau, Q):
    with np.errstate(over="ignore"):
        return r + gamma * P @ (tau * np.log(np.exp(Q / tau).sum(axis=1)))


def implicit_dV(P, gamma, pi, J):
    P_pi = np.einsum("sa,sat->st", pi, P)
    return np.linalg.solve(np.eye(len(pi)) - gamma * P_pi, np.einsum("sa,san->sn", pi, J))


def implicit_dV_transposed(P, gamma, pi, J):
    P_pi = np.einsum("sa,sat->st", pi, P)
    return np.linalg.solve(np.eye(len(pi)) - gamma * P_pi.T, np.einsum("sa,san->sn", pi, J))


def implicit_dV_sign(P, gamma, pi, J):
    return implicit_dV(P, -gamma, pi, J)


def adjoint_hypergradient(P, gamma, tau, pi, J, grad_pi_f, grad_x_f, sign=-1.0, transpose=True, inv_tau=None):
    S = len(pi)
    u = pi * grad_pi_f
    M = np.eye(S) - gamma * np.einsum("sa,sat->st", pi, P)
    b = u.sum(axis=1) - gamma * np.einsum("sat,sa->t", P, u)
    w = np.linalg.solve(M.T if transpose else M, b)
    inv_tau = 1.0 / tau if inv_tau is None else inv_tau
    return grad_x_f + inv_tau * np.einsum("san,sa->n", J, u + sign * pi * w[:, None])


def w_step(P, gamma, pi, u, w, xi):
    A_k = (np.eye(len(pi)) - gamma * np.einsum("sa,sat->st", pi, P)).T
    b = u.sum(axis=1) - gamma * np.einsum("sat,sa->t", P, u)
    return w - xi * A_k.T @ (A_k @ w - b)


def true_return(P, r_true, gamma, rho, pi):
    P_pi = np.einsum("sa,sat->st", pi, P)
    return rho @ np.linalg.solve(np.eye(len(pi)) - gamma * P_pi, (pi * r_true).sum(axis=1))


def exploration_term(C, pi, J, tau, states, actions, weights, transpose_C=False, subtract_V=True):
    S, A, n = J.shape
    C2 = C.reshape(S * A, S * A)
    dQ = ((C2.T if transpose_C else C2) @ J.reshape(S * A, n)).reshape(S, A, n)
    dV = np.einsum("sa,san->sn", pi, dQ) if subtract_V else np.zeros((S, n))
    diff = dQ[states, actions] - dV[states]                                  # (B, N, H, n)
    return np.einsum("bnh,bnhk->k", weights, diff) / (tau * states.shape[0])


def exploration_term_rows_swapped(C, pi, J, tau, states, actions, weights):
    """C's rows read as a * S + s (the order is s * A + a)."""
    S, A, n = J.shape
    return exploration_term(C.reshape(A, S, S * A).transpose(1, 0, 2).reshape(S * A, S, A), pi, J, tau, states,
                            actions, weights)


def m_sobirl_np(P, J, gamma, tau, x0, w0, beta, xi, N, K, warm=True):
    """Algorithm 1 from its lines, in numpy (the capstone's solution); ``warm=False`` restarts Q (a slip)."""
    S, A, n = J.shape
    x, w, Q = x0.copy(), w0.copy(), np.zeros((S, A))

    def lse(Q):
        m = Q.max(axis=1)
        return m + tau * np.log(np.exp((Q - m[:, None]) / tau).sum(axis=1))

    def softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    for _ in range(K):
        V = lse(Q)
        pi = softmax(Q / tau)
        A_k = (np.eye(S) - gamma * np.einsum("sa,sat->st", pi, P)).T
        u = pi * pi
        b = u.sum(axis=1) - gamma * np.einsum("sat,sa->t", P, u)
        w = w - xi * (A_k.T @ (A_k @ w - b))
        pi_aux = softmax((J @ x + gamma * P @ V) / tau)
        x = x - beta * (x + np.einsum("san,sa->n", J, u - pi_aux * w[:, None]) / tau)
        Q = Q if warm else np.zeros((S, A))
        for _ in range(N):
            Q = J @ x + gamma * P @ lse(Q)
    return x


def preference_loss(r, states, actions, labels):
    R = r[states, actions].sum(axis=-1)                                      # (B, 2)
    z = R[:, 0] - R[:, 1]
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def preference_loss_unstable(r, states, actions, labels):
    R = r[states, actions].sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p = 1 / (1 + np.exp(-(R[:, 0] - R[:, 1])))
        return float(np.mean(-labels * np.log(p) - (1 - labels) * np.log(1 - p)))


def hyper_term(r_all, actions, probs):
    taken = r_all.gather(-1, actions[..., None]).squeeze(-1)
    return (taken - (probs.detach() * r_all).sum(-1)).sum(dim=(1, 2))


def soft_policy_value(P, r, gamma, tau, pi, sign=1.0, with_tau=True):
    P_pi = np.einsum("sa,sat->st", pi, P)
    ent = -np.sum(pi * np.log(np.where(pi > 0, pi, 1.0)), axis=1)               # 0 log 0 = 0
    return np.linalg.solve(np.eye(len(pi)) - gamma * P_pi,
                           (pi * r).sum(axis=1) + sign * (tau if with_tau else 1.0) * ent)


def pmd_step(pi, Q, eta, tau):
    z = (np.log(pi) + eta * Q) / (1 + eta * tau)
    z -= z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def soft_policy_value_unguarded(P, r, gamma, tau, pi):
    """pi log pi without the 0 log 0 = 0 convention: NaN at a deterministic state."""
    P_pi = np.einsum("sa,sat->st", pi, P)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(pi * np.log(pi), axis=1)
    return np.linalg.solve(np.eye(len(pi)) - gamma * P_pi, (pi * r).sum(axis=1) + tau * ent)


def pmd_step_no_power(pi, Q, eta, tau):
    z = np.log(pi) + eta * Q / (1 + eta * tau)
    z -= z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def pmd_step_unstable(pi, Q, eta, tau):
    with np.errstate(over="ignore", invalid="ignore"):
        w = pi ** (1 / (1 + eta * tau)) * np.exp(eta * Q / (1 + eta * tau))
        return w / w.sum(axis=1, keepdims=True)


def welch_interval(a, b, level, ddof=1, quantile="t"):
    from scipy import stats

    va, vb = a.var(ddof=ddof) / a.size, b.var(ddof=ddof) / b.size
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    q = stats.t.ppf(0.5 + level / 2, dof) if quantile == "t" else stats.norm.ppf(0.5 + level / 2)
    d = a.mean() - b.mean()
    return d, d - q * se, d + q * se


# ---------------------------------------------------------------------------------------------------------------
CORRECT = [
    (ex.check_soft_bellman, soft_bellman),
    (ex.check_implicit_value_derivative, implicit_dV),
    (ex.check_adjoint_hypergradient, adjoint_hypergradient),
    (ex.check_w_step, w_step),
    (ex.check_true_return, true_return),
    (ex.check_exploration_term, exploration_term),
    (ex.check_preference_loss, preference_loss),
    (ex.check_hyper_term, hyper_term),
    (ex.check_soft_policy_value, soft_policy_value),
    (ex.check_pmd_step, pmd_step),
    (ex.check_welch_interval, welch_interval),
]


@pytest.mark.parametrize("check, solution", CORRECT, ids=[c.__name__ for c, _ in CORRECT])
def test_a_correct_solution_passes(check, solution, capsys):
    report = check(solution)
    assert report.cases >= 6 and report.max_abs_diff < 1e-8
    assert "all" in capsys.readouterr().out


# (checker, wrong solution, words the message must contain)
MISTAKES = [
    (ex.check_soft_bellman, soft_bellman_no_gamma, ["gamma left out"]),
    (ex.check_soft_bellman, soft_bellman_no_tau, ["without the temperature"]),
    (ex.check_soft_bellman, soft_bellman_transposed, ["swapped"]),
    (ex.check_soft_bellman, soft_bellman_unstable, ["large Q", "non-finite", "unshifted log-sum-exp"]),
    (ex.check_soft_bellman, lambda P, r, gamma, tau, Q: r + gamma * P @ Q.max(axis=1), ["hard max"]),
    (ex.check_implicit_value_derivative, implicit_dV_transposed, ["P_pi transposed"]),
    (ex.check_implicit_value_derivative, implicit_dV_sign, ["sign in I - gamma P_pi flipped"]),
    (ex.check_implicit_value_derivative, lambda P, g, pi, J: np.einsum("sa,san->sn", pi, J), ["inverse left out"]),
    (ex.check_implicit_value_derivative, lambda P, g, pi, J: implicit_dV(P, g, pi, J)[:, :1], ["shape"]),
    (ex.check_adjoint_hypergradient,
     lambda *a: adjoint_hypergradient(*a, transpose=False), ["instead of its transpose"]),
    (ex.check_adjoint_hypergradient, lambda *a: adjoint_hypergradient(*a, sign=1.0), ["added instead of subtracted"]),
    (ex.check_adjoint_hypergradient, lambda *a: adjoint_hypergradient(*a, inv_tau=1.0), ["1/tau left out"]),
    (ex.check_w_step, lambda P, g, pi, u, w, xi: w_step(P, g, pi, u, w, -xi), ["sign"]),
    (ex.check_w_step, lambda P, g, pi, u, w, xi: w_step(P, 1.0, pi, u, w, xi), ["gamma left out"]),
    (ex.check_w_step, lambda P, g, pi, u, w, xi: w - xi * (np.eye(len(w)) - g * np.einsum("sa,sat->st", pi, P)).T
     @ ((np.eye(len(w)) - g * np.einsum("sa,sat->st", pi, P)) @ w - u.sum(axis=1)
        + g * np.einsum("sat,sa->t", P, u)), ["not transposed"]),
    (ex.check_adjoint_hypergradient,
     lambda P, g, tau, pi, J, gp, gx: adjoint_hypergradient(P, g, tau, pi, J, gp, 0 * gx), ["direct term"]),
    (ex.check_true_return, lambda P, r, g, rho, pi: true_return(P, r, g, rho, pi) + 0.01, ["case 1"]),
    (ex.check_true_return, lambda P, r, g, rho, pi: rho @ np.linalg.solve(
        np.eye(len(pi)) - g * np.einsum("sa,sat->st", pi, P).T, (pi * r).sum(axis=1)), ["P_pi transposed"]),
    (ex.check_true_return, lambda P, r, g, rho, pi: true_return(P, r, 0.0, rho, pi), ["gamma left out"]),
    (ex.check_true_return, lambda P, r, g, rho, pi: true_return(P, r - np.log(pi), g, rho, pi), ["entropy bonus"]),
    (ex.check_true_return, lambda P, r, g, rho, pi: -true_return(P, r, g, rho, pi), ["sign"]),
    (ex.check_exploration_term, lambda *a: exploration_term(*a, transpose_C=True), ["C transposed"]),
    (ex.check_exploration_term, lambda *a: exploration_term(*a, subtract_V=False), ["grad V not subtracted"]),
    (ex.check_exploration_term, exploration_term_rows_swapped, ["a * S + s", "s * A + a"]),
    (ex.check_exploration_term, lambda C, pi, J, tau, s, a, w: exploration_term(C, pi, J, 1.0, s, a, w),
     ["1/tau left out"]),
    (ex.check_preference_loss, lambda r, s, a, y: preference_loss(r, s[:, ::-1], a[:, ::-1], y), ["sign flipped"]),
    (ex.check_preference_loss, preference_loss_unstable, ["return gaps in the hundreds", "non-finite",
                                                           "np.logaddexp"]),
    (ex.check_m_sobirl, lambda *a: m_sobirl_np(*a[:8], a[8], a[9] - 1), ["case 1"]),
    (ex.check_hyper_term, lambda r, a, p: hyper_term(r, a, p).detach(), ["shape"]),   # no gradient reaches r_all
    (ex.check_hyper_term, lambda r, a, p: (r.gather(-1, a[..., None]).squeeze(-1) - (p * r).sum(-1)).sum(dim=(1, 2)),
     ["not detached"]),
    (ex.check_hyper_term, lambda r, a, p: -hyper_term(r, a, p), ["sign"]),
    # right values, wrong gradient: reported in d/dr_all at a (B, 2, T, |A|) index, not a flat one
    (ex.check_hyper_term, lambda r, a, p: hyper_term(r, a, p) + 0.5 * (r - r.detach())[:, 0, 0, 0],
     ["in d/dr_all", "at index (0, 0, 0, 0)"]),
    (ex.check_hyper_term, lambda r, a, p: hyper_term(r, a, torch.full_like(p, 1.0 / p.shape[-1])),
     ["plain mean over actions"]),
    (ex.check_soft_policy_value, lambda *a: soft_policy_value(*a, sign=-1.0), ["subtracted instead of added"]),
    (ex.check_soft_policy_value, lambda *a: soft_policy_value(*a, with_tau=False), ["without the temperature"]),
    (ex.check_soft_policy_value, soft_policy_value_unguarded, ["deterministic", "non-finite"]),
    (ex.check_pmd_step, lambda pi, Q, eta, tau: pmd_step(pi, -Q, eta, tau), ["sign"]),
    (ex.check_pmd_step, pmd_step_no_power, ["power 1/(1 + eta tau)"]),
    (ex.check_pmd_step, pmd_step_unstable, ["thousands", "non-finite", "unshifted exponential"]),
    (ex.check_welch_interval, lambda a, b, lv: welch_interval(a, b, lv, ddof=0), ["ddof=0"]),
    (ex.check_welch_interval, lambda a, b, lv: welch_interval(a, b, lv, quantile="normal"), ["normal quantile"]),
    (ex.check_welch_interval, lambda a, b, lv: welch_interval(b, a, lv), ["case 1"]),
]


@pytest.mark.parametrize("check, wrong, words", MISTAKES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(MISTAKES)])
def test_a_typical_mistake_fails_with_a_helpful_message(check, wrong, words):
    with pytest.raises(ex.ExerciseCheckFailed) as info:
        check(wrong)
    msg = str(info.value)
    assert check.__name__ in msg and "case " in msg, msg
    assert "largest error" in msg or "shape" in msg or "non-finite" in msg, msg   # says by how much / what
    for word in words:
        assert word in msg, f"{word!r} missing from: {msg}"


def test_a_stub_raises_not_implemented_error_unchanged():
    """The student edition's notebooks rely on it: an unsolved exercise shows NotImplementedError, not a failure."""
    def stub(P, r, gamma, tau, Q):
        raise NotImplementedError("write soft_bellman")

    with pytest.raises(NotImplementedError, match="write soft_bellman"):
        ex.check_soft_bellman(stub)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="pass your function itself"):
        ex.check_soft_bellman(np.zeros(3))
    with pytest.raises(TypeError, match="pass your function itself"):
        ex.check_hyper_term(torch.zeros(3))


def test_the_checker_does_not_let_a_solution_corrupt_its_reference():
    """A solution that writes into its inputs must not change the expected answers of later cases."""
    def mutating(P, r, gamma, tau, Q):
        out = soft_bellman(P, r, gamma, tau, Q)
        P[...] = 0.0
        Q[...] = 0.0
        return out

    assert ex.check_soft_bellman(mutating).cases == 8


# ---------------------------------------------------------------------------------------------------------------
# The capstone, precision, digits, and answers that only call the package
def test_the_capstone_m_sobirl_passes_and_names_its_slips(capsys):
    report = ex.check_m_sobirl(m_sobirl_np)
    assert report.cases == 4 and report.max_abs_diff < 1e-8

    with pytest.raises(ex.ExerciseCheckFailed, match="no warm start"):
        ex.check_m_sobirl(lambda *a: m_sobirl_np(*a, warm=False))


def test_calling_the_package_is_rejected():
    """A one-line wrapper around the package's own function would pass with difference 0.0: it is refused, and the
    message names the function, whichever way it was imported."""
    from sobirl_lite import TabularMDP, soft_bellman as package_soft_bellman
    from sobirl_lite.algorithms.sobirl import pmd_update
    from sobirl_lite.soft import softmax_policy

    def wrapper(P, r, gamma, tau, Q):
        return package_soft_bellman(TabularMDP(P, r, gamma, tau), Q)

    with pytest.raises(ex.ExerciseCheckFailed, match=r"calls sobirl_lite\.mdp\.TabularMDP\.__init__"):
        ex.check_soft_bellman(wrapper)

    def pmd_wrapper(pi, Q, eta, tau):
        return softmax_policy(pmd_update(np.log(pi), Q, eta, tau), 1.0)

    with pytest.raises(ex.ExerciseCheckFailed, match="calls sobirl_lite.algorithms.sobirl.pmd_update"):
        ex.check_pmd_step(pmd_wrapper)

    def hyper_wrapper(r, a, p):
        from sobirl_lite.atari.estimator import hyper_term as package_hyper_term
        return package_hyper_term(r, a, p)

    with pytest.raises(ex.ExerciseCheckFailed, match="calls sobirl_lite.atari.estimator.hyper_term"):
        ex.check_hyper_term(hyper_wrapper)
    # an honest answer after a refused one still passes: the hook is removed
    import sys
    assert sys.getprofile() is None
    assert ex.check_soft_bellman(soft_bellman).cases == 8


def test_a_float32_answer_is_told_its_precision():
    # the numpy checkers' rtol 1e-7 admits float32 round-off where values are O(1); a tighter comparison names it
    expected = np.array([-2.974184312, 0.5])
    ok, msg, _ = ex._compare(expected.astype(np.float32), expected, 1e-9, 1e-10)
    assert not ok and "float32" in msg and "compute in float64" in msg and "agrees to float32 precision" in msg

    def hyper_float32(r, a, p):
        return hyper_term(r.float(), a, p.float())

    with pytest.raises(ex.ExerciseCheckFailed) as info:
        ex.check_hyper_term(hyper_float32)
    assert "float32" in str(info.value) and "agrees to float32 precision" in str(info.value)


def test_messages_print_enough_digits_to_show_the_difference():
    """An error of 3e-7 on a value near -2.97 must not print as 'yours -2.97418, expected -2.97418'."""
    with pytest.raises(ex.ExerciseCheckFailed) as info:
        ex.check_true_return(lambda *a: true_return(*a) * (1 + 3e-7))
    msg = str(info.value)
    yours, expected = (m.group(1) for m in __import__("re").finditer(r"(?:yours|expected) (-?[0-9.e+-]+)", msg))
    assert yours != expected, msg
    assert abs(float(yours) / float(expected) - 1 - 3e-7) < 5e-8, msg
    assert ex._fmt_pair(-2.974184, -2.9741843) == "yours -2.974184, expected -2.9741843"
