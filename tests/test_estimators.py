"""Prop. 5.1 (reward-gradient sums), eq. (12) and the hyper-gradient estimator (15) = (13) + (14)."""
import itertools
import math

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


# ----------------------------------------------------------------------------------------------------------------
# RLHF in the configuration SoBiRL and chapter 7 run: pairs from RLHFSetup.query, the default PreferenceModel
# (leave-one-out baseline), the default synthetic human (sampled labels), B = 8 pairs per iteration.
# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_rlhf():
    """The smallest RLHF setup whose batches of 8 pairs can be enumerated: 2 states, 2 actions, one-step segments
    from a fixed start state, so a labelled pair is one of 8 outcomes. Returns (setup, x, lower-level optimum,
    exact visits, the 8 outcomes as a batch, their probabilities)."""
    base = sl.random_mdp(2, 2, seed=11, gamma=0.6, tau=0.7)
    mdp = sl.TabularMDP(base.P, np.array([[0.4, -0.9], [1.1, 0.2]]), base.gamma, base.tau, rho=[1.0, 0.0])
    setup = sl.rlhf.RLHFSetup(mdp, segment_length=1, pairs_per_iteration=8)
    assert isinstance(setup.model, PreferenceModel) and setup.model.baseline      # the defaults under test
    assert setup.gatherer.sample and setup.gatherer.temperature == 1.0
    x = np.array([0.3, -0.5, 0.8, 0.1])
    sol = sl.solve_soft_mdp(setup.lower_mdp(x), tol=1e-13)
    visits = exact_discounted_visits(setup.lower_mdp(x), sol.pi)
    a1, a2, y = np.array(list(itertools.product(range(2), range(2), (0, 1)))).T
    y = y.astype(np.float64)
    states = np.zeros((8, 2, 1), dtype=np.int64)
    actions = np.stack([a1, a2], axis=1).astype(np.int64)[:, :, None]
    outcomes = TupleBatch(states, actions, mdp.r[states, actions], y)
    p_first = setup.gatherer.probabilities(outcomes)                                # P_H(τ¹ ≻ τ²) of each pair
    probs = sol.pi[0, a1] * sol.pi[0, a2] * np.where(y == 1.0, p_first, 1.0 - p_first)
    assert np.isclose(probs.sum(), 1.0)
    return setup, x, sol, visits, outcomes, probs


def _rlhf_phi(setup, x):
    """φ(x) = E_{d~ρ²(π*_x), y}[BCE], exactly (one-step segments from state 0; labels enter linearly)."""
    pi = sl.solve_soft_mdp(setup.lower_mdp(x), tol=1e-13).pi
    a1, a2 = np.array(list(itertools.product(range(2), range(2)))).T
    states = np.zeros((4, 2, 1), dtype=np.int64)
    actions = np.stack([a1, a2], axis=1)[:, :, None]
    pairs = TupleBatch(states, actions, setup.mdp.r[states, actions])
    pairs = pairs._replace(labels=setup.gatherer.probabilities(pairs))
    return float(pi[0, a1] * pi[0, a2] @ setup.model.value(x, pairs))


class _SelfBaselineModel(PreferenceModel):
    """A tempting mistake: subtract the mean loss of the whole batch, the pair's own loss included."""

    def score_weights(self, x, batch):
        l = self.value(x, batch)
        return np.broadcast_to((l - l.mean())[:, None, None], batch.states.shape)


def _batch_expectation(setup, x, visits, outcomes, probs, model):
    """E[(15)] over every batch of B independent labelled pairs: the multisets of B outcomes with multinomial
    weights (the estimator does not depend on the order of the pairs)."""
    B = setup.pairs_per_iteration
    mean, total_weight = np.zeros(setup.n), 0.0
    for combo in itertools.combinations_with_replacement(range(len(probs)), B):
        counts = np.bincount(combo, minlength=len(probs))
        weight = math.factorial(B) / np.prod([math.factorial(c) for c in counts]) * np.prod(probs ** counts)
        mean += weight * estimate_hypergradient(x, visits, setup.reward, setup.mdp.tau, model,
                                                outcomes.take(list(combo))).total
        total_weight += weight
    assert np.isclose(total_weight, 1.0, atol=1e-12)
    return mean


