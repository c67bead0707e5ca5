"""The Table-1 baselines on tabular problems: exact HGD, ITD, PBRL (Shen, Yang & Chen 2024) and PARL (Chakraborty et al. 2024)."""
import numpy as np
import pytest

import sobirl_lite as sl
from sobirl_lite.algorithms import (ExactHGDConfig, ITDConfig, PARLConfig, PBRLConfig, exact_hgd, itd, parl,
                                    parl_hypergradient, pbrl, unrolled_step, value_penalty, value_penalty_gradients)
from sobirl_lite.algorithms._common import direct_solve_cost, policy_evaluation_iterative
from sobirl_lite.instances import synthetic_problem

from helpers import linear_problem, rel_err


# --------------------------------------------------------------------------------------------------- exact HGD
def test_exact_hgd_estimate_is_the_closed_form():
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.8, tau=0.5, seed=1)
    h = exact_hgd(problem, x, ExactHGDConfig(beta=0.05, iterations=50, tol=1e-12, track_true_grad=True,
                                             progress=False))
    np.testing.assert_allclose(h["grad_norm"], h["true_grad_norm"], rtol=1e-7)
    assert h["true_grad_norm"][-1] < h["true_grad_norm"][0]


def test_exact_hgd_warm_start_saves_backups_and_adjoint_modes_agree():
    problem, x = linear_problem(S=6, A=3, n=4, gamma=0.9, tau=0.5, seed=2)
    cfg = dict(beta=0.01, iterations=40, tol=1e-11, progress=False)
    warm = exact_hgd(problem, x, ExactHGDConfig(**cfg))
    cold = exact_hgd(problem, x, ExactHGDConfig(warm_start=False, **cfg))
    direct = exact_hgd(problem, x, ExactHGDConfig(adjoint="direct", **cfg))
    np.testing.assert_allclose(warm.x, cold.x, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(warm.x, direct.x, rtol=1e-6, atol=1e-9)
    assert warm["backups"][-1] < 0.9 * cold["backups"][-1]
    # the charge of a direct solve: γ^m <= 1e-10
    assert direct_solve_cost(0.5) == 34 and direct_solve_cost(0.9) == 219


def test_iterative_policy_evaluation_matches_direct_solve():
    problem, x = linear_problem(S=6, A=3, n=2, gamma=0.9, seed=3)
    mdp = problem.mdp(x)
    pi = sl.softmax_policy(np.random.default_rng(0).normal(size=(6, 3)), 1.0)
    b = np.arange(6.0)
    for transpose in (False, True):
        y, cost, sweeps = policy_evaluation_iterative(mdp, pi, b, None, 1e-13, 10_000, transpose=transpose)
        np.testing.assert_allclose(y, sl.solve_policy_system(mdp, pi, b, transpose=transpose), rtol=1e-10)
        assert cost == sweeps and sweeps > 100
        y2, cost2, sweeps2 = policy_evaluation_iterative(mdp, pi, b, None, 1e-13, 10_000, transpose=transpose,
                                                         P_pi=mdp.policy_matrix(pi))
        np.testing.assert_allclose(y2, y, rtol=1e-12)
        # A sweep with the formed P_pi costs 1/A backup. The two paths round differently, so the stopping test can
        # fire one sweep apart (it does under OPENBLAS_CORETYPE=Prescott): compare the counts within one.
        assert cost2 == pytest.approx(sweeps2 / 3) and abs(sweeps2 - sweeps) <= 1


def test_exact_hgd_config_errors():
    problem, x = linear_problem()
    with pytest.raises(ValueError, match="adjoint"):
        exact_hgd(problem, x, ExactHGDConfig(adjoint="qr"))
    with pytest.raises(ValueError, match="tol"):
        exact_hgd(problem, x, ExactHGDConfig(tol=0))
    with pytest.raises(RuntimeError, match="not solved"):
        exact_hgd(problem, x, ExactHGDConfig(max_inner=2, tol=1e-14, iterations=1, progress=False))


# --------------------------------------------------------------------------------------------------------- ITD
def test_itd_step_matches_core_unrolled_hypergradient_and_converges_to_closed_form():
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.6, tau=0.5, seed=4)
    Q0 = np.random.default_rng(0).normal(size=(5, 3))
    g, Q_K, _ = unrolled_step(problem, x, 7, Q0)
    np.testing.assert_allclose(g, sl.unrolled_hypergradient(problem, x, 7, Q0=Q0), rtol=1e-12)
    Q = Q0
    for _ in range(7):
        Q = sl.soft_bellman(problem.mdp(x), Q)
    np.testing.assert_allclose(Q_K, Q, rtol=1e-12)
    g_long, _, _ = unrolled_step(problem, x, 80)
    assert rel_err(g_long, sl.hypergradient(problem, x)) < 1e-10


