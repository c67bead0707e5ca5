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
