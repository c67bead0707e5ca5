"""The rendered book's widgets come alive in the browser, with no server and no network (issue 9, item 2).

Every page with a widget is opened in headless Chromium from the HTML of the session's book build, served on
127.0.0.1, with every other host unreachable. On each page we press "Make this page interactive", which boots
Pyodide in a Web Worker from the files shipped with the book and runs the page's widget code there, and check that:

* every widget of the page turns live (its static frame is replaced by a view of the live model) within
  ``BOOT_TIMEOUT_S``;
* dragging a slider of each widget with the mouse redraws its figure (a different PNG) within ``UPDATE_TIMEOUT_S``;
* no request left 127.0.0.1, counting those of the Web Worker (seen through DevTools ``Target.setAutoAttach``),
  every file asked for was served, and neither the page nor the worker threw a JavaScript exception;
* before the press the download size is written on the page (not only in a tooltip) and the saved frame's controls
  are inert; after a move the page showed a busy state and cleared it; matplotlib read the shipped font list
  instead of rebuilding it.

Two more tests: a start whose worker script fails to load (refused through DevTools ``Fetch``) is reported and can be
retried with the button; at 390 CSS px (a phone) the live figure is drawn for the column, its panels stacked, with no
empty gap below. No test asserts a time: ``benchmarks/live.py`` measures them.

A screenshot of each page after the slider move goes to screenshots/live-<page>.png. Timings (time to the first live
frame, seconds per update) are printed. Without Chromium the test skips (fails under CI), like tests/test_browser.py.
"""
from __future__ import annotations

import json
import time
import urllib.parse

import pytest

import book_support

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Generous: measured 50-170 s to the first live frame and 1-18 s per slider move with other jobs loading the 2 cores.
BOOT_TIMEOUT_S = 600    # first live frame: Pyodide boot (~50 MB on a cold cache) plus the page's first computation
UPDATE_TIMEOUT_S = 180  # one slider move, recomputed in WebAssembly
STATIC_WAIT_S = 60


def live_pages() -> list[str]:
    """The toc pages whose source displays a widget (those the live button is added to)."""
    pages = []
    for doc in book_support.notebook_pages():
        text = book_support.page_source(doc).read_text(encoding="utf-8")
        if "_widget(" in text or "widgets.interactive(" in text:
            pages.append(doc)
    return pages


PAGES = live_pages()


@pytest.fixture(scope="module")
def site(book_build, browser):
    if not book_build.ok:
        pytest.skip("the book did not build cleanly; see tests/test_book_build.py")
    live = _live_module()
    if not live.runtime_present():
        message = "vendor/live/ has no Pyodide runtime (npm or PyPI unreachable?): the book has static widgets only"
        if book_support.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with book_support.serve_directory(book_build.html) as base:
        yield base, book_build.html


def _live_module():
    book_support.offline_assets_module()._live_widgets()
    import sys

    return sys.modules["live_widgets"]


# ---------------------------------------------------------------------------------------------------------------
# DevTools: follow the page's Web Workers too.
def watch_workers(chrome: book_support.Chromium) -> None:
    """Auto-attach to the page's workers, paused at start, so that their first request is seen as well."""
    chrome.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True})


def release_workers(chrome: book_support.Chromium, handled: set[str]) -> None:
    """Enable Network and Runtime events on newly attached workers, then let them run."""
    for event in list(chrome.events):
        if event.get("method") != "Target.attachedToTarget":
            continue
        session = event["params"]["sessionId"]
        if session in handled:
            continue
        handled.add(session)
        page_session = chrome.session
        chrome.session = session
        try:
            chrome.send("Network.enable")
            chrome.send("Runtime.enable")
            chrome.send("Runtime.runIfWaitingForDebugger")
        finally:
            chrome.session = page_session


def wait_for(chrome, expression: str, timeout: float, handled: set[str], poll: float = 0.5):
    """Poll a page expression until it is truthy (returning its value) or TIMEOUT passes (returning None)."""
    deadline = time.monotonic() + timeout
    while True:
        release_workers(chrome, handled)
        value = chrome.evaluate(expression)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(poll)


