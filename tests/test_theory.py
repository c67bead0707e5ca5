"""The constants of sobirl_lite.theory: each bound holds on sampled pairs, and the ingredient bounds are attained
on instances built to attain them (so a constant that is too small, or wrongly scaled, fails here)."""
from __future__ import annotations

import numpy as np
import pytest

from sobirl_lite.hypergrad import hypergradient, implicit_derivatives
from sobirl_lite.mdp import TabularMDP
from sobirl_lite.bilevel import BilevelProblem
from sobirl_lite.instances import AffineReward, shaping_problem, synthetic_problem
from sobirl_lite.soft import softmax_policy, solve_soft_mdp
from sobirl_lite.instances import QuadraticFormReward
from sobirl_lite.rlhf import bce_loss, sigmoid
from sobirl_lite.theory import (LinearPolicyUpper, bce_loss_constants, check_in_ball, expected_estimate,
                                inexact_hypergradient_descent, pmd_errors, pmd_iterations_for, pmd_rate,
                                policy_distance, reward_constants, sampled_reward_constants, theory_constants,
                                trajectory_distribution, trajectory_drift, upper_constants)
from sobirl_lite.upper import QuadraticUpper, UpperValue


def _pairs(problem, radius, m, rng):
    """m pairs (x, x') inside the ball, at distances from 1e-3 R to R."""
    out = []
    while len(out) < m:
        x = rng.standard_normal(problem.n)
        x *= radius * rng.random() / np.linalg.norm(x)
        d = rng.standard_normal(problem.n)
        d *= 10 ** rng.uniform(-3, 0) * radius / np.linalg.norm(d)
        if np.linalg.norm(x + d) <= radius:
            out.append((x, x + d))
    return out


