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
from sobirl_lite.theory import (expected_estimate, inexact_hypergradient_descent, pmd_errors, pmd_iterations_for,
                                pmd_rate, policy_distance, reward_constants, sampled_reward_constants,
                                theory_constants, upper_constants)
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
