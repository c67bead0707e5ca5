"""M-SoBiRL (Algorithm 1 of Yang et al.): line-by-line against dense-matrix formulas, exactness at a fixed point,
convergence, cost accounting, seeds and errors."""
import numpy as np
import pytest
import scipy.sparse as sp

import sobirl_lite as sl
from sobirl_lite.algorithms import History, MSoBiRLConfig, m_sobirl
from sobirl_lite.instances import synthetic_problem

from helpers import linear_problem


def _quiet(**kw):
    kw.setdefault("progress", False)
    return MSoBiRLConfig(**kw)


def _one_iteration_by_matrices(problem, x, Q, w, beta, xi, N):
    """Algorithm 1, lines 2-10, written with the explicit matrices of Sections 3-4 of the paper (E, Π_π, P as (SA, S), ∇r)."""
    S, A, gamma, tau = problem.S, problem.A, problem.gamma, problem.tau
    mdp = problem.mdp(x)
    P = mdp.dense_P().reshape(S * A, S)
    E = np.kron(np.eye(S), np.ones((A, 1)))                       # (SA, S)
    r = problem.reward.value(x).reshape(-1)
    J = problem.reward.jacobian(x).reshape(S * A, -1)             # ∇r_x, (SA, n)
    # line 2
    pi = np.exp(Q / tau - np.log(np.exp(Q / tau).sum(1, keepdims=True)))
    V = (pi * (Q - tau * np.log(pi))).sum(1)                       # eq. (10)
    Pi = E.T @ np.diag(pi.reshape(-1))                            # policy matrix Π_π (S, SA)
    P_pi = Pi @ P
    # line 3
    A_k = (np.eye(S) - gamma * P_pi).T
    gpi = problem.upper.grad_pi(x, pi).reshape(-1)
    b = (E - gamma * P).T @ (pi.reshape(-1) * gpi)
    # line 4
    w_new = w - xi * A_k.T @ (A_k @ w - b)
    # line 5, with the auxiliary policy softmax_τ(r + γ P V_k) in ∂_x T = Π_{π̃} ∇r
    q_aux = (r + gamma * P @ V).reshape(S, A)
    pi_aux = np.exp(q_aux / tau) / np.exp(q_aux / tau).sum(1, keepdims=True)
    dT = E.T @ np.diag(pi_aux.reshape(-1)) @ J                    # (S, n)
    g = problem.upper.grad_x(x, pi) + J.T @ (pi.reshape(-1) * gpi) / tau - dT.T @ w_new / tau
    # line 6
    x_new = x - beta * g
    # lines 7-10
    mdp_new = problem.mdp(x_new)
    Qn = Q.copy()
    for _ in range(N):
        Qn = sl.soft_bellman(mdp_new, Qn)
    return x_new, Qn, w_new, g


@pytest.mark.parametrize("N", [0, 1, 4])
def test_one_iteration_matches_the_dense_matrix_formulas(N):
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.8, tau=0.6, seed=3)
    rng = np.random.default_rng(0)
    Q0 = rng.normal(size=(5, 3))
    w0 = rng.normal(size=5)
    h = m_sobirl(problem, x, _quiet(beta=0.05, xi=0.3, inner_steps=N, iterations=1), Q0=Q0, w0=w0)
    x1, Q1, w1, g = _one_iteration_by_matrices(problem, x, Q0, w0, 0.05, 0.3, N)
    np.testing.assert_allclose(h.x, x1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.extra["Q"], Q1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.extra["w"], w1, rtol=1e-12, atol=1e-12)
    assert h["grad_norm"][0] == pytest.approx(np.linalg.norm(g), rel=1e-12)


def test_two_iterations_match_on_the_synthetic_reward():
    problem = synthetic_problem(seed=4, S=4, A=3, n=6)
    x, Q, w = problem.x0, np.zeros((4, 3)), np.random.default_rng(1).normal(size=4)
    h = m_sobirl(problem, x, _quiet(beta=0.01, xi=0.5, inner_steps=3, iterations=2, keep_iterates=True), Q0=Q, w0=w)
    for k in range(2):
        np.testing.assert_allclose(h.xs[k], x, rtol=1e-12)
        x, Q, w, _ = _one_iteration_by_matrices(problem, x, Q, w, 0.01, 0.5, 3)
    np.testing.assert_allclose(h.x, x, rtol=1e-12)


