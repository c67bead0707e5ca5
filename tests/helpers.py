"""Small problem builders shared by the core tests."""
import numpy as np

import sobirl_lite as sl


def linear_problem(S=5, A=3, n=4, gamma=0.9, tau=0.5, seed=0, upper="quadratic", sparse=False, branching=None):
    """A random MDP with a linear reward in x and either upper level; returns (problem, x)."""
    mdp = sl.random_mdp(S, A, branching=branching, seed=seed, gamma=gamma, tau=tau, sparse=sparse)
    rng = np.random.default_rng(seed + 1000)
    reward = sl.LinearReward(rng.normal(size=(S, A, n)))
    if upper == "quadratic":
        up = sl.QuadraticUpper()
    else:
        up = sl.UpperValue.from_mdp(mdp, r=rng.random((S, A)), n=n)
    return sl.BilevelProblem.from_mdp(mdp, reward, up), rng.normal(size=n)


def rel_err(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300))
