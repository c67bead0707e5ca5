"""Widget for chapter 3: the hyper-gradient field of a two-parameter reward on a small grid world.

The example problem (:func:`goal_distractor_problem`) is a reward-shaping task: the true task pays 1 per step in an
absorbing goal cell; the lower level instead sees :math:`r_x = x_1\\,\\mathbb 1[\\text{goal}] + x_2\\,
\\mathbb 1[\\text{distractor}]`, a bonus for the goal and a bonus for a tempting "distractor" cell that the true task
does not reward. The upper level scores the soft-optimal policy by its true return from the start,
:math:`\\phi(x) = -V^{\\pi^*_x}_u(\\text{start})` (:class:`~sobirl_lite.upper.UpperValue`). With two parameters the
whole landscape :math:`\\phi` and the closed-form hyper-gradient (eq. (9)) fit in one picture.
"""
from __future__ import annotations

from typing import NamedTuple

import ipywidgets as widgets
import numpy as np

from ..hypergrad import hypergradient, phi
from ..mdp import gridworld
from ..plotting import plot_field, plot_grid_policy
from ..bilevel import BilevelProblem
from ..rewards import LinearReward
from ..soft import solve_soft_mdp
from ..upper import UpperValue
from ._figure import FigureView, panel, request_redraw


def goal_distractor_problem(height: int = 4, width: int = 5, start=(3, 0), goal=(0, 4), distractor=(3, 4),
                            walls=((1, 1), (2, 3)), slip: float = 0.1, gamma: float = 0.9,
                            tau: float = 0.1) -> BilevelProblem:
    """The two-parameter reward-shaping problem described in the module docstring.

    Dynamics: :func:`~sobirl_lite.mdp.gridworld` (slippery moves, absorbing goal). Reward features, shape
    (S, A, 2): column 0 is 1 in the goal cell, column 1 is 1 in the ``distractor`` cell (any action). Upper
    level: :class:`~sobirl_lite.upper.UpperValue` on the gridworld's own reward (1 per step in the goal) from
    ``start``. The returned problem carries ``.layout`` (the :class:`~sobirl_lite.mdp.GridLayout`),
    ``.distractor`` and ``.true_mdp`` (the gridworld with the true reward) for plotting.
    """
    mdp = gridworld(height, width, walls=walls, goal=goal, start=start, slip=slip, goal_reward=1.0,
                    step_reward=0.0, gamma=gamma, tau=tau)
    layout = mdp.layout
    distractor = tuple(distractor)
    if distractor in layout.walls or distractor == layout.goal or not (0 <= distractor[0] < height
                                                                       and 0 <= distractor[1] < width):
        raise ValueError(f"distractor {distractor} must be a free, non-goal cell of the {height}x{width} grid")
    features = np.zeros((mdp.S, mdp.A, 2))
    features[layout.state(*layout.goal), :, 0] = 1.0
    features[layout.state(*distractor), :, 1] = 1.0
    problem = BilevelProblem.from_mdp(mdp, LinearReward(features), UpperValue.from_mdp(mdp, n=2))
    problem.layout, problem.distractor, problem.true_mdp = layout, distractor, mdp
    return problem


class Field(NamedTuple):
    """:math:`\\phi` and :math:`\\nabla\\phi` on a mesh: ``X1``, ``X2``, ``phi``, ``G1``, ``G2`` all of shape
    ``(len(x2s), len(x1s))`` (``np.meshgrid`` order: rows follow :math:`x_2`)."""

    X1: np.ndarray
    X2: np.ndarray
    phi: np.ndarray
    G1: np.ndarray
    G2: np.ndarray


def hypergradient_field(problem: BilevelProblem, x1s, x2s, tol: float = 1e-10) -> Field:
    """Evaluate :math:`\\phi(x)` and the closed-form :math:`\\nabla\\phi(x)` (eq. (9), :func:`hypergradient`) at every
    point of the mesh ``x1s`` x ``x2s`` of a problem with ``n = 2``.

    One lower-level solve per point, warm-started from the previous point's :math:`Q^*` (neighbouring rewards have
    nearby solutions), reused by both :func:`phi` and :func:`hypergradient`.
    """
    if problem.n != 2:
        raise ValueError(f"hypergradient_field needs a two-parameter problem; got n={problem.n}")
    x1s, x2s = np.asarray(x1s, dtype=np.float64), np.asarray(x2s, dtype=np.float64)
    X1, X2 = np.meshgrid(x1s, x2s)
    PHI, G1, G2 = (np.empty_like(X1) for _ in range(3))
    Q0 = None
    for i in range(X1.shape[0]):
        for j in range(X1.shape[1]):
            x = np.array([X1[i, j], X2[i, j]])
            sol = solve_soft_mdp(problem.mdp(x), tol=tol, Q0=Q0, method="policy_iteration")
            Q0 = sol.Q
            PHI[i, j] = phi(problem, x, solution=sol)
            G1[i, j], G2[i, j] = hypergradient(problem, x, solution=sol)
    return Field(X1, X2, PHI, G1, G2)


