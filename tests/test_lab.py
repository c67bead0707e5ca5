"""`make lab`, end to end: a chapter opens in JupyterLab as a notebook, runs, and its widget redraws live.

The server is started as `make lab` starts it (the configuration in .lab/ on JUPYTER_CONFIG_PATH, the quick budget)
on 127.0.0.1 with a random token, on a copy of the chapter in a temporary folder (so that saving, which jupytext
writes back to the .md, cannot touch the checkout), with the reader's own Jupyter settings kept out. Headless
Chromium, with every host but 127.0.0.1 unreachable, then

* opens the chapter's .md and checks that it opened as a notebook (not as a text file);
* runs all cells and checks that every code cell ran and none produced an error;
* drags the temperature slider of the chapter's widget with the mouse, as a reader would, and waits until the
  widget's figure is a different image, computed by the kernel;
* saves, and checks that jupytext wrote the .md back unchanged (no spurious diff for a reader who edits), although
  `make lab` showed the chapter with two cells more and its `{glue:figure}` directives as MyST figures
  (.lab/chapters_in_lab.py);
* checks that the chapter reads as in the book: jupyterlab-myst rendered every markdown cell, no directive or role is
  left as raw text, no macro is undefined (the book's macros come from _config.yml), and every glued figure is shown,
  its caption numbered and labelled below it;
* checks that the page threw no JavaScript exception and asked nothing from outside 127.0.0.1.

Then every other notebook page of the book is opened (not run) in the same JupyterLab, and the same rendering checks
run on it, figures aside. Screenshots land in screenshots/lab__<chapter>.png (after the slider move) and
lab__<chapter>_figure.png (the first glued figure and its caption) for a person to look at. The first tests need no
browser: the round trip of .lab/chapters_in_lab.py on every page of the book.
"""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest

import book_support

CHAPTER = "01_soft_mdps.md"  # its widget: the soft-optimal policy on a maze, with a slider for the temperature
LAB_CONFIG = book_support.REPO / ".lab"  # what `make lab` puts on JUPYTER_CONFIG_PATH
START_TIMEOUT_S = book_support.LAB_START_TIMEOUT_S
RUN_TIMEOUT_S = 480  # the whole chapter, quick budget (about 20 s on an idle 2-core machine)
REDRAW_TIMEOUT_S = 120
RENDER_TIMEOUT_S = 180


def _chapters_in_lab():
    """.lab/chapters_in_lab.py, loaded from its file as .lab/jupyter_lab_config.py loads it."""
    spec = importlib.util.spec_from_file_location("chapters_in_lab_under_test", LAB_CONFIG / "chapters_in_lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", sorted(p.name for p in book_support.BOOK.glob("*.md")))
def test_what_make_lab_adds_to_a_chapter_is_never_saved(page):
    """for_lab then for_disk gives back the notebook jupytext read, so saving in JupyterLab writes the same .md."""
    import jupytext
    import nbformat
    from jupytext.config import load_jupytext_config

    lab = _chapters_in_lab()
    config = load_jupytext_config(str(book_support.REPO / "jupytext.toml"))
    nb = jupytext.reads((book_support.BOOK / page).read_text(encoding="utf-8"), fmt="md:myst")
    shown = lab.for_lab(nb)
    # as JupyterLab sends it back: JSON, and a reader who only ran cells
    back = lab.for_disk(json.loads(json.dumps(shown)))
    assert jupytext.writes(nbformat.from_dict(back), fmt="md:myst", config=config) == \
        jupytext.writes(nb, fmt="md:myst", config=config)
    glued = sum(bool(lab.GLUE_FIGURE.match(line)) for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines())
    shown_lines = [line for c in shown["cells"] if c["cell_type"] == "markdown" for line in c["source"].splitlines()]
    assert not [line for line in shown_lines if lab.GLUE_FIGURE.match(line)]
    figure = re.compile(r"^(`{3,}|:{3,})\{figure\}")
    assert sum(bool(figure.match(line)) for line in shown_lines) == glued + sum(
        bool(figure.match(line)) for c in nb.cells for line in c.source.splitlines())
    assert len(shown["cells"]) == len(nb.cells) + 2