def test_estimator_equals_closed_form_at_the_lower_level_solution():
    """With Q_0 = Q*_x and w_0 = w*_x, line 4 leaves w at w*_x and line 5 is exactly eq. (9)."""
    problem, x = linear_problem(S=6, A=3, n=5, gamma=0.9, tau=0.5, seed=1)
    mdp = problem.mdp(x)
    sol = sl.solve_soft_mdp(mdp, tol=1e-13)
    w_star = sl.adjoint_vector(problem, mdp, sol.pi, sol.pi * problem.upper.grad_pi(x, sol.pi))
    h = m_sobirl(problem, x, _quiet(beta=0.1, iterations=1, inner_steps=5), Q0=sol.Q, w0=w_star)
    g9 = sl.hypergradient(problem, x, sol)
    assert h["grad_norm"][0] == pytest.approx(np.linalg.norm(g9), rel=1e-10)
    np.testing.assert_allclose(h.x, x - 0.1 * g9, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h.extra["w"], w_star, rtol=1e-9, atol=1e-12)


def test_estimate_becomes_the_closed_form_when_w_and_Q_converge():
    """A tiny β freezes x: N large and a convergent ξ then drive w_k -> w*_x and Q_k -> Q*_x, so ĝ_k -> (9)."""
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=2)
    h = m_sobirl(problem, x, _quiet(beta=1e-12, xi=0.5, inner_steps=30, iterations=2000, track_true_grad=True,
                                    track_every=1999))
    assert h.extra["w_error"][-1] < 1e-10 and h.extra["q_error"][-1] < 1e-9
    assert h["grad_norm"][-1] == pytest.approx(h["true_grad_norm"][-1], rel=1e-9)
    assert h["grad_norm"][0] != pytest.approx(h["true_grad_norm"][0], rel=1e-2)   # not at the start


def test_merit_terms_and_gradient_shrink_together():
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=2)
    h = m_sobirl(problem, x, _quiet(beta=0.05, xi=0.5, inner_steps=2, iterations=600, track_true_grad=True))
    est, true = h["grad_norm"], h["true_grad_norm"]
    assert true[-1] < 1e-3 * true[0]
    # the estimate lags (w and Q chase moving targets) but its error vanishes with the step
    assert np.abs(est[-1] - true[-1]) < 1e-3 * true[0]
    w_err, q_err = np.array(h.extra["w_error"]), np.array(h.extra["q_error"])
    assert w_err[-1] < 1e-3 * w_err[0] and q_err[-1] < 1e-3 * q_err[0]


def test_synthetic_problem_drives_gradient_down_by_orders_of_magnitude():
    problem = synthetic_problem(0)
    h = m_sobirl(problem, problem.x0, _quiet(inner_steps=1, iterations=1200, track_true_grad=True, track_every=100))
    true = h["true_grad_norm"]
    tracked = true[~np.isnan(true)]
    assert tracked[-1] < 1e-3 * tracked[0]
    # the running average of ||∇φ||^2 stays below C/K (Theorem 6.4) with C from the first iterate
    assert np.linalg.norm(sl.hypergradient(problem, h.x)) < 1e-2


def test_backups_are_counted_per_iteration():
    problem, x = linear_problem(S=5, A=4, n=3, seed=0)
    for N in (0, 1, 7):
        h = m_sobirl(problem, x, _quiet(inner_steps=N, iterations=5))
        per = max(N, 1) + 2 + 2 / 4
        np.testing.assert_allclose(h["backups"], per * np.arange(5))
        assert h.extra["cost_per_iteration"] == per
        assert np.all(h["inner_iterations"] == N)


