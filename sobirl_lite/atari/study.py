"""Reading a sweep folder as a study: runs grouped by environment and algorithm, statistics over seeds.

A sweep folder (:mod:`.sweep`) holds one run directory per (environment, algorithm, seed). This module turns it
into what a chapter shows:

* :func:`read_sweep` -- ``{(env_id, algo): [RunLog, ...]}`` from the runs' ``config.json`` (seeds sorted);
* :func:`binned_returns` -- one run's learning curve: the mean score of the games that ended in each step bin;
* :func:`mean_ci` -- mean and 95% Student-t interval over seeds (the seeds are the independent samples);
* :func:`final_return`, :func:`final_pref_acc` -- one number per run, to compare algorithms seed by seed;
* :func:`difference_ci` and :func:`verdict` -- Welch's 95% interval for a difference of two algorithms' means, and
  what it says: ``"higher"``, ``"lower"`` or ``"no detectable difference"`` (for unpaired arms);
* the protocol of chapter 9's evaluation study (``book/data/minatar/eval_study/PROTOCOL.md``):
  :func:`final_eval_return`, :func:`random_play_return`, :func:`normalised_scores` (one number per run),
  :func:`iqm_intervals` and :func:`improvement_probability` (``rliable``: IQM with stratified-bootstrap intervals,
  probability of improvement), :func:`paired_difference` (runs paired by seed, Student-t interval),
  :func:`bonferroni_level` and :func:`equivalence_verdict` (a margin fixed in advance).
"""
from __future__ import annotations

import glob
import json
import os

import numpy as np
from scipy import stats

from .config import config_arm
from .logs import RunLog, read_run


def read_sweep(sweep_dir: str, finished_only: bool = False) -> dict:
    """``{(env_id, arm): [RunLog, ...]}`` for every run directory of ``sweep_dir`` (sorted by seed); the arm is the
    algorithm, with a suffix for a variant of SoBiRL's term (``"sobirl-loo"``, :func:`~.config.config_arm`).

    ``finished_only`` keeps the runs with a ``done.json`` (a sweep stopped early has unfinished ones).
    """
    groups: dict = {}
    for cfg_path in sorted(glob.glob(os.path.join(sweep_dir, "*", "config.json"))):
        run_dir = os.path.dirname(cfg_path)
        if finished_only and not os.path.exists(os.path.join(run_dir, "done.json")):
            continue
        run = read_run(run_dir)
        c = run.meta["config"]
        groups.setdefault((c["env_id"], config_arm(c)), []).append(run)
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


# --- the evaluation study's protocol ---------------------------------------------------------------------------------
MARGIN = 0.2  # equivalence margin in normalised units, fixed in PROTOCOL.md before any result was read


def final_eval_return(run: RunLog, last: int = 2, column: str = "eval_return_greedy") -> float:
    """Mean of ``column`` over the run's last ``last`` evaluations (each a mean over its games); NaN without any."""
    values = run.evals.get(column, np.array([]))
    values = values[~np.isnan(values)]
    return float(values[-last:].mean()) if values.size >= last else float("nan")


def random_play_return(runs, learning_starts: int) -> float:
    """Mean score of every game that ended before ``learning_starts`` (uniformly random actions), pooled over runs."""
    scores = [r.episodes["episode_return"][r.episodes["global_step"] <= learning_starts] for r in runs]
    scores = np.concatenate(scores) if scores else np.array([])
    if scores.size == 0:
        raise ValueError("no game ended during random play in these runs")
    return float(scores.mean())


def normalised_scores(returns, random_return: float, reference_return: float) -> np.ndarray:
    """``(R - R_random) / (R_reference - R_random)``: random play is 0, the reference 1; ``(n,)`` -> ``(n,)``."""
    span = reference_return - random_return
    if not span > 0:
        raise ValueError(f"the reference return {reference_return:.3f} does not exceed random play "
                         f"{random_return:.3f}: scores cannot be normalised by it")
    return (np.asarray(returns, float) - random_return) / span


