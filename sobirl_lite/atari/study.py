"""Reading a sweep folder as a study: runs grouped by environment and algorithm, statistics over seeds.

A sweep folder (:mod:`.sweep`) holds one run directory per (environment, algorithm, seed). This module turns it
into what a chapter shows:

* :func:`read_sweep` -- ``{(env_id, algo): [RunLog, ...]}`` from the runs' ``config.json`` (seeds sorted);
* :func:`binned_returns` -- one run's learning curve: the mean score of the games that ended in each step bin;
* :func:`mean_ci` -- mean and 95% Student-t interval over seeds (the seeds are the independent samples);
* :func:`final_return`, :func:`final_pref_acc` -- one number per run, to compare algorithms seed by seed;
* :func:`difference_ci` and :func:`verdict` -- Welch's 95% interval for a difference of two algorithms' means, and
  what it says: ``"higher"``, ``"lower"`` or ``"no detectable difference"``.
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np
from scipy import stats

from .logs import RunLog, read_run


def read_sweep(sweep_dir: str, finished_only: bool = False) -> dict:
    """``{(env_id, algo): [RunLog, ...]}`` for every run directory of ``sweep_dir`` (sorted by seed).

    ``finished_only`` keeps the runs with a ``done.json`` (a sweep stopped early has unfinished ones).
    """
    groups: dict = {}
    for cfg_path in sorted(glob.glob(os.path.join(sweep_dir, "*", "config.json"))):
        run_dir = os.path.dirname(cfg_path)
        if finished_only and not os.path.exists(os.path.join(run_dir, "done.json")):
            continue
        run = read_run(run_dir)
        c = run.meta["config"]
        groups.setdefault((c["env_id"], c["algo"]), []).append(run)
    for runs in groups.values():
        runs.sort(key=lambda r: r.meta["config"]["seed"])
    return groups


def binned_returns(run: RunLog, edges: np.ndarray) -> np.ndarray:
    """Mean episodic return of the games that ended in each bin ``[edges[i], edges[i+1])`` of agent steps.

    Returns ``(len(edges) - 1,)`` floats, NaN for a bin in which no game ended.
    """
    steps, ret = run.episodes["global_step"], run.episodes["episode_return"]
    idx = np.digitize(steps, edges) - 1
    out = np.full(len(edges) - 1, np.nan)
    for i in range(len(edges) - 1):
        sel = idx == i
        if sel.any():
            out[i] = ret[sel].mean()
    return out


def mean_ci(values, axis: int = 0, level: float = 0.95):
    """``(mean, half_width)`` of a Student-t ``level`` interval over ``axis`` (NaNs ignored; half-width NaN for n < 2)."""
    v = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(v), axis=axis)
    mean = np.nanmean(v, axis=axis)
    sd = np.nanstd(v, axis=axis, ddof=1) if v.shape[axis] > 1 else np.full_like(mean, np.nan)
    t = stats.t.ppf(0.5 + level / 2, np.maximum(n - 1, 1))
    half = np.where(n >= 2, t * sd / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, half


def final_return(run: RunLog, last_fraction: float = 0.2) -> float:
    """Mean score of the games that ended in the last ``last_fraction`` of the run's steps."""
    total = run.meta["config"]["total_steps"]
    steps, ret = run.episodes["global_step"], run.episodes["episode_return"]
    sel = steps > (1.0 - last_fraction) * total
    return float(ret[sel].mean()) if sel.any() else float("nan")


def final_pref_acc(run: RunLog, last: int = 5, column: str = "pref_acc") -> float:
    """Mean preference accuracy of the reward model over the run's last ``last`` outer iterations (NaN for SAC)."""
    acc = run.iterations[column]
    acc = acc[~np.isnan(acc)]
    return float(acc[-last:].mean()) if acc.size else float("nan")


def difference_ci(a, b, level: float = 0.95):
    """Welch's interval for ``mean(a) - mean(b)``: ``(difference, low, high)``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = a.mean() - b.mean()
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1)) if se > 0 else 1.0
    t = stats.t.ppf(0.5 + level / 2, dof)
    return float(diff), float(diff - t * se), float(diff + t * se)


def verdict(a, b, level: float = 0.95) -> str:
    """``"higher"`` / ``"lower"`` when Welch's interval for ``mean(a) - mean(b)`` excludes 0, else
    ``"no detectable difference"``."""
    _, lo, hi = difference_ci(a, b, level)
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    return "no detectable difference"


def sweep_record(sweep_dir: str) -> dict:
    """The sweep's ``sweep.json`` (commands, hardware and plan of every session)."""
    with open(os.path.join(sweep_dir, "sweep.json")) as f:
        return json.load(f)
