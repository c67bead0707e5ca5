"""Widgets of chapters 1-2 (sobirl_lite.widgets.soft), exercised without a browser or kernel: build each widget,
check its first frame is a real PNG in the Output widget, move a slider and check the state and figure follow."""
import base64
import math

import ipywidgets as widgets
import numpy as np
import pytest

from sobirl_lite import gridworld, random_mdp, solve_soft_mdp
from sobirl_lite.widgets import contraction_widget, soft_gridworld_widget
from sobirl_lite.widgets.soft import iterations_to_tolerance, value_iteration_errors

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def first_frame(box):
    """The PNG bytes held by the widget's Output (what the static HTML shows)."""
    (out,) = box.view.output.outputs
    return base64.b64decode(out["data"]["image/png"])


def test_soft_gridworld_widget_first_frame_and_tau_slider():
    box = soft_gridworld_widget(tau=0.05, gamma=0.9)
    assert isinstance(box, widgets.VBox)
    png = first_frame(box)
    assert png.startswith(PNG_MAGIC) and png == box.view.png and len(png) > 5000
    assert box.view.n_draws == 1
    assert len(box.view.figure.axes) == 4  # two panels and their colorbars
    h_cold = box.state["mean_entropy"]
    sol = box.state["solution"]
    assert sol.residual < 1e-9

    box.controls["tau"].value = 2.0
    assert box.view.n_draws == 2
    assert first_frame(box) != png
    assert box.state["mdp"].tau == pytest.approx(2.0)
    # a hotter lower level is more random, and the entropy never exceeds log |A|
    assert box.state["mean_entropy"] > h_cold
    assert box.state["entropy"].max() <= math.log(4) + 1e-12


def test_soft_gridworld_widget_gamma_slider_changes_values():
    box = soft_gridworld_widget(tau=0.1, gamma=0.6)
    v_short = box.state["solution"].V.copy()
    box.controls["gamma"].value = 0.95
    assert box.state["mdp"].gamma == pytest.approx(0.95)
    # rewards are non-negative, so a longer horizon can only add value
    assert np.all(box.state["solution"].V >= v_short - 1e-12)
    assert "0.95" in box.view.figure.axes[0].get_title()


def test_value_iteration_errors_obey_contraction_bound():
    mdp = random_mdp(12, 3, seed=1, gamma=0.8, tau=0.3)
    errs = value_iteration_errors(mdp, 60)
    assert errs.sup.shape == errs.span.shape == (61,)
    k = np.arange(61)
    assert np.all(errs.sup <= 0.8 ** k * errs.sup[0] * (1 + 1e-9) + 1e-12)
    assert np.all(errs.span <= 2 * errs.sup + 1e-12)
    with pytest.raises(ValueError):
        value_iteration_errors(mdp, -1)


def test_iterations_to_tolerance_grows_with_gamma():
    mdp = gridworld(4, 4, tau=0.2)
    steps = iterations_to_tolerance(mdp, [0.5, 0.8, 0.95], tol=1e-6)
    assert steps.shape == (3,) and np.all(np.diff(steps) > 0)


def test_contraction_widget_rate_is_gamma():
    box = contraction_widget(gamma=0.8)
    png = first_frame(box)
    assert png.startswith(PNG_MAGIC)
    errors, ratios = box.state["errors"], box.state["ratios"]
    k = np.arange(errors.size)
    assert np.all(errors <= 0.8 ** k * errors[0] * (1 + 1e-9) + 1e-12)
    assert ratios.max() <= 0.8 + 1e-6 and ratios[-1] == pytest.approx(0.8, abs=1e-4)
    steps = box.state["steps_to_tol"]
    assert np.all(np.diff(steps) >= 0)

    box.controls["gamma"].value = 0.95
    assert box.view.n_draws == 2 and first_frame(box) != png
    assert box.state["gamma"] == pytest.approx(0.95)
    assert box.state["iters"] > k[-1]  # a slower contraction needs more steps to the same tolerance
    assert box.state["ratios"][-1] == pytest.approx(0.95, abs=1e-4)


def test_contraction_widget_accepts_any_mdp():
    mdp = random_mdp(6, 2, seed=3, tau=1.0)
    box = contraction_widget(mdp, gamma=0.5, gamma_grid=[0.3, 0.6])
    V_star = solve_soft_mdp(mdp.__class__(mdp.P, mdp.r, 0.5, mdp.tau)).V
    assert box.state["errors"][0] == pytest.approx(np.max(np.abs(V_star)))


def test_layout_is_computed_once_per_arrangement():
    """Later frames reuse the axes positions the constrained layout found for the first one (no layout pass)."""
    box = soft_gridworld_widget(tau=0.1, gamma=0.9)
    first = np.array([ax.get_position(original=True).bounds for ax in box.view.figure.axes])
    box.controls["tau"].value = 2.0
    fig = box.view.figure
    assert fig.get_layout_engine() is None
    after = np.array([ax.get_position(original=True).bounds for ax in fig.axes])
    assert after.shape == first.shape and np.allclose(after, first, atol=1e-12)


def test_narrow_column_stacks_panels(monkeypatch):
    """On a phone-width column a widget draws its panels one above the other at the column's width."""
    import io

    from matplotlib.image import imread

    from sobirl_lite.widgets import _figure

    monkeypatch.setattr(_figure, "column_px", 345)
    box = soft_gridworld_widget(tau=0.1, gamma=0.9)
    box.controls["gamma"].value = 0.8
    height, width = imread(io.BytesIO(box.view.png)).shape[:2]
    assert box.view.narrow and width == 345 and height > width
    ax_v, ax_h = box.view.figure.axes[:2]
    assert ax_v.get_position().y0 > ax_h.get_position().y1  # stacked, V* on top
    assert all("\n" in ax.get_title() or len(ax.get_title()) < 40 for ax in (ax_v, ax_h))


def test_deferred_redraws_run_once():
    from sobirl_lite.widgets import _figure

    box = soft_gridworld_widget(tau=0.1, gamma=0.9)
    pending = []
    with _figure.deferred_redraws(pending):
        box.controls["tau"].value = 0.5
        box.controls["gamma"].value = 0.7
        box.controls["tau"].value = 0.3
    assert box.view.n_draws == 1 and len(pending) == 3  # nothing ran yet: three requests recorded
    unique = _figure.unique_redraws(pending)
    assert len(unique) == 1
    _figure.run_redraw(unique[0]["redraw"])
    assert box.view.n_draws == 2 and box.state["mdp"].tau == pytest.approx(0.3)
    assert box.state["mdp"].gamma == pytest.approx(0.7)
