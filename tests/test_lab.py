"""`make lab`, end to end: a chapter opens in JupyterLab as a notebook, runs, and its widget redraws live.

The server is started as `make lab` starts it (the configuration in .lab/ on JUPYTER_CONFIG_PATH, the quick budget)
on 127.0.0.1 with a random token, on a copy of the chapter in a temporary folder (so that saving, which jupytext
writes back to the .md, cannot touch the checkout), with the reader's own Jupyter settings kept out. Headless
Chromium, with every host but 127.0.0.1 unreachable, then

* opens the chapter's .md and checks that it opened as a notebook (not as a text file);
* runs all cells and checks that every code cell ran and none produced an error;
* drags the temperature slider of the chapter's widget with the mouse, as a reader would, and waits until the
  widget's figure is a different image, computed by the kernel;
* saves, and checks that jupytext wrote the .md back unchanged (no spurious diff for a reader who edits);
* checks that the page threw no JavaScript exception and asked nothing from outside 127.0.0.1.

A screenshot after the slider move lands in screenshots/lab__<chapter>.png for a person to look at.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import book_support

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHAPTER = "01_soft_mdps.md"  # its widget: the soft-optimal policy on a maze, with a slider for the temperature
LAB_CONFIG = book_support.REPO / ".lab"  # what `make lab` puts on JUPYTER_CONFIG_PATH
START_TIMEOUT_S = 180  # generous: a loaded 2-core machine is slow, not broken
RUN_TIMEOUT_S = 480  # the whole chapter, quick budget (about 20 s on an idle 2-core machine)
REDRAW_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server as `make lab` starts it, on a copy of one chapter; yields (browser, base URL, token,
    path of the chapter's copy)."""
    binary = book_support.require_chromium("cannot check the chapters in JupyterLab")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "repo"  # laid out like the checkout: jupytext.toml at the root, the chapter in book/
    (root / "book").mkdir(parents=True)
    shutil.copy2(book_support.BOOK / CHAPTER, root / "book" / CHAPTER)
    shutil.copy2(book_support.REPO / "jupytext.toml", root / "jupytext.toml")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(LAB_CONFIG),
        # keep the reader's own ~/.jupyter (settings, extensions, runtime files) out of the test
        "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "SOBIRL_BUDGET": "quick",  # what `make lab` sets by default
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    cmd = [str(jupyter_lab) if jupyter_lab.exists() else "jupyter-lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={tmp / 'user-settings'}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           # window.jupyterapp, so the test can wait for the kernel and run all cells as the Run menu does
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "jupyterlab.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/api/status?token={token}", proc, log)
        chrome = book_support.Chromium(binary, tmp / "chromium-profile", width=1400, height=1000)
        try:
            chrome.open_tab()
            yield chrome, base, token, root / "book" / CHAPTER
        finally:
            chrome.close()
    finally:
        # SIGTERM asks the server to shut down its kernels; the whole session goes if it does not within 20 s.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            print(f"JupyterLab exited with {proc.returncode}; log tail:\n{log.read_text()[-2000:]}")


