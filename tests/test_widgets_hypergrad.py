"""The chapter-3 widget (sobirl_lite.widgets.hypergrad): the example problem, the field computation and the
widget itself, without a browser or kernel."""
import base64

import numpy as np
import pytest

from sobirl_lite import finite_difference_hypergradient, hypergradient, phi
from sobirl_lite.widgets import goal_distractor_problem, hypergradient_field, hypergradient_field_widget


def test_goal_distractor_problem_structure():
    problem = goal_distractor_problem(gamma=0.8, tau=0.3)
    lay = problem.layout
    assert problem.n == 2 and (problem.S, problem.A) == (20, 4)
    F = problem.reward.features
    assert F[:, :, 0].sum() == 4 and F[lay.state(*lay.goal), :, 0].all()
    assert F[:, :, 1].sum() == 4 and F[lay.state(*problem.distractor), :, 1].all()
    # phi is minus the true return from the start, so it lies in [-1/(1-gamma), 0]
    value = phi(problem, np.array([1.0, 0.0]))
    assert -1 / (1 - 0.8) <= value <= 0
    with pytest.raises(ValueError, match="distractor"):
        goal_distractor_problem(distractor=(1, 1))  # a wall
    with pytest.raises(ValueError, match="distractor"):
        goal_distractor_problem(distractor=(0, 4))  # the goal


def test_hypergradient_field_matches_pointwise_and_finite_differences():
    problem = goal_distractor_problem(gamma=0.8, tau=0.3)
    x1s, x2s = np.array([0.2, 1.0, 1.5]), np.array([-0.5, 0.7])
    field = hypergradient_field(problem, x1s, x2s)
    assert field.phi.shape == (2, 3)
    i, j = 1, 2
    x = np.array([x1s[j], x2s[i]])
    assert field.X1[i, j] == x[0] and field.X2[i, j] == x[1]
    assert field.phi[i, j] == pytest.approx(phi(problem, x), abs=1e-10)
    g = np.array([field.G1[i, j], field.G2[i, j]])
    assert np.allclose(g, hypergradient(problem, x), atol=1e-9)
    assert np.allclose(g, finite_difference_hypergradient(problem, x, eps=1e-5), atol=1e-6)
    with pytest.raises(ValueError, match="two-parameter"):
        from sobirl_lite import BilevelProblem, LinearReward, UpperValue
        up = problem.upper
        upper3 = UpperValue(up._mdp.P, up._mdp.r, up._mdp.gamma, mu=up._mdp.rho, n=3)
        p3 = BilevelProblem.from_mdp(problem.true_mdp, LinearReward(np.zeros((20, 4, 3))), upper3)
        hypergradient_field(p3, x1s, x2s)


def test_hypergradient_field_widget_sliders():
    box = hypergradient_field_widget(resolution=5, tau=0.3, gamma=0.8, x=(1.0, 0.0))
    (out,) = box.view.output.outputs
    png = base64.b64decode(out["data"]["image/png"])
    assert png.startswith(b"\x89PNG") and box.view.n_draws == 1
    field = box.state["field"]
    assert field.phi.shape == (5, 5)
    assert np.allclose(box.state["grad"], hypergradient(box.state["problem"], np.array([1.0, 0.0])), atol=1e-9)

    # moving x redraws without recomputing the field
    box.controls["x2"].value = 1.5
    assert box.state["field"] is field and box.view.n_draws == 2
    assert np.allclose(box.state["x"], [1.0, 1.5])
    # a large distractor bonus lures the agent away from the goal: worse true return
    assert box.state["phi"] > phi(box.state["problem"], np.array([1.0, 0.0]))

    # changing the temperature recomputes the field
    box.controls["tau"].value = 0.1
    assert box.state["field"] is not field and box.state["problem"].tau == pytest.approx(0.1, rel=1e-6)
    assert box.view.n_draws == 3
    with pytest.raises(ValueError, match="resolution"):
        hypergradient_field_widget(resolution=1)