# The configurations the chapter uses: the synthetic problem on the ball that holds x_0, the shaping problem.
PROBLEMS = {
    "synthetic": lambda: (synthetic_problem(0), 1.5 * np.linalg.norm(synthetic_problem(0).x0)),
    "shaping": lambda: (shaping_problem(), 5.0),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_sampled_reward_constants_stay_below_the_exact_ones(name):
    problem, radius = PROBLEMS[name]()
    exact = reward_constants(problem.reward, radius)
    sampled = sampled_reward_constants(problem.reward, radius, n_points=100)
    for field in ("C_r", "C_rx", "L_rx"):
        assert getattr(sampled, field) <= getattr(exact, field) * (1 + 1e-9), field


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_lipschitz_constants_bound_sampled_ratios(name):
    problem, radius = PROBLEMS[name]()
    c = theory_constants(problem, radius)
    rng = np.random.default_rng(0)
    for x, y in _pairs(problem, radius, 15, rng):
        sx, sy = solve_soft_mdp(problem.mdp(x), tol=1e-12), solve_soft_mdp(problem.mdp(y), tol=1e-12)
        dist = np.linalg.norm(x - y)
        assert np.abs(sx.Q - sy.Q).max() <= c.kappa * c.reward.C_rx * dist * (1 + 1e-6) + 1e-9
        assert policy_distance(sx.pi, sy.pi) <= c.L_pi * dist * (1 + 1e-6) + 1e-9
        dx, dy = implicit_derivatives(problem, x, sx), implicit_derivatives(problem, y, sy)
        assert np.linalg.norm(dx.dV - dy.dV, axis=1).max() <= c.L_V * dist * (1 + 1e-6) + 1e-9
        gx, gy = hypergradient(problem, x, sx), hypergradient(problem, y, sy)
        assert np.linalg.norm(gx - gy) <= c.L_phi * dist * (1 + 1e-6) + 1e-9


def _bandit(gamma=0.0, tau=0.5):
    """One state, two actions, r_x = (x, -x): the softmax policy moves fastest at x = 0."""
    P = np.ones((1, 2, 1))
    reward = AffineReward(np.zeros((1, 2)), np.array([[[1.0], [-1.0]]]))
    return BilevelProblem(P, reward, QuadraticUpper(), gamma, tau)


def test_policy_lipschitz_constant_is_attained():
    problem = _bandit()
    c = theory_constants(problem, 1.0)
    h = 1e-6
    p0 = solve_soft_mdp(problem.mdp(np.array([0.0]))).pi
    p1 = solve_soft_mdp(problem.mdp(np.array([h]))).pi
    ratio = policy_distance(p0, p1) / h
    assert ratio <= c.L_pi * (1 + 1e-6)
    assert ratio >= 0.999 * c.L_pi, "L_pi = kappa C_rx / tau is attained by a two-action bandit at x = 0"


def test_value_lipschitz_constant_kappa_is_attained():
    """A reward shift x on every pair moves Q* by exactly kappa x: the factor kappa C_rx cannot be smaller."""
    gamma = 0.8
    mdp = TabularMDP(np.full((3, 2, 3), 1 / 3), np.zeros((3, 2)), gamma, 1.0)
    reward = AffineReward(np.random.default_rng(0).random((3, 2)), np.ones((3, 2, 1)))
    problem = BilevelProblem.from_mdp(mdp, reward, QuadraticUpper())
    c = theory_constants(problem, 1.0)
    q0 = solve_soft_mdp(problem.mdp(np.array([0.0])), tol=1e-12).Q
    q1 = solve_soft_mdp(problem.mdp(np.array([0.5])), tol=1e-12).Q
    assert np.allclose(q1 - q0, c.kappa * c.reward.C_rx * 0.5, atol=1e-9)


def test_upper_value_bound_is_attained():
    """One absorbing state with reward rbar and mu on it: |grad_pi f| = kappa^2 rbar = C_f."""
    gamma, rbar = 0.9, 2.0
    upper = UpperValue(np.ones((1, 3, 1)), np.full((1, 3), rbar), gamma)
    c = upper_constants(upper, 1, 3)
    g = upper.grad_pi(None, np.full((1, 3), 1 / 3))
    assert np.allclose(np.abs(g), c.C_f)


def test_quadratic_reward_constants_match_the_formula():
    problem = synthetic_problem(0)
    c = reward_constants(problem.reward, 2.0)
    sym = problem.reward.M_sym2
    top = np.linalg.eigh(sym)[1][:, -1] if np.linalg.eigvalsh(sym)[-1] >= -np.linalg.eigvalsh(sym)[0] else \
        np.linalg.eigh(sym)[1][:, 0]
    x = 2.0 * top  # the direction where |x^T M x| and ||(M + M^T) x|| are largest
    s, a = np.unravel_index(np.argmax(problem.reward.c), problem.reward.c.shape)
    assert np.isclose(abs(problem.reward.value(x)[s, a]), c.C_r)
    assert np.isclose(np.linalg.norm(problem.reward.jacobian(x)[s, a]), c.C_rx)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_expected_estimate_is_eq9_at_the_policy(name):
    problem, radius = PROBLEMS[name]()
    rng = np.random.default_rng(1)
    x = problem.x0 + 0.1 * rng.standard_normal(problem.n)
    sol = solve_soft_mdp(problem.mdp(x), tol=1e-12)
    assert np.allclose(expected_estimate(problem, x, sol.pi), hypergradient(problem, x, sol), atol=1e-8)
    # away from pi*: the forward form of (15), step 1 then step 2, computed independently
    pi = softmax_policy(sol.Q + rng.standard_normal(sol.Q.shape), problem.tau)
    mdp = problem.mdp(x)
    J = problem.reward.jacobian(x)
    P = mdp.dense_P()
    M = np.eye(problem.S) - problem.gamma * np.einsum("sa,sat->st", pi, P)
    dV = np.linalg.solve(M, np.einsum("sa,san->sn", pi, J))
    dQ = J + problem.gamma * np.einsum("sat,tn->san", P, dV)
    u = pi * problem.upper.grad_pi(x, pi)
    forward = problem.upper.grad_x(x, pi) + np.einsum("sa,san->n", u, dQ - dV[:, None, :]) / problem.tau
    assert np.allclose(expected_estimate(problem, x, pi), forward, atol=1e-8)
    # the bias bound of Theorem 6.6's estimator
    c = theory_constants(problem, radius)
    for scale in (1e-3, 1e-1, 1.0):
        pi = softmax_policy(sol.Q + scale * rng.standard_normal(sol.Q.shape), problem.tau)
        bias = np.linalg.norm(expected_estimate(problem, x, pi) - hypergradient(problem, x, sol))
        assert bias <= c.C_est * policy_distance(pi, sol.pi) * (1 + 1e-9)


def test_pmd_converges_at_least_at_the_theoretical_rate():
    problem = shaping_problem()
    mdp = problem.mdp(problem.x0)
    pi_star = solve_soft_mdp(mdp, tol=1e-13).pi
    for eta in (0.5, 1.0):
        err = pmd_errors(mdp, 12, eta, pi_star)
        rate = pmd_rate(mdp.gamma, mdp.tau, eta)
        assert np.all(err[1:] <= 2.0 * rate ** np.arange(1, 13) * 10), "error far above the linear bound"
        measured = (err[12] / err[4]) ** (1 / 8)
        assert measured <= rate, f"PMD contracted at {measured:.3f} per step, slower than {rate:.3f}"
    counts = [pmd_iterations_for(e, mdp.gamma, mdp.tau, 1.0) for e in (1e-1, 1e-2, 1e-3, 1e-4)]
    assert np.allclose(np.diff(counts), np.diff(counts)[0], atol=1), "T grows by a constant per decade of 1/eps"


def test_inexact_descent_floor_is_proportional_to_the_inner_accuracy():
    problem = shaping_problem()
    floors, eps = [], []
    for T in (4, 8, 16):
        run = inexact_hypergradient_descent(problem, problem.x0, beta=1.0, iterations=120, pmd_iterations=T,
                                            weight_decay=0.1)
        floors.append(run["grad_norm"][-1])
        eps.append(run["policy_error"][-1])
    slope = np.polyfit(np.log(eps), np.log(floors), 1)[0]
    assert 0.8 <= slope <= 1.2, f"floor of ||grad phi|| vs inner accuracy has slope {slope:.2f}, expected 1"


# ---- instances that attain the derived constants within a small factor (so a constant scaled by 1/10 fails the
# upper-bound check and one scaled by 10 fails the lower-bound check). They have gamma = 0 and one state, so they
# pin each constant's scale, not its powers of kappa and |S|.

def _linear_bandit(tau=0.5):
    """One state, two actions, r_x = (x, -x), gamma = 0, f = pi(a_1) - pi(a_2): C_rx = 1, L_rx = 0, C_f = 1, L_f = 0,
    so L_pi = L_V = 1/tau, L_D = L_phi = 3/tau^2, C_est = 3/tau."""
    P = np.ones((1, 2, 1))
    reward = AffineReward(np.zeros((1, 2)), np.array([[[1.0], [-1.0]]]))
    return BilevelProblem(P, reward, LinearPolicyUpper(np.array([[1.0, -1.0]])), 0.0, tau)


def _ratios_on_a_grid(problem, quantity, xs):
    """Largest |quantity(x') - quantity(x)| / |x' - x| over neighbours of a 1-d grid (quantity -> array)."""
    vals = [np.asarray(quantity(np.array([x]))) for x in xs]
    return max(float(np.abs(vals[i + 1] - vals[i]).max() if vals[i].ndim == 0 else _gap(vals[i + 1], vals[i]))
               / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1))