def test_the_lab_front_matter_holds_every_macro_of_the_book():
    """The macros jupyterlab-myst gets are _config.yml's, each with its body (a macro with arguments included)."""
    import yaml

    lab = _chapters_in_lab()
    nb = lab.for_lab({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    source = nb["cells"][0]["source"]
    assert nb["cells"][0]["cell_type"] == "markdown" and source.startswith("---\n") and source.endswith("\n---")
    front = yaml.safe_load(source.strip("-\n"))
    config = yaml.safe_load((book_support.REPO / "_config.yml").read_text(encoding="utf-8"))
    macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    assert front["math"] == {"\\" + k: v if isinstance(v, str) else v[0] for k, v in macros.items()}
    assert front["math"]["\\pistar"] == "\\pi^{*}_{#1}"
    # a reader's edit in a cell with a figure is kept; only the directive's line goes back
    cell = {"cell_type": "markdown", "metadata": {}, "source": "```{glue:figure} fig-a-plot\n:name: fig-a\n\nOld.\n```"}
    shown = lab.for_lab({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})["cells"][2]
    assert shown["source"].startswith("```{figure}\n")
    shown["source"] = shown["source"].replace("Old.", "New.")
    assert lab.for_disk({"cells": [shown], "metadata": {}})["cells"][0] == {
        "cell_type": "markdown", "metadata": {}, "source": cell["source"].replace("Old.", "New.")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server as `make lab` starts it, on a copy of one chapter; yields (browser, base URL, token,
    path of the chapter's copy)."""
    binary = book_support.require_chromium("cannot check the chapters in JupyterLab")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "repo"  # laid out like the checkout: jupytext.toml at the root, the chapter in book/
    (root / "book").mkdir(parents=True)
    for page in book_support.BOOK.glob("*.md"):     # every page, for test_every_page_reads_as_in_the_book
        shutil.copy2(page, root / "book" / page.name)
    shutil.copy2(book_support.REPO / "jupytext.toml", root / "jupytext.toml")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_PATH": str(LAB_CONFIG),
        # keep the reader's own ~/.jupyter (settings, extensions, runtime files) out of the test
        "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        "SOBIRL_BUDGET": "quick",  # what `make lab` sets by default
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    with book_support.jupyterlab(root, tmp, env) as (base, token):
        chrome = book_support.Chromium(binary, tmp / "chromium-profile", width=1400, height=1000)
        try:
            chrome.open_tab()
            yield chrome, base, token, root / "book" / CHAPTER
        finally:
            chrome.close()


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


# What a reader sees of the notebook once every markdown cell is rendered: the prose as text (math, code and the
# renderer's own markup removed), the renderer's warnings, the math, the figures in the markdown, and per code cell
# the images its outputs hold and how many of them are drawn. Works for jupyterlab-myst (KaTeX) and for JupyterLab's
# own Markdown renderer (MathJax).
RENDER_JS = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = performance.now() + %(ms)d;
  const w = window.jupyterapp.shell.currentWidget;
  const mdCells = w.content.widgets.filter((c) => c.model.type === "markdown");
  // JupyterLab renders lazily (and jupyterlab-myst asynchronously): render and visit every markdown cell
  for (const cell of mdCells) { cell.rendered = true; cell.node.scrollIntoView(); await sleep(30); }
  const rendered = (c) => c.node.querySelector(".jp-MarkdownOutput, .jp-RenderedMarkdown, .myst");
  while (performance.now() < deadline && mdCells.some((c) => !rendered(c))) { await sleep(250); }
  let last = "";
  while (performance.now() < deadline) {            // until the math stops changing (MathJax typesets late)
    const now = [".katex", "mjx-container", ".myst"].map((q) => w.node.querySelectorAll(q).length).join();
    if (now === last) break;
    last = now; await sleep(1000);
  }
  const texts = [], warnings = [];
  for (const cell of mdCells) {
    const out = rendered(cell);
    if (!out) continue;
    const copy = out.cloneNode(true);
    copy.querySelectorAll(".katex, mjx-container, svg").forEach((m) => m.remove());
    // code as its markdown, so that a role (`{doc}` then code) or a directive that a plain renderer turned into a
    // code block (its name then the block's language) reads as the MyST it was
    copy.querySelectorAll("pre").forEach((pre) => {
      const code = pre.querySelector("code"), lang = code && /language-(\S+)/.exec(code.className);
      pre.replaceWith("```" + (lang ? lang[1] : "") + "\n```\n");
    });
    copy.querySelectorAll("code").forEach((code) => code.replaceWith("`" + code.textContent + "`"));
    texts.push(copy.textContent);
    // jupyterlab-myst marks what it could not render (a math error, an unknown citation) with a titled warning
    out.querySelectorAll(".text-yellow-600[title]").forEach((el) =>
      warnings.push({title: el.getAttribute("title").slice(0, 160), text: el.textContent.trim().slice(0, 80)}));
  }
  const mathErrors = Array.from(w.node.querySelectorAll(".katex-error, mjx-merror, [data-mjx-error]"))
    .map((el) => el.getAttribute("title") || el.getAttribute("data-mjx-error") || el.textContent).slice(0, 5);
  // MathJax's noundefined shows an unknown macro as red text holding its name. The glyphs drawn (mjx-c) hold no
  // text, so the name is read from the MathML MathJax keeps for screen readers, or else only the colour is seen.
  const redMacros = Array.from(w.node.querySelectorAll("mjx-container")).flatMap((box) => {
    const named = Array.from(box.querySelectorAll('mtext[mathcolor="red"]')).map((el) => el.textContent);
    return named.length ? named : box.querySelector('mjx-mtext[style*="color: red"]') ? ["(a red macro name)"] : [];
  }).slice(0, 5);
  const figures = Array.from(w.node.querySelectorAll(".jp-MarkdownCell figure")).map((f) => ({
    id: f.id, caption: f.querySelector("figcaption") ? f.querySelector("figcaption").textContent.slice(0, 80) : ""}));
  const code = [];
  for (const cell of w.content.widgets) {
    if (cell.model.type !== "code") continue;
    const imgs = Array.from(cell.node.querySelectorAll(".jp-OutputArea-output img"));
    for (const img of imgs) {
      img.scrollIntoView();
      if (!img.complete) await new Promise((r) => { img.onload = img.onerror = r; setTimeout(r, 3000); });
    }
    code.push({source: cell.model.sharedModel.getSource(),
               pngs: cell.model.outputs.toJSON().filter((o) => o.data && o.data["image/png"]).length,
               shown: imgs.filter((img) => img.naturalWidth > 0).length});
  }
  return {markdown: mdCells.length, myst: mdCells.filter((c) => c.node.querySelector(".myst")).length,
          unrendered: mdCells.filter((c) => !rendered(c)).length, text: texts.join("\n"), warnings, mathErrors,
          redMacros, math: w.node.querySelectorAll(".katex, mjx-container").length, figures, code};
})()
"""

# MyST markup that a renderer left as text: a directive's fence, a role, a label line, or the "Unknown Directive" /
# "Unknown Role" box jupyterlab-myst draws for one it does not know.
RAW_MYST = re.compile(r"(:{3,}|`{3,})\{[\w:-]+\}|\{[\w:-]+\}`|^\([\w-]+\)=\s*$|Unknown (Directive|Role)", re.M)
# jupyterlab-myst has no bibliography and sees one notebook at a time: every citation is drawn as its key, and a
# reference to a label on another page of the book as the label, each with one of these warnings. Neither is a
# rendering failure; a reference whose label is nowhere in the book is.
CITATION_WARNING = "Citation Not Found"
REFERENCE_WARNING = "Cross Reference Not Found"


def book_labels(exclude: str = "") -> set[str]:
    """Every label defined on the pages of the book (book/*.md) but ``exclude``: `(name)=`, `:label:`, `:name:`."""
    definition = re.compile(r"^\(([\w-]+)\)=\s*$|^:(?:label|name):\s*(\S+)", re.M)
    return {a or b for page in book_support.BOOK.glob("*.md") if page.name != exclude
            for a, b in definition.findall(page.read_text(encoding="utf-8"))}


def glued_figure_names(text: str) -> list[str]:
    """The `:name:` of every `{glue:figure}` in a chapter's MyST text (a glued figure without one counts as "")."""
    names, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^(`{3,}|:{3,})\{glue:figure\}", line):
            options = itertools.takewhile(lambda ln: re.match(r"^:[\w-]+:", ln), lines[i + 1:])
            names.append(next((ln.split(":", 2)[2].strip() for ln in options if ln.startswith(":name:")), ""))
    return names


def check_rendered(seen: dict, *, figures: int, names: list[str] = (), min_math: int = 50,
                   elsewhere: set[str] = frozenset()) -> list[str]:
    """Problems in what RENDER_JS saw, as sentences (empty: the notebook reads cleanly). ``figures``: how many
    figures the notebook's code draws for the text; ``names``: the labels their captions must carry; ``elsewhere``:
    labels defined on other pages, which a reference may name without it being a problem."""
    problems = []
    if seen["unrendered"]:
        problems.append(f"{seen['unrendered']} of {seen['markdown']} markdown cells were not rendered")
    raw = sorted({m.group(0) for m in RAW_MYST.finditer(seen["text"])})
    if raw:
        problems.append(f"MyST markup shown as text: {raw[:8]}")
    warned = [w for w in seen["warnings"] if w["title"] != CITATION_WARNING
              and not (w["title"] == REFERENCE_WARNING and w["text"] in elsewhere)]
    if warned or seen["mathErrors"] or seen["redMacros"]:
        problems.append("math that did not render (an undefined macro?) or a reference to no label: "
                        f"{(warned + seen['mathErrors'] + seen['redMacros'])[:5]}")
    if seen["math"] < min_math:
        problems.append(f"only {seen['math']} formulas typeset")
    drawn = [c for c in seen["code"] if c["pngs"]]
    glue_cells = [c for c in seen["code"] if re.search(r"^\s*glue\(", c["source"], re.M)]
    not_shown = [c["source"].strip().splitlines()[-1][:80] for c in glue_cells if not c["shown"]]
    if figures and not_shown:       # (figures=0: the notebook was not run, nothing to show yet)
        problems.append(f"cells that glue a figure but show none: {not_shown}")
    hidden = [(c["pngs"], c["shown"]) for c in drawn if c["shown"] < c["pngs"]]
    if hidden:
        problems.append(f"figures in the outputs that are not drawn (outputs, drawn): {hidden}")
    if sum(c["shown"] for c in glue_cells or drawn) < figures:
        problems.append(f"{figures} figures expected, {sum(c['shown'] for c in glue_cells or drawn)} shown")
    missing = sorted(set(names) - {f["id"] for f in seen["figures"]})
    if missing:
        problems.append(f"figure captions missing or unlabelled in the text: {missing}")
    return problems


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


@pytest.mark.browser
@pytest.mark.slow
def test_chapter_runs_renders_and_widget_redraws_in_jupyterlab(lab):
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

    # the chapter reads as in the book: jupyterlab-myst rendered every markdown cell, the book's macros are defined,
    # and each glued figure is drawn above its caption. Looked at now, since rendering every cell also settles the
    # page's layout before the slider is dragged; asserted at the end.
    seen = browser.evaluate(RENDER_JS % {"ms": RENDER_TIMEOUT_S * 1000}, timeout=RENDER_TIMEOUT_S + 60)
    browser.evaluate('(() => { const f = window.jupyterapp.shell.currentWidget.node'
                     '.querySelector(".jp-MarkdownCell figure"); if (f) f.scrollIntoView({block: "end"}); })()')
    time.sleep(0.5)
    figure_shot = book_support.SCREENSHOTS / f"lab__{CHAPTER.removesuffix('.md')}_figure.png"
    browser.screenshot(figure_shot)
    names = glued_figure_names(original)
    problems = check_rendered(seen, figures=len(names), names=names, elsewhere=book_labels(exclude=CHAPTER))

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

    # saving writes the notebook back to the .md (jupytext), unchanged: only outputs were added, and what `make lab`
    # added to the chapter (.lab/chapters_in_lab.py) stays out
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

    # (checked after the slider and the save, which it must not stop: see `seen` above)
    assert seen["myst"] == seen["markdown"], (f"jupyterlab-myst rendered {seen['myst']} of {seen['markdown']} markdown "
                                              "cells: is it installed and enabled (jupyter labextension list)?")
    assert not problems, f"{CHAPTER} in JupyterLab does not read as in the book:\n" + "\n".join(problems)

    exceptions = browser.exceptions()
    assert not exceptions, f"JavaScript exceptions in JupyterLab: {exceptions}"
    outside = [u for u in browser.requests()
               if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")
               and urllib.parse.urlsplit(u).hostname not in ("127.0.0.1",)]
    assert not outside, f"JupyterLab tried to reach the network: {outside}"
    print(f"\n{CHAPTER} in JupyterLab: all cells in {run_seconds:.1f} s, widget redrawn "
          f"({before['label']} {before['readout']} -> {after['readout']}), whole test "
          f"{time.perf_counter() - start:.1f} s; {len(names)} glued figures shown, {seen['math']} formulas, "
          f"{sum(w['title'] == CITATION_WARNING for w in seen['warnings'])} citations as bare keys, "
          f"{sum(w['title'] == REFERENCE_WARNING for w in seen['warnings'])} references to other pages as labels; "
          "screenshots "
          f"{shot}, {figure_shot}")


# Waits until JupyterLab has started and restored its layout, with the document manager's commands registered.
LAB_READY_JS = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = performance.now() + %(ms)d;
  while (performance.now() < deadline) {
    const app = window.jupyterapp;
    if (app && app.commands.hasCommand("docmanager:open")) { await app.restored; return true; }
    await sleep(250);
  }
  return false;
})()
"""

# Opens a page as a notebook without running it; resolves once it is open (its kernel may still be starting).
OPEN_PAGE_JS = r"""
(async () => {
  const app = window.jupyterapp;
  const w = await app.commands.execute("docmanager:open", {path: %(path)s, factory: "Jupytext Notebook"});
  await w.context.ready;
  app.shell.activateById(w.id);
  return {path: w.context.path, cells: w.content.model.cells.length};
})()
"""

# Closes the current page and shuts its kernel down, so that the next page starts from a quiet server.
CLOSE_PAGE_JS = r"""
(async () => {
  const w = window.jupyterapp.shell.currentWidget;
  await w.sessionContext.ready;
  await w.sessionContext.shutdown();
  w.dispose();
  return true;
})()
"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(p.name for p in book_support.BOOK.glob("*.md")
                                        if book_support.is_notebook_page(p)))
def test_every_page_reads_as_in_the_book_in_jupyterlab(lab, page):
    """Each notebook page of the book, opened (not run) as `make lab` opens it: jupyterlab-myst renders every markdown
    cell, no directive or role is left as text, KaTeX knows every macro and construct the page uses (the book typesets
    with MathJax), each {glue:figure} caption is there, numbered and labelled. The figures themselves need the page
    to run: test_chapter_runs_renders_and_widget_redraws_in_jupyterlab runs chapter 1."""
    browser, base, token, _ = lab
    if not browser.evaluate("!!window.jupyterapp"):          # run on its own: JupyterLab is not open yet
        browser.navigate(f"{base}/lab/tree/book?token={token}", timeout=START_TIMEOUT_S)
    assert browser.evaluate(LAB_READY_JS % {"ms": START_TIMEOUT_S * 1000}, timeout=START_TIMEOUT_S + 30), \
        "JupyterLab did not start"
    opened = browser.evaluate(OPEN_PAGE_JS % {"path": json.dumps(f"book/{page}")}, timeout=START_TIMEOUT_S)
    try:
        seen = browser.evaluate(RENDER_JS % {"ms": RENDER_TIMEOUT_S * 1000}, timeout=RENDER_TIMEOUT_S + 60)
    finally:
        browser.evaluate(CLOSE_PAGE_JS, timeout=120)
    text = (book_support.BOOK / page).read_text(encoding="utf-8")
    names = glued_figure_names(text)
    assert seen["myst"] == seen["markdown"] > 0, (opened, seen["myst"], seen["markdown"])
    problems = check_rendered(seen, figures=0, names=names, elsewhere=book_labels(exclude=page),
                              min_math=1 if "$" in text else 0)
    assert not problems, f"{page} in JupyterLab does not read as in the book:\n" + "\n".join(problems)