# Bootstrap replications: the study's protocol (rliable's default for aggregates). On the Breakout study's scores the
# percentile endpoints moved by up to 2 % of an interval's width between four bootstrap seeds at 50,000 replications,
# and by up to 6 % at 5,000, which chapter 9 draws with the quick budget (the default made that chapter spend 90 % of
# its time here, twice per `make test`; the verdicts come from paired t intervals, not from these).
IQM_REPS, IMPROVEMENT_REPS = 50_000, 20_000


def iqm_intervals(scores: dict, reps: int = IQM_REPS, level: float = 0.95, seed: int = 0) -> dict:
    """``{arm: (IQM, low, high)}``: the interquartile mean of each arm's ``(n_runs,)`` scores (or
    ``(n_runs, n_games)``, stratified over games) with ``rliable``'s stratified-bootstrap ``level`` interval."""
    from rliable import library as rly
    from rliable import metrics

    mats = {k: np.asarray(v, float).reshape(len(v), -1) for k, v in scores.items()}
    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    point, ci = rly.get_interval_estimates(mats, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps,
                                           confidence_interval_size=level)
    return {k: (float(point[k][0]), float(ci[k][0, 0]), float(ci[k][1, 0])) for k in mats}


def improvement_probability(x, y, reps: int = IMPROVEMENT_REPS, level: float = 0.95, seed: int = 0) -> tuple:
    """``P(X > Y)`` (ties count one half) of a run of arm ``x`` over one of arm ``y``, with ``rliable``'s bootstrap
    interval: ``(p, low, high)``. ``x``, ``y``: ``(n,)`` or ``(n, n_games)`` scores."""
    from rliable import library as rly
    from rliable import metrics

    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates({"p": (x, y)},
                                           lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
                                           reps=reps, confidence_interval_size=level)
    return float(point["p"][0]), float(ci["p"][0, 0]), float(ci["p"][1, 0])


def bonferroni_level(m: int, alpha: float = 0.05) -> float:
    """The confidence level of each of ``m`` intervals whose family errs with probability at most ``alpha``."""
    if m < 1:
        raise ValueError(f"a family needs at least one comparison, got m={m}")
    return 1.0 - alpha / m


def paired_difference(a: dict, b: dict, level: float = 0.95) -> dict:
    """Mean of the per-seed differences ``a[seed] - b[seed]`` over the seeds both arms have, with the paired
    Student-t ``level`` interval (``scipy.stats.ttest_rel``).

    ``a``, ``b``: ``{seed: value}``. Returns ``{"n", "seeds", "diff", "low", "high", "p"}``.
    """
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        raise ValueError(f"a paired interval needs two seeds in both arms, got {seeds}")
    x, y = np.array([a[s] for s in seeds], float), np.array([b[s] for s in seeds], float)
    res = stats.ttest_rel(x, y)
    ci = res.confidence_interval(confidence_level=level)
    return {"n": len(seeds), "seeds": seeds, "diff": float(np.mean(x - y)), "low": float(ci.low),
            "high": float(ci.high), "p": float(res.pvalue)}


def equivalence_verdict(low: float, high: float, margin: float | None = MARGIN) -> str:
    """What an interval ``[low, high]`` of a difference ``X - Y`` says: ``"on a par"`` (inside ``(-margin,
    margin)``), ``"ahead"`` (above 0), ``"behind"`` (below 0), else ``"inconclusive"``. Without a margin
    (``None``) only ahead/behind/inconclusive."""
    if margin is not None and -margin < low and high < margin:
        return "on a par"
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "inconclusive"


def sweep_record(sweep_dir: str) -> dict:
    """The sweep's ``sweep.json`` (commands, hardware and plan of every session)."""
    with open(os.path.join(sweep_dir, "sweep.json")) as f:
        return json.load(f)
