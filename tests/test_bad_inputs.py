"""Every bad input the tabular package knows about, with the error it gets: one row per input.

Each row is (what is wrong, a call that makes the mistake, the exception, a pattern its message must match). The
message must name the culprit (the argument or the setting), and the error must come at the door, before any real
work, except for divergence, which can only be seen while running and is caught as soon as it shows.
"""
import numpy as np
import pytest
import scipy.sparse as sp

import sobirl_lite as sl
from sobirl_lite.algorithms import (ExactHGDConfig, ITDConfig, MSoBiRLConfig, PARLConfig, PBRLConfig, exact_hgd, itd,
                                    m_sobirl, parl, pbrl)
from sobirl_lite.algorithms._common import DivergenceError
from sobirl_lite.algorithms.drlhf import DRLHFConfig, drlhf
from sobirl_lite.algorithms.sobirl import SoBiRLConfig, sobirl
from sobirl_lite.instances import AffineReward, synthetic_problem
from sobirl_lite.rlhf import RLHFSetup, example_setup

from helpers import linear_problem

SYN = synthetic_problem(seed=0)                       # S=10, A=5, n=100, the book's synthetic problem
SMALL, X_SMALL = linear_problem(S=3, A=2, n=6, gamma=0.8, tau=0.5, seed=0, upper="quadratic")
SHAPING, X_SHAPING = linear_problem(S=4, A=2, n=3, gamma=0.7, tau=0.5, seed=1, upper="value")
MDP3 = sl.random_mdp(3, 2, seed=0)
RLHF = example_setup(size=3, segment_length=3, pairs_per_iteration=4, initial_pairs=4)
NAN_Q = np.full((SMALL.S, SMALL.A), np.nan)


class _WrongShapeUpper:
    """An upper objective whose policy gradient has the wrong shape."""

    def value(self, x, pi):
        return 0.0

    def grad_x(self, x, pi):
        return np.zeros(np.size(x))

    def grad_pi(self, x, pi):
        return np.zeros(3)


def _problem(upper, reward=None):
    return sl.BilevelProblem.from_mdp(MDP3, reward or sl.TabularReward(3, 2), upper)


def _quick(cfg_cls, **kw):
    return cfg_cls(progress=False, **kw)


def _sobirl_cfg(**kw):
    base = dict(iterations=2, n_rollouts=1, n_tuples=5, progress=False)
    return SoBiRLConfig(**{**base, **kw})


