"""Benchmark for issue 23: how long a reader of the built book waits for the live widgets.

Drives headless Chromium (the DevTools driver of tests/book_support.py) on a built book, served on 127.0.0.1 with
every other host unreachable. For each page with a widget it presses "Make this page interactive" and prints

* the time to the first live frame, split into the worker's phases (Python runtime, packages, widget bridge, the
  page's own first computation) and what remains (the page drawing the live views);
* the time from a slider move to the redrawn figure: the median (and range) of ``--moves`` moves of the first slider
  of each widget, each move started once the previous figure has arrived;
* a burst: three moves of different sliders 150 ms apart, timed to the final figure (superseded work is dropped, so
  this should cost about one move), where the widget has more than one slider.

Every page is opened in a fresh browser profile (a first visit: nothing cached). A page whose slider settings are all
precomputed (the intro; ``book/_ext/live_frames.py``) has no button: for it the moves are timed without a runtime.
With ``--later``, the pages are also measured as later pages: in one profile, after opting in on the first page (its
runtime then kept by the Service Worker), each page is opened and pressed as soon as it has loaded (while Python is
still starting in the background), then opened again and pressed once that start has finished (a reader who reads
before pressing); the time from the press to the first live frame is printed, with the time the background start
took. The budget is the one the book was built with (``make book``: full; the test build: quick);
say which when quoting the numbers.

Run: ``python benchmarks/live.py --html _build/html`` (the output of ``make book``), or ``--html
_build/test-book/_build/html`` for the quick-budget test build; ``--pages intro,01_soft_mdps`` for a subset.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import book_support  # noqa: E402
import test_live_html as live_test  # noqa: E402  (the page helpers: drag, slider handles, figure fingerprints)


def first_frame(chrome, handled, timeout) -> dict:
    chrome.evaluate("document.querySelector('.sobirl-live-button').click()")
    t0 = time.monotonic()
    state = live_test.wait_for(chrome, "['live', 'failed'].includes(window.sobirlLive.state) && "
                                       "window.sobirlLive.state", timeout, handled, poll=0.1)
    wall = time.monotonic() - t0
    info = json.loads(chrome.evaluate("JSON.stringify(window.sobirlLive)"))
    if state != "live":
        raise RuntimeError(f"not live after {wall:.0f} s: {info.get('error')}")
    return {"seconds": info["firstFrameSeconds"], "phases": info.get("phases") or [], "boot": info["bootSeconds"],
            "log": [line for line in info["log"] if line.startswith("font list")]}


def move_and_wait(chrome, handled, w, slider, fraction, timeout) -> float:
    """Drag slider SLIDER of live widget W by FRACTION of its track; seconds until widget W's figure changed."""
    before = chrome.evaluate(live_test.FIGURES_JS)[w]
    handle = chrome.evaluate(live_test.HANDLE_JS % {"w": w, "i": slider})
    span = handle["right"] - handle["left"]
    dx = fraction * span if handle["x"] < handle["left"] + span / 2 else -fraction * span
    t0 = time.monotonic()
    live_test.drag(chrome, handle["x"], handle["y"], dx)
    changed = live_test.wait_for(chrome, f"(() => {{ const f = {live_test.FIGURES_JS.strip()}; "
                                         f"return f[{w}] !== {json.dumps(before)} && f[{w}] !== ''; }})()",
                                 timeout, handled, poll=0.02)
    seconds = time.monotonic() - t0
    if not changed:
        raise RuntimeError(f"widget {w}: no new figure {timeout} s after a move")
    # a staged redraw (chapter 7) is complete once the page is no longer busy
    live_test.wait_for(chrome, "!window.sobirlLive.busy", timeout, handled, poll=0.05)
    return seconds