def test_itd_run_and_cost():
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.6, tau=0.5, seed=4)
    h = itd(problem, x, ITDConfig(beta=0.05, unroll=5, iterations=60, track_true_grad=True, progress=False))
    np.testing.assert_allclose(h["backups"], 10.0 * np.arange(60))
    assert h["true_grad_norm"][-1] < 0.5 * h["true_grad_norm"][0]
    with pytest.raises(ValueError, match="unroll"):
        itd(problem, x, ITDConfig(unroll=0))


# -------------------------------------------------------------------------------------------------------- PBRL
def test_value_penalty_is_nonnegative_and_zero_at_the_optimum():
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.8, tau=0.5, seed=5)
    sol = sl.solve_soft_mdp(problem.mdp(x), tol=1e-13)
    assert value_penalty(problem, x, sol.pi, sol) == pytest.approx(0.0, abs=1e-10)
    pi = sl.softmax_policy(np.random.default_rng(1).normal(size=(5, 3)), 1.0)
    assert value_penalty(problem, x, pi) > 1e-3
    gx, gpi = value_penalty_gradients(problem, x, sol.pi, sol)
    # at π = π*_x both gradients vanish up to the per-state constant -d(s)τ(-1)... of the direct parameterisation
    assert np.linalg.norm(gx) < 1e-9
    np.testing.assert_allclose(gpi - gpi.mean(axis=1, keepdims=True), 0, atol=1e-9)


def test_value_penalty_gradients_match_finite_differences():
    problem, x = linear_problem(S=4, A=3, n=3, gamma=0.8, tau=0.7, seed=6)
    rng = np.random.default_rng(2)
    pi = sl.softmax_policy(rng.normal(size=(4, 3)), 1.0)
    gx, gpi = value_penalty_gradients(problem, x, pi)
    eps = 1e-6
    fd_x = np.array([(value_penalty(problem, x + eps * e, pi) - value_penalty(problem, x - eps * e, pi)) / (2 * eps)
                     for e in np.eye(3)])
    np.testing.assert_allclose(gx, fd_x, rtol=1e-6, atol=1e-8)
    fd_pi = np.zeros_like(pi)
    for s in range(4):
        for a in range(3):
            E = np.zeros_like(pi)
            E[s, a] = eps
            fd_pi[s, a] = (value_penalty(problem, x, pi + E) - value_penalty(problem, x, pi - E)) / (2 * eps)
    np.testing.assert_allclose(gpi, fd_pi, rtol=1e-6, atol=1e-8)


def test_pbrl_reduces_the_hypergradient_and_keeps_pi_on_the_simplex():
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=7)
    h = pbrl(problem, x, PBRLConfig(lam=20.0, beta=0.01, iterations=400, track_true_grad=True, track_every=50,
                                    progress=False))
    tg = h["true_grad_norm"][~np.isnan(h["true_grad_norm"])]
    assert tg[-1] < 0.5 * tg[0]
    pi = h.extra["pi"]
    assert np.all(pi > 0) and np.allclose(pi.sum(axis=1), 1)
    assert h.extra["penalty"][-1] < h.extra["penalty"][0]
    assert np.all(np.diff(h["backups"]) >= 10)


