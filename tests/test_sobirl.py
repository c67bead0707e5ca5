"""Algorithm 2 (SoBiRL) with its PMD inner solver, DRLHF and RL on the true reward."""
import numpy as np
import pytest

import sobirl_lite as sl
from sobirl_lite.algorithms import (DRLHFConfig, SoBiRLConfig, drlhf, pmd_update, policy_mirror_descent,
                                    rl_true_reward, sobirl)
from sobirl_lite.estimators import exact_discounted_visits, soft_q_from_visits
from sobirl_lite.rlhf import example_setup
from sobirl_lite.sampling import TabularEnv

from helpers import linear_problem


@pytest.fixture(scope="module")
def shaping():
    return linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=3, upper="value")


@pytest.mark.parametrize("eta", [0.5, 5.0, np.inf])
def test_pmd_converges_to_soft_optimum(eta):
    mdp = sl.random_mdp(6, 3, seed=2, gamma=0.8, tau=0.3)
    target = sl.solve_soft_mdp(mdp, tol=1e-12).pi
    _, pi = policy_mirror_descent(mdp, 300, eta=eta)
    assert np.abs(pi - target).max() < 1e-8
    # linear rate, at least as fast as the PMD factor 1 - (1-γ)ητ/(1+ητ) (γ for soft policy iteration)
    rate = mdp.gamma if np.isinf(eta) else 1 - (1 - mdp.gamma) * eta * mdp.tau / (1 + eta * mdp.tau)
    e5 = np.abs(policy_mirror_descent(mdp, 5, eta=eta)[1] - target).max()
    e20 = np.abs(policy_mirror_descent(mdp, 20, eta=eta)[1] - target).max()
    assert e20 <= rate ** 15 * e5 + 1e-12


def test_pmd_update_is_the_kl_prox_closed_form():
    rng = np.random.default_rng(0)
    z, Q, eta, tau = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), 0.7, 0.4
    pi = sl.softmax_policy(z, 1.0)
    new = sl.softmax_policy(pmd_update(z, Q, eta, tau), 1.0)
    ref = pi ** (1 / (1 + eta * tau)) * np.exp(eta * Q / (1 + eta * tau))
    assert np.allclose(new, ref / ref.sum(axis=1, keepdims=True))
    # it maximises <Q,p> + τH(p) - KL(p||π)/η: the gradient on the simplex is constant across actions
    g = Q - tau * (np.log(new) + 1) - (np.log(new / pi) + 1) / eta
    assert np.allclose(g - g.mean(axis=1, keepdims=True), 0, atol=1e-12)
    with pytest.raises(ValueError, match="eta"):
        pmd_update(z, Q, 0.0, tau)


def test_pmd_with_sampled_q_gets_close():
    mdp = sl.random_mdp(5, 3, seed=2, gamma=0.7, tau=0.5)
    env = TabularEnv(mdp)
    env.reset(seed=0)
    from sobirl_lite.estimators import sample_discounted_visits
    q_fn = lambda p: soft_q_from_visits(sample_discounted_visits(env, p, mdp.gamma, 200, 40), mdp.r, mdp.tau)
    _, pi = policy_mirror_descent(mdp, 30, eta=1.0, q_fn=q_fn)
    assert np.abs(pi - sl.solve_soft_mdp(mdp).pi).max() < 0.02
    # exact visits reproduce exact evaluation
    pi0 = np.full((5, 3), 1 / 3)
    assert np.allclose(soft_q_from_visits(exact_discounted_visits(mdp, pi0), mdp.r, mdp.tau),
                       sl.evaluate_policy(mdp, pi0)[1])