# Before the first press: the cost line's text and whether it is displayed, and the pointer-events of the saved
# frame's sliders and inputs.
BEFORE_PRESS_JS = r"""
(() => {
  const cost = document.querySelector('.sobirl-live-cost');
  const controls = Array.from(document.querySelectorAll(
    '.sobirl-live-static .widget-subarea .widget-slider, .sobirl-live-static .widget-subarea input'));
  return {cost: cost ? cost.textContent : '', costShown: !!cost && cost.offsetHeight > 0,
          staticControls: controls.map((c) => getComputedStyle(c).pointerEvents)};
})()
"""

FIGURES_JS = r"""
Array.from(document.querySelectorAll('.sobirl-live-area')).map((area) =>
  Array.from(area.querySelectorAll('.widget-output img')).map((img) => img.src.length + ':' + img.src.slice(-80)).join('|'))
"""

# The handle of the I-th slider of live widget W, in viewport coordinates (scrolled into view first).
HANDLE_JS = r"""
(() => {
  const area = document.querySelectorAll('.sobirl-live-area')[%(w)d];
  const handles = area.querySelectorAll('.noUi-handle');
  const h = handles[%(i)d];
  if (!h) return null;
  h.scrollIntoView({block: 'center'});
  const b = h.getBoundingClientRect();
  const track = h.closest('.noUi-target').getBoundingClientRect();
  return {x: b.x + b.width / 2, y: b.y + b.height / 2, right: track.right, left: track.left, n: handles.length};
})()
"""


def widget_shot(chrome, path) -> None:
    """A PNG of the first live widget with its bar, for a person to look at."""
    import base64

    box = chrome.evaluate("""(() => {
      const bar = document.querySelector('.sobirl-live-bar'), area = document.querySelector('.sobirl-live-area');
      const a = bar.getBoundingClientRect(), b = area.getBoundingClientRect();
      return {x: Math.min(a.x, b.x), y: a.y + window.scrollY, width: Math.max(a.right, b.right) - Math.min(a.x, b.x),
              height: b.bottom - a.y};
    })()""")
    shot = chrome.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                  "clip": {**box, "scale": 1}}, timeout=120)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def drag(chrome, x: float, y: float, dx: float) -> None:
    for kind, px, buttons in (("mousePressed", x, 1), ("mouseMoved", x + dx / 2, 1), ("mouseMoved", x + dx, 1),
                              ("mouseReleased", x + dx, 0)):
        chrome.send("Input.dispatchMouseEvent", {"type": kind, "x": px, "y": y, "button": "left",
                                                  "buttons": buttons, "clickCount": 1})


