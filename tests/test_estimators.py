"""Prop. 5.1 (reward-gradient sums), eq. (12) and the hyper-gradient estimator (15) = (13) + (14)."""
import itertools

import numpy as np
import pytest

import sobirl_lite as sl
from sobirl_lite.estimators import (ReturnLoss, TupleBatch, estimate_hypergradient, exact_discounted_visits,
                                    exploration_weights, mc_grad_Q, mc_grad_V, reward_gradients,
                                    sample_discounted_visits, sample_tuples, soft_q_from_visits,
                                    truncation_horizon, upper_objective_estimate)
from sobirl_lite.rlhf import PreferenceModel, SyntheticGatherer
from sobirl_lite.sampling import TabularEnv

from helpers import linear_problem, rel_err


@pytest.fixture(scope="module")
def shaping():
    """A small reward-shaping problem at its lower-level optimum."""
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=3, upper="value")
    sol = sl.solve_soft_mdp(problem.mdp(x), tol=1e-12)
    return problem, x, sol


def test_prop_5_1_exact_tables_match_implicit_derivatives(shaping):
    problem, x, sol = shaping
    visits = exact_discounted_visits(problem.mdp(x), sol.pi)
    g = reward_gradients(visits, problem.reward, x)
    ref = sl.implicit_derivatives(problem, x, sol)
    assert np.allclose(g.dV, ref.dV, atol=1e-10) and np.allclose(g.dQ, ref.dQ, atol=1e-10)
    # the recursion ∇Q = ∇r + γ P ∇V
    J = problem.reward.jacobian(x)
    assert np.allclose(g.dQ, J + problem.gamma * problem.mdp(x).expect(g.dV), atol=1e-10)


def test_truncation_error_bound(shaping):
    """Σ_{t<H} (γPΠ)^t misses at most γ^H/(1-γ) per entry of the visit table (C_r = 1)."""
    problem, x, sol = shaping
    mdp = problem.mdp(x)
    exact = exact_discounted_visits(mdp, sol.pi).C.reshape(15, 15)
    Pi = np.zeros((5, 15))
    Pi[np.repeat(np.arange(5), 3), np.arange(15)] = sol.pi.ravel()
    M = problem.gamma * mdp.dense_P().reshape(15, 5) @ Pi
    for H in (1, 5, 20):
        partial = sum(np.linalg.matrix_power(M, t) for t in range(H))
        tail = np.abs(exact - partial).sum(axis=1).max()
        assert tail <= problem.gamma ** H / (1 - problem.gamma) + 1e-12
        assert tail >= 0.5 * problem.gamma ** H  # the bound is not vacuous
    H = truncation_horizon(0.7, 1e-3, scale=2.0)
    assert 0.7 ** H * 2 / 0.3 <= 1e-3 < 0.7 ** (H - 1) * 2 / 0.3


def test_sampled_visits_and_literal_prop_5_1(shaping):
    problem, x, sol = shaping
    env = TabularEnv(problem.mdp(x))
    env.reset(seed=0)
    H = truncation_horizon(problem.gamma, 1e-6)
    ref = sl.implicit_derivatives(problem, x, sol)
    dV = mc_grad_V(env, sol.pi, problem.reward, x, problem.gamma, 4000, H)
    dQ = mc_grad_Q(env, sol.pi, problem.reward, x, problem.gamma, 4000, H)
    assert rel_err(dV, ref.dV) < 0.03 and rel_err(dQ, ref.dQ) < 0.03
    visits = sample_discounted_visits(env, sol.pi, problem.gamma, 10, H)
    assert visits.transitions == 15 * 10 * H
    # every row of C sums to Σ_{t<H} γ^t exactly
    assert np.allclose(visits.C.sum(axis=(1, 2)), (1 - problem.gamma ** H) / (1 - problem.gamma))


def test_soft_q_from_visits_is_soft_policy_evaluation(shaping):
    problem, x, _ = shaping
    mdp = problem.mdp(x)
    pi = sl.softmax_policy(np.random.default_rng(1).normal(size=(5, 3)), 1.0)
    Q = soft_q_from_visits(exact_discounted_visits(mdp, pi), mdp.r, mdp.tau)
    assert np.allclose(Q, sl.evaluate_policy(mdp, pi)[1], atol=1e-10)


