"""Unit tests for the figure helpers of chapters 1-3 (sobirl_lite.plotting), drawn on off-screen Agg figures."""
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sobirl_lite import gridworld, solve_soft_mdp
from sobirl_lite.plotting import (grid_heatmap, mark_cells, plot_accuracy_cost, plot_convergence, plot_field,
                                  plot_grid_policy, policy_arrows)


@pytest.fixture
def ax():
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig.add_subplot()


@pytest.fixture
def grid():
    return gridworld(4, 5, walls=[(1, 1), (2, 3)], goal=(0, 4), start=(3, 0), tau=0.2, gamma=0.9)


def free_non_goal(mdp):
    lay = mdp.layout
    return sum(1 for s in range(mdp.S) if lay.coords(s) not in lay.walls and lay.coords(s) != lay.goal)


def test_heatmap_walls_are_nan_and_values_placed(ax, grid):
    values = np.arange(grid.S, dtype=float)
    im = grid_heatmap(ax, grid, values, annotate=True)
    data = np.ma.getdata(im.get_array())
    assert data.shape == (4, 5)
    assert np.isnan(data[1, 1]) and np.isnan(data[2, 3])
    assert data[3, 0] == grid.layout.state(3, 0)
    # one annotation per free cell
    assert len(ax.texts) == grid.S - 2


def test_heatmap_rejects_wrong_shape(ax, grid):
    with pytest.raises(ValueError, match="shape"):
        grid_heatmap(ax, grid, np.zeros(grid.S + 1))
    with pytest.raises(ValueError, match="GridLayout"):
        grid_heatmap(ax, object(), np.zeros(3))


def test_policy_arrows_lengths_follow_probabilities(ax, grid):
    uniform = np.full((grid.S, 4), 0.25)
    q = policy_arrows(ax, grid, uniform, scale=0.4)
    assert q.N == 4 * free_non_goal(grid)
    assert np.allclose(np.hypot(q.U, q.V), 0.1)
    greedy = np.zeros((grid.S, 4))
    greedy[:, 3] = 1.0  # always "right"
    q = policy_arrows(ax, grid, greedy, scale=0.4)
    assert q.N == free_non_goal(grid)
    assert np.allclose(q.U, 0.4) and np.allclose(q.V, 0.0)
    with pytest.raises(ValueError, match="pi must have shape"):
        policy_arrows(ax, grid, np.zeros((grid.S, 3)))


def test_policy_arrows_point_in_move_direction(ax, grid):
    up = np.zeros((grid.S, 4))
    up[:, 0] = 1.0
    q = policy_arrows(ax, grid, up)
    assert np.all(q.V < 0) and np.allclose(q.U, 0)  # "up" decreases the row index (image y axis)


def test_plot_grid_policy_marks_start_goal_and_extra(ax, grid):
    sol = solve_soft_mdp(grid)
    plot_grid_policy(ax, grid, sol.V, sol.pi, title="t", marks={"D": (3, 4)})
    letters = sorted(t.get_text() for t in ax.texts)
    assert letters == ["D", "G", "S"]
    assert ax.get_title() == "t"
    assert len(ax.figure.axes) == 2  # the axes and its colorbar
    mark_cells(ax, grid.layout)
    assert len(ax.texts) == 5


def test_plot_convergence_reference_line(ax):
    errors = 3.0 * 0.5 ** np.arange(20)
    lines = plot_convergence(ax, errors, rate=0.5)
    assert len(lines) == 2
    assert np.allclose(lines[1].get_ydata(), errors)
    assert ax.get_yscale() == "log"
    plot_convergence(ax, np.r_[1.0, 0.0])  # exact zeros are clipped, not an error
    with pytest.raises(ValueError):
        plot_convergence(ax, np.array([1.0, -1.0]))
    with pytest.raises(ValueError):
        plot_convergence(ax, np.array([]))


def test_plot_field_normalises_descent_arrows(ax):
    x1, x2 = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 4))
    Z = x1 ** 2 + 3 * x2 ** 2
    plot_field(ax, x1, x2, Z, 2 * x1, 6 * x2, marker=(0, 0))
    quiver = [c for c in ax.collections if c.__class__.__name__ == "Quiver"][0]
    norms = np.hypot(quiver.U, quiver.V)
    assert np.allclose(norms[np.hypot(x1, x2).ravel() > 0], 1.0)
    # arrows point downhill: opposite to the gradient
    assert np.all(quiver.U * (2 * x1).ravel() <= 1e-12)
    with pytest.raises(ValueError, match="one shape"):
        plot_field(ax, x1, x2, Z[:, :-1], x1, x2)


def test_plot_accuracy_cost(ax):
    plot_accuracy_cost(ax, {"a": ([1, 10, 100], [1e-1, 1e-3, 1e-6]),
                            "b": {"cost": [2, 20], "error": [1e-2, 0.0], "color": "red", "marker": "s"}})
    assert [l.get_label() for l in ax.get_lines()] == ["a", "b"]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_lines()[1].get_color() == "red"
    with pytest.raises(ValueError, match="one shape"):
        plot_accuracy_cost(ax, {"c": ([1, 2], [1.0])})
