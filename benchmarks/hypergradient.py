"""Benchmark of the closed-form hyper-gradient (eq. (9), adjoint form). Not a test: it prints timings measured
side by side in one run, so the ratios are meaningful even on a noisy machine.

    python benchmarks/hypergradient.py            # all four parts (about a minute on 2 cores)
    python benchmarks/hypergradient.py --parts ab  # a subset

(a) closed form vs autograd through unrolled soft value iteration (ITD) at matched accuracy 1e-6,
    S=500, A=8, n=64, gamma=0.99                                         target: closed form >= 50x faster
(b) closed form (given the lower-level solution) vs one exact policy evaluation, same size   target: <= 3x
(c) closed form for n=10 vs n=10,000                                                           target: <= 1.5x
(d) a sparse gridworld with about 100,000 states: seconds and peak memory of one hyper-gradient
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time

import numpy as np
import scipy.sparse as sp

import sobirl_lite as sl


def best_of(fn, repeat=5):
    """Minimum wall time of ``repeat`` calls (the least noisy estimate of the cost) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def ring_mdp(S, A, width=3, seed=0, gamma=0.99, tau=0.5):
    """States on a ring; each (s, a) moves to s + a - A//2 plus noise within +-width, Dirichlet weights. Local moves
    make the chain mix slowly (second eigenvalue of P_pi near 1), as in grid worlds; random dense MDPs mix in a few
    steps, which flatters unrolled differentiation."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(-width, width + 1)
    P = np.zeros((S, A, S))
    for a in range(A):
        w = rng.dirichlet(np.ones(offsets.size), size=S)
        for j, o in enumerate(offsets):
            P[np.arange(S), a, (np.arange(S) + a - A // 2 + o) % S] += w[:, j]
    return sl.TabularMDP(P, rng.random((S, A)), gamma, tau)


def dense_problem(S=500, A=8, n=64, gamma=0.99, tau=0.5, seed=0, features="dense", mixing="slow"):
    if mixing == "slow":
        mdp = ring_mdp(S, A, seed=seed, gamma=gamma, tau=tau)
    else:
        mdp = sl.random_mdp(S, A, branching=20, seed=seed, gamma=gamma, tau=tau)
    rng = np.random.default_rng(seed)
    if features == "dense":
        reward = sl.LinearReward(rng.normal(size=(S, A, n)) / np.sqrt(n))
    else:  # 8 active features per (s, a), as tile coding would give
        cols = rng.integers(0, n, size=(S * A, 8))
        F = sp.csr_matrix((rng.normal(size=S * A * 8), (np.repeat(np.arange(S * A), 8), cols.ravel())), shape=(S * A, n))
        reward = sl.LinearReward(F, shape=(S, A))
    upper = sl.UpperValue.from_mdp(mdp, r=rng.random((S, A)), n=n)
    return sl.BilevelProblem.from_mdp(mdp, reward, upper), rng.normal(size=n)


def part_a():
    _part_a("slow", 0.99)
    _part_a("fast", 0.99)


def _part_a(mixing, gamma):
    prob, x = dense_problem(mixing=mixing, gamma=gamma)
    t_closed, g = best_of(lambda: sl.hypergradient(prob, x), repeat=3)
    target = 1e-6

    def err(K):
        return np.linalg.norm(sl.unrolled_hypergradient(prob, x, K) - g) / np.linalg.norm(g)

    # smallest K with relative error <= 1e-6: doubling, then bisection
    lo, hi = 0, 256
    while err(hi) > target:
        lo, hi = hi, 2 * hi
    while hi - lo > max(8, hi // 64):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if err(mid) <= target else (mid, hi)
    t_unrolled, gu = best_of(lambda: sl.unrolled_hypergradient(prob, x, hi), repeat=2)
    e = np.linalg.norm(gu - g) / np.linalg.norm(g)
    label = "ring MDP, slow mixing " if mixing == "slow" else "random MDP, fast mixing"
    print(f"(a) {label} S=500 A=8 n=64 gamma={gamma}: closed form (incl. lower-level solve) {t_closed * 1e3:8.1f} ms; "
          f"unrolled K={hi} (rel. err {e:.1e}) {t_unrolled * 1e3:8.1f} ms; ratio {t_unrolled / t_closed:6.1f}x "
          f"(target >= 50x)")


def part_b():
    prob, x = dense_problem()
    mdp = prob.mdp(x)
    sol = sl.solve_soft_mdp(mdp)
    t_eval, _ = best_of(lambda: sl.evaluate_policy(mdp, sol.pi), repeat=7)
    t_hg, _ = best_of(lambda: sl.hypergradient(prob, x, sol), repeat=7)
    t_solve, _ = best_of(lambda: sl.solve_soft_mdp(mdp), repeat=3)
    print(f"(b) one exact policy evaluation {t_eval * 1e3:7.2f} ms; closed-form hyper-gradient given pi* "
          f"{t_hg * 1e3:7.2f} ms; ratio {t_hg / t_eval:4.2f}x (target <= 3x)   "
          f"[lower-level solve itself: {t_solve * 1e3:.1f} ms, {sol.iterations} policy-iteration steps]")


def part_c():
    rows = []
    for kind in ("dense", "sparse"):
        t = {}
        for n in (10, 10_000):
            prob, x = dense_problem(n=n, features=kind)
            t[n], _ = best_of(lambda: sl.hypergradient(prob, x), repeat=3)
        rows.append((kind, t))
    # the forward form needs one solve per parameter: the contrast the adjoint form avoids
    prob, x = dense_problem(n=10)
    t_fwd10, _ = best_of(lambda: sl.forward_hypergradient(prob, x), repeat=3)
    prob, x = dense_problem(n=2000)
    t_fwd2k, _ = best_of(lambda: sl.forward_hypergradient(prob, x), repeat=1)
    for kind, t in rows:
        label = "dense features (S,A,n)" if kind == "dense" else "sparse features (8 per (s,a))"
        print(f"(c) {label:31s}: n=10 {t[10] * 1e3:7.1f} ms, n=10,000 {t[10_000] * 1e3:7.1f} ms, "
              f"ratio {t[10_000] / t[10]:4.2f}x (target <= 1.5x)")
    print(f"    forward form for contrast: n=10 {t_fwd10 * 1e3:.1f} ms, n=2,000 {t_fwd2k * 1e3:.1f} ms "
          f"({t_fwd2k / t_fwd10:.1f}x)")


def _rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _big_grid(queue):
    # reset the kernel's peak-RSS counter (VmHWM), which otherwise survives fork+exec from the parent
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _rss_mib("VmRSS")
    t0 = time.perf_counter()
    mdp = sl.gridworld(316, 316, walls=[(r, 150) for r in range(0, 300)], slip=0.1, gamma=0.99, tau=0.05)
    S, A = mdp.S, mdp.A
    problem = sl.BilevelProblem.from_mdp(mdp, sl.TabularReward(S, A), sl.UpperValue.from_mdp(mdp, n=S * A))
    x = mdp.r.ravel().copy()
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    sol = sl.solve_soft_mdp(problem.mdp(x))
    t_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = sl.hypergradient(problem, x, sol)
    t_hg = time.perf_counter() - t0
    peak = _rss_mib("VmHWM")
    queue.put((S, A, t_build, t_solve, sol.iterations, t_hg, bool(np.all(np.isfinite(g))), base, peak))


def part_d():
    queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_big_grid, args=(queue,))
    proc.start()
    S, A, t_build, t_solve, iters, t_hg, finite, base, peak = queue.get()
    proc.join()
    print(f"(d) sparse gridworld S={S:,} A={A} (n = S*A = {S * A:,}): build {t_build:.1f} s, lower-level solve "
          f"{t_solve:.1f} s ({iters} policy-iteration steps), hyper-gradient given pi* {t_hg:.1f} s, finite={finite}; "
          f"peak RSS {peak:.0f} MiB (process baseline {base:.0f} MiB)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="abcd", help="which parts to run, e.g. 'ab' (default: abcd)")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {mp.cpu_count()} cores, numpy {np.__version__}")
    for p in args.parts:
        {"a": part_a, "b": part_b, "c": part_c, "d": part_d}[p]()
