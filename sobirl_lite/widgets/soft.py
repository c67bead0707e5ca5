"""Widgets for chapters 1 and 2: the soft-optimal policy on a grid as the temperature and discount move, and the
convergence of soft value iteration at rate gamma.

Each function builds its figure once at creation (the static first frame of the rendered book) and redraws it when
a slider moves. The returned ``VBox`` carries the pieces tests and readers may want: ``.view`` (the
:class:`~sobirl_lite.widgets._figure.FigureView`), ``.controls`` (dict of sliders), ``.state`` (dict with the
latest computed quantities) and ``.update()`` (recompute and redraw with the current slider values).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import ipywidgets as widgets
import numpy as np

from ..mdp import TabularMDP, gridworld
from ..plotting import grid_heatmap, plot_convergence, plot_grid_policy
from ..soft import entropy, soft_value_map, solve_soft_mdp
from ._figure import FigureView, panel, redraw_on_change, settings_row

DEFAULT_WALLS = ((1, 1), (1, 2), (1, 3), (3, 1), (3, 3))


def solve_grid(tau: float, gamma: float, height: int = 5, width: int = 5, walls=DEFAULT_WALLS, goal=None,
               start=(0, 0), slip: float = 0.1, goal_reward: float = 1.0, step_reward: float = 0.0) -> dict:
    """What :func:`soft_gridworld_widget` computes for one slider setting: the maze, its soft-optimal solution, the
    entropy of :math:`\\pi^*` per state, the mask ``free`` of cells that are neither walls nor the goal, and
    ``mean_entropy`` over them."""
    mdp = gridworld(height, width, walls=walls, goal=goal, start=start, slip=slip, goal_reward=goal_reward,
                    step_reward=step_reward, gamma=gamma, tau=tau)
    sol = solve_soft_mdp(mdp, tol=1e-10)
    layout = mdp.layout
    H = entropy(sol.pi)
    free = np.array([(layout.coords(s) not in layout.walls) and layout.coords(s) != layout.goal
                     for s in range(mdp.S)])
    return {"mdp": mdp, "solution": sol, "entropy": H, "free": free, "mean_entropy": float(H[free].mean())}


def gridworld_small_multiples(settings, axes=None, **grid):
    """The widget's left panel (:math:`V^*` and :math:`\\pi^*`) for several ``(tau, gamma)`` settings side by
    side, for readers of the static page; each comes from :func:`solve_grid` with the keyword arguments ``grid``.

    ``axes``: one per setting (default: a new row). Returns ``(figure, results)``, ``results[i]`` the dict of
    :func:`solve_grid`.
    """

    settings, axes = settings_row(settings, axes, "(tau, gamma)", (3.4, 3.2))
    results = []
    for ax, (tau, gamma) in zip(axes, settings):
        res = solve_grid(tau, gamma, **grid)
        results.append(res)
        plot_grid_policy(ax, res["mdp"], res["solution"].V, res["solution"].pi,
                         title=rf"$\tau={tau:.3g}$, $\gamma={gamma:.2f}$")
    return axes[0].figure, results


def soft_gridworld_widget(tau: float = 0.1, gamma: float = 0.9, height: int = 5, width: int = 5,
                          walls=DEFAULT_WALLS, goal=None, start=(0, 0), slip: float = 0.1,
                          goal_reward: float = 1.0, step_reward: float = 0.0):
    """The soft-optimal value :math:`V^*` and policy :math:`\\pi^*=\\mathrm{softmax}_\\tau(Q^*)` (eq. (5)) of a
    :func:`~sobirl_lite.mdp.gridworld`, with sliders for the temperature :math:`\\tau` and the discount
    :math:`\\gamma`.

    Left panel: :math:`V^*` as a heatmap, with one arrow per action of length :math:`\\pi^*(a\\mid s)`. Right panel:
    the entropy :math:`\\mathcal H(\\pi^*(\\cdot\\mid s))` per state, between 0 (greedy) and :math:`\\log 4`
    (uniform). ``state`` holds ``mdp``, ``solution`` and ``mean_entropy`` (over free, non-goal cells).
    """
    tau_slider = widgets.FloatLogSlider(value=tau, base=10, min=-2, max=1, step=0.05, description="τ",
                                        continuous_update=False, readout_format=".3g")
    gamma_slider = widgets.FloatSlider(value=gamma, min=0.5, max=0.99, step=0.01, description="γ",
                                       continuous_update=False, readout_format=".2f")
    view = FigureView(figsize=(9.5, 4.0))
    state = {}

    def update(*_):
        res = solve_grid(tau_slider.value, gamma_slider.value, height, width, walls, goal, start, slip,
                         goal_reward, step_reward)
        mdp, sol, H, free, layout = res["mdp"], res["solution"], res["entropy"], res["free"], res["mdp"].layout
        state.update(mdp=mdp, solution=sol, entropy=H, mean_entropy=res["mean_entropy"])

        ax_v, ax_h = view.subplots(1, 2)
        plot_grid_policy(ax_v, mdp, sol.V, sol.pi, title=rf"$V^*$ and $\pi^*$  ($\tau={mdp.tau:.3g}$, "
                                                         rf"$\gamma={mdp.gamma:.2f}$)")
        grid_heatmap(ax_h, layout, np.where(free, H, np.nan), cmap="magma", vmin=0.0, vmax=math.log(mdp.A),
                     label=r"$\mathcal{H}(\pi^*(\cdot|s))$",
                     title=rf"entropy of $\pi^*$ (mean {state['mean_entropy']:.2f} of max $\log 4$)")
        view.show()

    redraw_on_change([tau_slider, gamma_slider], update)
    update()
    box = panel([tau_slider, gamma_slider], view)
    box.view, box.state, box.update = view, state, update
    box.controls = {"tau": tau_slider, "gamma": gamma_slider}
    return box


class ValueIterationErrors(NamedTuple):
    """Errors of soft value iteration, each of shape ``(iters + 1,)``: ``sup`` = :math:`\\|V_k-V^*\\|_\\infty` and
    ``span`` = :math:`\\max_s(V_k-V^*)(s)-\\min_s(V_k-V^*)(s)`, the error left once constant offsets are ignored."""

    sup: np.ndarray
    span: np.ndarray


def value_iteration_errors(mdp: TabularMDP, iters: int, V0=None, V_star=None) -> ValueIterationErrors:
    """Errors of the iteration :math:`V_{k+1} = \\mathcal T(V_k)` (the fixed-point map of chapter 2) for
    ``k = 0..iters``. ``V0`` defaults to zeros and ``V_star`` to a tight :func:`solve_soft_mdp` solve."""
    if int(iters) < 0:
        raise ValueError(f"iters must be non-negative; got {iters}")
    V_star = solve_soft_mdp(mdp, tol=1e-12).V if V_star is None else np.asarray(V_star, dtype=np.float64)
    V = np.zeros(mdp.S) if V0 is None else np.asarray(V0, dtype=np.float64).copy()
    sup, span = np.empty(int(iters) + 1), np.empty(int(iters) + 1)
    for k in range(int(iters) + 1):
        if k:
            V = soft_value_map(mdp, V)
        d = V - V_star
        sup[k], span[k] = np.max(np.abs(d)), np.max(d) - np.min(d)
    return ValueIterationErrors(sup=sup, span=span)


def iterations_to_tolerance(mdp: TabularMDP, gammas, tol: float = 1e-8, max_iters: int = 100_000):
    """For each discount in ``gammas``, the number of steps of :math:`V_{k+1}=\\mathcal T(V_k)` from
    :math:`V_0=0` until :math:`\\|V_k-V^*\\|_\\infty\\le` ``tol`` (``mdp`` supplies dynamics, reward, temperature).
    Returns an int array of the shape of ``gammas``."""
    out = []
    for g in np.atleast_1d(gammas):
        m = TabularMDP(mdp.P, mdp.r, float(g), mdp.tau, mdp.rho)
        V_star = solve_soft_mdp(m, tol=1e-12).V
        V, k = np.zeros(m.S), 0
        while np.max(np.abs(V - V_star)) > tol:
            if k >= max_iters:
                raise RuntimeError(f"no convergence to {tol:g} in {max_iters} steps at gamma={g}")
            V, k = soft_value_map(m, V), k + 1
        out.append(k)
    return np.array(out, dtype=int).reshape(np.shape(gammas))


def contraction_widget(mdp: TabularMDP | None = None, gamma: float = 0.9, tol: float = 1e-11,
                       max_iters: int = 3000, gamma_grid=None):
    """Soft value iteration :math:`V_{k+1}=\\mathcal T(V_k)` from :math:`V_0=0` with a slider for :math:`\\gamma`.

    Left: the error :math:`\\|V_k-V^*\\|_\\infty` on a log scale beside the contraction bound
    :math:`\\gamma^k\\|V_0-V^*\\|_\\infty` (Prop. 4.1), run until the bound falls below ``tol`` (at most
    ``max_iters`` steps). Right: steps needed to reach error :math:`10^{-8}` against :math:`\\gamma` (measured once,
    at creation, on ``gamma_grid``) beside the bound's prediction :math:`\\log(10^{-8}/e_0)/\\log\\gamma`, with the
    slider's :math:`\\gamma` marked.

    ``mdp`` provides dynamics, reward and temperature (default: the 5x5 gridworld of chapter 1 at
    :math:`\\tau=0.1`); the slider replaces its discount. ``state`` holds ``errors``, ``ratios`` (one-step ratios
    :math:`e_{k+1}/e_k` above round-off), ``gamma``, ``iters`` and ``steps_to_tol`` (per ``gamma_grid``).
    """
    base = gridworld(5, 5, walls=DEFAULT_WALLS, tau=0.1) if mdp is None else mdp
    gamma_grid = np.round(np.linspace(0.3, 0.98, 18), 3) if gamma_grid is None else np.asarray(gamma_grid)
    gamma_slider = widgets.FloatSlider(value=gamma, min=0.3, max=0.99, step=0.01, description="γ",
                                       continuous_update=False, readout_format=".2f")
    view = FigureView(figsize=(9.5, 3.6))
    steps = iterations_to_tolerance(base, gamma_grid, tol=1e-8)
    # e_0 = ||V_0 - V*|| = ||V*|| (V_0 = 0) at each grid discount, for the bound's prediction
    e0s = np.array([np.max(np.abs(solve_soft_mdp(TabularMDP(base.P, base.r, float(x), base.tau, base.rho),
                                                 tol=1e-10).V)) for x in gamma_grid])
    state = {"gamma_grid": gamma_grid, "steps_to_tol": steps}

    def update(*_):
        g = gamma_slider.value
        m = TabularMDP(base.P, base.r, g, base.tau, base.rho)
        V_star = solve_soft_mdp(m, tol=1e-12).V
        e0 = float(np.max(np.abs(V_star)))
        iters = int(min(max_iters, max(10, math.ceil(math.log(tol / max(e0, 1e-300)) / math.log(g)))))
        errors = value_iteration_errors(m, iters, V_star=V_star).sup
        keep = errors[:-1] > 1e3 * tol  # ratios of round-off noise say nothing about the rate
        ratios = errors[1:][keep] / errors[:-1][keep]
        state.update(errors=errors, ratios=ratios, gamma=g, iters=iters)

        ax_e, ax_k = view.subplots(1, 2)
        plot_convergence(ax_e, errors, rate=g, label=r"$\|V_k-V^*\|_\infty$", ylabel="sup-norm error")
        ax_e.set_title(rf"soft value iteration, $\gamma={g:.2f}$")

        gg = np.linspace(gamma_grid.min(), max(gamma_grid.max(), g), 200)
        ax_k.semilogy(gamma_grid, steps, "o", color="tab:blue", ms=4, label=r"measured: first $k$ with error $\leq 10^{-8}$")
        pred = np.log(1e-8 / np.interp(gg, gamma_grid, e0s)) / np.log(gg)
        ax_k.semilogy(gg, pred, color="black", ls="--", lw=1, label=r"bound: $\log(10^{-8}/e_0)/\log\gamma$")
        ax_k.axvline(g, color="tab:red", lw=1, label=rf"$\gamma={g:.2f}$")
        ax_k.set_xlabel(r"discount $\gamma$")
        ax_k.set_title(r"the price of a long horizon")
        ax_k.legend(fontsize=8, loc="upper left")
        ax_k.grid(True, alpha=0.3)
        view.show()

    redraw_on_change([gamma_slider], update)
    update()
    box = panel([gamma_slider], view)
    box.view, box.state, box.update = view, state, update
    box.controls = {"gamma": gamma_slider}
    return box
