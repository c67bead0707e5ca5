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
empty gap below.

Issue 23: the intro moves on frames precomputed at build time, with no worker and no runtime request, and the frame
shown equals the page's code run here for that slider position; after an opt-in on one page, a second page starts
from the Service Worker's cache (no runtime request reaches the server) and goes live with the server stopped; under
data-saver nothing is prefetched or started ahead of a press. No test asserts a time: ``benchmarks/live.py``
measures them.

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
# Pages whose every slider setting is precomputed at build time (book/_ext/live_frames.py): their moves need no
# runtime, so they have no live button. The others start Pyodide.
INSTANT_PAGES = ["book/intro"]
RUNTIME_PAGES = [p for p in PAGES if p not in INSTANT_PAGES]
# Paths (relative to the site) of what a live start downloads: never asked of the server once cached.
RUNTIME_PATHS = ("/_static/sobirl-live/", "/_static/wheels/", "/_static/sobirl-live-worker.js",
                 "/_static/sobirl_live_bridge.py")


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
            if event["params"]["targetInfo"]["type"] == "service_worker":
                # The Service Worker of the live pages (it only fetches from the book's own server): let it run; a
                # paused one does not answer Network.enable.
                chrome.send("Runtime.runIfWaitingForDebugger")
                continue
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


@pytest.mark.parametrize("docname", RUNTIME_PAGES)
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


FORGET_OPT_IN_JS = r"""
(async () => {
  localStorage.removeItem('sobirl-live-opted-in');
  for (const reg of await navigator.serviceWorker.getRegistrations()) await reg.unregister();
  for (const name of await caches.keys()) await caches.delete(name);
  return true;
})()
"""


def test_a_failed_start_can_be_retried(browser, site):
    """The worker script fails to load (DevTools refuses it): the page says so, keeps the static frame and offers
    "Try again"; once the file can be loaded, pressing it makes the page live."""
    base, _root = site
    handled: set[str] = set()
    # A reader who never opted in (the page tests before did): no start in the background, no Service Worker.
    browser.navigate(f"{base}/book/02_contraction.html", timeout=180)
    browser.evaluate(FORGET_OPT_IN_JS)
    browser.navigate(f"{base}/book/02_contraction.html", timeout=180)
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


# ---------------------------------------------------------------------------------------------------------------
# Precomputed frames and the Service Worker cache (issue 23, items 1 and 2)
def _frames_module():
    _live_module()
    import sys

    return sys.modules["live_frames"]


def _png_pixels(png: bytes):
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")


def _worker_targets(chrome) -> set[tuple[str, str]]:
    """(id, url) of every Web or Service Worker the browser runs."""
    targets = chrome.send("Target.getTargets", session=False)["targetInfos"]
    return {(t["targetId"], t["url"]) for t in targets if t["type"] in ("worker", "service_worker")}


