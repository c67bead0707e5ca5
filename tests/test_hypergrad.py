from unittest import mock

import mpmath as mp
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings, strategies as st

import sobirl_lite as sl
from helpers import linear_problem, rel_err

HYP = settings(max_examples=20, deadline=None)


@HYP
@given(st.integers(2, 6), st.integers(2, 4), st.integers(1, 5), st.integers(0, 10_000),
       st.floats(0.0, 0.95), st.floats(0.05, 3.0), st.sampled_from(["quadratic", "value"]))
def test_hypergradient_matches_central_differences(S, A, n, seed, gamma, tau, upper):
    prob, x = linear_problem(S, A, n, gamma, tau, seed, upper)
    g = sl.hypergradient(prob, x)
    fd = sl.finite_difference_hypergradient(prob, x, eps=1e-5)
    assert np.linalg.norm(g - fd) <= 1e-6 * max(np.linalg.norm(fd), 1e-3), (g, fd)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hypergradient_hard_regime_gamma_099_tau_001(seed):
    prob, x = linear_problem(6, 3, 3, gamma=0.99, tau=0.01, seed=seed, upper="value")
    x = 0.01 * x  # rewards on the scale of tau, so the policy is not fully deterministic
    g = sl.hypergradient(prob, x)
    assert np.all(np.isfinite(g))
    fd = sl.finite_difference_hypergradient(prob, x, eps=1e-7)
    assert rel_err(g, fd) <= 1e-4


@HYP
@given(st.integers(2, 6), st.integers(1, 4), st.integers(1, 6), st.integers(0, 10_000),
       st.floats(0.0, 0.99), st.floats(0.05, 3.0), st.sampled_from(["quadratic", "value"]))
def test_adjoint_and_forward_forms_agree(S, A, n, seed, gamma, tau, upper):
    prob, x = linear_problem(S, A, n, gamma, tau, seed, upper)
    sol = sl.solve_soft_mdp(prob.mdp(x), tol=1e-12)
    adj, fwd = sl.hypergradient(prob, x, sol), sl.forward_hypergradient(prob, x, sol)
    assert np.max(np.abs(adj - fwd)) <= 1e-10 * max(1.0, np.max(np.abs(fwd)))
    parts = sl.hypergradient_parts(prob, x, sol)
    np.testing.assert_allclose(parts.total, adj, atol=1e-10)


def test_unrolled_hypergradient_converges_to_closed_form():
    prob, x = linear_problem(6, 3, 4, gamma=0.8, tau=0.5, seed=3)
    g = sl.hypergradient(prob, x)
    errs = [np.linalg.norm(sl.unrolled_hypergradient(prob, x, K) - g) for K in (2, 5, 10, 20, 40, 80)]
    assert all(b < a for a, b in zip(errs[:4], errs[1:5])), errs  # strictly decreasing until round-off
    assert errs[-1] < 1e-9 * np.linalg.norm(g)
    assert errs[0] > 1e-3  # a few iterations are genuinely inaccurate: the test can fail
    # geometric rate: roughly gamma per iteration
    assert errs[3] / errs[2] < 0.8 ** 10 * 10


def test_implicit_derivatives_match_finite_differences():
    prob, x = linear_problem(4, 3, 3, gamma=0.85, tau=0.6, seed=5)
    d = sl.implicit_derivatives(prob, x)
    eps = 1e-6
    cols_V, cols_Q, cols_lp = [], [], []
    for e in np.eye(3):
        sp_, sm = (sl.solve_soft_mdp(prob.mdp(x + s * eps * e), tol=1e-13) for s in (1, -1))
        cols_V.append((sp_.V - sm.V) / (2 * eps))
        cols_Q.append((sp_.Q - sm.Q) / (2 * eps))
        cols_lp.append((np.log(sp_.pi) - np.log(sm.pi)) / (2 * eps))
    np.testing.assert_allclose(d.dV, np.stack(cols_V, -1), atol=1e-7)
    np.testing.assert_allclose(d.dQ, np.stack(cols_Q, -1), atol=1e-7)
    np.testing.assert_allclose(d.dlogpi, np.stack(cols_lp, -1), atol=1e-7)