def test_rlhf_default_estimator_exactly_unbiased_at_batch_8(tiny_rlhf):
    """E[(15)] over all 6,435 kinds of batch of 8 independent labelled pairs, with the default model (leave-one-out
    baseline), equals ∇φ (finite differences of the exact φ) to round-off: a bias of 1e-6 of |∇φ|, let alone 2 %,
    fails. A baseline that includes the pair's own loss is visibly biased here, so the check has teeth."""
    setup, x, sol, visits, outcomes, probs = tiny_rlhf
    assert setup.pairs_per_iteration == 8
    eps = 1e-5
    grad = np.array([(_rlhf_phi(setup, x + eps * e) - _rlhf_phi(setup, x - eps * e)) / (2 * eps)
                     for e in np.eye(setup.n)])
    mean = _batch_expectation(setup, x, visits, outcomes, probs, setup.model)
    assert rel_err(mean, grad) < 1e-6, (mean, grad)
    wrong = _batch_expectation(setup, x, visits, outcomes, probs, _SelfBaselineModel(setup.reward))
    assert rel_err(wrong, grad) > 0.02, (wrong, grad)


class _TaggedEnv(TabularEnv):
    """Rollouts whose rewards are replaced by the trajectory's index, so a segment tells which rollout it came
    from."""

    def rollouts(self, *args, **kwargs):
        traj = super().rollouts(*args, **kwargs)
        self.n_rolled = traj.states.shape[0]
        tags = np.broadcast_to(np.arange(traj.states.shape[0])[:, None], traj.states.shape).astype(np.float64)
        return traj._replace(rewards=tags)


@pytest.mark.parametrize("segment, rollout", [(1, None), (4, None), (3, 6)])
def test_rlhf_query_pairs_share_no_trajectory(segment, rollout):
    """RLHFSetup.query cuts every pair of a batch from its own two rollouts, so the pairs are independent and the
    exact result above applies to the batches SoBiRL actually uses."""
    setup = sl.rlhf.example_setup(size=3, segment_length=segment, rollout_length=rollout)
    env = _TaggedEnv(setup.mdp)
    pi = np.full((setup.mdp.S, setup.mdp.A), 1 / setup.mdp.A)
    rng = np.random.default_rng(0)
    for B in (1, 2, setup.pairs_per_iteration, 8, 33):
        pairs = setup.query(env, pi, B, rng)
        sources = pairs.rewards[:, :, 0].astype(int)               # (B, 2) rollout index of each segment
        assert env.n_rolled == 2 * B
        assert np.all((pairs.rewards == pairs.rewards[..., :1]))  # a segment lies inside one rollout
        assert len(np.unique(sources)) == 2 * B, sources


def test_rlhf_default_pipeline_end_to_end(tiny_rlhf):
    """The whole default path: setup.query draws 8 labelled pairs, the default model weights them, (15) averages.
    Over 1,500 batches the mean agrees with the exact expectation within 4.5 standard errors per coordinate (a
    coarse check of the sampling path; the exact test above carries the 2 % claim)."""
    setup, x, sol, visits, outcomes, probs = tiny_rlhf
    exact = sum(p * estimate_hypergradient(x, visits, setup.reward, setup.mdp.tau,
                                           PreferenceModel(setup.reward, baseline=False), outcomes.take([i])).total
                for i, p in enumerate(probs))
    env, rng = setup.make_env(), np.random.default_rng(5)
    est = np.array([estimate_hypergradient(x, visits, setup.reward, setup.mdp.tau, setup.model,
                                           setup.query(env, sol.pi, setup.pairs_per_iteration, rng)).total
                    for _ in range(1500)])
    z = (est.mean(axis=0) - exact) / (est.std(axis=0, ddof=1) / np.sqrt(len(est)))
    assert np.all(np.abs(z) < 4.5), z