@pytest.mark.parametrize("docname", INSTANT_PAGES)
def test_instant_page_moves_without_a_runtime(docname, browser, site):
    """Each slider move swaps in a frame computed at build time: no Web Worker, no request for the runtime, and the
    frame shown is the one the page's code draws for that slider setting, recomputed here in Python."""
    import base64

    import numpy as np

    base, root = site
    handled: set[str] = set()
    # Workers of earlier pages may live on in the back-forward cache: only new ones count.
    workers_before = _worker_targets(browser)
    browser.navigate(f"{base}/{docname}.html", timeout=180)
    watch_workers(browser)
    state = wait_for(browser, "window.sobirlLive && ['instant', 'failed'].includes(window.sobirlLive.state) "
                              "&& window.sobirlLive.state", STATIC_WAIT_S, handled)
    assert state == "instant", browser.evaluate("JSON.stringify(window.sobirlLive || null)")
    assert browser.evaluate("document.querySelectorAll('.sobirl-live-button').length") == 0
    spec = json.loads(browser.evaluate("document.getElementById('sobirl-live-spec').textContent"))
    n_views = browser.evaluate("document.querySelectorAll('.sobirl-live-area').length")
    assert n_views == browser.evaluate(
        "document.querySelectorAll('script[type=\"application/vnd.jupyter.widget-view+json\"]').length")
    for w in range(n_views):
        for fraction in (1 / 3, 1 / 6):  # two moves: the second from an on-grid value
            before = browser.evaluate(FIGURES_JS)[w]
            handle = browser.evaluate(HANDLE_JS % {"w": w, "i": 0})
            span = handle["right"] - handle["left"]
            drag(browser, handle["x"], handle["y"], fraction * span * (1 if handle["x"] < handle["left"] + span / 2
                                                                       else -1))
            changed = wait_for(browser, f"(() => {{ const f = {FIGURES_JS.strip()}; "
                                        f"return f[{w}] !== {json.dumps(before)} && f[{w}] !== ''; }})()", 30, handled)
            assert changed, f"{docname}: widget {w}'s figure did not change: {browser.evaluate('JSON.stringify(window.sobirlLive)')}"
    info = json.loads(browser.evaluate("JSON.stringify(window.sobirlLive)"))
    assert info["error"] is None and info["swaps"] >= 2 * n_views, info

    # The frame on the page equals the page's code run now for the slider position the page reports.
    shown = info["shown"][0]
    key = tuple(int(k) for k in shown["key"].split(","))
    src = browser.evaluate("document.querySelector('.sobirl-live-area .widget-output img').src")
    cells = _live_module().notebook_live_cells(json.loads(
        (root.parent / "jupyter_execute" / f"{docname}.ipynb").read_text(encoding="utf-8")))
    frames = _frames_module()
    expected = frames.precompute(cells, spec["frames"]["budget"], only={0: [key]})["widgets"][0]
    for control, value in zip(expected["controls"], shown["values"]):
        assert value == pytest.approx(frames.grid_value(control, key[0]), rel=1e-9), (control, shown)
    (outputs,) = expected["frames"][shown["key"]].values()
    want = base64.b64decode(outputs[-1]["data"]["image/png"])
    got = base64.b64decode(src.split(",", 1)[1])
    assert np.array_equal(_png_pixels(got), _png_pixels(want)), (
        f"{docname}: the frame shown for {shown} is not the one the page's code draws for that setting")

    workers = _worker_targets(browser) - workers_before
    assert not workers, f"{docname}: a worker was started: {workers}"
    runtime = [u for u in browser.requests() if any(p in urllib.parse.urlsplit(u).path for p in RUNTIME_PATHS)]
    assert not runtime, f"{docname}: the runtime was requested: {runtime}"
    assert not browser.failed_loads(base), browser.failed_loads(base)
    assert not browser.exceptions(), browser.exceptions()
    print(f"\n{docname}: {spec['frames']['count']} frames, {spec['frames']['bytes'] / 1e3:.0f} kB; swaps took "
          f"{[round(u['seconds'] * 1000) for u in info['updates']]} ms")


CACHED_URLS_JS = r"""
(async () => {
  const out = [];
  for (const name of await caches.keys()) {
    if (!name.startsWith('sobirl-live-')) continue;
    const cache = await caches.open(name);
    out.push(...(await cache.keys()).map((r) => r.url));
  }
  return out;
})()
"""