def hypergradient_field_widget(x1_range=(-0.5, 2.0), x2_range=(-1.0, 2.0), resolution: int = 15,
                               tau: float = 0.25, gamma: float = 0.9, x=(1.0, 0.5), problem_kwargs=None):
    """Explore :math:`\\phi` and :math:`-\\nabla\\phi` of :func:`goal_distractor_problem`.

    Left: filled contours of :math:`\\phi(x_1, x_2)` on a ``resolution`` x ``resolution`` mesh with unit arrows along
    :math:`-\\nabla\\phi` (the descent direction), the selected point as a red star and its own hyper-gradient as a
    red arrow. Right: the soft-optimal policy of the lower level at the selected point, over its soft value
    :math:`V^*_x`. Sliders: :math:`\\tau`, :math:`\\gamma` (recompute the field) and :math:`x_1`, :math:`x_2` (move the
    point). ``state`` holds ``problem``, ``field``, ``x``, ``phi``, ``grad`` and ``solution``.
    """
    problem_kwargs = dict(problem_kwargs or {})
    res = int(resolution)
    if res < 2:
        raise ValueError(f"resolution must be at least 2; got {resolution}")
    x1s, x2s = np.linspace(*x1_range, res), np.linspace(*x2_range, res)
    tau_slider = widgets.FloatLogSlider(value=tau, base=10, min=-1.7, max=0, step=0.05, description="τ",
                                        continuous_update=False, readout_format=".3g")
    gamma_slider = widgets.FloatSlider(value=gamma, min=0.5, max=0.97, step=0.01, description="γ",
                                       continuous_update=False, readout_format=".2f")
    step1 = (x1_range[1] - x1_range[0]) / 60
    step2 = (x2_range[1] - x2_range[0]) / 60
    x1_slider = widgets.FloatSlider(value=x[0], min=x1_range[0], max=x1_range[1], step=step1, description="x₁ (goal)",
                                    continuous_update=False, readout_format=".2f")
    x2_slider = widgets.FloatSlider(value=x[1], min=x2_range[0], max=x2_range[1], step=step2,
                                    description="x₂ (distr.)", continuous_update=False, readout_format=".2f")
    view = FigureView(figsize=(11.0, 4.4), layout={"wspace": 0.08})
    state = {}

    def recompute_field():
        problem = goal_distractor_problem(gamma=gamma_slider.value, tau=tau_slider.value, **problem_kwargs)
        state.update(problem=problem, field=hypergradient_field(problem, x1s, x2s))

    def redraw():
        if state.pop("stale", False) or "field" not in state:
            recompute_field()
        problem, field = state["problem"], state["field"]
        xp = np.array([x1_slider.value, x2_slider.value])
        sol = solve_soft_mdp(problem.mdp(xp), tol=1e-10)
        g = hypergradient(problem, xp, solution=sol)
        state.update(x=xp, solution=sol, grad=g, phi=phi(problem, xp, solution=sol))

        ax_f, ax_p = view.subplots(1, 2, width_ratios=[1.15, 1.0])
        best = np.unravel_index(np.argmin(field.phi), field.phi.shape)
        plot_field(ax_f, *field, label=r"$\phi(x)$", xlabel=r"$x_1$ (goal bonus)",
                   ylabel=r"$x_2$ (distractor bonus)")
        ax_f.plot(field.X1[best], field.X2[best], "o", color="white", ms=6, mec="black", label="best on mesh")
        ax_f.plot([xp[0]], [xp[1]], "*", color="red", ms=14, mec="white", label="selected $x$")
        gn = np.linalg.norm(g)
        if gn > 0:
            span = 0.12 * min(x1_range[1] - x1_range[0], x2_range[1] - x2_range[0])
            ax_f.annotate("", xy=(xp[0] - span * g[0] / gn, xp[1] - span * g[1] / gn), xytext=(xp[0], xp[1]),
                          arrowprops=dict(arrowstyle="-|>", color="red", lw=2))
        ax_f.legend(fontsize=7, loc="lower right")
        ax_f.set_title(rf"$\phi$ and $-\nabla\phi$  ($\tau={problem.tau:.3g}$, $\gamma={problem.gamma:.2f}$)")
        plot_grid_policy(ax_p, problem.layout, sol.V, sol.pi, label=r"$V^*_x(s)$",
                         marks={"D": problem.distractor},
                         title=rf"$\pi^*_x$, $x=({xp[0]:.2f},{xp[1]:.2f})$, $\phi={state['phi']:.3f}$")
        view.show()

    def on_env_change(*_):
        state["stale"] = True  # the field is recomputed once, by the next redraw
        request_redraw(redraw)

    tau_slider.observe(on_env_change, names="value")
    gamma_slider.observe(on_env_change, names="value")
    x1_slider.observe(lambda *_: request_redraw(redraw), names="value")
    x2_slider.observe(lambda *_: request_redraw(redraw), names="value")
    on_env_change()
    box = panel([tau_slider, gamma_slider, x1_slider, x2_slider], view)
    box.view, box.state, box.update = view, state, on_env_change
    box.controls = {"tau": tau_slider, "gamma": gamma_slider, "x1": x1_slider, "x2": x2_slider}
    return box
