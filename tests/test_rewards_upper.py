import numpy as np
import pytest
import torch

import sobirl_lite as sl
from helpers import rel_err


def _rewards(S=4, A=3, n=5, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(S, A, n))
    Phi = torch.as_tensor(rng.normal(size=(S * A, n)))
    c = torch.as_tensor(rng.random(S * A))
    nonlinear = sl.TorchReward(lambda x: (torch.tanh(Phi @ x) + c).reshape(S, A), S, A, n)
    return [sl.LinearReward(feats), nonlinear], rng


@pytest.mark.parametrize("which", [0, 1])
def test_vjp_matches_jacobian_and_autograd(which):
    rewards, rng = _rewards()
    R = rewards[which]
    x, g = rng.normal(size=R.n), rng.normal(size=(R.S, R.A))
    J = R.jacobian(x)
    assert J.shape == (R.S, R.A, R.n)
    np.testing.assert_allclose(R.vjp(x, g), np.einsum("san,sa->n", J, g), atol=1e-12)
    # jacobian against central differences of value
    eps = 1e-6
    fd = np.stack([(R.value(x + eps * e) - R.value(x - eps * e)) / (2 * eps) for e in np.eye(R.n)], axis=-1)
    np.testing.assert_allclose(J, fd, atol=1e-8)
    np.testing.assert_allclose(R.value_torch(torch.tensor(x)).numpy(), R.value(x))


def test_tabular_reward_is_identity():
    R = sl.TabularReward(3, 2)
    x = np.arange(6.0)
    np.testing.assert_array_equal(R.value(x), x.reshape(3, 2))
    g = np.random.default_rng(0).normal(size=(3, 2))
    np.testing.assert_array_equal(R.vjp(x, g), g.ravel())
    np.testing.assert_array_equal(R.jacobian(x).reshape(6, 6), np.eye(6))


