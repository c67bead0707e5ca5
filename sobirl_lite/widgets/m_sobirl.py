"""Widget for the M-SoBiRL chapter: Algorithm 1 on the synthetic problem with sliders for β, ξ and N.

Left panel: the true :math:`\\|\\nabla\\phi(x_k)\\|` (closed form (9)) and the algorithm's own estimate
:math:`\\|\\hat g_k\\|` against the outer iteration :math:`k`. Right panel: the two tracking errors of the merit
function of Theorem 6.4, :math:`\\|w_k-w^*_{x_k}\\|` and :math:`\\|Q_k-Q^*_{x_k}\\|_\\infty`.
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from ..algorithms.m_sobirl import MSoBiRLConfig, m_sobirl
from ..instances import synthetic_problem
from ._figure import FigureView, panel, redraw_on_change, settings_row


def run_setting(problem, x0, beta: float, xi: float, inner_steps: int, iterations: int, track_every: int = 5):
    """One run of the widget: Algorithm 1 from ``x0`` with step sizes ``beta``, ``xi`` and ``inner_steps`` backups.

    Returns ``(history, diverged)``; ``history`` is ``None`` when the run raised, and ``diverged`` is true for an
    exception, a non-finite iterate, or a final estimate :math:`\\|\\hat g\\|` 1000 times larger than the first.
    """
    cfg = MSoBiRLConfig(beta=beta, xi=xi, inner_steps=inner_steps, iterations=iterations, track_true_grad=True,
                        track_every=track_every, progress=False)
    try:
        with np.errstate(all="ignore"):
            h = m_sobirl(problem, x0, cfg)
        g = h["grad_norm"]
        diverged = not (np.all(np.isfinite(h.x)) and np.isfinite(g[-1]) and g[-1] < 1e3 * g[0])
    except (FloatingPointError, ValueError, RuntimeError):
        h, diverged = None, True
    return h, diverged


def final_true_grad(h, diverged: bool) -> float:
    """The last tracked :math:`\\|\\nabla\\phi(x_k)\\|` of a run (``inf`` when it diverged)."""
    if diverged or h is None:
        return float("inf")
    true = h["true_grad_norm"]
    return float(true[~np.isnan(true)][-1])


def late_statistics(h, diverged: bool) -> dict[str, float]:
    """Over the last quarter of a run's iterations: the median, smallest and largest tracked
    :math:`\\|\\nabla\\phi(x_k)\\|` and the median :math:`w`-tracking error (all ``inf`` when it diverged)."""
    keys = ("late_true_grad", "late_true_grad_min", "late_true_grad_max", "late_w_error")
    if diverged or h is None:
        return dict.fromkeys(keys, float("inf"))
    start = h["iteration"][-1] - len(h["iteration"]) // 4
    true = h["true_grad_norm"][h["iteration"] >= start]
    true = true[~np.isnan(true)]
    w_late = np.asarray(h.extra["w_error"])[np.asarray(h.extra["tracked_iterations"]) >= start]
    values = (np.median(true), true.min(), true.max(), np.median(w_late))
    return {key: float(v) for key, v in zip(keys, values)}


def small_multiples(problem=None, settings=(), iterations: int = 600, track_every: int = 5, axes=None):
    """The widget's runs for several slider settings side by side, for readers of the static page.

    ``settings`` is a sequence of ``(beta, xi, N)``; each goes through :func:`run_setting` (the widget's own
    computation) and gets one panel with the true :math:`\\|\\nabla\\phi(x_k)\\|` and the :math:`w`-tracking
    error against :math:`k`, or "diverged". ``axes``: as many matplotlib axes as settings (default: a new row).
    Returns ``(figure, results)``: per setting a dict with ``beta``, ``xi``, ``N``, ``diverged``,
    ``final_true_grad``, ``w_error_peak`` (largest :math:`w`-error over the first) and ``final_w_error``; and, over
    the last quarter of the iterations, ``late_true_grad`` (median tracked :math:`\\|\\nabla\\phi\\|`),
    ``late_true_grad_min``, ``late_true_grad_max`` and ``late_w_error`` (median). A run that does not settle ends
    wherever rounding puts it, so the late statistics describe it where the final values would not (``inf`` for a
    diverged run).
    """

    problem = synthetic_problem(0) if problem is None else problem
    x0 = getattr(problem, "x0", np.zeros(problem.n))
    settings, axes = settings_row(settings, axes, "(beta, xi, N)", (2.6, 2.6), sharey=True)
    results = []
    for ax, (beta, xi, n) in zip(axes, settings):
        h, diverged = run_setting(problem, x0, beta, xi, n, iterations, track_every)
        w_err = None if diverged else np.asarray(h.extra["w_error"])
        results.append({"beta": beta, "xi": xi, "N": n, "diverged": diverged,
                        "final_true_grad": final_true_grad(h, diverged),
                        "w_error_peak": np.inf if diverged else float(w_err.max() / w_err[0]),
                        "final_w_error": np.inf if diverged else float(w_err[-1]),
                        **late_statistics(h, diverged)})
        ax.set_title(rf"$\beta$={beta:.0e}, $\xi$={xi:.2f}, N={n}", fontsize=8)
        ax.set_xlabel("$k$", fontsize=8)
        ax.tick_params(labelsize=7)
        if diverged:
            ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes, color="tab:red",
                    fontsize=11)
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        k, true = h["iteration"], h["true_grad_norm"]
        tracked = ~np.isnan(true)
        ax.semilogy(k[tracked], true[tracked], color="tab:blue", lw=1.2, label=r"$\|\nabla\phi(x_k)\|$")
        ax.semilogy(h.extra["tracked_iterations"], np.maximum(h.extra["w_error"], 1e-300), color="tab:green",
                    lw=1.0, label=r"$\|w_k-w^*_{x_k}\|$")
        ax.grid(True, alpha=0.3)
    labelled = [ax for ax in axes if ax.get_legend_handles_labels()[0]]
    if labelled:
        labelled[0].legend(fontsize=7)
    return axes[0].figure, results


def m_sobirl_widget(problem=None, iterations: int = 600, beta: float = 0.03, xi: float = 0.5, inner_steps: int = 2,
                    track_every: int = 5):
    """Run :func:`~sobirl_lite.algorithms.m_sobirl` on ``problem`` (default ``synthetic_problem(0)``, from its
    ``x0``) for ``iterations`` outer steps whenever a slider moves, and plot the gradient norms and merit terms.

    Sliders: β (log scale), ξ, N. ``box.state`` holds the last ``history``, ``final_true_grad`` (the last tracked
    :math:`\\|\\nabla\\phi\\|`, ``inf`` when the run diverged) and ``diverged`` (an exception, a non-finite
    iterate, or an estimate 1000 times larger than at the start).
    """
    problem = synthetic_problem(0) if problem is None else problem
    x0 = getattr(problem, "x0", np.zeros(problem.n))
    beta_slider = widgets.FloatLogSlider(value=beta, base=10, min=-3.5, max=-0.5, step=0.05, description="β",
                                         continuous_update=False, readout_format=".1e")
    # up to 2: the w-step is stable at the starting policy for xi < 1.11 and the run breaks between 1.3 and 1.5
    xi_slider = widgets.FloatSlider(value=xi, min=0.05, max=2.0, step=0.05, description="ξ",
                                    continuous_update=False, readout_format=".2f")
    n_slider = widgets.IntSlider(value=inner_steps, min=0, max=20, step=1, description="N", continuous_update=False)
    view = FigureView(figsize=(9.5, 3.6))
    state = {}

    def update(*_):
        cfg = MSoBiRLConfig(beta=beta_slider.value, xi=xi_slider.value, inner_steps=n_slider.value,
                            iterations=iterations, track_true_grad=True, track_every=track_every, progress=False)
        h, diverged = run_setting(problem, x0, cfg.beta, cfg.xi, cfg.inner_steps, iterations, track_every)
        state.update(history=h, diverged=diverged)
        ax_g, ax_m = view.subplots(1, 2)
        if diverged:
            h = None
        if h is None:
            state["final_true_grad"] = np.inf
            for ax in (ax_g, ax_m):
                ax.text(0.5, 0.5, "diverged: reduce β or ξ", ha="center", va="center", transform=ax.transAxes,
                        color="tab:red", fontsize=12)
                ax.set_axis_off()
            view.show()
            return
        k = h["iteration"]
        true = h["true_grad_norm"]
        tracked = ~np.isnan(true)
        state["final_true_grad"] = float(true[tracked][-1])
        ax_g.semilogy(k, h["grad_norm"], color="tab:orange", lw=1, label=r"estimate $\|\hat g_k\|$")
        ax_g.semilogy(k[tracked], true[tracked], color="tab:blue", lw=1.5, label=r"true $\|\nabla\phi(x_k)\|$")
        ax_g.set_xlabel("outer iteration $k$")
        ax_g.set_title(rf"$\beta$={cfg.beta:.1e}, $\xi$={cfg.xi:.2f}, N={cfg.inner_steps}: "
                       rf"final $\|\nabla\phi\|$={state['final_true_grad']:.1e}", fontsize=9)
        ax_g.legend(fontsize=8)
        ax_g.grid(True, alpha=0.3)
        it = np.asarray(h.extra["tracked_iterations"])
        ax_m.semilogy(it, np.maximum(h.extra["w_error"], 1e-300), color="tab:green", label=r"$\|w_k-w^*_{x_k}\|$")
        ax_m.semilogy(it, np.maximum(h.extra["q_error"], 1e-300), color="tab:purple",
                      label=r"$\|Q_k-Q^*_{x_k}\|_\infty$")
        ax_m.set_xlabel("outer iteration $k$")
        ax_m.set_title("tracking errors (merit terms of Theorem 6.4)", fontsize=9)
        ax_m.legend(fontsize=8)
        ax_m.grid(True, alpha=0.3)
        view.show()

    redraw_on_change([beta_slider, xi_slider, n_slider], update)
    update()
    box = panel([beta_slider, xi_slider, n_slider], view)
    box.view, box.state, box.update = view, state, update
    box.controls = {"beta": beta_slider, "xi": xi_slider, "N": n_slider}
    return box