# (id, call, exception, message pattern)
CASES = [
    # problems whose pieces disagree with P
    ("upper objective on 4 states, P on 3",
     lambda: _problem(sl.UpperValue.from_mdp(sl.random_mdp(4, 2, seed=1), n=6)),
     ValueError, r"upper objective is over \(S, A\) = \(4, 2\) but P has \(S, A\) = \(3, 2\)"),
    ("upper objective with n=5, reward with n=6",
     lambda: _problem(sl.UpperValue.from_mdp(MDP3, n=5)), ValueError, r"expects x of size n = 5 .* n = 6"),
    ("upper objective whose grad_pi has the wrong shape",
     lambda: _problem(_WrongShapeUpper()), ValueError, r"gradients have shapes grad_pi \(3,\)"),
    ("reward over other (S, A) than P",
     lambda: _problem(sl.QuadraticUpper(), sl.TabularReward(4, 2)), ValueError, r"reward is over \(S, A\) = \(4, 2\)"),
    ("upper object without methods", lambda: _problem(object()), TypeError, r"upper must have a value\(x, pi\)"),
    # complex numbers would lose their imaginary part
    ("complex reward of an MDP", lambda: sl.TabularMDP(np.full((3, 2, 3), 1 / 3), np.ones((3, 2)) + 1j, 0.9, 1.0),
     ValueError, r"r is complex"),
    ("complex initial distribution",
     lambda: sl.TabularMDP(np.full((3, 2, 3), 1 / 3), np.ones((3, 2)), 0.9, 1.0, rho=np.full(3, 1 / 3) + 0j),
     ValueError, r"rho is complex"),
    ("complex x for a reward", lambda: sl.TabularReward(3, 2).value(np.zeros(6) + 1j), ValueError, r"x is complex"),
    ("complex reward features", lambda: sl.LinearReward(np.ones((3, 2, 4)) + 1j), ValueError,
     r"features is complex"),
    ("complex sparse reward features",
     lambda: sl.LinearReward(sp.csr_matrix(np.ones((6, 2)) + 1j), shape=(3, 2)), ValueError, r"features is complex"),
    ("complex base reward", lambda: AffineReward(np.ones((3, 2)) + 1j, np.ones((3, 2, 1))), ValueError,
     r"base is complex"),
    ("complex upper-level reward r_u", lambda: sl.UpperValue.from_mdp(MDP3, r=MDP3.r + 1j), ValueError,
     r"r_u is complex"),
    ("complex x0", lambda: m_sobirl(SMALL, X_SMALL + 1j, _quick(MSoBiRLConfig, iterations=1)), ValueError,
     r"x0 is complex"),
    # initial values
    ("x0 of the wrong shape", lambda: exact_hgd(SMALL, np.zeros(2), _quick(ExactHGDConfig, iterations=1)),
     ValueError, r"x0 must have shape \(6,\)"),
    ("x0 with NaN", lambda: itd(SMALL, np.full(6, np.nan), _quick(ITDConfig, iterations=1)), ValueError,
     r"x0 contains NaN"),
    ("M-SoBiRL Q0 with NaN", lambda: m_sobirl(SMALL, X_SMALL, _quick(MSoBiRLConfig, iterations=1), Q0=NAN_Q),
     ValueError, r"Q0 contains NaN"),
    ("M-SoBiRL w0 infinite",
     lambda: m_sobirl(SMALL, X_SMALL, _quick(MSoBiRLConfig, iterations=1), w0=np.full(3, np.inf)),
     ValueError, r"w0 contains NaN or infinite"),
    ("M-SoBiRL w0 of the wrong shape",
     lambda: m_sobirl(SMALL, X_SMALL, _quick(MSoBiRLConfig, iterations=1), w0=np.zeros(4)),
     ValueError, r"w0 must have shape \(3,\)"),
    ("exact HGD Q0 with NaN",
     lambda: exact_hgd(SMALL, X_SMALL, _quick(ExactHGDConfig, iterations=1), Q0=NAN_Q), ValueError,
     r"Q0 contains NaN"),
    ("PARL Q0 with NaN", lambda: parl(SMALL, X_SMALL, _quick(PARLConfig, iterations=1), Q0=NAN_Q), ValueError,
     r"Q0 contains NaN"),
    ("PBRL pi0 with NaN", lambda: pbrl(SMALL, X_SMALL, _quick(PBRLConfig, iterations=1), pi0=NAN_Q), ValueError,
     r"pi0 contains NaN"),
    ("PBRL pi0 not stochastic",
     lambda: pbrl(SMALL, X_SMALL, _quick(PBRLConfig, iterations=1), pi0=np.ones((3, 2))), ValueError,
     r"pi0 must be a strictly positive stochastic"),
    # hyperparameters
    ("M-SoBiRL negative beta", lambda: MSoBiRLConfig(beta=-1.0).validate(), ValueError, r"beta must be positive"),
    ("M-SoBiRL non-integer inner_steps", lambda: MSoBiRLConfig(inner_steps=2.5).validate(), ValueError,
     r"inner_steps must be an integer"),
    ("exact HGD unknown adjoint", lambda: ExactHGDConfig(adjoint="lu").validate(), ValueError, r"adjoint must be"),
    ("PARL damped Hessian without damping", lambda: PARLConfig(hessian="damped", damping=0.0).validate(),
     ValueError, r"damping > 0"),
    ("PBRL unknown solver", lambda: PBRLConfig(solver="cg").validate(), ValueError, r"solver must be"),
    ("SoBiRL weight_decay NaN", lambda: sobirl(SHAPING, X_SHAPING, _sobirl_cfg(weight_decay=np.nan)), ValueError,
     r"weight_decay must be non-negative and finite"),
    ("SoBiRL horizon 0", lambda: sobirl(SHAPING, X_SHAPING, _sobirl_cfg(horizon=0)), ValueError,
     r"horizon must be positive"),
    ("SoBiRL upper_horizon 2.5", lambda: _sobirl_cfg(upper_horizon=2.5).validate(), ValueError,
     r"upper_horizon must be an integer"),
    ("SoBiRL iterations 2.7", lambda: sobirl(SHAPING, X_SHAPING, _sobirl_cfg(iterations=2.7)), ValueError,
     r"iterations must be an integer"),
    ("SoBiRL step_size inf", lambda: _sobirl_cfg(step_size=np.inf).validate(), ValueError,
     r"step_size must be positive and finite"),
    ("SoBiRL unknown terms", lambda: _sobirl_cfg(terms="all").validate(), ValueError, r"terms must be"),
    ("SoBiRL on a problem it cannot sample", lambda: sobirl(SMALL, X_SMALL, _sobirl_cfg()), ValueError,
     r"UpperValue"),
    ("DRLHF reward_batch_size 0", lambda: drlhf(RLHF, np.zeros(RLHF.n), DRLHFConfig(reward_batch_size=0)),
     ValueError, r"reward_batch_size must be positive"),
    ("RLHF rollout shorter than segment",
     lambda: RLHFSetup(RLHF.mdp, segment_length=5, rollout_length=3), ValueError, r"rollout_length"),
    # divergence: a finite but exploding x, or an unstable w-step, is named and stopped
    ("M-SoBiRL xi above 2/sigma_max^2",
     lambda: m_sobirl(SYN, SYN.x0, _quick(MSoBiRLConfig, xi=5.0, iterations=200)), DivergenceError,
     r"xi = 5 is above 2/sigma_max\(A_k\)\^2"),
    ("M-SoBiRL huge beta", lambda: m_sobirl(SYN, SYN.x0, _quick(MSoBiRLConfig, beta=1e6, iterations=50)),
     DivergenceError, r"M-SoBiRL diverged .*; reduce beta"),
    ("exact HGD huge beta", lambda: exact_hgd(SYN, SYN.x0, _quick(ExactHGDConfig, beta=1e6, iterations=50)),
     DivergenceError, r"exact HGD diverged .*; reduce beta"),
    ("ITD huge beta", lambda: itd(SMALL, X_SMALL, _quick(ITDConfig, beta=1e6, iterations=50)), DivergenceError,
     r"ITD diverged .*; reduce beta"),
    ("PBRL huge beta", lambda: pbrl(SYN, SYN.x0, _quick(PBRLConfig, beta=1e6, iterations=50)), DivergenceError,
     r"PBRL diverged .*; reduce beta"),
    ("SoBiRL huge step_size", lambda: sobirl(SHAPING, X_SHAPING, _sobirl_cfg(step_size=1e12, iterations=30)),
     DivergenceError, r"SoBiRL diverged .*; reduce step_size"),
]


