"""Figure helpers for the book's theory chapters (1-3): grid heatmaps with policy arrows, convergence curves,
hyper-gradient fields and accuracy-versus-cost plots; and for the SoBiRL and RLHF chapters, mean curves with
confidence bands over seeds (:func:`mean_and_band`, :func:`plot_band`).

Every helper draws on a matplotlib ``Axes`` that the caller passes in and returns it (or the artists it made), so
a chapter can lay out several panels in one figure and a widget can redraw into a figure it owns. Nothing here
calls ``plt.show()`` or creates a pyplot figure behind the caller's back. Other chapters may append their own
helpers at the end of this file.
"""
from __future__ import annotations

import matplotlib as mpl
import matplotlib.ticker as mticker
import numpy as np

__all__ = [
    "grid_heatmap",
    "policy_arrows",
    "mark_cells",
    "plot_grid_policy",
    "plot_convergence",
    "plot_field",
    "plot_accuracy_cost",
    "mean_and_band",
    "plot_band",
]


def _layout_of(obj):
    """Accept a :class:`~sobirl_lite.mdp.GridLayout` or an MDP made by :func:`~sobirl_lite.mdp.gridworld`."""
    layout = getattr(obj, "layout", obj)
    for attr in ("height", "width", "walls", "to_grid"):
        if not hasattr(layout, attr):
            raise ValueError("expected a GridLayout or an MDP built by gridworld() (with a .layout attribute)")
    return layout