def test_reward_bad_input():
    rewards, _ = _rewards()
    with pytest.raises(ValueError, match=r"x must have shape \(n,\)"):
        rewards[0].value(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        rewards[0].value(np.full(5, np.nan))
    with pytest.raises(ValueError, match="g must have shape"):
        rewards[0].vjp(np.zeros(5), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="features"):
        sl.LinearReward(np.zeros((3, 3)))
    bad = sl.TorchReward(lambda x: x[:2], 4, 3, 5)
    with pytest.raises(ValueError, match="expected \\(S, A\\)"):
        bad.value(np.zeros(5))
    with pytest.raises(TypeError):
        sl.TorchReward("not callable", 1, 1, 1)


def test_quadratic_upper():
    up = sl.QuadraticUpper()
    x, pi = np.array([1.0, 2.0]), np.array([[0.5, 0.5]])
    assert up.value(x, pi) == pytest.approx(2.5 + 0.25)
    np.testing.assert_array_equal(up.grad_x(x, pi), x)
    np.testing.assert_array_equal(up.grad_pi(x, pi), pi)


def test_upper_value_policy_gradient_matches_finite_differences():
    mdp = sl.random_mdp(5, 3, seed=2, gamma=0.85)
    up = sl.UpperValue.from_mdp(mdp, r=np.random.default_rng(3).random((5, 3)), n=2)
    pi = sl.softmax_policy(np.random.default_rng(4).normal(size=(5, 3)), 1.0)
    x = np.zeros(2)
    G = up.grad_pi(x, pi)
    eps = 1e-6
    fd = np.zeros_like(pi)
    for s in range(5):
        for a in range(3):
            # direct parameterisation: perturb one entry (leaving the simplex is fine for the formula)
            d = np.zeros_like(pi)
            d[s, a] = eps
            vp = -up.mdp.rho @ np.linalg.solve(np.eye(5) - 0.85 * mdp.policy_matrix(pi + d), ((pi + d) * up.mdp.r).sum(1))
            vm = -up.mdp.rho @ np.linalg.solve(np.eye(5) - 0.85 * mdp.policy_matrix(pi - d), ((pi - d) * up.mdp.r).sum(1))
            fd[s, a] = (vp - vm) / (2 * eps)
    assert rel_err(G, fd) < 1e-7
    assert up.value(x, pi) == pytest.approx(-up.mdp.rho @ up.evaluate(pi)[0])
    np.testing.assert_array_equal(up.grad_x(x, pi), np.zeros(2))



def test_upper_value_on_a_sparse_chain_uses_gmres_and_agrees_with_dense(monkeypatch):
    """A sparse upper level solves by GMRES (an expander's sparse LU fills in: at S=10,000 the benchmark's baselines
    spent ~2 minutes in it per gradient), never by splu when GMRES converges; values agree with the dense model."""
    import scipy.sparse.linalg as spla

    sparse = sl.random_mdp(300, 3, branching=4, seed=5, gamma=0.9, sparse=True)
    dense = sl.TabularMDP(sparse.dense_P(), sparse.r, sparse.gamma, sparse.tau)
    r_u = np.random.default_rng(6).random((300, 3))
    pi = sl.softmax_policy(np.random.default_rng(7).normal(size=(300, 3)), 1.0)
    up_dense = sl.UpperValue.from_mdp(dense, r=r_u, n=2)
    expected = up_dense.grad_pi(np.zeros(2), pi), up_dense.value(np.zeros(2), pi)

    def no_splu(*args, **kwargs):
        raise AssertionError("sparse LU called although GMRES converges")

    monkeypatch.setattr(spla, "splu", no_splu)
    up = sl.UpperValue.from_mdp(sparse, r=r_u, n=2)
    assert up._system(pi).method == "krylov"
    np.testing.assert_allclose(up.grad_pi(np.zeros(2), pi), expected[0], rtol=1e-10, atol=1e-12)
    assert up.value(np.zeros(2), pi) == pytest.approx(expected[1], rel=1e-12)

def test_upper_value_bad_input():
    mdp = sl.random_mdp(3, 2)
    with pytest.raises(ValueError, match="r_u"):
        sl.UpperValue(mdp.P, np.zeros((3, 3)), 0.9)
    with pytest.raises(ValueError, match="mu"):
        sl.UpperValue(mdp.P, np.zeros((3, 2)), 0.9, mu=np.ones(3))
    with pytest.raises(ValueError, match="gamma"):
        sl.UpperValue(mdp.P, np.zeros((3, 2)), 1.0)


def test_bilevel_problem_validation():
    mdp = sl.random_mdp(3, 2)
    with pytest.raises(ValueError, match="reward is over"):
        sl.BilevelProblem(mdp.P, sl.TabularReward(3, 3), sl.QuadraticUpper(), 0.9, 1.0)
    with pytest.raises(TypeError, match="upper must have"):
        sl.BilevelProblem(mdp.P, sl.TabularReward(3, 2), object(), 0.9, 1.0)
    with pytest.raises(ValueError, match="tau"):
        sl.BilevelProblem(mdp.P, sl.TabularReward(3, 2), sl.QuadraticUpper(), 0.9, -1.0)
    prob = sl.BilevelProblem(mdp.P, sl.TabularReward(3, 2), sl.QuadraticUpper(), 0.9, 1.0)
    np.testing.assert_array_equal(prob.mdp(np.arange(6.0)).r, np.arange(6.0).reshape(3, 2))
    assert "n=6" in repr(prob)


def test_sparse_linear_features_match_dense():
    import scipy.sparse as sp
    rng = np.random.default_rng(5)
    dense = rng.normal(size=(4, 3, 6)) * (rng.random((4, 3, 6)) < 0.3)
    Rd = sl.LinearReward(dense)
    Rs = sl.LinearReward(sp.csr_matrix(dense.reshape(12, 6)), shape=(4, 3))
    x, g = rng.normal(size=6), rng.normal(size=(4, 3))
    np.testing.assert_allclose(Rs.value(x), Rd.value(x))
    np.testing.assert_allclose(Rs.vjp(x, g), Rd.vjp(x, g))
    np.testing.assert_allclose(Rs.jacobian(x), dense)
    np.testing.assert_allclose(Rs.value_torch(torch.tensor(x)).numpy(), Rd.value(x))
    with pytest.raises(ValueError, match="shape=\\(S, A\\)"):
        sl.LinearReward(sp.csr_matrix(dense.reshape(12, 6)))