@pytest.mark.parametrize("call, error, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_named(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_divergence_errors_are_value_errors():
    """Divergence comes from a bad setting, so callers catching ValueError see it too."""
    assert issubclass(DivergenceError, ValueError) and issubclass(DivergenceError, FloatingPointError)
    # M-SoBiRL hands back the run up to the divergence (chapter 4 plots it)
    with pytest.raises(DivergenceError) as info:
        m_sobirl(SYN, SYN.x0, _quick(MSoBiRLConfig, beta=1e6, iterations=50))
    assert 0 < len(info.value.history) < 50 and info.value.history.x is not None


def test_pbrl_period_two_cycle_is_detected():
    """PBRL with too large a step on x can settle into a period-2 cycle with a constant gradient norm: the run
    warns, records where the cycle started and stops instead of spending its budget."""
    with pytest.warns(RuntimeWarning, match=r"PBRL is not converging: x has alternated between two points"):
        h = pbrl(SYN, SYN.x0, _quick(PBRLConfig, beta=0.1, inner_steps=10, iterations=3000))
    assert h.extra["cycle"] is not None and len(h) < 3000
    assert len(h) == h.extra["cycle"] + PBRLConfig.cycle_window      # stopped as soon as the window was full
    g = np.asarray(h["grad_norm"][-10:])
    # The norm has stalled far from zero. Its spread over the last ten iterations depends on the BLAS kernels
    # (0.02-0.03% under OPENBLAS_CORETYPE=Haswell, Sandybridge and Prescott, 0.26% on another CPU), so allow 2%;
    # a run that still converges shrinks its norm by orders of magnitude (this one reached 0.03 before cycling).
    assert np.ptp(g) < 0.02 * g.mean() and g.min() > 1.0
    # a step that converges raises no warning and records no cycle
    h_ok = pbrl(SMALL, X_SMALL, _quick(PBRLConfig, iterations=200))
    assert h_ok.extra["cycle"] is None