def burst(chrome, handled, w, n_sliders, timeout) -> float | None:
    """Three moves on different sliders of widget W, 150 ms apart; seconds from the first to the settled figure."""
    if n_sliders < 2:
        return None
    n_updates = len(chrome.evaluate("window.sobirlLive.updates"))
    t0 = time.monotonic()
    for i in range(3):
        handle = chrome.evaluate(live_test.HANDLE_JS % {"w": w, "i": i % n_sliders})
        span = handle["right"] - handle["left"]
        dx = 0.15 * span if handle["x"] < handle["left"] + span / 2 else -0.15 * span
        live_test.drag(chrome, handle["x"], handle["y"], dx)
        time.sleep(0.15)
    # settled: every message answered (one per move; each gets an answer, dropped or not) and nothing still busy
    live_test.wait_for(chrome, f"window.sobirlLive.updates.length >= {n_updates + 3} && !window.sobirlLive.busy",
                       timeout, handled, poll=0.02)
    return time.monotonic() - t0


def instant_moves(chrome, handled, docname, moves, timeout) -> dict:
    """A page of precomputed frames: no press, no runtime; the moves of each widget's first slider."""
    live_test.wait_for(chrome, "window.sobirlLive.state === 'instant'", 60, handled)
    spec = json.loads(chrome.evaluate("document.getElementById('sobirl-live-spec').textContent"))
    result = {"page": docname, "budget": spec["frames"]["budget"], "first": None, "widgets": [],
              "frames": spec["frames"]}
    n_views = chrome.evaluate("document.querySelectorAll('.sobirl-live-area').length")
    for w in range(n_views):
        times = [move_and_wait(chrome, handled, w, 0, 0.12 * (1 if k % 2 == 0 else -1), timeout)
                 for k in range(moves)]
        result["widgets"].append({"moves": times, "burst": None})
    return result


@contextlib.contextmanager
def fresh_browser(binary, url):
    """Chromium on a new profile (nothing cached: a first visit), opened on URL with its Web Workers watched; yields
    the browser and the set of handled events that live_test's waits share."""
    with tempfile.TemporaryDirectory(prefix="sobirl-live-bench-") as profile:
        chrome = book_support.Chromium(binary, Path(profile))
        try:
            chrome.open_tab()
            chrome.navigate(url, timeout=180)
            live_test.watch_workers(chrome)
            yield chrome, set()
        finally:
            chrome.close()


def measure_page(binary, base, docname, moves, timeout) -> dict:
    with fresh_browser(binary, f"{base}/{docname}.html") as (chrome, handled):
        live_test.wait_for(chrome, "document.querySelectorAll('.widget-subarea .jupyter-widgets').length > 0",
                           60, handled)
        spec = json.loads(chrome.evaluate("document.getElementById('sobirl-live-spec').textContent"))
        if "frames" in spec:
            return instant_moves(chrome, handled, docname, moves, timeout)
        result = {"page": docname, "budget": spec["budget"], "first": first_frame(chrome, handled, timeout),
                  "widgets": []}
        n_views = chrome.evaluate("document.querySelectorAll('.sobirl-live-area').length")
        for w in range(n_views):
            first = chrome.evaluate(live_test.HANDLE_JS % {"w": w, "i": 0})
            times = [move_and_wait(chrome, handled, w, 0, 0.12 * (1 if k % 2 == 0 else -1), timeout)
                     for k in range(moves)]
            result["widgets"].append({"moves": times, "burst": burst(chrome, handled, w, first["n"], timeout)})
        result["updates"] = chrome.evaluate("window.sobirlLive.updates")
        return result


def later_page(chrome, handled, base, docname, when, cached, timeout) -> dict:
    """Open DOCNAME and press at load, or once Python has started in the background (a reader who reads first)."""
    chrome.navigate(f"{base}/{docname}.html", timeout=180)
    t0 = time.monotonic()
    if cached:
        live_test.wait_for(chrome, "window.sobirlLive.state === 'warming'", 60, handled, poll=0.05)
    if when == "once started":
        live_test.wait_for(chrome, "window.sobirlLive.bootedSeconds != null", timeout, handled, poll=0.05)
    first = first_frame(chrome, handled, timeout)
    info = json.loads(chrome.evaluate("JSON.stringify(window.sobirlLive)"))
    return {"page": docname, "when": when, "seconds": first["seconds"], "phases": first["phases"],
            "background": info.get("bootedSeconds"), "from_load": time.monotonic() - t0}