def _gap(a, b):
    return float(np.linalg.norm(np.atleast_1d(a - b)))


GRID = np.linspace(-2.0, 2.0, 401)


def test_value_gradient_lipschitz_constant_is_attained():
    problem = _linear_bandit()
    c = theory_constants(problem, 5.0)
    dV = lambda x: implicit_derivatives(problem, x).dV[0, 0]  # noqa: E731
    ratio = _ratios_on_a_grid(problem, dV, GRID)
    assert ratio <= c.L_V * (1 + 1e-9)
    assert ratio >= 0.99 * c.L_V, "L_V = kappa^2 C_rx L_pi is attained at x = 0 when gamma = 0"


def test_q_gradient_lipschitz_constant_is_attained():
    """r_x = (x^2, -x^2), gamma = 0: grad Q* = grad r_x = (2x, -2x) moves at exactly L_rx = L_Q = 2."""
    reward = QuadraticFormReward(np.array([[1.0, -1.0]]), np.eye(1))
    problem = BilevelProblem(np.ones((1, 2, 1)), reward, QuadraticUpper(), 0.0, 0.5)
    c = theory_constants(problem, 1.0)
    dQ = lambda x: implicit_derivatives(problem, x).dQ[0, :, 0]  # noqa: E731
    ratio = _ratios_on_a_grid(problem, lambda x: np.abs(dQ(x)).max(), np.linspace(-1, 1, 201))
    assert c.L_Q * 0.999 <= ratio <= c.L_Q * (1 + 1e-9)


def test_policy_jacobian_and_hypergradient_constants_within_a_factor_5():
    """sum_a |D(a)| and grad phi = D(a_1) - D(a_2) both move at most at 0.77/tau^2 (the largest slope of
    sech^2 tanh), against L_D = L_phi = 3/tau^2: attained within a factor 3.9."""
    problem = _linear_bandit()
    c = theory_constants(problem, 5.0)
    tau = problem.tau

    def D(x):
        sol = solve_soft_mdp(problem.mdp(x), tol=1e-13)
        return (sol.pi[..., None] * implicit_derivatives(problem, x, sol).dlogpi)[0, :, 0]

    def grad_phi(x):
        return hypergradient(problem, x, solve_soft_mdp(problem.mdp(x), tol=1e-13))

    ratio_D = max(np.abs(D(np.array([b])) - D(np.array([a]))).sum() / (b - a) for a, b in zip(GRID, GRID[1:]))
    ratio_phi = _ratios_on_a_grid(problem, grad_phi, GRID)
    for ratio, const in ((ratio_D, c.L_D), (ratio_phi, c.L_phi)):
        assert ratio <= const * (1 + 1e-9)
        assert ratio >= const / 5.0, (ratio, const)
    assert np.isclose(ratio_phi, 4 / (3 * np.sqrt(3)) / tau**2, rtol=1e-3)