def test_exact_w_ablation_follows_exact_descent():
    """w_update="exact" (line 4 replaced by w = A_k^{-1} b_k), started on the lower-level solution and with many
    inner backups, is exact hyper-gradient descent iterate for iterate; it is charged one direct solve instead of the two products with A_k."""
    from sobirl_lite.algorithms import ExactHGDConfig, exact_hgd
    from sobirl_lite.algorithms._common import direct_solve_cost

    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=3, upper="value")
    Q0 = sl.solve_soft_mdp(problem.mdp(x), tol=1e-13).Q                   # start on the lower-level solution
    h = m_sobirl(problem, x, _quiet(w_update="exact", inner_steps=200, iterations=15, beta=0.05), Q0=Q0)
    ref = exact_hgd(problem, x, ExactHGDConfig(beta=0.05, iterations=15, tol=1e-13, progress=False))
    np.testing.assert_allclose(h.x, ref.x, atol=1e-9)
    assert h.extra["cost_per_iteration"] == 200 + 2 + direct_solve_cost(0.7)
    with pytest.raises(ValueError, match="w_update"):
        MSoBiRLConfig(w_update="lstsq").validate()


def test_sparse_model_gives_the_same_run():
    problem, x = linear_problem(S=6, A=3, n=4, seed=5, branching=2)
    problem_sp, _ = linear_problem(S=6, A=3, n=4, seed=5, branching=2, sparse=True)
    assert sp.issparse(problem_sp.P)
    cfg = _quiet(iterations=20, inner_steps=2)
    np.testing.assert_allclose(m_sobirl(problem_sp, x, cfg).x, m_sobirl(problem, x, cfg).x, rtol=1e-12)


def test_seeds_make_runs_reproducible():
    problem, x = linear_problem(seed=0)
    a = m_sobirl(problem, x, _quiet(iterations=30, seed=7))
    b = m_sobirl(problem, x, _quiet(iterations=30, seed=7))
    c = m_sobirl(problem, x, _quiet(iterations=30, seed=8))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a["grad_norm"], b["grad_norm"])
    assert not np.allclose(a["grad_norm"], c["grad_norm"])      # w_0 ~ N(0, I) depends on the seed


def test_history_format_and_stop():
    problem, x = linear_problem(S=4, A=2, n=3, gamma=0.5, seed=1)
    h = m_sobirl(problem, x, _quiet(beta=0.2, iterations=2000, inner_steps=3, track_true_grad=True, stop_grad=1e-6))
    assert isinstance(h, History) and h.algorithm == "M-SoBiRL"
    assert h["true_grad_norm"][-1] <= 1e-6 < h["true_grad_norm"][-2]
    assert len(h) < 2000
    np.testing.assert_allclose(np.linalg.norm(sl.hypergradient(problem, h.x)), h["true_grad_norm"][-1], rtol=1e-6)
    assert np.all(np.diff(h["wall_time"]) >= 0)
    assert h.config["beta"] == 0.2


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=0.0), "beta"), (dict(beta=-1.0), "beta"), (dict(xi=float("nan")), "xi"),
    (dict(inner_steps=1.5), "inner_steps"), (dict(inner_steps=-1), "inner_steps"),
    (dict(iterations=-3), "iterations"), (dict(seed="a"), "seed"), (dict(track_every=0), "track_every"),
    (dict(stop_grad=-1.0), "stop_grad"),
])
def test_bad_config_raises(kwargs, match):
    problem, x = linear_problem()
    with pytest.raises(ValueError, match=match):
        m_sobirl(problem, x, _quiet(**kwargs))


def test_bad_inputs_and_divergence():
    problem, x = linear_problem(S=5, A=3, n=4)
    with pytest.raises(ValueError, match="x0"):
        m_sobirl(problem, np.zeros(3), _quiet(iterations=1))
    with pytest.raises(ValueError, match="w0"):
        m_sobirl(problem, x, _quiet(iterations=1), w0=np.zeros(2))
    big = synthetic_problem(0)
    with np.errstate(all="ignore"), pytest.raises((FloatingPointError, ValueError)):
        m_sobirl(big, big.x0, _quiet(beta=50.0, iterations=200))


def test_progress_bar_can_be_on():
    problem, x = linear_problem()
    h = m_sobirl(problem, x, MSoBiRLConfig(iterations=3, progress=True))
    assert len(h) == 3