def test_sparse_and_dense_problems_give_the_same_hypergradient():
    prob, x = linear_problem(8, 3, 4, gamma=0.9, tau=0.4, seed=6, branching=3, upper="value")
    P_sparse = sp.csr_matrix(prob.P.reshape(24, 8))
    up = prob.upper
    sprob = sl.BilevelProblem(P_sparse, prob.reward, sl.UpperValue(P_sparse, up.mdp.r, up.mdp.gamma, up.mdp.rho, n=4),
                              prob.gamma, prob.tau, prob.rho)
    np.testing.assert_allclose(sl.hypergradient(sprob, x), sl.hypergradient(prob, x), atol=1e-10)
    np.testing.assert_allclose(sl.unrolled_hypergradient(sprob, x, 30), sl.unrolled_hypergradient(prob, x, 30), atol=1e-10)


def test_torch_and_tabular_rewards_through_the_hypergradient():
    mdp = sl.random_mdp(4, 2, seed=1, gamma=0.7, tau=0.8)
    prob = sl.BilevelProblem.from_mdp(mdp, sl.TabularReward(4, 2), sl.QuadraticUpper())
    x = np.random.default_rng(0).normal(size=8)
    assert rel_err(sl.hypergradient(prob, x), sl.finite_difference_hypergradient(prob, x)) < 1e-6
    M = torch.as_tensor(np.random.default_rng(1).normal(size=(3, 3)))
    c = torch.as_tensor(np.random.default_rng(2).random((4, 2)))
    prob2 = sl.BilevelProblem.from_mdp(mdp, sl.TorchReward(lambda z: c * (z @ M @ z), 4, 2, 3), sl.QuadraticUpper())
    z = np.array([0.3, -0.2, 0.5])
    assert rel_err(sl.hypergradient(prob2, z), sl.finite_difference_hypergradient(prob2, z)) < 1e-6
    assert rel_err(sl.unrolled_hypergradient(prob2, z, 60), sl.hypergradient(prob2, z)) < 1e-9


def test_phi_and_bad_input():
    prob, x = linear_problem(3, 2, 2)
    sol = sl.solve_soft_mdp(prob.mdp(x))
    assert sl.phi(prob, x) == pytest.approx(prob.upper.value(x, sol.pi))
    with pytest.raises(ValueError, match="x must have shape"):
        sl.hypergradient(prob, np.zeros(3))
    with pytest.raises(ValueError, match="eps"):
        sl.finite_difference_hypergradient(prob, x, eps=0.0)
    with pytest.raises(ValueError, match="iters"):
        sl.unrolled_hypergradient(prob, x, -1)


# --- reuse of the lower level's factorisation (issue 15) ------------------------------------------------------
def _count_factorisations():
    """A patch that counts fresh factorisations of I - gamma P_pi (dense LU or sparse LU)."""
    calls = []
    original = sl.PolicySystem._factorise

    def counting(self, A):
        calls.append(A.shape)
        return original(self, A)

    return mock.patch.object(sl.PolicySystem, "_factorise", counting), calls


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("upper", ["value", "quadratic"])
def test_reused_factorisation_gives_the_fresh_hypergradient(sparse, upper):
    prob, x = linear_problem(12, 3, 4, gamma=0.95, tau=0.3, seed=7, upper=upper, sparse=sparse, branching=4)
    sol = sl.solve_soft_mdp(prob.mdp(x), method="policy_iteration")
    assert sol.system is not None and np.array_equal(sol.system.pi, sol.pi)
    patch, calls = _count_factorisations()
    with patch:
        g_reused = sl.hypergradient(prob, x, sol)
    assert calls == []  # no factorisation at all: the solver's serves the lower level and (via sharing) the upper
    with patch:
        g_fresh = sl.hypergradient(prob, x, sol._replace(system=None))
    assert len(calls) >= 1
    assert np.max(np.abs(g_reused - g_fresh)) <= 1e-12 * max(1.0, np.max(np.abs(g_fresh)))
    # the paper's split and the forward form reuse it as well and agree
    np.testing.assert_allclose(sl.hypergradient_parts(prob, x, sol).total, g_fresh, atol=1e-10)
    np.testing.assert_allclose(sl.forward_hypergradient(prob, x, sol), g_fresh, atol=1e-10)