def test_estimator_bias_constant_within_a_factor_2():
    """Near a deterministic pi*, the bias of (15) built from pi is (t + t*) delta / tau -> 2 delta / tau, against
    C_est = 3 / tau: attained within a factor 1.5."""
    problem = _linear_bandit()
    c = theory_constants(problem, 5.0)
    x = np.array([3.0])
    sol = solve_soft_mdp(problem.mdp(x), tol=1e-13)
    pi = sol.pi + np.array([[-1e-4, 1e-4]])
    ratio = np.linalg.norm(expected_estimate(problem, x, pi) - hypergradient(problem, x, sol)) / \
        policy_distance(pi, sol.pi)
    assert c.C_est / 2.0 <= ratio <= c.C_est * (1 + 1e-9)


def test_trajectory_drift_is_attained_near_a_deterministic_policy():
    """||rho^N(pi) - rho^N(pi')||_1 <= N H delta (Lemma H.1), attained as pi' -> a deterministic pi."""
    rng = np.random.default_rng(3)
    mdp = TabularMDP(rng.dirichlet(np.ones(2), size=(2, 2)), rng.random((2, 2)), 0.5, 1.0)
    det = np.array([[1.0, 0.0], [1.0, 0.0]])
    near = det + np.array([[-1e-5, 1e-5], [-1e-5, 1e-5]])
    for H in (1, 2, 4):
        one, two = trajectory_distribution(mdp, det, H), trajectory_distribution(mdp, near, H)
        assert np.isclose(one.sum(), 1.0) and np.isclose(two.sum(), 1.0)
        for N in (1, 2):
            p, q = one, two
            if N == 2:
                p, q = np.outer(one, one).ravel(), np.outer(two, two).ravel()
            ratio = np.abs(p - q).sum() / policy_distance(det, near)
            assert 0.999 * trajectory_drift(N, H) <= ratio <= trajectory_drift(N, H) * (1 + 1e-9)
    # a random pair of policies stays below the bound
    a, b = rng.dirichlet(np.ones(2), size=2), rng.dirichlet(np.ones(2), size=2)
    gap = np.abs(trajectory_distribution(mdp, a, 3) - trajectory_distribution(mdp, b, 3)).sum()
    assert gap <= trajectory_drift(1, 3) * policy_distance(a, b)


def test_bce_loss_constants_are_attained():
    """Tabular reward r_x = x, segments of H steps: l_x = BCE(y, sigma((c1 - c2) . x)). The worst pair of
    segments sits on two different state-action pairs, c1 - c2 = H (e_1 - e_2)."""
    H, R = 5, 0.8
    loss = bce_loss_constants(H, R)
    diff = np.zeros(4)
    diff[:2] = H, -H
    x_worst = -R * diff / np.linalg.norm(diff)
    value = bce_loss(np.array([diff @ x_worst]), np.array([1.0]))[0]
    assert np.isclose(value, loss.C_l)
    grad = lambda x: (sigmoid(diff @ x) - 1.0) * diff  # noqa: E731
    assert loss.L_l_prime * sigmoid(np.sqrt(2) * H * R) * 0.999 <= np.linalg.norm(grad(x_worst)) <= loss.L_l_prime
    h = 1e-6 * diff / np.linalg.norm(diff)
    assert np.isclose(np.linalg.norm(grad(h) - grad(-h)) / np.linalg.norm(2 * h), loss.L_l, rtol=1e-6)


def test_every_iterate_is_checked_against_the_ball():
    problem = shaping_problem()
    run = inexact_hypergradient_descent(problem, problem.x0, beta=1.0, iterations=5, pmd_iterations=4,
                                        weight_decay=0.1, radius=5.0)
    assert run["x_norm"].shape == (6,) and run["x_norm"].max() <= 5.0
    with pytest.raises(ValueError, match="iterate x_"):
        inexact_hypergradient_descent(problem, problem.x0, beta=1.0, iterations=5, pmd_iterations=4,
                                      weight_decay=0.1, radius=1e-3 + np.linalg.norm(problem.x0))
    with pytest.raises(ValueError, match="iterate 1 has norm"):
        check_in_ball(np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]), 4.9)


def test_bad_input_is_refused():
    problem = synthetic_problem(0)
    with pytest.raises(ValueError, match="radius"):
        reward_constants(problem.reward, -1.0)
    with pytest.raises(ValueError, match="pi must have shape"):
        expected_estimate(problem, problem.x0, np.ones((2, 2)))
    with pytest.raises(ValueError, match="accuracy"):
        pmd_iterations_for(0.0, 0.9, 1.0, 1.0)
    with pytest.raises(TypeError, match="upper level"):
        upper_constants(object(), 2, 2)