@pytest.mark.parametrize("docname", PAGES)
def test_widgets_come_alive_offline(docname, browser, site):
    base, _root = site
    handled: set[str] = set()
    browser.navigate(f"{base}/{docname}.html", timeout=180)
    watch_workers(browser)
    n_views = browser.evaluate(
        "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length")
    assert n_views, f"{docname} has no widget on the page"
    assert browser.evaluate("!!document.getElementById('sobirl-live-spec')"), (
        f"{docname}: no live-widget description on the page (see book/_ext/live_widgets.py)")
    # The static frames first (the default and the fallback).
    drawn = wait_for(browser, "document.querySelectorAll('.widget-subarea .jupyter-widgets').length > 0",
                     STATIC_WAIT_S, handled)
    assert drawn, f"{docname}: the static widgets were not drawn"
    buttons = browser.evaluate("document.querySelectorAll('.sobirl-live-button').length")
    assert buttons == n_views, f"{docname}: {buttons} live buttons for {n_views} widgets"
    before = browser.evaluate(BEFORE_PRESS_JS)
    assert before["costShown"] and " MB" in before["cost"], (
        f"{docname}: the download size must be on the page before the first press, not in a tooltip: {before}")
    assert before["staticControls"] and all(v == "none" for v in before["staticControls"]), (
        f"{docname}: the saved frame's controls must be inert until the page is live: {before}")

    browser.evaluate("document.querySelector('.sobirl-live-button').click()")
    t0 = time.monotonic()
    state = wait_for(browser, "['live', 'failed'].includes(window.sobirlLive.state) && window.sobirlLive.state",
                     BOOT_TIMEOUT_S, handled)
    boot = time.monotonic() - t0
    info = browser.evaluate("JSON.stringify(window.sobirlLive)")
    assert state == "live", f"{docname}: not live after {boot:.0f} s (state {state}): {info[-3000:]}"
    live = json.loads(info)
    areas = browser.evaluate("document.querySelectorAll('.sobirl-live-area').length")
    assert areas == n_views, f"{docname}: {areas} live views for {n_views} widgets"
    hidden = browser.evaluate("document.querySelectorAll('.sobirl-static-frame').length")
    assert hidden == n_views, f"{docname}: static frames not replaced ({hidden} of {n_views})"

    timings = []
    for w in range(n_views):
        before = browser.evaluate(FIGURES_JS)[w]
        assert before, f"{docname}: live widget {w} shows no figure"
        handle = browser.evaluate(HANDLE_JS % {"w": w, "i": 0})
        assert handle, f"{docname}: live widget {w} has no slider"
        n_updates = len(browser.evaluate("window.sobirlLive.updates"))
        # Drag the first slider a third of the way along its track, towards the side with room.
        span = handle["right"] - handle["left"]
        dx = span / 3 if handle["x"] < handle["left"] + span / 2 else -span / 3
        drag(browser, handle["x"], handle["y"], dx)
        t1 = time.monotonic()
        changed = wait_for(browser, f"(() => {{ const f = {FIGURES_JS.strip()}; "
                                    f"return f[{w}] !== {json.dumps(before)} && f[{w}] !== ''; }})()",
                           UPDATE_TIMEOUT_S, handled)
        timings.append(time.monotonic() - t1)
        assert changed, (f"{docname}: widget {w}'s figure did not change within {UPDATE_TIMEOUT_S} s of a slider "
                         f"move ({browser.evaluate('JSON.stringify(window.sobirlLive)')[-2000:]})")
        wait_for(browser, f"window.sobirlLive.updates.length > {n_updates}", 10, handled)
    error = browser.evaluate("window.sobirlLive.error")
    assert error is None, f"{docname}: Python error in a live widget: {error}"
    after = json.loads(browser.evaluate("JSON.stringify(window.sobirlLive)"))
    assert after["busyCount"] >= n_views, f"{docname}: no busy state shown while a move computed"
    settled = wait_for(browser, "!window.sobirlLive.busy && !document.querySelector('[aria-busy=\"true\"]')",
                       UPDATE_TIMEOUT_S, handled)
    assert settled, f"{docname}: the busy state stayed on after the figures arrived"
    assert "font list reused: true" in after["log"], (
        f"{docname}: matplotlib rebuilt its font list instead of reading the shipped one: {after['log'][-20:]}")

    shot = book_support.SCREENSHOTS / f"live-{docname.replace('/', '__')}.png"
    browser.screenshot(shot)
    widget_shot(browser, shot.with_name(shot.stem + "-widget.png"))
    updates = browser.evaluate("window.sobirlLive.updates")
    print(f"\n{docname}: first live frame after {live['firstFrameSeconds']:.1f} s (Pyodide and page code "
          f"{live['bootSeconds']:.1f} s); figure redrawn {', '.join(f'{t:.1f}' for t in timings)} s after the "
          f"slider moves; Python time per message {[round(u['python'], 2) for u in updates]}; boot phases "
          f"{[line for line in live['log'] if ' s: ' in line]}")

    outside = [u for u in browser.requests()
               if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss") and not u.startswith(base)]
    assert not outside, f"{docname}: requests left 127.0.0.1: {outside}"
    worker_requests = [e for e in browser.events if e.get("method") == "Network.requestWillBeSent"
                       and e.get("sessionId") in handled]
    assert worker_requests, f"{docname}: no request of the Web Worker was seen (is auto-attach working?)"
    failed = browser.failed_loads(base)
    assert not failed, f"{docname}: files that could not be loaded: {failed}"
    exceptions = browser.exceptions()
    assert not exceptions, f"{docname}: JavaScript exceptions: {exceptions}"


def test_the_package_wheel_is_shipped_with_the_html(book_build):
    """The sobirl_lite wheel that live pages (and downloadable notebooks) install sits in the HTML output."""
    import zipfile

    if book_build.returncode != 0:
        pytest.skip("the book did not build; see tests/test_book_build.py")
    live = _live_module()
    wheels = sorted((book_build.html / live.WHEELS_DIR).glob(f"{live.PACKAGE_NAME}-*-py3-none-any.whl"))
    assert len(wheels) == 1, f"expected one {live.PACKAGE_NAME} wheel in {live.WHEELS_DIR}, found {wheels}"
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
    for module in ("__init__.py", "soft.py", "widgets/_figure.py", "widgets/rlhf.py", "sampling.py"):
        assert f"{live.PACKAGE_NAME}/{module}" in names, f"{module} missing from {wheels[0].name}"


def press_and_wait(chrome, handled, timeout=BOOT_TIMEOUT_S):
    chrome.evaluate("document.querySelector('.sobirl-live-button').click()")
    return wait_for(chrome, "['live', 'failed'].includes(window.sobirlLive.state) && window.sobirlLive.state",
                    timeout, handled)


def test_a_failed_start_can_be_retried(browser, site):
    """The worker script fails to load (DevTools refuses it): the page says so, keeps the static frame and offers
    "Try again"; once the file can be loaded, pressing it makes the page live."""
    base, _root = site
    handled: set[str] = set()
    browser.navigate(f"{base}/book/intro.html", timeout=180)
    watch_workers(browser)
    browser.send("Fetch.enable", {"patterns": [{"urlPattern": "*sobirl-live-worker.js*"}]})
    try:
        browser.evaluate("document.querySelector('.sobirl-live-button').click()")
        deadline = time.monotonic() + 120
        state = None
        while time.monotonic() < deadline and state != "failed":
            for event in list(browser.events):
                if event.get("method") == "Fetch.requestPaused":
                    browser.events.remove(event)
                    browser.send("Fetch.failRequest", {"requestId": event["params"]["requestId"],
                                                       "errorReason": "Failed"})
            state = browser.evaluate("window.sobirlLive.state")
            time.sleep(0.2)
    finally:
        browser.send("Fetch.disable")
    assert state == "failed", f"the page did not report the failed start (state {state})"
    bar = browser.evaluate("""(() => { const b = document.querySelector('.sobirl-live-button');
        return {text: b.textContent, disabled: b.disabled, hidden: b.hidden,
                status: document.querySelector('.sobirl-live-status').textContent,
                staticShown: !!document.querySelector('.widget-subarea .jupyter-widgets')}; })()""")
    assert bar["text"] == "Try again" and not bar["disabled"] and not bar["hidden"], bar
    assert "try again" in bar["status"].lower() and bar["staticShown"], bar
    assert press_and_wait(browser, handled) == "live", browser.evaluate("JSON.stringify(window.sobirlLive)")[-2000:]
    info = json.loads(browser.evaluate("JSON.stringify(window.sobirlLive)"))
    assert info["starts"] == 2 and info["error"] is None
    assert not browser.exceptions(), browser.exceptions()


def test_live_figure_is_readable_on_a_phone(browser, site):
    """At 390 CSS px the live figure is drawn for the column (panels stacked), not a desktop figure shrunk, and no
    empty gap is left below it."""
    base, _root = site
    handled: set[str] = set()
    browser.send("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1,
                                                        "mobile": True})
    try:
        browser.navigate(f"{base}/book/01_soft_mdps.html", timeout=180)
        watch_workers(browser)
        wait_for(browser, "document.querySelectorAll('.widget-subarea .jupyter-widgets').length > 0",
                 STATIC_WAIT_S, handled)
        before = browser.evaluate(BEFORE_PRESS_JS)
        assert before["costShown"] and " MB" in before["cost"], before
        assert press_and_wait(browser, handled) == "live"
        shape = browser.evaluate("""(() => Array.from(document.querySelectorAll('.sobirl-live-area')).map((area) => {
            const img = area.querySelector('.widget-output img');
            const out = img.closest('.widget-output');
            return {natural: img.naturalWidth, naturalH: img.naturalHeight, shown: img.getBoundingClientRect().width,
                    column: area.getBoundingClientRect().width, gap: out.getBoundingClientRect().bottom
                    - img.getBoundingClientRect().bottom, viewport: window.innerWidth};
        }))()""")
        book_support.SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        widget_shot(browser, book_support.SCREENSHOTS / "live-390px-01_soft_mdps-widget.png")
    finally:
        browser.send("Emulation.setDeviceMetricsOverride", {"width": browser.width, "height": browser.height,
                                                            "deviceScaleFactor": 1, "mobile": False})
    for fig in shape:
        assert fig["natural"] <= fig["viewport"], f"the live figure was drawn wider than the phone: {fig}"
        assert fig["shown"] >= 0.9 * fig["natural"], f"the live figure is shrunk, not drawn for the column: {fig}"
        assert fig["naturalH"] > fig["natural"], f"the side-by-side panels were not stacked: {fig}"
        assert fig["gap"] < 30, f"empty space below the live figure: {fig}"