def test_pbrl_direct_solver_gives_the_same_run_at_the_charged_cost():
    """solver="direct" (the uniform cost convention of chapter 4's Table 1): the same iterates as the iterative
    solves up to their tolerance, and each of the three solves charged direct_solve_cost(gamma)."""
    problem, x = linear_problem(S=5, A=3, n=4, gamma=0.7, tau=0.5, seed=7)
    cfg = dict(lam=20.0, beta=0.01, iterations=30, inner_steps=2, progress=False)
    h_it = pbrl(problem, x, PBRLConfig(**cfg))
    h_dir = pbrl(problem, x, PBRLConfig(**cfg, solver="direct"))
    np.testing.assert_allclose(h_dir.x, h_it.x, atol=1e-8)
    np.testing.assert_allclose(np.diff(h_dir["backups"]), 2 + 3 + 3 * direct_solve_cost(0.7))


def test_pbrl_errors():
    problem, x = linear_problem()
    with pytest.raises(ValueError, match="lam"):
        pbrl(problem, x, PBRLConfig(lam=-1))
    with pytest.raises(ValueError, match="pi0"):
        pbrl(problem, x, PBRLConfig(iterations=1, progress=False), pi0=np.ones((5, 3)))


# -------------------------------------------------------------------------------------------------------- PARL
@pytest.mark.parametrize("seed", [0, 1])
def test_parl_pinv_equals_closed_form_at_the_solution(seed):
    problem, x = linear_problem(S=4, A=3, n=5, gamma=0.8, tau=0.7, seed=seed)
    sol = sl.solve_soft_mdp(problem.mdp(x), tol=1e-13)
    g, H = parl_hypergradient(problem, x, sol.Q / problem.tau, hessian="pinv")
    np.testing.assert_allclose(g, sl.hypergradient(problem, x, sol), rtol=1e-8, atol=1e-10)
    # the softmax Hessian is singular: rank S(A-1), the per-state logit shifts are its null space
    eig = np.abs(np.linalg.eigvalsh(H))
    assert np.sum(eig > 1e-12 * eig.max()) == 4 * 2
    shift = np.kron(np.eye(4), np.ones(3))
    np.testing.assert_allclose(H @ shift.T, 0, atol=1e-10)


def test_parl_damped_is_biased_by_order_delta():
    problem, x = linear_problem(S=4, A=3, n=5, gamma=0.8, tau=0.7, seed=0)
    sol = sl.solve_soft_mdp(problem.mdp(x), tol=1e-13)
    g9 = sl.hypergradient(problem, x, sol)
    errs = [rel_err(parl_hypergradient(problem, x, sol.Q / problem.tau, "damped", d)[0], g9) for d in (1e-3, 1e-5)]
    assert errs[1] < errs[0] / 50 and errs[1] < 1e-3


def test_parl_on_the_synthetic_problem_and_cost():
    problem = synthetic_problem(0, S=4, A=3, n=6)
    h = parl(problem, problem.x0, PARLConfig(beta=0.05, iterations=40, inner_steps=5, track_true_grad=True,
                                             progress=False))
    assert h["true_grad_norm"][-1] < 0.2 * h["true_grad_norm"][0]
    per = 5 + (2 * 12 + 4) * direct_solve_cost(0.5)
    np.testing.assert_allclose(np.diff(h["backups"]), per)
    assert set(h.extra["hessian_rank"]) <= {4 * 2}
    with pytest.raises(ValueError, match="damping"):
        parl(problem, problem.x0, PARLConfig(hessian="damped", damping=0.0))
    with pytest.raises(ValueError, match="hessian"):
        parl(problem, problem.x0, PARLConfig(hessian="inverse"))


def test_parl_hessian_is_the_autograd_hessian_of_the_value():
    from torch.func import hessian
    import torch
    from sobirl_lite.algorithms.parl import _TorchModel, hessian_fn
    problem, x = linear_problem(S=4, A=3, n=5, gamma=0.8, tau=0.7, seed=3)
    model = _TorchModel(problem)
    th = torch.as_tensor(np.random.default_rng(0).normal(size=(4, 3)))
    x_t = torch.as_tensor(x)
    np.testing.assert_allclose(hessian_fn(model)(x_t, th).numpy(), hessian(model.value, argnums=1)(x_t, th).numpy(),
                               rtol=1e-10, atol=1e-12)
    g_auto = torch.func.grad(model.value, argnums=1)(x_t, th).numpy()
    np.testing.assert_allclose(model.policy_gradient(x_t, th).numpy(), g_auto, rtol=1e-10, atol=1e-12)
