"""Widget for the RLHF chapter: SoBiRL against DRLHF as the number of labels per iteration and the lower-level
temperature change.

The figure is drawn once at creation (the static first frame of the rendered book) and redrawn when a slider moves.
The returned ``VBox`` carries ``.view`` (:class:`~sobirl_lite.widgets._figure.FigureView`), ``.controls`` (dict of
sliders), ``.state`` (latest histories and summary numbers) and ``.update()``.
"""
from __future__ import annotations

import ipywidgets as widgets
import numpy as np

from ..algorithms.drlhf import drlhf
from ..algorithms.sobirl import SoBiRLConfig, sobirl
from ..plotting import plot_band
from ..rlhf import example_setup
from ._figure import FigureView, panel, redraw_on_change, run_redraw, settings_row


def run_rlhf_comparison(labels: int, tau: float, seeds: int = 3, iterations: int = 60, step_size: float = 0.1,
                        size: int = 4, segment_length: int = 8, initial_pairs: int = 32, inner_q: str = "exact",
                        first_seed: int = 0):
    """SoBiRL and DRLHF (one BCE step per iteration, same budgets) on :func:`~sobirl_lite.rlhf.example_setup`
    with ``labels`` new pairs per iteration at temperature ``tau``; ``seeds`` runs each, with seeds ``first_seed``,
    ``first_seed + 1``, ...

    Returns ``{"SoBiRL": [History, ...], "DRLHF": [...]}``.
    """
    setup = example_setup(size=size, tau=tau, segment_length=segment_length, pairs_per_iteration=int(labels),
                          initial_pairs=initial_pairs)
    out = {"SoBiRL": [], "DRLHF": []}
    for seed in range(int(first_seed), int(first_seed) + int(seeds)):
        cfg = SoBiRLConfig(iterations=iterations, step_size=step_size, pmd_iterations=3, inner_q=inner_q,
                           n_rollouts=2, truncation_tol=1e-2, eval_every=5, progress=False, seed=seed)
        out["SoBiRL"].append(sobirl(setup, np.zeros(setup.n), cfg))
        out["DRLHF"].append(drlhf(setup, np.zeros(setup.n), cfg))
    return out


def summarize(runs) -> dict:
    """Seed means at the last evaluation: ``{"final_return": {method: ...}, "final_accuracy": {method: ...}}``."""
    return {"final_return": {k: float(np.mean([h.extra["true_return"][-1] for h in v])) for k, v in runs.items()},
            "final_accuracy": {k: float(np.mean([h.extra["pref_accuracy"][-1] for h in v]))
                               for k, v in runs.items()}}


def small_multiples(settings, seeds: int = 3, iterations: int = 60, axes=None, known=None, **kwargs):
    """The widget's comparison for several slider settings side by side, for readers of the static page.

    ``settings``: a sequence of ``(labels, tau)``; each is run with :func:`run_rlhf_comparison` (the widget's own
    computation) unless ``known`` (a dict ``{(labels, tau): runs}``, e.g. from a widget's ``state["runs"]``)
    already holds it. Each panel shows the true return of both methods against the labels collected (mean ± one
    standard error); its title gives the held-out preference accuracy at the end. ``axes``: one per setting
    (default: a new row). Returns ``(figure, results)`` with ``results[(labels, tau)]`` as :func:`summarize`.
    """

    settings, axes = settings_row(settings, axes, "(labels, tau)", (3.0, 2.8))
    known = dict(known or {})
    results = {}
    for ax, (labels, tau) in zip(axes, settings):
        runs = known.get((labels, tau))
        if runs is None:
            runs = run_rlhf_comparison(labels, tau, seeds=seeds, iterations=iterations, **kwargs)
        results[(labels, tau)] = summary = summarize(runs)
        for name, hs in runs.items():
            plot_band(ax, hs[0].extra["labels"], [h.extra["true_return"] for h in hs], label=name, confidence=None)
        acc = summary["final_accuracy"]
        accuracy = ", ".join(f"{k} {v:.2f}" for k, v in acc.items())
        ax.set_title(f"{labels} labels/it., τ = {tau:g}\naccuracy {accuracy}", fontsize=8)
        ax.set_xlabel("labels collected", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("true return", fontsize=8)
    axes[0].legend(fontsize=7)
    return axes[0].figure, results


def rlhf_widget(labels: int = 8, tau: float = 0.5, seeds: int = 3, iterations: int = 60, **kwargs):
    """True return and held-out preference accuracy of SoBiRL and DRLHF against the number of labels collected,
    with sliders for the labels per iteration and the temperature :math:`\\tau` (mean ± one standard error over ``seeds``).

    ``state`` holds ``runs`` (the histories), ``final_return`` and ``final_accuracy`` (dicts of seed means at the
    last evaluation). Extra keyword arguments go to :func:`run_rlhf_comparison`.
    """
    label_slider = widgets.IntSlider(value=labels, min=1, max=32, step=1, description="labels/iter",
                                     continuous_update=False)
    tau_slider = widgets.FloatLogSlider(value=tau, base=10, min=-1, max=0.5, step=0.05, description="τ",
                                        continuous_update=False, readout_format=".2f")
    view = FigureView(figsize=(9.5, 3.6))
    state = {}

    def draw(runs, note=""):
        ax_r, ax_a = view.subplots(1, 2)
        for name, hs in runs.items():
            labels_seen = hs[0].extra["labels"]
            # ± one standard error: with a handful of seeds a 95% t-band is mostly the t factor
            plot_band(ax_r, labels_seen, [h.extra["true_return"] for h in hs], label=name, confidence=None)
            plot_band(ax_a, labels_seen, [h.extra["pref_accuracy"] for h in hs], label=name, confidence=None)
        ax_r.set(xlabel="labels collected", ylabel="true return of $\\pi_k$",
                 title=f"{label_slider.value} labels/iteration, τ = {tau_slider.value:.2f}{note}")
        ax_a.set(xlabel="labels collected", ylabel="held-out preference accuracy", ylim=(0.4, 1.0))
        ax_r.legend(fontsize=8)
        view.show()

    def stages():
        """The redraw in two stages: seed 0 (a preview a live page shows at once), then every seed."""
        args = dict(labels=label_slider.value, tau=tau_slider.value, iterations=iterations, **kwargs)
        first = run_rlhf_comparison(seeds=1, **args)
        if seeds > 1:
            yield lambda: draw(first, note=f" (seed 1 of {seeds}…)")
            rest = run_rlhf_comparison(seeds=seeds - 1, first_seed=1, **args)
            runs = {name: first[name] + rest[name] for name in first}
        else:
            runs = first
        state["runs"] = runs
        state.update(summarize(runs))
        draw(runs)

    def update(*_):
        run_redraw(stages)

    redraw_on_change([label_slider, tau_slider], stages)
    update()
    box = panel([label_slider, tau_slider], view,
                note=f"<small>{seeds} seeds per method, {iterations} iterations, band: mean ± one standard error; "
                     "exact Q inside PMD for speed.</small>")
    box.view, box.state, box.update = view, state, update
    box.controls = {"labels": label_slider, "tau": tau_slider}
    return box
