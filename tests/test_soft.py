import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sobirl_lite as sl

HYP = settings(max_examples=25, deadline=None)
mdp_params = st.tuples(st.integers(2, 7), st.integers(1, 4), st.integers(0, 10_000),
                       st.floats(0.0, 0.97), st.floats(0.05, 5.0))


def _mdp(params):
    S, A, seed, gamma, tau = params
    return sl.random_mdp(S, A, seed=seed, gamma=gamma, tau=tau, reward_scale=3.0)


def test_softmax_entropy_and_soft_max_basics():
    Q = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]])
    pi = sl.softmax_policy(Q, 1.0)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0)
    np.testing.assert_allclose(pi[1], 1 / 3)
    np.testing.assert_allclose(sl.entropy(pi)[1], np.log(3))
    assert sl.entropy(np.array([[1.0, 0.0]]))[0] == 0.0  # 0 log 0 = 0
    np.testing.assert_allclose(sl.soft_max(Q, 1.0), np.log(np.exp(Q).sum(axis=1)))
    np.testing.assert_allclose(np.log(pi), sl.log_softmax_policy(Q, 1.0))
    with pytest.raises(ValueError, match="tau"):
        sl.softmax_policy(Q, 0.0)


@pytest.mark.parametrize("tau", [1e-3, 1e-2, 1.0, 10.0])
@pytest.mark.parametrize("gamma", [0.0, 0.9, 0.999])
def test_no_overflow_or_nan_across_tau_and_gamma(tau, gamma):
    mdp = sl.random_mdp(12, 4, branching=3, seed=1, gamma=gamma, tau=tau, reward_scale=10.0)
    sol = sl.solve_soft_mdp(mdp, tol=1e-8)
    for arr in (sol.V, sol.Q, sol.pi, sl.soft_bellman(mdp, sol.Q), sl.soft_value_map(mdp, sol.V)):
        assert np.all(np.isfinite(arr))
    res = sl.consistency_residuals(mdp, sol.V, sol.Q, sol.pi)
    assert res["eq6"] < 1e-8 and res["eq5"] < 1e-6
    assert res["eq3"] < 1e-6 * max(1.0, np.abs(sol.V).max())


def test_bellman_operator_matches_explicit_loop():
    mdp = sl.random_mdp(4, 3, seed=0, gamma=0.8, tau=0.7)
    Q = np.random.default_rng(0).normal(size=(4, 3))
    expected = np.empty_like(Q)
    for s in range(4):
        for a in range(3):
            expected[s, a] = mdp.r[s, a] + 0.8 * sum(
                mdp.P[s, a, t] * 0.7 * np.log(np.sum(np.exp(Q[t] / 0.7))) for t in range(4))
    np.testing.assert_allclose(sl.soft_bellman(mdp, Q), expected)
    V = np.random.default_rng(1).normal(size=4)
    T = sl.soft_value_map(mdp, V)
    np.testing.assert_allclose(T, 0.7 * np.log(np.exp((mdp.r + 0.8 * mdp.P @ V) / 0.7).sum(axis=1)))