def test_a_mismatched_policy_does_not_reuse_a_stale_factorisation():
    prob, x = linear_problem(10, 3, 4, gamma=0.9, tau=0.3, seed=8, upper="value")
    mdp = prob.mdp(x)
    sol = sl.solve_soft_mdp(mdp, method="policy_iteration")
    other = sl.solve_soft_mdp(prob.mdp(x + 1.0), method="policy_iteration")  # same P, another policy
    assert np.max(np.abs(other.pi - sol.pi)) > sl.PolicySystem.REUSE_GAP
    patch, calls = _count_factorisations()
    with patch:
        g_stale = sl.hypergradient(prob, x, sol._replace(system=other.system))  # stale factors handed over
    assert len(calls) >= 1  # refused: factorised afresh
    g_fresh = sl.hypergradient(prob, x, sol._replace(system=None))
    assert np.max(np.abs(g_stale - g_fresh)) <= 1e-12 * max(1.0, np.max(np.abs(g_fresh)))
    assert not sl.PolicySystem(mdp, sol.pi, reuse=other.system).reused
    # other dynamics (a new P array) are never served, even with the same policy
    prob2 = sl.BilevelProblem(prob.P.copy(), prob.reward, prob.upper, prob.gamma, prob.tau, prob.rho)
    assert not sl.PolicySystem(prob2.mdp(x), sol.pi, reuse=sol.system).reused
    # a nearby policy reuses the factors with refinement, and solves its own system to round-off
    near = sol.pi + 1e-6 * np.random.default_rng(0).dirichlet(np.ones(3), size=10) - 1e-6 / 3
    near /= near.sum(axis=1, keepdims=True)
    refined = sl.PolicySystem(mdp, near, reuse=sol.system)
    assert refined.reused
    b = np.random.default_rng(1).normal(size=10)
    for transpose in (False, True):
        np.testing.assert_allclose(refined.solve(b, transpose), sl.PolicySystem(mdp, near).solve(b, transpose),
                                   rtol=1e-12, atol=1e-12)


def test_krylov_solve_for_sparse_models_agrees_with_lu():
    prob, x = linear_problem(60, 3, 4, gamma=0.9, tau=0.5, seed=9, upper="value", sparse=True, branching=3)
    sol = sl.solve_soft_mdp(prob.mdp(x), tol=1e-12)  # auto: GMRES converges on this fast-mixing chain
    assert "krylov" in sol.method and sol.system.method == "krylov"
    g = sl.hypergradient(prob, x, sol)
    g_lu = sl.hypergradient(prob, x, sl.solve_soft_mdp(prob.mdp(x), tol=1e-12, method="policy_iteration"))
    assert rel_err(g, g_lu) < 1e-9


def test_small_dense_model_after_value_iteration_factorises_instead_of_gmres(monkeypatch):
    """After value iteration (no factorisation left), a small dense model gets an LU (cheaper than GMRES there:
    the benchmark's S=100 class went from 12.6 ms to 1.4 ms); a sparse one keeps GMRES. Same gradient either way."""
    from sobirl_lite import hypergrad

    prob, x = linear_problem(40, 3, 4, gamma=0.9, tau=0.5, seed=11, upper="value", branching=3)
    sol = sl.solve_soft_mdp(prob.mdp(x), tol=1e-12, method="value_iteration")
    assert sol.system is None
    assert hypergrad._system(prob.mdp(x), sol).method == "lu"
    g = sl.hypergradient(prob, x, sol)
    monkeypatch.setattr(sl.PolicySystem, "KRYLOV_DENSE_MIN_S", 10)  # above the threshold: GMRES, same answer
    assert hypergrad._system(prob.mdp(x), sol).method == "krylov"
    assert rel_err(sl.hypergradient(prob, x, sol), g) < 1e-10