def test_later_pages_start_from_the_service_worker_cache(book_build, tmp_path):
    """After the reader opts in on one page, a second page starts Python in the background from the Service Worker's
    cache: no request for the runtime reaches the server, and with the server stopped the page still goes live."""
    if not book_build.ok:
        pytest.skip("the book did not build cleanly; see tests/test_book_build.py")
    if not _live_module().runtime_present():
        pytest.skip("vendor/live/ has no Pyodide runtime")
    chrome = book_support.Chromium(book_support.require_chromium("cannot check the live pages"), tmp_path / "profile")
    seen: list[str] = []
    server = book_support.serve_directory(book_build.html, seen)
    try:
        chrome.open_tab()
        watch_workers(chrome)
        handled: set[str] = set()
        base = server.__enter__()
        chrome.navigate(f"{base}/book/02_contraction.html", timeout=180)
        cache = chrome.evaluate("window.sobirlLive.cache")
        assert cache and not cache["optedIn"] and cache["serviceWorker"] == "none", cache
        assert press_and_wait(chrome, handled) == "live", chrome.evaluate("JSON.stringify(window.sobirlLive)")[-2000:]
        kept = wait_for(chrome, "['done', 'failed'].includes(window.sobirlLive.cache.prefetch) && "
                                "window.sobirlLive.cache.prefetch", BOOT_TIMEOUT_S, handled)
        assert kept == "done", chrome.evaluate("JSON.stringify(window.sobirlLive.cache)")
        cached = chrome.evaluate(CACHED_URLS_JS)
        for name in ("pyodide.asm.wasm", "python_stdlib.zip", "sobirl-live-worker.js", "sobirl_live_bridge.py"):
            assert any(u.endswith(name) for u in cached), f"{name} not in the Service Worker's cache: {cached}"
        assert any("/_static/wheels/sobirl_lite-" in u for u in cached), cached

        assert any(p.startswith("/_static/sobirl-live/") for p in seen), "the first page did not fetch the runtime?"
        del seen[:]
        chrome.navigate(f"{base}/book/01_soft_mdps.html", timeout=180)
        warming = wait_for(chrome, "['warming', 'failed'].includes(window.sobirlLive.state) && window.sobirlLive.state",
                           60, handled)
        assert warming == "warming", chrome.evaluate("JSON.stringify(window.sobirlLive)")[-2000:]
        server.__exit__(None, None, None)  # offline from here on
        server = None
        assert press_and_wait(chrome, handled) == "live", chrome.evaluate("JSON.stringify(window.sobirlLive)")[-2000:]
        runtime = [p for p in seen if any(p.startswith(r) for r in RUNTIME_PATHS)]
        assert not runtime, f"runtime files were fetched from the server on the second page: {runtime}"
        served = [e["params"]["response"] for e in chrome.events if e.get("method") == "Network.responseReceived"
                  and e.get("sessionId") in handled]
        from_sw = [r["url"] for r in served if r.get("fromServiceWorker")]
        assert any(u.endswith("pyodide.asm.wasm") for u in from_sw), [r["url"] for r in served]
        info = json.loads(chrome.evaluate("JSON.stringify(window.sobirlLive)"))
        print(f"\nsecond page from the cache, offline: first live frame {info['firstFrameSeconds']:.1f} s after the "
              f"press (Python started in the background; boot {info['bootedSeconds']:.1f} s)")
    finally:
        if server is not None:
            server.__exit__(None, None, None)
        chrome.close()


def test_data_saver_fetches_nothing_ahead(book_build, tmp_path):
    """With data-saver on, opting in prefetches nothing into the Service Worker's cache and a later page does not
    start Python in the background (it waits for a press)."""
    if not book_build.ok:
        pytest.skip("the book did not build cleanly; see tests/test_book_build.py")
    if not _live_module().runtime_present():
        pytest.skip("vendor/live/ has no Pyodide runtime")
    chrome = book_support.Chromium(book_support.require_chromium("cannot check the live pages"), tmp_path / "profile")
    try:
        chrome.open_tab()
        watch_workers(chrome)
        chrome.send("Page.addScriptToEvaluateOnNewDocument", {"source": (
            "Object.defineProperty(navigator, 'connection', {value: {saveData: true}, configurable: true});")})
        handled: set[str] = set()
        with book_support.serve_directory(book_build.html) as base:
            chrome.navigate(f"{base}/book/02_contraction.html", timeout=180)
            assert press_and_wait(chrome, handled) == "live"
            cache = chrome.evaluate("window.sobirlLive.cache")
            assert cache["saveData"] and cache["optedIn"] and cache["prefetch"] == "none", cache
            chrome.navigate(f"{base}/book/01_soft_mdps.html", timeout=180)
            wait_for(chrome, "document.querySelectorAll('.widget-subarea .jupyter-widgets').length > 0",
                     STATIC_WAIT_S, handled)
            later = json.loads(chrome.evaluate("JSON.stringify(window.sobirlLive)"))
            assert later["state"] == "static" and later["starts"] == 0 and later["cache"]["optedIn"], later
            workers = [e for e in chrome.events if e.get("method") == "Target.attachedToTarget"
                       and e["params"]["targetInfo"]["type"] == "worker"]
            assert not workers, "a Web Worker was started without a press under data-saver"
    finally:
        chrome.close()