def test_bad_shapes_raise():
    mdp = sl.random_mdp(4, 3)
    with pytest.raises(ValueError, match="Q must have shape"):
        sl.soft_bellman(mdp, np.zeros((3, 4)))
    with pytest.raises(ValueError, match="V must have shape"):
        sl.soft_value_map(mdp, np.zeros(5))
    with pytest.raises(ValueError, match="stochastic"):
        sl.evaluate_policy(mdp, np.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        sl.soft_bellman(mdp, np.full((4, 3), np.nan))


def test_evaluate_policy_matches_iterative_evaluation():
    mdp = sl.random_mdp(5, 3, seed=4, gamma=0.9, tau=0.3)
    pi = sl.softmax_policy(np.random.default_rng(2).normal(size=(5, 3)), 1.0)
    V, Q = sl.evaluate_policy(mdp, pi)
    W = np.zeros(5)
    for _ in range(2000):
        W = (pi * (mdp.r + 0.9 * mdp.expect(W) - 0.3 * np.log(pi))).sum(axis=1)
    np.testing.assert_allclose(V, W, atol=1e-10)
    np.testing.assert_allclose(Q, mdp.r + 0.9 * mdp.expect(V))


def test_methods_agree_and_warm_start_helps():
    mdp = sl.random_mdp(10, 4, seed=5, gamma=0.95, tau=0.5)
    a = sl.solve_soft_mdp(mdp, method="value_iteration")
    b = sl.solve_soft_mdp(mdp, method="policy_iteration")
    np.testing.assert_allclose(a.Q, b.Q, atol=1e-8)
    assert a.residual <= 1e-10 and b.residual <= 1e-10
    warm = sl.solve_soft_mdp(mdp.with_reward(mdp.r + 1e-3), method="value_iteration", Q0=a.Q)
    cold = sl.solve_soft_mdp(mdp.with_reward(mdp.r + 1e-3), method="value_iteration")
    assert warm.iterations < cold.iterations


def test_solver_reports_failure_instead_of_a_wrong_answer():
    mdp = sl.random_mdp(5, 2, seed=0, gamma=0.99)
    with pytest.raises(RuntimeError, match="did not reach"):
        sl.solve_soft_mdp(mdp, method="value_iteration", max_iter=5)
    with pytest.raises(ValueError, match="method"):
        sl.solve_soft_mdp(mdp, method="newton")
    with pytest.raises(ValueError, match="Q0"):
        sl.solve_soft_mdp(mdp, Q0=np.zeros((2, 5)))


@HYP
@given(mdp_params)
def test_consistency_equations_hold_at_the_solution(params):
    mdp = _mdp(params)
    sol = sl.solve_soft_mdp(mdp, tol=1e-11)
    res = sl.consistency_residuals(mdp, sol.V, sol.Q, sol.pi)
    assert max(res.values()) < 1e-9, res
    # and fail away from it: a perturbed Q breaks the Bellman relation (3)
    bad = sl.consistency_residuals(mdp, sol.V, sol.Q + 0.1, sol.pi)
    assert bad["eq3"] > 0.05


@HYP
@given(mdp_params, st.integers(0, 1000))
def test_value_map_is_a_gamma_contraction_in_sup_norm(params, seed):
    mdp = _mdp(params)
    rng = np.random.default_rng(seed)
    U, W = rng.normal(scale=5, size=(2, mdp.S))
    lhs = np.max(np.abs(sl.soft_value_map(mdp, U) - sl.soft_value_map(mdp, W)))
    assert lhs <= mdp.gamma * np.max(np.abs(U - W)) + 1e-12
    lhsB = np.max(np.abs(sl.soft_bellman(mdp, np.outer(U, np.ones(mdp.A))) - sl.soft_bellman(mdp, np.outer(W, np.ones(mdp.A)))))
    assert lhsB <= mdp.gamma * np.max(np.abs(U - W)) + 1e-12


@HYP
@given(mdp_params)
def test_jacobian_of_T_at_fixed_point_is_gamma_P_pi(params):
    """Prop. 4.1: ∂_V T(V*, x) = γ P_{π*}, checked by central differences."""
    mdp = _mdp(params)
    sol = sl.solve_soft_mdp(mdp, tol=1e-12)
    eps = 1e-6
    J = np.empty((mdp.S, mdp.S))
    for j in range(mdp.S):
        e = np.zeros(mdp.S)
        e[j] = eps
        J[:, j] = (sl.soft_value_map(mdp, sol.V + e) - sl.soft_value_map(mdp, sol.V - e)) / (2 * eps)
    np.testing.assert_allclose(J, mdp.gamma * mdp.policy_matrix(sol.pi), atol=1e-7)
    assert np.allclose(np.abs(J).sum(axis=1), mdp.gamma, atol=1e-6)  # sup-norm of the Jacobian is exactly γ


@HYP
@given(mdp_params, st.integers(0, 1000))
def test_eigenvalues_of_I_minus_gamma_P_pi(params, seed):
    """Prop. C.1: every eigenvalue of I - γ P_π has modulus in [1-γ, 1+γ], for any policy."""
    mdp = _mdp(params)
    pi = sl.softmax_policy(np.random.default_rng(seed).normal(scale=3, size=(mdp.S, mdp.A)), 1.0)
    mods = np.abs(np.linalg.eigvals(np.eye(mdp.S) - mdp.gamma * mdp.policy_matrix(pi)))
    assert np.all(mods >= 1 - mdp.gamma - 1e-10) and np.all(mods <= 1 + mdp.gamma + 1e-10)


@pytest.mark.parametrize("method", ["value_iteration", "policy_iteration"])
def test_tolerance_below_round_off_stops_at_round_off(method):
    # |Q| ~ 2e3: a residual of 1e-14 is not representable; the solver must stop at round-off, not raise
    mdp = sl.random_mdp(20, 4, seed=0, gamma=0.99, tau=0.1, reward_scale=30)
    sol = sl.solve_soft_mdp(mdp, tol=1e-14, method=method)
    assert np.abs(sol.Q).max() > 1e3
    assert sol.residual <= 64 * np.finfo(float).eps * np.abs(sol.Q).max()
