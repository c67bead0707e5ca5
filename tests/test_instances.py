"""The synthetic problem (chapter 4) and the reward-shaping problem (Section 3.3 of Yang et al.)."""
import numpy as np
import pytest
import torch

import sobirl_lite as sl
from sobirl_lite.instances import (AffineReward, QuadraticFormReward, hard_synthetic_problem, potential_features,
                                  shaping_problem, state_bonus_features, synthetic_problem)


def test_synthetic_problem_matches_the_paper_settings():
    p = synthetic_problem(0)
    assert (p.S, p.A, p.n, p.gamma, p.tau) == (10, 5, 100, 0.5, 1.0)
    P = p.P
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    support = (P > 0).sum(axis=2)
    assert support.min() >= 1 and support.max() <= p.S - 1
    c = p.reward.c
    assert np.all((c >= 0) & (c <= 1))
    assert isinstance(p.upper, sl.QuadraticUpper)
    assert p.x0.shape == (100,)
    assert hard_synthetic_problem(0).gamma == 0.9


def test_synthetic_problem_is_seeded():
    a, b, c = synthetic_problem(3), synthetic_problem(3), synthetic_problem(4)
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.reward.M, b.reward.M)
    np.testing.assert_array_equal(a.x0, b.x0)
    assert not np.array_equal(a.reward.M, c.reward.M)


def test_quadratic_form_reward_derivatives_match_autograd():
    rng = np.random.default_rng(0)
    reward = QuadraticFormReward(rng.random((4, 3)), rng.normal(size=(7, 7)))
    x = rng.normal(size=7)
    x_t = torch.tensor(x, requires_grad=True)
    J_auto = torch.autograd.functional.jacobian(reward.value_torch, x_t).numpy()
    np.testing.assert_allclose(reward.jacobian(x), J_auto, rtol=1e-12, atol=1e-12)
    # x'Mx sums 49 terms with sum|terms| / |x'Mx| = 24 here: another summation order (numpy's BLAS kernel vs torch)
    # may move it by up to 49 * 24 * 1.1e-16 = 1.3e-13 relative, so 1e-12 and not 1e-13.
    np.testing.assert_allclose(reward.value(x), reward.value_torch(x_t).detach().numpy(), rtol=1e-12)
    g = rng.normal(size=(4, 3))
    np.testing.assert_allclose(reward.vjp(x, g), np.einsum("sa,san->n", g, J_auto), rtol=1e-12, atol=1e-12)
    # vjp also agrees with a finite difference of <g, r_x>
    e = rng.normal(size=7)
    fd = (np.sum(g * reward.value(x + 1e-6 * e)) - np.sum(g * reward.value(x - 1e-6 * e))) / 2e-6
    assert reward.vjp(x, g) @ e == pytest.approx(fd, rel=1e-7)


def test_reward_argument_checks():
    with pytest.raises(ValueError, match="square"):
        QuadraticFormReward(np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="features"):
        AffineReward(np.zeros((2, 2)), np.zeros((2, 3, 4)))
    r = QuadraticFormReward(np.ones((2, 2)), np.eye(3))
    with pytest.raises(ValueError, match="x must have shape"):
        r.value(np.ones(2))
    with pytest.raises(ValueError, match="shaping"):
        shaping_problem(shaping="magic")


def test_affine_reward_derivatives():
    rng = np.random.default_rng(1)
    reward = AffineReward(rng.normal(size=(3, 2)), rng.normal(size=(3, 2, 4)))
    x, g = rng.normal(size=4), rng.normal(size=(3, 2))
    x_t = torch.tensor(x)
    np.testing.assert_allclose(reward.value(x), reward.value_torch(x_t).numpy(), rtol=1e-13)
    np.testing.assert_allclose(reward.vjp(x, g), np.einsum("sa,san->n", g, reward.jacobian(x)), rtol=1e-13)


def test_shaping_problem_structure_and_invariance_of_potential_shaping():
    p = shaping_problem()
    env = p.env
    assert p.n == env.S and isinstance(p.upper, sl.UpperValue)
    np.testing.assert_array_equal(p.reward.value(p.x0), env.r)            # x = 0: the sparse reward alone
    np.testing.assert_array_equal(state_bonus_features(3, 2)[1, :, 1], [1, 1])
    # potential-based shaping leaves the soft-optimal policy, hence phi, unchanged: its hyper-gradient is zero
    q = shaping_problem(shaping="potential")
    x = np.random.default_rng(0).normal(size=q.n)
    assert np.linalg.norm(sl.hypergradient(q, x)) < 1e-9
    assert sl.phi(q, x) == pytest.approx(sl.phi(q, np.zeros(q.n)), abs=1e-9)
    F = potential_features(env)
    np.testing.assert_allclose(F @ x, env.gamma * env.expect(x) - x[:, None], atol=1e-12)
    # a per-state bonus does change the policy
    assert np.linalg.norm(sl.hypergradient(p, p.x0)) > 1e-2