def test_exploration_weights_average_to_zero_over_actions(shaping):
    """Σ_a π(a|s)(∇Q̂ - ∇V̂)(s,a) = 0 exactly for the estimated tables, so (14) ignores weights of the form π(a|s)c(s):
    that is why a state-dependent baseline keeps the estimator unbiased."""
    problem, x, sol = shaping
    visits = sample_discounted_visits(TabularEnv(problem.mdp(x)), sol.pi, problem.gamma, 3, 10,
                                      np.random.default_rng(0))
    g = reward_gradients(visits, problem.reward, x)
    assert np.abs(np.einsum("sa,san->sn", sol.pi, g.dQ - g.dV[:, None, :])).max() < 1e-12
    # one single-step tuple per (s, a), weighted by π(a|s) c(s): the (14) table vanishes
    S, A = problem.S, problem.A
    s, a = np.divmod(np.arange(S * A), A)
    batch = TupleBatch(s[:, None, None], a[:, None, None], np.zeros((S * A, 1, 1)))
    c = np.random.default_rng(1).normal(size=S)
    w = (sol.pi[s, a] * c[s])[:, None, None]
    assert np.abs(exploration_weights(visits, batch, w)).max() < 1e-12
    assert np.abs(exploration_weights(visits, batch, c[s][:, None, None])).max() > 1e-3  # not any weights


