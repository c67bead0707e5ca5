"""``summary`` and ``plot``: what a run (or a sweep of runs) reached, as a table and as the chapter's figure.

Both accept run directories (each holding ``config.json`` and ``progress.csv``) and sweep folders (a directory whose
sub-directories are runs, as ``sweep`` writes them) in any mix. Runs are grouped by ``(environment, algorithm)``
from their ``config.json``; a group of several seeds is aggregated over seeds:

* **summary**: per group, the mean return of each run's last ``N`` games, then mean +- standard error over runs (over
  games when the group is one run); the preference accuracy of the last iteration on the training buffer and, held
  out, on the new pairs of the last iterations before the reward model trained on them; steps, games, wall time;
* **plot**: four panels, return and episode length per game, preference accuracy and reward BCE per outer
  iteration. A single run shows its games as dots and a running mean; several seeds show the mean over seeds of the
  running means on a common step grid, with a band of +- one standard error.
"""
from __future__ import annotations

import math
import os
import textwrap
import warnings

import numpy as np

from .config import config_arm
from .logs import RunLog, read_run, running_mean

PANELS = (("episode", "episode_return", "episodic return (unclipped score)", "return"),
          ("episode", "episode_length", "episode length (agent steps)", "episode length"),
          ("iteration", "pref_acc", "accuracy on the buffer (ties excluded)", "preference accuracy"),
          ("iteration", "bce", "mean BCE of the reward epoch", "reward-learning loss"))
NAMES = {"sobirl": "SoBiRL", "drlhf": "DRLHF", "sac": "SAC (true reward)",
         "sobirl-uniform": "SoBiRL, uniform E (variant)", "sobirl-loo": "SoBiRL, leave-one-out (variant)"}
COLORS = {"sobirl": "C0", "drlhf": "C1", "sac": "C2", "sobirl-uniform": "C3", "sobirl-loo": "C4"}


def is_run(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json")) and os.path.isfile(os.path.join(path, "progress.csv"))


def collect_runs(paths) -> list[RunLog]:
    """Every run under ``paths``: a run directory is taken as is, a sweep folder contributes its run directories.

    Raises ``ValueError`` naming a path that is neither.
    """
    runs = []
    for path in paths:
        if is_run(path):
            runs.append(read_run(path))
            continue
        subs = sorted(os.path.join(path, d) for d in os.listdir(path)) if os.path.isdir(path) else []
        found = [read_run(p) for p in subs if is_run(p)]
        if not found:
            raise ValueError(f"{path} is neither a run directory (config.json + progress.csv) nor a folder of runs")
        runs.extend(found)
    return runs


def group_key(run: RunLog) -> tuple[str, str]:
    """``(env_id, arm)``: the arm is the algorithm, with a suffix for a variant of SoBiRL's term (``sobirl-loo``)."""
    cfg = run.meta["config"]
    return cfg.get("env_id", "ALE/BeamRider-v5"), config_arm(cfg)


def group_runs(runs) -> dict[tuple[str, str], list[RunLog]]:
    """``{(env_id, algo): [runs sorted by seed]}``, environments in first-seen order, then SoBiRL, DRLHF, SAC."""
    groups: dict[tuple[str, str], list[RunLog]] = {}
    for r in runs:
        groups.setdefault(group_key(r), []).append(r)
    envs = list(dict.fromkeys(env for env, _ in groups))
    order = {a: i for i, a in enumerate(NAMES)}
    keys = sorted(groups, key=lambda k: (envs.index(k[0]), order.get(k[1], len(order)), k[1]))
    return {k: sorted(groups[k], key=lambda r: r.meta["config"]["seed"]) for k in keys}


def mixed_settings(rs) -> list[str]:
    """Settings (other than the seed and the fields a resume may change) that differ inside a group of runs."""
    from .config import RESUMABLE_FIELDS, config_differences

    ignore = (*RESUMABLE_FIELDS, "seed")
    first = rs[0].meta["config"]
    return sorted({k for r in rs[1:] for k in config_differences(first, r.meta["config"], ignore)})


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (NaN s.e. for fewer than two values)."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), (float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"))


def _last_value(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x[-1]) if x.size else float("nan")


