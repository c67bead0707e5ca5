"""Figure helpers for the SoBiRL and RLHF chapters: mean curves with confidence bands over seeds."""
from __future__ import annotations

import numpy as np


def _t_quantile(q, dof):
    # scipy.stats is imported here, not with the module: it takes seconds to import in a browser (the book's live
    # pages), and the widgets draw one-standard-error bands that do not need it.
    from scipy import stats

    return stats.t.ppf(q, dof)


def mean_and_band(Y, confidence: float | None = 0.95):
    """Mean over seeds (axis 0) and the half-width of a Student-t confidence interval for it
    (``confidence=None``: one standard error of the mean instead).

    ``Y`` (seeds, points) -> ``(mean (points,), half_width (points,))``; NaN entries are ignored per column.
    With one seed the half-width is 0.
    """
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim != 2:
        raise ValueError(f"Y must be (seeds, points); got shape {Y.shape}")
    n = np.sum(np.isfinite(Y), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(Y, axis=0) if Y.shape[0] else np.full(Y.shape[1], np.nan)
        sd = np.nanstd(Y, axis=0, ddof=1) if Y.shape[0] > 1 else np.zeros(Y.shape[1])
        t = 1.0 if confidence is None else _t_quantile(0.5 + confidence / 2, np.maximum(n - 1, 1))
        half = np.where(n > 1, t * sd / np.sqrt(np.maximum(n, 1)), 0.0)
    return mean, half


def plot_band(ax, x, Y, *, label=None, color=None, confidence: float | None = 0.95, **kw):
    """Plot the mean of ``Y`` (seeds, points) against ``x`` with a shaded ``confidence`` band; returns the line."""
    mean, half = mean_and_band(Y, confidence)
    (line,) = ax.plot(x, mean, label=label, color=color, **kw)
    ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    return line
