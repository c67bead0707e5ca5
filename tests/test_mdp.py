import numpy as np
import pytest
import scipy.sparse as sp

import sobirl_lite as sl


def _valid(S=3, A=2, seed=0):
    mdp = sl.random_mdp(S, A, seed=seed)
    return mdp.P.copy(), mdp.r.copy()


def test_valid_construction_and_defaults():
    P, r = _valid()
    mdp = sl.TabularMDP(P, r, 0.9, 0.5)
    assert (mdp.S, mdp.A) == (3, 2)
    np.testing.assert_allclose(mdp.rho, np.full(3, 1 / 3))
    assert not mdp.sparse
    assert "S=3" in repr(mdp)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda P, r: (P[:, :, :2], r), "shape"),
        (lambda P, r: (P[0], r), "shape"),
        (lambda P, r: (P, r[:, :1]), "r must have shape"),
        (lambda P, r: (np.where(np.arange(3) == 0, np.nan, P), r), "NaN"),
        (lambda P, r: (P * 1.01, r), "sum to 1"),
        (lambda P, r: (P - 2 * P * (P == P.max()), r), "negative"),
        (lambda P, r: (P, np.where(r > 0.5, np.inf, r)), "non-finite"),
        (lambda P, r: (P, np.where(r > 0.5, np.nan, r)), "non-finite"),
    ],
)
def test_bad_transitions_and_rewards_name_the_problem(mutate, message):
    P, r = _valid()
    P, r = mutate(P, r)
    with pytest.raises(ValueError, match=message):
        sl.TabularMDP(P, r, 0.9, 0.5)


@pytest.mark.parametrize("gamma", [-0.1, 1.0, 1.5, np.nan])
def test_gamma_outside_unit_interval(gamma):
    P, r = _valid()
    with pytest.raises(ValueError, match="gamma"):
        sl.TabularMDP(P, r, gamma, 0.5)


@pytest.mark.parametrize("tau", [0.0, -1.0, np.nan, np.inf])
def test_tau_must_be_positive(tau):
    P, r = _valid()
    with pytest.raises(ValueError, match="tau"):
        sl.TabularMDP(P, r, 0.9, tau)


@pytest.mark.parametrize("rho", [np.ones(3), np.array([0.5, 0.6, -0.1]), np.ones(4) / 4, np.array([np.nan, 0.5, 0.5])])
def test_rho_must_be_a_distribution(rho):
    P, r = _valid()
    with pytest.raises(ValueError, match="rho"):
        sl.TabularMDP(P, r, 0.9, 0.5, rho)


def test_row_sum_tolerance_is_1e_8():
    P, r = _valid()
    P_ok = P.copy()
    P_ok[0, 0, 0] += 5e-9
    sl.TabularMDP(P_ok, r, 0.9, 0.5)
    P_bad = P.copy()
    P_bad[0, 0, 0] += 5e-8
    with pytest.raises(ValueError, match=r"row \(s=0, a=0\)"):
        sl.TabularMDP(P_bad, r, 0.9, 0.5)


def test_sparse_P_matches_dense():
    dense = sl.random_mdp(6, 3, branching=2, seed=3)
    sparse = sl.TabularMDP(sp.csr_matrix(dense.P.reshape(18, 6)), dense.r, dense.gamma, dense.tau)
    assert sparse.sparse
    V = np.arange(6.0)
    np.testing.assert_allclose(sparse.expect(V), dense.expect(V))
    u = np.random.default_rng(0).random((6, 3))
    np.testing.assert_allclose(sparse.adjoint(u), dense.adjoint(u))
    pi = np.full((6, 3), 1 / 3)
    np.testing.assert_allclose(sparse.policy_matrix(pi).toarray(), dense.policy_matrix(pi))
    np.testing.assert_allclose(sparse.dense_P(), dense.P)