def test_gradient_tolerance_sets_the_solve_tolerance():
    prob, x = linear_problem(30, 4, 5, gamma=0.95, tau=0.2, seed=10, upper="value", branching=5)
    exact = sl.hypergradient(prob, x, sl.solve_soft_mdp(prob.mdp(x), tol=1e-14))
    errs = [rel_err(sl.hypergradient(prob, x, tol=t), exact) for t in (1e-2, 1e-4, 1e-6)]
    assert all(e <= 10 * t for e, t in zip(errs, (1e-2, 1e-4, 1e-6))), errs
    assert sl.soft.solve_tolerance(prob.mdp(x), 1e-6) == pytest.approx(0.5 * 0.2 * 0.05 * 1e-6)
    with pytest.raises(ValueError, match="tolerance"):
        sl.hypergradient(prob, x, tol=0.0)


# --- eq. (9) near a deterministic policy (issue 10, item 4) ------------------------------------------------------
class _HalfSquaredPolicy:
    """f(x, pi) = |pi|^2 / 2 with no direct dependence on x, so grad phi is the reward part of (9) alone."""

    def value(self, x, pi):
        return 0.5 * float(np.sum(pi ** 2))

    def grad_x(self, x, pi):
        return np.zeros(np.size(x))

    def grad_pi(self, x, pi):
        return np.array(pi, dtype=np.float64)


def _reference_hypergradient(prob, x, r_u=None):
    """Eq. (9) in its literal form, evaluated in high-precision arithmetic (mpmath) at pi* solved in the same
    precision by soft policy iteration. The two O(1/tau) terms agree to about -log10(off-mode probability) digits,
    so the precision is set from the float64 solution: 60 digits more than that (at most 1,000)."""
    sol64 = sl.solve_soft_mdp(prob.mdp(x), tol=1e-15)
    log_pi = sl.log_softmax_policy(sol64.Q, prob.tau)  # exact where pi underflows
    off_mode = np.sort(log_pi, axis=1)[:, -2]  # log of the largest non-greedy probability in each state
    dps = int(min(60 - np.min(off_mode) / np.log(10), 1000))
    mp.mp.dps = dps
    S, A, n, gamma, tau = prob.S, prob.A, prob.n, mp.mpf(prob.gamma), mp.mpf(prob.tau)
    P = prob.P
    F = prob.reward.features
    r = [[mp.fsum(mp.mpf(F[s, a, i]) * mp.mpf(x[i]) for i in range(n)) for a in range(A)] for s in range(S)]

    def policy_matrix(pi):
        return mp.matrix([[mp.fsum(pi[s][a] * mp.mpf(P[s, a, t]) for a in range(A)) for t in range(S)]
                          for s in range(S)])

    def softmax(Q):
        out = []
        for s in range(S):
            m = max(Q[s])
            e = [mp.exp((q - m) / tau) for q in Q[s]]
            z = mp.fsum(e)
            out.append([v / z for v in e])
        return out

    Q = [[mp.mpf(0)] * A for _ in range(S)]
    for _ in range(200):
        pi = softmax(Q)
        M = mp.eye(S) - gamma * policy_matrix(pi)
        rhs = mp.matrix([mp.fsum(pi[s][a] * (r[s][a] - tau * mp.log(pi[s][a])) for a in range(A) if pi[s][a] > 0)
                         for s in range(S)])
        V = mp.lu_solve(M, rhs)
        Q_new = [[r[s][a] + gamma * mp.fsum(mp.mpf(P[s, a, t]) * V[t] for t in range(S)) for a in range(A)]
                 for s in range(S)]
        change = max(abs(Q_new[s][a] - Q[s][a]) for s in range(S) for a in range(A))
        Q = Q_new
        if change < mp.mpf(10) ** (-dps + 20) * (1 + max(abs(q) for row in Q for q in row)):
            break
    pi = softmax(Q)
    M = mp.eye(S) - gamma * policy_matrix(pi)
    if r_u is None:
        g = pi
    else:  # UpperValue: -mu^T V_u^pi with mu uniform
        Vu = mp.lu_solve(M, mp.matrix([mp.fsum(pi[s][a] * mp.mpf(r_u[s, a]) for a in range(A)) for s in range(S)]))
        Qu = [[mp.mpf(r_u[s, a]) + gamma * mp.fsum(mp.mpf(P[s, a, t]) * Vu[t] for t in range(S)) for a in range(A)]
              for s in range(S)]
        occ = mp.lu_solve(M.T, mp.matrix([mp.mpf(1) / S] * S))
        g = [[-occ[s] * Qu[s][a] for a in range(A)] for s in range(S)]
    u = [[pi[s][a] * g[s][a] for a in range(A)] for s in range(S)]
    b = mp.matrix([mp.fsum(u[s]) - gamma * mp.fsum(mp.mpf(P[t, a, s]) * u[t][a] for t in range(S) for a in range(A))
                   for s in range(S)])
    w = mp.lu_solve(M.T, b)
    grad = [mp.fsum((u[s][a] - pi[s][a] * w[s]) * mp.mpf(F[s, a, i]) for s in range(S) for a in range(A)) / tau
            for i in range(n)]
    return np.array([float(v) for v in grad]), 10.0 ** (-(dps - 30))


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 4), st.integers(2, 3), st.integers(1, 3), st.integers(0, 10_000), st.floats(0.0, 0.95),
       st.floats(-3.0, 1.0), st.sampled_from(["policy", "value"]))
