"""Precomputed frames: a page whose widgets have only a few slider settings moves with no Python runtime at all.

At build time (from ``live_widgets._page_spec``) the page's live code (the same cells a live page runs) is executed
in a subprocess through the widget bridge of the live pages (``static/sobirl_live_bridge.py``, with its IPython
stand-in, as in the browser), and the figure of every combination of slider positions is recorded. The page then
gets a small JSON file of frames next to it in ``_static/sobirl-frames/``, and ``static/sobirl-live-frames.js``
swaps the figure when a slider moves: no download of Pyodide, nothing computed in the browser.

A page qualifies when every widget on it is made of boxes, sliders (``IntSlider``, ``FloatSlider``,
``FloatLogSlider``) and ``Output`` widgets, and the product of its sliders' positions is at most ``MAX_FRAMES``
(the intro: one temperature slider with 13 positions). Any other control (a dropdown, a text box) or a larger grid
leaves the page to the runtime, as before. A frame is keyed by the index of each slider's position on its grid
(``i`` for ``min + i * step``; for a log slider, of the exponent), which the page computes from the slider's value.

Run as a script, it reads ``{"cells", "max_frames", "only"}`` as JSON on stdin and writes the frames as JSON on
stdout (``only``: ``[[widget, [index, ...]], ...]`` computes just those frames; the browser test uses it).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

MAX_FRAMES = 40            # per page; the intro needs 13
MAX_BYTES = 2_000_000      # of frames JSON per page: above this the page uses the runtime instead
TIMEOUT_S = 300
BRIDGE_DIR = Path(__file__).resolve().parent / "static"
SLIDER_KINDS = {"IntSlider": "linear", "FloatSlider": "linear", "FloatLogSlider": "log"}


def slider_grid(widget) -> dict:
    """``{"kind", "min", "max", "step", "count"[, "base"]}`` of a slider: its positions are ``min + i * step``."""
    kind = SLIDER_KINDS[type(widget).__name__]
    lo, hi, step = float(widget.min), float(widget.max), float(widget.step)
    count = int(math.floor((hi - lo) / step + 1e-9)) + 1
    grid = {"kind": kind, "min": lo, "max": hi, "step": step, "count": count}
    if kind == "log":
        grid["base"] = float(widget.base)
    return grid


def grid_value(grid: dict, index: int, integer: bool = False):
    """The slider value at position INDEX of GRID (what the page's slider sends there)."""
    x = grid["min"] + index * grid["step"]
    if grid["kind"] == "log":
        return grid["base"] ** x
    return int(round(x)) if integer else x


def plan(root) -> dict | None:
    """The sliders and outputs of ROOT as child-index paths, or None when ROOT has anything else."""
    import ipywidgets

    controls, outputs = [], []

    def walk(widget, path) -> bool:
        name = type(widget).__name__
        if name in SLIDER_KINDS:
            controls.append({"path": path, **slider_grid(widget)})
        elif isinstance(widget, ipywidgets.Output):
            outputs.append(path)
        elif isinstance(widget, ipywidgets.Box):
            return all(walk(child, path + [i]) for i, child in enumerate(widget.children))
        else:
            return False  # a control whose values cannot be enumerated (or a widget we do not snapshot)
        return True

    if not walk(root, []) or not controls or not outputs:
        return None
    return {"controls": controls, "outputs": outputs}


SAVED_BOXES = {"VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def saved_frame_count(nb: dict) -> int | None:
    """How many frames the page's widgets need, read from the widget state saved in the executed notebook NB
    (nothing is run, so pages that cannot qualify cost nothing); None when a widget has anything but boxes, sliders
    and outputs, or the notebook saved no state."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    roots = [o["data"][WIDGET_VIEW]["model_id"] for c in nb["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if WIDGET_VIEW in o.get("data", {})]

    def count(model_id: str) -> int | None:
        model = state.get(model_id)
        if model is None:
            return None
        name, values = model.get("model_name"), model.get("state", {})
        if name in {k + "Model" for k in SLIDER_KINDS}:
            return int(math.floor((values["max"] - values["min"]) / values["step"] + 1e-9)) + 1
        if name == "OutputModel":
            return 1
        if name in SAVED_BOXES:
            counts = [count(str(child).removeprefix("IPY_MODEL_")) for child in values.get("children", [])]
            return None if any(c is None for c in counts) else math.prod(counts)
        return None

    counts = [count(r) for r in roots]
    if not counts or any(c is None for c in counts):
        return None
    return sum(counts)


def _at(root, path):
    for i in path:
        root = root.children[i]
    return root


def run_page(cells: list[dict]) -> list:
    """Execute CELLS through the live pages' bridge in this process; the page's root widgets, in page order."""
    sys.modules["IPython"] = None  # as in the browser: the bridge's stand-in, not the real IPython
    sys.path.insert(0, str(BRIDGE_DIR))
    import sobirl_live_bridge as bridge  # first: it puts its IPython stand-in in place for ipywidgets
    import ipywidgets

    bridge.post = lambda *args: None  # no page to send comm messages to
    ids = [bridge.run_cell(c["source"], c["widget"]) for c in cells]
    return [ipywidgets.Widget.widgets[i] for i in ids if i is not None]


def _snapshot(root, outputs) -> dict:
    return {",".join(map(str, path)): [dict(o) for o in _at(root, path).outputs] for path in outputs}


def frames(roots, max_frames: int = MAX_FRAMES, only=None) -> dict | None:
    """``{"widgets": [{"controls", "outputs", "frames": {key: {output path: outputs}}}]}`` for the page's ROOTS, or
    None when the page does not qualify. ``only``: ``{widget: [index tuples]}`` to compute just those frames."""
    plans = [plan(root) for root in roots]
    if not plans or any(p is None for p in plans):
        return None
    total = sum(math.prod(c["count"] for c in p["controls"]) for p in plans)
    if only is None and total > max_frames:
        return None
    out = []
    for w, (root, p) in enumerate(zip(roots, plans)):
        sliders = [_at(root, c["path"]) for c in p["controls"]]
        initial = [s.value for s in sliders]
        combos = (only or {}).get(w, []) if only is not None else itertools.product(
            *[range(c["count"]) for c in p["controls"]])
        shots = {}
        for combo in combos:
            for s, c, i in zip(sliders, p["controls"], combo):
                s.value = grid_value(c, i, integer=c["kind"] == "linear" and type(s).__name__ == "IntSlider")
            shots[",".join(map(str, combo))] = _snapshot(root, p["outputs"])
        for s, v in zip(sliders, initial):  # leave the widget as the page shows it
            s.value = v
        out.append({**p, "frames": shots})
    return {"widgets": out}


def precompute(cells: list[dict], budget: str, only=None, max_frames: int = MAX_FRAMES) -> dict | None:
    """:func:`frames` for the page's live CELLS, computed in a fresh Python (the build's), or None.

    Raises RuntimeError when the subprocess fails."""
    env = {**os.environ, "SOBIRL_BUDGET": budget, "MPLBACKEND": "agg", "OMP_NUM_THREADS": "1",
           "SOBIRL_LIVE_COLUMN_PX": ""}
    request = {"cells": cells, "max_frames": max_frames,
               "only": None if only is None else [[w, [list(c) for c in combos]] for w, combos in only.items()]}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve())], input=json.dumps(request),
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=Path.cwd())
    if proc.returncode != 0:
        raise RuntimeError(f"precomputing frames failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    request = json.loads(sys.stdin.read())
    only = None
    if request.get("only") is not None:
        only = {w: [tuple(c) for c in combos] for w, combos in request["only"]}
    stdout, sys.stdout = sys.stdout, sys.stderr  # what the page's cells print must not corrupt the JSON
    try:
        result = frames(run_page(request["cells"]), request.get("max_frames", MAX_FRAMES), only)
    finally:
        sys.stdout = stdout
    print(json.dumps(result))


if __name__ == "__main__":
    main()