@pytest.mark.parametrize("inner_q", ["exact", "sampled"])
def test_sobirl_reward_shaping_descends(shaping, inner_q):
    problem, x0 = shaping
    cfg = SoBiRLConfig(iterations=40, step_size=0.5, inner_q=inner_q, n_tuples=200, n_rollouts=5,
                       track_true_grad=True, progress=False, seed=1)
    h = sobirl(problem, x0, cfg)
    assert len(h) == 40 and h.x.shape == (4,)
    assert h["phi"][-1] < h["phi"][0] - 0.05
    assert np.mean(h["true_grad_norm"][-5:]) < 0.5 * h["true_grad_norm"][0]
    assert np.all(np.diff(h["samples"]) > 0) and np.all(h["inner_iterations"] == cfg.pmd_iterations)
    assert h.extra["exploitation"].shape == (40, 4) and np.all(h.extra["exploitation"] == 0)
    assert np.allclose(h["grad_norm"], np.linalg.norm(h.extra["exploration"], axis=1))
    # same seed, same run
    h2 = sobirl(problem, x0, cfg)
    assert np.array_equal(h.x, h2.x)


def test_sobirl_rlhf_drlhf_and_rl_share_budgets():
    setup = example_setup(size=3, tau=0.5, segment_length=4, pairs_per_iteration=4, initial_pairs=8)
    cfg = SoBiRLConfig(iterations=12, step_size=0.1, pmd_iterations=2, n_rollouts=2, progress=False,
                       eval_every=4, seed=3)
    hs = sobirl(setup, np.zeros(setup.n), cfg)
    hd = drlhf(setup, np.zeros(setup.n), cfg)
    hr = rl_true_reward(setup, cfg)
    for h in (hs, hd, hr):
        assert len(h) == 12
        assert np.array_equal(h.extra["eval_iteration"], [0, 4, 8, 11])
        assert np.all(np.isfinite(h.extra["true_return"]))
    # identical queries and rollouts per iteration: the same sample and label counts
    assert np.array_equal(hs["samples"], hd["samples"])
    assert np.array_equal(hs.extra["labels"], hd.extra["labels"])
    assert hs.extra["labels"][-1] == 8 + 12 * 4
    assert np.all((hs.extra["pref_accuracy"] >= 0) & (hs.extra["pref_accuracy"] <= 1))
    assert np.all(np.isnan(hr.extra["pref_accuracy"]))
    # with only term (13) and one full-batch epoch, SoBiRL's step is DRLHF's BCE step: identical runs
    h13 = sobirl(setup, np.zeros(setup.n), SoBiRLConfig(**{**vars(cfg), "terms": "exploitation"}))
    assert np.allclose(h13.x, hd.x) and np.allclose(h13.extra["true_return"], hd.extra["true_return"])
    assert np.linalg.norm(hs.extra["exploration"][1:], axis=1).max() > 0


def test_rlhf_exact_inner_and_buffer_variant():
    setup = example_setup(size=3, tau=0.5, segment_length=4, pairs_per_iteration=4, initial_pairs=8)
    for kw in ({"inner_q": "exact"}, {"exploration_pairs": "buffer"}, {"terms": "exploration"}):
        h = sobirl(setup, np.zeros(setup.n), SoBiRLConfig(iterations=5, progress=False, n_rollouts=2, **kw))
        assert len(h) == 5 and np.all(np.isfinite(h.x))
    h = drlhf(setup, np.zeros(setup.n), DRLHFConfig(iterations=5, progress=False, inner_q="exact",
                                                    reward_epochs=3, reward_batch_size=4))
    assert len(h) == 5 and h["samples"][-1] > 0


def test_bad_inputs(shaping):
    problem, x0 = shaping
    quad = sl.BilevelProblem.from_mdp(sl.random_mdp(3, 2, seed=0), sl.TabularReward(3, 2), sl.QuadraticUpper())
    with pytest.raises(ValueError, match="UpperValue"):
        sobirl(quad, np.zeros(6), SoBiRLConfig(iterations=1, progress=False))
    with pytest.raises(ValueError, match="x0"):
        sobirl(problem, np.zeros(3), SoBiRLConfig(iterations=1, progress=False))
    with pytest.raises(TypeError):
        sobirl("not a problem", x0)
    for bad in ({"inner_q": "model"}, {"terms": "neither"}, {"step_size": 0.0}, {"pmd_iterations": 0},
                {"exploration_pairs": "all"}):
        with pytest.raises(ValueError):
            sobirl(problem, x0, SoBiRLConfig(progress=False, **bad))
    with pytest.raises(TypeError):
        drlhf(problem, x0)