def test_hypergradient_is_accurate_for_tau_from_1e_3_to_10(S, A, n, seed, gamma, log_tau, upper):
    tau = 10.0 ** log_tau
    prob, x = linear_problem(S, A, n, gamma, tau, seed, upper="value")
    r_u = prob.upper.mdp.r if upper == "value" else None
    if upper == "policy":
        prob = sl.BilevelProblem.from_mdp(prob.mdp(x), prob.reward, _HalfSquaredPolicy())
    ref, floor = _reference_hypergradient(prob, x, r_u)
    floor += 1e-280  # below it float64 has no digits left (off-mode probabilities underflow)
    # the default call (lower level solved to 1e-10) and one solved to round-off
    g_default = sl.hypergradient(prob, x)
    g = sl.hypergradient(prob, x, sl.solve_soft_mdp(prob.mdp(x), tol=1e-15))
    scale = np.max(np.abs(ref))
    assert np.max(np.abs(g - ref)) <= 1e-7 * scale + floor, (tau, g, ref)
    # the default solve's residual 1e-10 moves log pi by up to 2e-10 / (tau (1 - gamma)): that, not round-off,
    # bounds the default call's error
    bound = 2e-10 / (tau * (1 - gamma))
    assert np.max(np.abs(g_default - ref)) <= max(1e-7, 50 * bound) * scale + floor, (tau, g_default, ref)


def test_literal_form_of_9_cancels_near_a_deterministic_policy_and_the_centred_form_does_not():
    prob, x = linear_problem(4, 3, 2, gamma=0.9, tau=1e-3, seed=3, upper="value")
    prob = sl.BilevelProblem.from_mdp(prob.mdp(x), prob.reward, _HalfSquaredPolicy())
    sol = sl.solve_soft_mdp(prob.mdp(x), tol=1e-15)
    ref, _ = _reference_hypergradient(prob, x)
    parts = sl.hypergradient_parts(prob, x, sol)
    # the two reward terms are many orders of magnitude larger than their sum: the literal sum is round-off
    assert min(np.max(np.abs(parts.policy)), np.max(np.abs(parts.value))) > 1e6 * np.max(np.abs(ref))
    assert np.max(np.abs(parts.total - ref)) > 1e3 * np.max(np.abs(ref))
    g = sl.hypergradient(prob, x, sol)
    assert np.max(np.abs(g - ref)) <= 1e-7 * np.max(np.abs(ref))