def test_sparse_P_bad_shape_and_rows():
    with pytest.raises(ValueError, match="S\\*A, S"):
        sl.TabularMDP(sp.csr_matrix(np.ones((7, 3)) / 3), np.zeros((2, 3)), 0.9, 1.0)
    bad = sp.csr_matrix(np.full((6, 3), 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        sl.TabularMDP(bad, np.zeros((3, 2)), 0.9, 1.0)


def test_expect_and_adjoint_are_transposes():
    mdp = sl.random_mdp(7, 4, seed=1)
    rng = np.random.default_rng(1)
    V, u = rng.normal(size=7), rng.normal(size=(7, 4))
    assert np.isclose(np.sum(u * mdp.expect(V)), V @ mdp.adjoint(u))
    assert mdp.expect(rng.normal(size=(7, 5))).shape == (7, 4, 5)


def test_solve_policy_system_dense_sparse_and_transpose():
    mdp = sl.random_mdp(8, 3, branching=3, seed=2, gamma=0.95)
    smdp = sl.TabularMDP(sp.csr_matrix(mdp.P.reshape(24, 8)), mdp.r, 0.95, 1.0)
    pi = sl.softmax_policy(np.random.default_rng(0).normal(size=(8, 3)), 1.0)
    b = np.arange(8.0)
    M = np.eye(8) - 0.95 * mdp.policy_matrix(pi)
    for m in (mdp, smdp):
        np.testing.assert_allclose(M @ sl.solve_policy_system(m, pi, b), b, atol=1e-10)
        np.testing.assert_allclose(M.T @ sl.solve_policy_system(m, pi, b, transpose=True), b, atol=1e-10)


def test_random_mdp_reproducible_and_branching():
    a, b = sl.random_mdp(10, 3, branching=2, seed=7), sl.random_mdp(10, 3, branching=2, seed=7)
    np.testing.assert_array_equal(a.P, b.P)
    assert np.all((a.P > 0).sum(axis=2) <= 2)
    assert not np.array_equal(a.P, sl.random_mdp(10, 3, branching=2, seed=8).P)
    with pytest.raises(ValueError, match="branching"):
        sl.random_mdp(4, 2, branching=5)


def test_gridworld_geometry():
    mdp = sl.gridworld(3, 4, walls=[(1, 1)], goal=(2, 3), start=(0, 0), slip=0.0)
    L = mdp.layout
    s = L.state(0, 0)
    # deterministic moves: right goes to (0, 1), up bumps into the edge, down from (0,1) hits the wall
    assert mdp.P[s, 3, L.state(0, 1)] == 1.0
    assert mdp.P[s, 0, s] == 1.0
    assert mdp.P[L.state(0, 1), 1, L.state(0, 1)] == 1.0
    g = L.state(2, 3)
    assert np.all(mdp.P[g, :, g] == 1.0) and np.all(mdp.r[g] == 1.0)
    assert mdp.rho[s] == 1.0
    assert np.isnan(L.to_grid(np.zeros(12))[1, 1])
    # the wall cell is never entered
    assert np.all(mdp.P[:, :, L.state(1, 1)][np.arange(12) != L.state(1, 1)] == 0)


def test_gridworld_slip_and_sparse_variant_agree():
    dense = sl.gridworld(4, 4, walls=[(2, 2)], slip=0.2, sparse=False)
    sparse = sl.gridworld(4, 4, walls=[(2, 2)], slip=0.2, sparse=True)
    np.testing.assert_allclose(sparse.dense_P(), dense.P)
    # from a free interior cell the intended move happens with prob 1 - slip + slip/4
    s = dense.layout.state(1, 1)
    assert np.isclose(dense.P[s, 3, dense.layout.state(1, 2)], 0.8 + 0.05)


@pytest.mark.parametrize("kwargs, message", [({"goal": (1, 1), "walls": [(1, 1)]}, "goal"),
                                             ({"start": (9, 9)}, "start"), ({"slip": 1.5}, "slip")])
def test_gridworld_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sl.gridworld(3, 3, **kwargs)


def test_with_reward_revalidates_only_reward():
    mdp = sl.gridworld(3, 3)
    new = mdp.with_reward(np.ones((9, 4)))
    assert new.layout is mdp.layout and np.all(new.r == 1) and np.all(mdp.r[:8] == 0)
    with pytest.raises(ValueError, match="r must have shape"):
        mdp.with_reward(np.ones((9, 3)))


def test_random_mdp_scales_to_large_sparse_models():
    """Past 5e7 entries of S*A*S the successors are drawn by rejection (the argsort would need S*A*S random
    numbers: 64 GB at S=10^5, A=8); every row still has `branching` distinct successors and sums to one."""
    from sobirl_lite import mdp as mdp_module

    m = sl.random_mdp(30_000, 8, branching=4, seed=3, sparse=True)
    assert 30_000 * 8 * 30_000 > mdp_module._ARGSORT_LIMIT
    P = m.P.tocsr()
    assert np.all(np.diff(P.indptr) == 4)  # duplicates would have been summed into fewer entries
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0)
    # the same seed gives the same model
    assert (sl.random_mdp(30_000, 8, branching=4, seed=3, sparse=True).P != P).nnz == 0
    # branching close to S: rejection rarely succeeds, the per-row permutation finishes the job
    cols = mdp_module._distinct_successors(np.random.default_rng(0), 50, 12, 11)
    assert all(len(set(row)) == 11 for row in cols.tolist())