# Runs in JupyterLab's page. Each returns a plain object that the test checks.
OPENED_JS = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = performance.now() + %(ms)d;
  while (performance.now() < deadline) {
    const app = window.jupyterapp, w = app && app.shell && app.shell.currentWidget;
    if (w && w.context && w.sessionContext && w.content && w.content.model) {
      await w.context.ready;
      await w.sessionContext.ready;
      return {path: w.context.path, factory: w.context.factoryName || null,
              notebook: !!w.node.querySelector(".jp-Notebook"), cells: w.content.model.cells.length,
              kernel: w.sessionContext.session && w.sessionContext.session.kernel
                      ? w.sessionContext.session.kernel.name : null};
    }
    await sleep(250);
  }
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  return {timeout: true, current: w ? w.title.label + " " + w.node.className : null};
})()
"""

# Every code cell: its execution count and any error output.
CELLS_JS = r"""
(() => {
  const w = window.jupyterapp.shell.currentWidget, cells = w.content.model.cells, out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== "code") continue;
    const outputs = c.outputs.toJSON();
    out.push({index: i, count: c.executionCount,
              errors: outputs.filter((o) => o.output_type === "error").map((o) => `${o.ename}: ${o.evalue}`),
              widgets: outputs.filter((o) => o.data && o.data["application/vnd.jupyter.widget-view+json"]).length});
  }
  return {cells: out, status: w.sessionContext.session.kernel.status,
          widgetErrors: Array.from(w.node.querySelectorAll(".jp-OutputArea-output"))
            .filter((el) => /Error (displaying|rendering) widget|Traceback \(most recent/.test(el.textContent))
            .map((el) => el.textContent.trim().slice(0, 200))};
})()
"""

RUN_ALL_JS = r"""
(async () => {
  const app = window.jupyterapp, w = app.shell.currentWidget;
  await app.commands.execute("notebook:run-all-cells");
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = performance.now() + %(ms)d;
  const pending = () => {
    const cells = w.content.model.cells;
    for (let i = 0; i < cells.length; i++) {
      const c = cells.get(i);
      if (c.type === "code" && (c.executionState === "running" || c.executionCount === null)) return true;
    }
    return w.sessionContext.session.kernel.status !== "idle";
  };
  while (performance.now() < deadline && pending()) { await sleep(250); }
  return !pending();
})()
"""

# The widget of the chapter's last widget cell: its first slider's handle (page coordinates), readout and figure.
WIDGET_JS = r"""
(() => {
  const w = window.jupyterapp.shell.currentWidget;
  const areas = Array.from(w.node.querySelectorAll(".jp-OutputArea-output"))
    .filter((el) => el.querySelector(".widget-slider .noUi-handle") && el.querySelector(".widget-output img"));
  if (!areas.length) return null;
  const area = areas[areas.length - 1];
  if (%(scroll)s) area.scrollIntoView({block: "center"});
  const slider = area.querySelector(".widget-slider");
  const handle = slider.querySelector(".noUi-handle").getBoundingClientRect();
  const track = slider.querySelector(".noUi-target").getBoundingClientRect();
  const img = area.querySelector(".widget-output img");
  return {label: slider.querySelector("label").textContent, readout: slider.querySelector(".widget-readout").textContent,
          x: handle.x + handle.width / 2, y: handle.y + handle.height / 2, trackRight: track.right,
          trackWidth: track.width, png: img.getAttribute("src"), imgWidth: img.naturalWidth};
})()
"""


def _drag(browser, x0: float, y: float, x1: float, steps: int = 12) -> None:
    """Press the left button at (x0, y), move to (x1, y) in steps and release, as a person dragging would."""
    def mouse(kind, x, **extra):
        browser.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", **extra})

    mouse("mouseMoved", x0, buttons=0)
    mouse("mousePressed", x0, buttons=1, clickCount=1)
    for i in range(1, steps + 1):
        mouse("mouseMoved", x0 + (x1 - x0) * i / steps, buttons=1)
        time.sleep(0.03)
    mouse("mouseReleased", x1, buttons=0, clickCount=1)


def test_chapter_runs_and_widget_redraws_in_jupyterlab(lab):
    import jupytext

    browser, base, token, chapter = lab
    original = chapter.read_text(encoding="utf-8")
    mtime = chapter.stat().st_mtime_ns
    start = time.perf_counter()
    browser.navigate(f"{base}/lab/tree/book/{urllib.parse.quote(CHAPTER)}?token={token}", timeout=START_TIMEOUT_S)
    opened = browser.evaluate(OPENED_JS % {"ms": START_TIMEOUT_S * 1000}, timeout=START_TIMEOUT_S + 30)
    assert not opened.get("timeout"), f"the chapter did not open as a notebook: {opened}"
    assert opened["path"] == f"book/{CHAPTER}" and opened["notebook"], f"{CHAPTER} did not open as a notebook: {opened}"
    assert opened["kernel"] == "python3" and opened["cells"] > 10, opened

    t_run = time.perf_counter()
    finished = browser.evaluate(RUN_ALL_JS % {"ms": RUN_TIMEOUT_S * 1000}, timeout=RUN_TIMEOUT_S + 30)
    run_seconds = time.perf_counter() - t_run
    report = browser.evaluate(CELLS_JS)
    assert finished, f"the chapter did not finish within {RUN_TIMEOUT_S} s: {report}"
    not_run = [c["index"] for c in report["cells"] if c["count"] is None]
    errors = [(c["index"], c["errors"]) for c in report["cells"] if c["errors"]]
    assert not not_run, f"code cells that did not run: {not_run}"
    assert not errors, f"cells with an error: {errors}"
    assert not report["widgetErrors"], report["widgetErrors"]
    assert any(c["widgets"] for c in report["cells"]), "no widget was displayed"

    before = browser.evaluate(WIDGET_JS % {"scroll": "true"})
    assert before is not None, "no widget with a slider and a figure was drawn"
    time.sleep(0.5)  # let the scroll settle before reading coordinates again
    before = browser.evaluate(WIDGET_JS % {"scroll": "false"})
    assert before["imgWidth"] > 100, f"the widget's figure is empty: {before['imgWidth']} px wide"
    # drag the handle a quarter of the track to the right (the temperature goes up)
    target = min(before["x"] + before["trackWidth"] / 4, before["trackRight"] - 2)
    _drag(browser, before["x"], before["y"], target)

    deadline = time.monotonic() + REDRAW_TIMEOUT_S
    after = before
    while time.monotonic() < deadline:
        after = browser.evaluate(WIDGET_JS % {"scroll": "false"})
        if after and after["png"] != before["png"]:
            break
        time.sleep(0.25)
    shot = book_support.SCREENSHOTS / f"lab__{CHAPTER.removesuffix('.md')}.png"
    browser.screenshot(shot)
    assert after["readout"] != before["readout"], f"the slider did not move: readout {before['readout']!r}"
    assert after["png"] != before["png"], (f"the figure did not change within {REDRAW_TIMEOUT_S} s after moving "
                                           f"{before['label']} from {before['readout']} to {after['readout']}")
    assert after["imgWidth"] > 100
    report = browser.evaluate(CELLS_JS)
    assert not [c for c in report["cells"] if c["errors"]] and not report["widgetErrors"], report

    # saving writes the notebook back to the .md (jupytext), unchanged since only outputs were added
    browser.evaluate('window.jupyterapp.commands.execute("docmanager:save")')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not browser.evaluate(
            "!window.jupyterapp.shell.currentWidget.context.model.dirty"):
        time.sleep(0.25)
    saved = chapter.read_text(encoding="utf-8")
    before_nb, after_nb = jupytext.reads(original, fmt="md:myst"), jupytext.reads(saved, fmt="md:myst")
    assert [(c.cell_type, c.source) for c in after_nb.cells] == [(c.cell_type, c.source) for c in before_nb.cells]
    assert saved == original, "saving in JupyterLab rewrote the chapter's text (a spurious diff for every edit)"
    assert chapter.stat().st_mtime_ns > mtime, "saving did not write the .md"

    exceptions = browser.exceptions()
    assert not exceptions, f"JavaScript exceptions in JupyterLab: {exceptions}"
    outside = [u for u in browser.requests()
               if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")
               and urllib.parse.urlsplit(u).hostname not in ("127.0.0.1",)]
    assert not outside, f"JupyterLab tried to reach the network: {outside}"
    print(f"\n{CHAPTER} in JupyterLab: all cells in {run_seconds:.1f} s, widget redrawn "
          f"({before['label']} {before['readout']} -> {after['readout']}), whole test "
          f"{time.perf_counter() - start:.1f} s; screenshot {shot}")