def summarize(runs, last: int = 10, heldout_iters: int = 10) -> list[dict]:
    """One dict per ``(env, algo)`` group; see the module docstring for the columns."""
    rows = []
    for (env_id, algo), rs in group_runs(runs).items():
        finals = [r.episodes["episode_return"][-last:] for r in rs]
        if len(rs) == 1:
            ret, se = mean_se(finals[0])
        else:
            ret, se = mean_se([f.mean() if f.size else float("nan") for f in finals])
        acc = mean_se([_last_value(r.iterations["pref_acc"]) for r in rs])
        held = []
        for r in rs:  # pool the held-out pairs of the last iterations, weighted by their count
            it = r.iterations
            n = it.get("heldout_pairs", np.zeros(0))[-heldout_iters:]
            a = it.get("heldout_pref_acc", np.zeros(0))[-heldout_iters:]
            ok = ~np.isnan(a) & (n > 0) if a.size else np.zeros(0, bool)
            held.append(float((a[ok] * n[ok]).sum() / n[ok].sum()) if ok.any() else float("nan"))
        rows.append({"env": env_id, "algo": algo, "runs": len(rs), "seeds": [r.meta["config"]["seed"] for r in rs],
                     "steps": min(r.steps for r in rs), "games": int(sum(r.episodes["episode_return"].size for r in rs)),
                     "return": ret, "return_se": se, "last_games": last,
                     "pref_acc": acc[0], "heldout_pref_acc": mean_se(held)[0],
                     "eval_greedy": mean_se([_last_value(r.evals.get("eval_return_greedy", np.zeros(0)))
                                             for r in rs])[0],
                     "eval_stochastic": mean_se([_last_value(r.evals.get("eval_return_stochastic", np.zeros(0)))
                                                 for r in rs])[0],
                     "r_clamped": mean_se([_last_value(r.iterations.get("r_clamped", np.zeros(0)))
                                           for r in rs])[0],
                     "wall_min": float(np.mean([_last_value(r.iterations["wall_s"]) for r in rs]) / 60),
                     "mixed": mixed_settings(rs)})
    return rows