def _estimate(problem, x, sol, n, seed):
    env_l, env_u = TabularEnv(problem.mdp(x)), TabularEnv(problem.upper.mdp)
    env_l.reset(seed=seed), env_u.reset(seed=seed + 10_000)
    S, A = problem.S, problem.A
    H = truncation_horizon(problem.gamma, 1e-6)
    visits = sample_discounted_visits(env_l, sol.pi, problem.gamma, max(1, n // (S * A)), H)
    batch = sample_tuples(env_u, sol.pi, n, 1, H)
    return estimate_hypergradient(x, visits, problem.reward, problem.tau, ReturnLoss(problem.gamma), batch)


def test_estimator_unbiased_converges_to_closed_form():
    """(15) at π* is unbiased for ∇φ (9): relative error <= 5% at 1e4 trajectories, shrinking like 1/sqrt(n).

    n upper-level trajectories and n lower-level rollouts (n/(S·A) per state-action pair) on a 4-state,
    3-action MDP with fixed seeds. (Relative error depends on the problem through |∇φ|; this one has
    |∇φ| ≈ 0.75.)
    """
    problem, x = linear_problem(S=4, A=3, n=4, gamma=0.7, tau=0.5, seed=1, upper="value")
    sol = sl.solve_soft_mdp(problem.mdp(x), tol=1e-12)
    g = sl.hypergradient(problem, x, sol)
    ns = np.array([100, 400, 1600, 6400])
    errs = np.array([np.mean([rel_err(_estimate(problem, x, sol, n, seed).total, g) for seed in range(6)])
                     for n in ns])
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert -0.8 < slope < -0.3, (errs, slope)
    estimates = [_estimate(problem, x, sol, 10_000, seed=100 + seed).total for seed in range(6)]
    errs_1e4 = [rel_err(e, g) for e in estimates]
    assert max(errs_1e4) <= 0.05, errs_1e4
    # the mean of independent estimates gets closer still: no bias left to see
    assert rel_err(np.mean(estimates, axis=0), g) < 0.02


def test_reward_shaping_terms(shaping):
    problem, x, sol = shaping
    est = _estimate(problem, x, sol, 500, 0)
    assert np.all(est.exploitation == 0) and np.allclose(est.total, est.exploration)
    # eq. (12): the upper-level estimate is minus the discounted return, close to phi(x)
    env_u = TabularEnv(problem.upper.mdp)
    env_u.reset(seed=1)
    batch = sample_tuples(env_u, sol.pi, 20_000, 1, truncation_horizon(problem.gamma, 1e-6))
    f_hat = upper_objective_estimate(ReturnLoss(problem.gamma), x, batch)
    assert abs(f_hat - sl.phi(problem, x, sol)) < 0.03 * abs(sl.phi(problem, x, sol))


def test_return_loss_variants_agree_in_mean(shaping):
    """Literal l(τ) weights, causal reward-to-go and the leave-one-out baseline give the same expectation."""
    problem, x, sol = shaping
    env_u = TabularEnv(problem.upper.mdp)
    env_u.reset(seed=3)
    visits = exact_discounted_visits(problem.mdp(x), sol.pi)
    batch = sample_tuples(env_u, sol.pi, 40_000, 1, truncation_horizon(problem.gamma, 1e-6))
    g = sl.hypergradient(problem, x, sol)
    errs = {}
    for causal, baseline in ((False, False), (True, False), (True, True)):
        est = estimate_hypergradient(x, visits, problem.reward, problem.tau, ReturnLoss(problem.gamma, causal,
                                                                                       baseline), batch)
        errs[(causal, baseline)] = rel_err(est.total, g)
    assert errs[(False, False)] < 0.3 and errs[(True, False)] < 0.06 and errs[(True, True)] < 0.02, errs


def _enumerate_pairs(S, A, H, mu, P_u, pi, r_true):
    """All pairs of H-step trajectories with their probabilities under ρ²(π) (tiny MDPs only)."""
    trajs, probs = [], []
    for seq in itertools.product(range(S), range(A), repeat=H):
        s, a = np.array(seq[0::2]), np.array(seq[1::2])
        p = mu[s[0]] * np.prod(pi[s, a]) * np.prod([P_u[s[h], a[h], s[h + 1]] for h in range(H - 1)])
        trajs.append((s, a))
        probs.append(p)
    idx = np.array(list(itertools.product(range(len(trajs)), repeat=2)))
    states = np.array([[trajs[i][0], trajs[j][0]] for i, j in idx])
    actions = np.array([[trajs[i][1], trajs[j][1]] for i, j in idx])
    batch = TupleBatch(states, actions, r_true[states, actions])
    return batch, np.array(probs)[idx[:, 0]] * np.array(probs)[idx[:, 1]]


def test_prop_5_2_rlhf_exact_enumeration():
    """For the RLHF loss (N=2, H=2, soft Bradley-Terry labels, separate P_u and μ_u), the exact expectation of
    (13) + (14) at π*_x equals the finite-difference gradient of φ(x) = E_{ρ²(π*_x)}[BCE]."""
    S, A, H = 2, 2, 2
    mdp = sl.random_mdp(S, A, seed=11, gamma=0.6, tau=0.7)
    up = sl.random_mdp(S, A, seed=12)
    P_u, mu = up.dense_P(), np.array([0.3, 0.7])
    r_true = np.random.default_rng(0).normal(size=(S, A))
    reward = sl.TabularReward(S, A)
    model = PreferenceModel(reward, baseline=False)
    gatherer = SyntheticGatherer(temperature=1.0, sample=False)
    x = np.random.default_rng(1).normal(size=S * A)

    def phi_and_pieces(x, with_estimate=False):
        lower = mdp.with_reward(reward.value(x))
        sol = sl.solve_soft_mdp(lower, tol=1e-13)
        batch, w = _enumerate_pairs(S, A, H, mu, P_u, sol.pi, r_true)
        batch = gatherer(batch, np.random.default_rng(0))
        value = float(w @ model.value(x, batch))
        if not with_estimate:
            return value
        visits = exact_discounted_visits(lower, sol.pi)
        e13, e14 = np.zeros(S * A), np.zeros(S * A)
        for i in range(batch.size):
            est = estimate_hypergradient(x, visits, reward, mdp.tau, model, batch.take([i]))
            e13 += w[i] * est.exploitation
            e14 += w[i] * est.exploration
        return value, e13, e14

    _, e13, e14 = phi_and_pieces(x, with_estimate=True)
    eps = 1e-5
    fd = np.array([(phi_and_pieces(x + eps * e) - phi_and_pieces(x - eps * e)) / (2 * eps)
                   for e in np.eye(S * A)])
    assert np.allclose(e13 + e14, fd, atol=1e-7), (e13 + e14, fd)
    assert np.linalg.norm(e14) > 0.05 * np.linalg.norm(fd)  # (14) matters: (13) alone is not the gradient
    assert rel_err(e13, fd) > 0.05


def test_bad_inputs(shaping):
    problem, x, sol = shaping
    visits = exact_discounted_visits(problem.mdp(x), sol.pi)
    empty = TupleBatch(np.zeros((0, 1, 3), int), np.zeros((0, 1, 3), int), np.zeros((0, 1, 3)))
    with pytest.raises(ValueError, match="empty"):
        estimate_hypergradient(x, visits, problem.reward, problem.tau, ReturnLoss(0.7), empty)
    with pytest.raises(ValueError, match="tau"):
        estimate_hypergradient(x, visits, problem.reward, 0.0, ReturnLoss(0.7), empty)
    with pytest.raises(ValueError, match="gamma"):
        truncation_horizon(1.0, 1e-3)
    with pytest.raises(ValueError, match="causal"):
        ReturnLoss(0.9, causal=False, baseline=True)
    env = TabularEnv(problem.mdp(x))
    with pytest.raises(ValueError, match="n_rollouts"):
        sample_discounted_visits(env, sol.pi, 0.7, 0, 5)
    with pytest.raises(ValueError, match="shape"):
        sample_discounted_visits(env, sol.pi[:2], 0.7, 1, 5)
