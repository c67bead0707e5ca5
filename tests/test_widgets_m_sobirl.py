"""The M-SoBiRL widget, without a browser: first frame drawn at creation, redrawn when a slider moves."""
import numpy as np

from sobirl_lite.instances import hard_synthetic_problem, synthetic_problem
from sobirl_lite.widgets.m_sobirl import m_sobirl_widget


def test_widget_draws_and_reacts_to_sliders():
    problem = synthetic_problem(0, S=5, A=3, n=8)
    box = m_sobirl_widget(problem, iterations=150, beta=0.03, inner_steps=2)
    assert box.view.n_draws == 1 and box.view.png.startswith(b"\x89PNG")
    g_before = box.state["final_true_grad"]
    assert np.isfinite(g_before) and not box.state["diverged"]
    box.controls["N"].value = 5
    assert box.view.n_draws == 2
    assert box.state["history"].config["inner_steps"] == 5
    box.controls["beta"].value = 10 ** -0.5
    assert box.view.n_draws == 3
    h = box.state["history"]
    assert box.state["diverged"] or abs(h.config["beta"] - 10 ** -0.5) < 1e-12


def test_widget_reports_divergence_without_crashing():
    box = m_sobirl_widget(hard_synthetic_problem(0), iterations=100, beta=10 ** -0.5, inner_steps=1)
    assert box.state["diverged"] and box.state["final_true_grad"] == np.inf
    assert box.view.n_draws == 1


def test_late_statistics_describe_the_last_quarter_of_a_run():
    from sobirl_lite.widgets.m_sobirl import late_statistics, run_setting

    problem = synthetic_problem(0, S=5, A=3, n=8)
    h, diverged = run_setting(problem, problem.x0, 0.03, 0.5, 2, iterations=200, track_every=5)
    late = late_statistics(h, diverged)
    true = h["true_grad_norm"]
    tracked = ~np.isnan(true) & (h["iteration"] >= h["iteration"][-1] - 50)
    assert late["late_true_grad_min"] == true[tracked].min() and late["late_true_grad_max"] == true[tracked].max()
    assert late["late_true_grad_min"] <= late["late_true_grad"] <= late["late_true_grad_max"]
    assert 0 < tracked.sum() <= 11          # about a quarter of the 41 tracked points, not the whole run
    assert late["late_true_grad_max"] < true[~np.isnan(true)][0]  # the run's start is not in the window
    assert late_statistics(None, True) == dict.fromkeys(late, float("inf"))