def grid_heatmap(ax, layout, values, *, cmap="viridis", vmin=None, vmax=None, colorbar=True, label=None,
                 title=None, annotate=False, fmt="{:.2f}"):
    """Draw a per-state array ``values`` (S,) as a heatmap on the grid of ``layout``; walls are dark grey.

    ``annotate=True`` writes each value in its cell (use on small grids). Returns the ``AxesImage``.
    """
    layout = _layout_of(layout)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (layout.height * layout.width,):
        raise ValueError(f"values must have shape (S,) = ({layout.height * layout.width},); got {values.shape}")
    grid = layout.to_grid(values)
    cm = (mpl.colormaps[cmap] if isinstance(cmap, str) else cmap).with_extremes(bad="0.25")  # walls: dark grey
    im = ax.imshow(grid, cmap=cm, vmin=vmin, vmax=vmax, origin="upper", interpolation="nearest")
    ax.set_xticks(np.arange(layout.width))
    ax.set_yticks(np.arange(layout.height))
    ax.tick_params(length=0, labelsize=7)
    ax.set_xticks(np.arange(-0.5, layout.width, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, layout.height, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.5, alpha=0.4)
    ax.tick_params(which="minor", length=0)
    if colorbar:
        cb = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        if label:
            cb.set_label(label)
    if title:
        ax.set_title(title)
    if annotate:
        finite = grid[np.isfinite(grid)]
        mid = 0.5 * (finite.min() + finite.max()) if finite.size else 0.0
        for (row, col), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(col, row, fmt.format(v), ha="center", va="center", fontsize=6,
                        color="black" if v > mid else "white")
    return im


def policy_arrows(ax, layout, pi, *, color="white", scale=0.45, min_prob=0.02, width=0.006):
    """Draw, in every free cell, one arrow per action pointing in its move direction with length proportional to
    :math:`\\pi(a\\mid s)` (a uniform policy is a small cross, a greedy one a single long arrow).

    ``pi`` (S, 4) with actions up, down, left, right as in :class:`~sobirl_lite.mdp.GridLayout`. Arrows with
    probability below ``min_prob`` are omitted. Returns the ``Quiver``.
    """
    layout = _layout_of(layout)
    pi = np.asarray(pi, dtype=np.float64)
    S = layout.height * layout.width
    if pi.shape != (S, len(layout.MOVES)):
        raise ValueError(f"pi must have shape (S, A) = ({S}, {len(layout.MOVES)}); got {pi.shape}")
    xs, ys, us, vs = [], [], [], []
    for s in range(S):
        row, col = layout.coords(s)
        if (row, col) in layout.walls or (row, col) == layout.goal:
            continue
        for a, (dr, dc) in enumerate(layout.MOVES):
            p = pi[s, a]
            if p >= min_prob:
                xs.append(col)
                ys.append(row)
                us.append(dc * p * scale)
                vs.append(dr * p * scale)
    # angles="xy" + scale_units="xy" keep arrows in data units, so they follow the inverted y axis of imshow
    return ax.quiver(xs, ys, us, vs, angles="xy", scale_units="xy", scale=1.0, color=color, width=width,
                     headwidth=3.5, headlength=3.5, headaxislength=3.0, pivot="tail")


def mark_cells(ax, layout, *, color="white", fontsize=7, extra=None):
    """Write "S" in the corner of the start cell and "G" in the corner of the goal cell of ``layout`` (out of the
    way of policy arrows); ``extra`` maps more labels to cells, e.g. ``{"D": (0, 3)}``."""
    layout = _layout_of(layout)
    cells = [(layout.start, "S"), (layout.goal, "G")] + [(c, k) for k, c in (extra or {}).items()]
    for cell, letter in cells:
        if cell is not None:
            ax.text(cell[1] - 0.3, cell[0] - 0.3, letter, ha="center", va="center", fontsize=fontsize,
                    fontweight="bold", color=color,
                    bbox=dict(boxstyle="circle,pad=0.12", fc="black", ec="none", alpha=0.45))


def plot_grid_policy(ax, mdp_or_layout, V, pi=None, *, title=None, cmap="viridis", label=r"$V^*(s)$",
                     colorbar=True, arrow_color="white", vmin=None, vmax=None, marks=None):
    """Heatmap of a value function ``V`` (S,) on the grid with the policy ``pi`` (S, 4) as arrows on top, and the
    start and goal cells marked (``marks`` adds labelled cells, see :func:`mark_cells`). Returns the ``AxesImage``."""
    layout = _layout_of(mdp_or_layout)
    im = grid_heatmap(ax, layout, V, cmap=cmap, colorbar=colorbar, label=label, title=title, vmin=vmin, vmax=vmax)
    if pi is not None:
        policy_arrows(ax, layout, pi, color=arrow_color)
    mark_cells(ax, layout, extra=marks)
    return im


def plot_convergence(ax, errors, rate=None, *, label="error", color="tab:blue", reference_label=None,
                     xlabel="iteration $k$", ylabel=None, floor=1e-16):
    """Semilog plot of a non-negative error sequence ``errors[k]`` against ``k``, with, if ``rate`` is given, the
    reference line ``errors[0] * rate**k`` (the bound of a ``rate``-contraction). Values below ``floor`` are
    clipped so that exact zeros do not break the log scale. Returns the list of lines drawn."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 1 or errors.size == 0:
        raise ValueError(f"errors must be a non-empty 1-D array; got shape {errors.shape}")
    if np.any(errors < 0) or not np.all(np.isfinite(errors)):
        raise ValueError("errors must be finite and non-negative")
    k = np.arange(errors.size)
    lines = ax.semilogy(k, np.maximum(errors, floor), color=color, lw=2, label=label)
    if rate is not None:
        ref = errors[0] * float(rate) ** k
        lines += ax.semilogy(k, np.maximum(ref, floor), color="black", ls="--", lw=1,
                             label=reference_label or rf"$\gamma^k\,\|V_0-V^*\|_\infty$, $\gamma={rate:.3g}$")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return lines


def plot_field(ax, X1, X2, Z, G1, G2, *, levels=20, normalize=True, cmap="viridis", arrow_color="white",
               every=1, label=r"$\phi(x)$", xlabel=r"$x_1$", ylabel=r"$x_2$", colorbar=True, marker=None):
    """Contour plot of a scalar field ``Z`` on the mesh ``(X1, X2)`` with the arrows ``-(G1, G2)`` (the descent
    direction of a gradient field) on top.

    All arrays share one 2-D shape (as from ``np.meshgrid``). ``normalize=True`` draws unit-length arrows so that
    the direction is readable where the gradient is tiny; ``every`` thins the arrows. ``marker`` (x1, x2), if
    given, is drawn as a red star (e.g. the best point found). Returns the ``QuadContourSet``.
    """
    X1, X2, Z, G1, G2 = (np.asarray(a, dtype=np.float64) for a in (X1, X2, Z, G1, G2))
    if not (X1.shape == X2.shape == Z.shape == G1.shape == G2.shape) or X1.ndim != 2:
        raise ValueError("X1, X2, Z, G1, G2 must be 2-D arrays of one shape")
    cs = ax.contourf(X1, X2, Z, levels=levels, cmap=cmap)
    ax.contour(X1, X2, Z, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    U, W = -G1, -G2
    if normalize:
        norm = np.hypot(U, W)
        norm[norm == 0] = 1.0
        U, W = U / norm, W / norm
    sl = (slice(None, None, every), slice(None, None, every))
    ax.quiver(X1[sl], X2[sl], U[sl], W[sl], color=arrow_color, angles="xy", pivot="mid", width=0.004)
    if marker is not None:
        ax.plot([marker[0]], [marker[1]], marker="*", color="red", ms=14, mec="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if colorbar:
        cb = ax.figure.colorbar(cs, ax=ax)
        cb.set_label(label)
    return cs


def plot_accuracy_cost(ax, series, *, xlabel="cost", ylabel="relative error", floor=1e-16, loglog=True):
    """Accuracy against cost for several methods: ``series`` maps a label to ``(cost, error)`` arrays (or to a
    dict with keys ``cost``, ``error`` and optional matplotlib style keywords). Returns ``ax``."""
    for name, data in series.items():
        if isinstance(data, dict):
            style = {k: v for k, v in data.items() if k not in ("cost", "error")}
            cost, err = data["cost"], data["error"]
        else:
            (cost, err), style = data, {}
        cost, err = np.asarray(cost, dtype=np.float64), np.asarray(err, dtype=np.float64)
        if cost.shape != err.shape:
            raise ValueError(f"series {name!r}: cost and error must have one shape; got {cost.shape}, {err.shape}")
        style.setdefault("marker", "o")
        style.setdefault("ms", 4)
        ax.plot(cost, np.maximum(err, floor), label=name, **style)
    if loglog:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())  # minor labels collide on short decades
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    return ax


# -- curves over seeds (the SoBiRL and RLHF chapters) ------------------------------------------------------------

def _t_quantile(q, dof):
    # scipy.stats is imported here, not with the module: it takes seconds to import in a browser (the book's live
    # pages), and the widgets' one-standard-error bands do not need it
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