def format_summary(rows) -> str:
    """The table ``summary`` prints."""
    head = (f"{'environment':18s} {'arm':14s} {'runs':>4s} {'steps':>9s} {'games':>6s} "
            f"{'return (last N)':>19s} {'eval greedy':>11s} {'eval stoch':>10s} {'pref acc':>8s} {'held-out':>8s} "
            f"{'clamped':>7s} {'wall min':>8s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ret = f"{r['return']:.1f}" + ("" if math.isnan(r["return_se"]) else f" +- {r['return_se']:.1f}")
        acc = "-" if math.isnan(r["pref_acc"]) else f"{r['pref_acc']:.3f}"
        held = "-" if math.isnan(r["heldout_pref_acc"]) else f"{r['heldout_pref_acc']:.3f}"
        ev_g, ev_s, clamped = (("-" if math.isnan(r[k]) else f"{r[k]:{fmt}}")
                               for k, fmt in (("eval_greedy", ".1f"), ("eval_stochastic", ".1f"),
                                              ("r_clamped", ".2f")))
        lines.append(f"{r['env']:18s} {r['algo']:14s} {r['runs']:4d} {r['steps']:9,d} {r['games']:6d} "
                     f"{ret:>19s} {ev_g:>11s} {ev_s:>10s} {acc:>8s} {held:>8s} {clamped:>7s} {r['wall_min']:8.1f}")
        if r["mixed"]:
            lines.append(f"  warning: these runs differ in more than the seed: {', '.join(r['mixed'])}")
    n = rows[0]["last_games"] if rows else 10
    lines.append(f"return: mean of each run's last {n} games; +- one standard error over runs (over games for a "
                 f"single run). pref acc: last iteration, on the training buffer; held-out: new pairs before "
                 f"training on them, pooled over the last iterations. eval greedy/stoch: the last evaluation's mean "
                 f"return of the greedy/stochastic policy on games of its own; clamped: fraction of the learned "
                 f"rewards SAC read at the clamp in the last iteration (means over runs).")
    return "\n".join(lines)


def _band(runs, kind: str, col: str, window: int, grid: np.ndarray):
    """Mean and s.e. over runs of each run's running mean, interpolated on ``grid`` (NaN outside a run's range)."""
    curves = []
    for r in runs:
        d = r.episodes if kind == "episode" else r.iterations
        x, y = d["global_step"], d[col]
        ok = ~np.isnan(y)
        x, y = x[ok], y[ok]
        if x.size == 0:
            continue
        y = running_mean(y, window) if kind == "episode" else y
        c = np.interp(grid, x, y)
        c[(grid < x[0]) | (grid > x[-1])] = np.nan
        curves.append(c)
    if not curves:
        return None
    c = np.array(curves)
    n = np.sum(~np.isnan(c), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: outside every run's range
        mean = np.nanmean(c, axis=0)
        se = np.nanstd(c, axis=0, ddof=1) / np.sqrt(n)
    return mean, se, n


def plot_runs(runs, window: int = 5, footer: str | None = None):
    """The four-panel figure (matplotlib ``Figure``) of ``runs``; see the module docstring."""
    import matplotlib.pyplot as plt

    groups = group_runs(runs)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.4))
    axes = axes.ravel()
    many_envs = len({env for env, _ in groups}) > 1
    for gi, ((env_id, algo), rs) in enumerate(groups.items()):
        color = COLORS.get(algo, f"C{gi}") if not many_envs else f"C{gi}"
        label = NAMES.get(algo, algo) + (f" [{env_id}]" if many_envs else "") + (f" ({len(rs)} seeds)"
                                                                                  if len(rs) > 1 else "")
        for ax, (kind, col, _, _) in zip(axes, PANELS):
            if kind == "iteration" and algo == "sac":
                continue  # no reward model
            if len(rs) == 1:
                d = rs[0].episodes if kind == "episode" else rs[0].iterations
                x, y = d["global_step"], d[col]
                if kind == "episode":
                    ax.plot(x, y, "o", ms=3, alpha=0.35, color=color)
                    ax.plot(x, running_mean(y, window), color=color, label=label)
                else:
                    ax.plot(x, y, color=color, label=label)
                continue
            top = max(r.steps for r in rs)
            grid = np.linspace(0, top, 200)
            band = _band(rs, kind, col, window, grid)
            if band is None:
                continue
            mean, se, _ = band
            ax.plot(grid, mean, color=color, label=label)
            ax.fill_between(grid, mean - se, mean + se, color=color, alpha=0.2, lw=0)
    for ax, (kind, col, ylabel, title) in zip(axes, PANELS):
        ax.set(xlabel="agent steps", ylabel=ylabel, title=title)
    axes[2].set_ylim(0, 1)
    if any(algo != "sac" for _, algo in groups):
        bces = [r.iterations["bce"] for (_, a), rs in groups.items() if a != "sac" for r in rs]
        if any(np.nanmin(b) > 0 for b in bces if np.any(~np.isnan(b))):
            axes[3].set_yscale("log")
    axes[0].legend(fontsize=8)
    if footer:
        fig.text(0.01, 0.004, "\n".join(textwrap.wrap(footer, 150, break_on_hyphens=False)), fontsize=6.5,
                 family="monospace", va="bottom")
        fig.tight_layout(rect=(0, 0.07, 1, 1))
    else:
        fig.tight_layout()
    return fig


def default_footer(runs) -> str:
    """Budget, seeds and hardware of ``runs``, for the figure's footer."""
    steps = sorted({r.steps for r in runs})
    hw = runs[0].meta.get("hardware", {})
    seeds = sorted({r.meta["config"]["seed"] for r in runs})
    return (f"{', '.join(f'{s:,}' for s in steps)} agent steps; seeds {seeds}; {hw.get('device', '?')} "
            f"({hw.get('torch_threads', '?')} torch thread(s), {hw.get('cpu_count', '?')} CPUs). "
            f"Command of the first run: {runs[0].command}")


def main_summary(paths, last: int = 10) -> int:
    print(format_summary(summarize(collect_runs(paths), last=last)))
    return 0


def main_plot(paths, out: str, window: int = 5) -> int:
    import matplotlib

    matplotlib.use("Agg")
    runs = collect_runs(paths)
    fig = plot_runs(runs, window=window, footer=default_footer(runs))
    fig.savefig(out, dpi=120)
    print(f"wrote {out} ({len(runs)} run(s))")
    return 0


__all__ = ["collect_runs", "group_runs", "summarize", "format_summary", "plot_runs", "default_footer",
           "main_summary", "main_plot", "mean_se"]
