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