def measure_later(binary, base, pages, timeout, label="") -> list[dict]:
    """Opt in on the first page, then open each page in the same profile and press at once (see the docstring)."""
    out = []
    with fresh_browser(binary, f"{base}/{pages[0]}.html") as (chrome, handled):
        first_frame(chrome, handled, timeout)
        # A book without the Service Worker (a --baseline) has only the browser's HTTP cache for later pages.
        cached = chrome.evaluate("!!window.sobirlLive.cache")
        kept = cached and live_test.wait_for(chrome, "['done', 'failed'].includes(window.sobirlLive.cache.prefetch) "
                                                     "&& window.sobirlLive.cache.prefetch", timeout, handled)
        print(f"{label}: opted in on {pages[0]}; Service Worker cache: {kept or 'none (HTTP cache only)'}",
              flush=True)
        for docname in pages:
            for when in ("at load", "once started"):
                if when == "once started" and not cached:
                    continue  # without a start in the background, a later press is the same as one at load
                out.append(later_page(chrome, handled, base, docname, when, cached, timeout))
                r = out[-1]
                print(f"{docname} {label} later page, press {when}: first live frame {r['seconds']:.1f} s after "
                      f"the press ({r['from_load']:.1f} s from load; background start "
                      f"{r['background'] or 0:.1f} s)", flush=True)
    return out


def report(r: dict, label: str) -> None:
    if r["first"] is None:
        for i, w in enumerate(r["widgets"]):
            print(f"{r['page']} {label}: instant ({r['frames']['count']} precomputed frames, "
                  f"{r['frames']['bytes'] / 1e3:.0f} kB); widget {i}: move median {statistics.median(w['moves']):.2f} s "
                  f"(range {min(w['moves']):.2f}-{max(w['moves']):.2f}, {len(w['moves'])} moves)", flush=True)
        return
    f = r["first"]
    phases = ", ".join(f"{p['name']['step']} {p['seconds']:.1f}" for p in f["phases"])
    rest = f["seconds"] - f["boot"]
    print(f"{r['page']} {label} ({r['budget']} budget): first live frame {f['seconds']:.1f} s "
          f"({phases + '; ' if phases else ''}page views {rest:.1f}) {'; '.join(f['log'])}")
    for i, w in enumerate(r["widgets"]):
        med = statistics.median(w["moves"])
        burst_text = "" if w["burst"] is None else f"; 3-move burst {w['burst']:.2f} s"
        print(f"  widget {i}: move median {med:.2f} s (range {min(w['moves']):.2f}-{max(w['moves']):.2f}, "
              f"{len(w['moves'])} moves){burst_text}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=REPO / "_build" / "html", help="the built book's HTML folder")
    parser.add_argument("--pages", default="", help="comma-separated page names (default: every live page)")
    parser.add_argument("--moves", type=int, default=5, help="slider moves per widget (median reported)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed for a first frame or a move")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another built book (e.g. an older version) measured page by page alternately with "
                             "--html, so that both see the same machine load")
    parser.add_argument("--later", action="store_true",
                        help="also measure later pages (opted in on the first page; runtime from the Service Worker)")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        parser.error(f"{args.html} holds no built book (run make book)")
    binary = book_support.find_chromium()
    if binary is None:
        parser.error("Chromium not found (Debian: apt-get install chromium)")
    pages = [p for p in args.pages.split(",") if p] or live_test.PAGES
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; Chromium {binary}; book {args.html}")
    results = []
    sites = [("baseline", args.baseline), ("this build", args.html)] if args.baseline else [("", args.html)]
    with contextlib.ExitStack() as stack:
        bases = {label: stack.enter_context(book_support.serve_directory(path)) for label, path in sites}
        for docname in pages:
            for label, _path in sites:
                try:
                    r = measure_page(binary, bases[label], docname, args.moves, args.timeout)
                except (RuntimeError, book_support.CDPError) as exc:
                    print(f"{docname} {label}: FAILED ({exc})")
                    continue
                results.append(r)
                report(r, label)
        if args.later:
            runtime_pages = [p for p in pages if p not in live_test.INSTANT_PAGES]
            for label, _path in sites if runtime_pages else []:
                measure_later(binary, bases[label], runtime_pages, args.timeout, label)
    print("load average after: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0 if len(results) == len(pages) * len(sites) else 1


if __name__ == "__main__":
    raise SystemExit(main())
