"""Benchmark of SoBiRL's Monte Carlo machinery. Not a test: it prints numbers measured in one run.

    OMP_NUM_THREADS=1 python benchmarks/sobirl.py

(a) throughput of the vectorised trajectory sampler (TabularEnv.rollouts), S=100, A=4, on one core, for dense and
    sparse P, against a plain Python loop over gymnasium-style env.step calls          target: >= 1M transitions/s
(b) relative error of the hyper-gradient estimator (15) against the closed form (9) as the number of sampled
    trajectories grows (n upper-level trajectories + n lower-level rollouts), mean over seeds; the log-log slope
    should be close to -1/2 (Monte Carlo rate, no bias floor)
"""
from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import sobirl_lite as sl  # noqa: E402
from sobirl_lite.estimators import (ReturnLoss, estimate_hypergradient, sample_discounted_visits,  # noqa: E402
                                    sample_tuples, truncation_horizon)
from sobirl_lite.sampling import TabularEnv  # noqa: E402


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def part_a():
    print("(a) sampler throughput, S=100, A=4, one core")
    S, A = 100, 4
    pi = sl.softmax_policy(np.random.default_rng(0).normal(size=(S, A)), 1.0)
    for label, kw in (("dense P (S*A*S = 40,000 entries)", dict()),
                      ("sparse P, 5 successors per (s,a)", dict(branching=5, sparse=True))):
        env = TabularEnv(sl.random_mdp(S, A, seed=0, **kw))
        env.reset(seed=0)
        for n, H in ((1_000, 100), (10_000, 100), (100_000, 20)):
            t = best_of(lambda: env.rollouts(pi, n, H))
            print(f"    {label:34s} {n:>7,d} trajectories x {H:>3d} steps: {n * H / t / 1e6:6.2f} M transitions/s")
    env = TabularEnv(sl.random_mdp(S, A, seed=0))
    env.reset(seed=0)
    steps = 20_000
    rng = np.random.default_rng(1)
    acts = rng.integers(A, size=steps)
    t = time.perf_counter()
    for a in acts:
        env.step(int(a))
    t = time.perf_counter() - t
    print(f"    reference: python loop of env.step()           {steps:>7,d} steps:            "
          f"{steps / t / 1e6:6.3f} M transitions/s")


def part_b():
    print("(b) estimator (15) relative error vs closed form (9): S=4, A=3, n=4, gamma=0.7, tau=0.5 (reward shaping)")
    # the problem of tests/test_estimators.py::test_estimator_unbiased_converges_to_closed_form
    mdp = sl.random_mdp(4, 3, seed=1, gamma=0.7, tau=0.5)
    rng = np.random.default_rng(1001)
    reward = sl.LinearReward(rng.normal(size=(4, 3, 4)))
    upper = sl.UpperValue.from_mdp(mdp, r=rng.random((4, 3)), n=4)
    problem, x = sl.BilevelProblem.from_mdp(mdp, reward, upper), rng.normal(size=4)

    def rel_err(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    sol = sl.solve_soft_mdp(problem.mdp(x), tol=1e-12)
    g = sl.hypergradient(problem, x, sol)
    H = truncation_horizon(problem.gamma, 1e-6)
    ns = [100, 1_000, 10_000, 100_000]
    seeds = 8
    errs = []
    for n in ns:
        e, t0 = [], time.perf_counter()
        for seed in range(seeds):
            env_l, env_u = TabularEnv(problem.mdp(x)), TabularEnv(problem.upper.mdp)
            env_l.reset(seed=seed), env_u.reset(seed=seed + 10_000)
            visits = sample_discounted_visits(env_l, sol.pi, problem.gamma, max(1, n // (problem.S * problem.A)), H)
            batch = sample_tuples(env_u, sol.pi, n, 1, H)
            est = estimate_hypergradient(x, visits, problem.reward, problem.tau, ReturnLoss(problem.gamma), batch)
            e.append(rel_err(est.total, g))
        errs.append(np.mean(e))
        print(f"    n = {n:>7,d} trajectories: mean relative error {np.mean(e):.4f} (max {np.max(e):.4f} over "
              f"{seeds} seeds), {(time.perf_counter() - t0) / seeds * 1e3:7.1f} ms per estimate")
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    print(f"    log-log slope of error vs n: {slope:.3f} (Monte Carlo rate: -0.5)")


if __name__ == "__main__":
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.processor() or platform.machine()}")
    part_a()
    part_b()
