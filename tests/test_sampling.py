"""TabularEnv: gymnasium API, seeding, and the vectorised inverse-CDF sampler (dense and sparse P)."""
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from gymnasium.utils.env_checker import check_env

import sobirl_lite as sl
from sobirl_lite.sampling import TabularEnv


@pytest.fixture(params=[False, True], ids=["dense", "sparse"])
def mdp(request):
    return sl.random_mdp(6, 3, branching=3, seed=4, sparse=request.param)


def test_gymnasium_env_checker(mdp):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker warns that the env has no registered spec
        check_env(TabularEnv(mdp, max_episode_steps=5), skip_render_check=True)


def test_reset_seed_reproducible_and_step_api(mdp):
    env = TabularEnv(mdp, max_episode_steps=3)
    s, info = env.reset(seed=7)
    assert env.observation_space.contains(s) and info == {}
    steps = [env.step(a) for a in (0, 1, 2)]
    env.reset(seed=7)
    assert [env.step(a) for a in (0, 1, 2)] == steps
    assert [t[3] for t in steps] == [False, False, True]          # truncated at max_episode_steps
    assert all(t[2] is False for t in steps)                        # never terminates
    s_prev = s
    for (s_next, r, *_), a in zip(steps, (0, 1, 2)):
        assert r == mdp.r[s_prev, a] and mdp.dense_P()[s_prev, a, s_next] > 0
        s_prev = s_next


def test_rollouts_seeded_through_np_random(mdp):
    pi = sl.softmax_policy(np.random.default_rng(0).normal(size=(mdp.S, mdp.A)), 1.0)
    env = TabularEnv(mdp)
    env.reset(seed=3)
    a = env.rollouts(pi, 50, 8)
    env.reset(seed=3)
    b = env.rollouts(pi, 50, 8)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)
    assert a.states.shape == (50, 8) and a.final_states.shape == (50,)
    assert np.allclose(a.rewards, mdp.r[a.states, a.actions])
    assert env.transitions_sampled == 2 * 50 * 8


def test_empirical_transitions_match_P(mdp):
    """Inverse-CDF draws follow P(.|s,a) (and never hit zero-probability successors)."""
    env = TabularEnv(mdp)
    env.reset(seed=0)
    m = 4000
    s = np.repeat(np.arange(mdp.S), mdp.A * m)
    a = np.tile(np.repeat(np.arange(mdp.A), m), mdp.S)
    nxt = env.sample_next_states(s, a)
    freq = np.zeros((mdp.S, mdp.A, mdp.S))
    np.add.at(freq, (s, a, nxt), 1.0 / m)
    P = mdp.dense_P()
    assert np.all(freq[P == 0] == 0)
    assert np.abs(freq - P).max() < 5 * np.sqrt(0.25 / m)


def test_policy_and_initial_state_frequencies():
    mdp = sl.random_mdp(4, 3, seed=1)
    rho = np.array([0.5, 0.0, 0.3, 0.2])
    mdp = sl.TabularMDP(mdp.P, mdp.r, mdp.gamma, mdp.tau, rho)
    pi = np.array([[1, 0, 0], [0.2, 0.3, 0.5], [0.0, 0.5, 0.5], [1 / 3] * 3])
    env = TabularEnv(mdp)
    env.reset(seed=2)
    tr = env.rollouts(pi, 40_000, 1)
    s0 = np.bincount(tr.states[:, 0], minlength=4) / 40_000
    assert np.abs(s0 - rho).max() < 0.01 and s0[1] == 0
    emp = np.zeros((4, 3))
    np.add.at(emp, (tr.states[:, 0], tr.actions[:, 0]), 1.0)
    emp = emp / np.maximum(emp.sum(axis=1, keepdims=True), 1)
    assert np.abs(emp[[0, 2, 3]] - pi[[0, 2, 3]]).max() < 0.02
    assert np.all(emp[pi == 0] == 0)


def test_forced_start_and_first_action():
    mdp = sl.random_mdp(5, 2, seed=0)
    env = TabularEnv(mdp)
    env.reset(seed=0)
    tr = env.rollouts(np.full((5, 2), 0.5), 6, 3, s0=np.arange(6) % 5, a0=1)
    assert np.array_equal(tr.states[:, 0], np.arange(6) % 5) and np.all(tr.actions[:, 0] == 1)


def test_dense_and_sparse_share_distribution():
    """Same seed, same MDP stored dense or sparse: identical draws (the table drops zeros either way)."""
    dense = sl.random_mdp(7, 2, branching=2, seed=5)
    sparse = sl.TabularMDP(sp.csr_matrix(dense.P.reshape(14, 7)), dense.r, dense.gamma, dense.tau)
    pi = np.full((7, 2), 0.5)
    e1, e2 = TabularEnv(dense), TabularEnv(sparse)
    e1.reset(seed=1), e2.reset(seed=1)
    assert np.array_equal(e1.rollouts(pi, 20, 5).states, e2.rollouts(pi, 20, 5).states)


def test_bad_inputs():
    mdp = sl.random_mdp(3, 2, seed=0)
    env = TabularEnv(mdp)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
    with pytest.raises(ValueError, match="shape"):
        env.rollouts(np.full((2, 2), 0.5), 3, 2)
    with pytest.raises(ValueError, match="stochastic"):
        env.rollouts(np.full((3, 2), 0.7), 3, 2)
    with pytest.raises(ValueError, match="a0 needs s0"):
        env.rollouts(np.full((3, 2), 0.5), 3, 2, a0=0)
    with pytest.raises(ValueError, match="s0"):
        env.rollouts(np.full((3, 2), 0.5), 3, 2, s0=7)
    with pytest.raises(ValueError, match="horizon"):
        env.rollouts(np.full((3, 2), 0.5), 3, 0)
    with pytest.raises(TypeError):
        TabularEnv(np.eye(3))
    with pytest.raises(ValueError, match="max_episode_steps"):
        TabularEnv(mdp, max_episode_steps=0)
