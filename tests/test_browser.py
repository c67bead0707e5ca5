"""Every page of the built book, opened in headless Chromium with the network closed, reads as it should.

The HTML from the session's book build (quick budget) is served from 127.0.0.1; Chromium resolves no other host and
sends every other connection to a dead proxy, so anything that still needs a CDN shows up as raw TeX or an empty
widget box, as it would for a reader on a train. Per page we check:

* MathJax ran: every math element holds a typeset ``mjx-container``, no MathJax error node, no ``\\(`` or ``\\[``
  left in the visible text;
* every image (figures, widget frames) loaded and is not empty;
* no error or traceback output;
* every internal link points at a file (and anchor) that exists;
* every widget view was drawn by the widget manager with visible content, not an empty box;
* every file the page asked for (scripts, styles, fonts, images) was served, and nothing outside 127.0.0.1 was asked
  for;
* the page threw no JavaScript exception.

A full-page screenshot of each page goes to screenshots/ (git-ignored) for a person to look at.
Without Chromium the test skips, except under CI (CI=true), where a missing browser is a failure.
"""
from __future__ import annotations

import functools
import html.parser
import urllib.parse
from pathlib import Path

import pytest

import book_support

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = book_support.toc_files()
WAIT_MS = 30000  # how long a page may take to typeset math and draw widgets

# Runs in the page: waits for MathJax and the widget manager, then reports what a reader would see.
PAGE_REPORT_JS = book_support.page_script(r"""
(async () => {
%(ready)s  await sleep(200);  // let MathJax finish typesetting widget labels queued by the shim

  const visible = (el) => { const b = el.getBoundingClientRect(); return b.width > 2 && b.height > 2; };
  const snippet = (el) => (el.textContent || "").trim().slice(0, 160);

  // Text a reader sees, outside code, scripts and typeset math.
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "MJX-CONTAINER", "NOSCRIPT"]);
  const rawTex = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el; el = el.parentElement) {
        if (skip.has(el.tagName) || el.classList.contains("highlight")) return NodeFilter.FILTER_REJECT;
      }
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent;
    if (/\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{/.test(t)) rawTex.push(t.trim().slice(0, 160));
  }

  const mathEls = Array.from(document.querySelectorAll(".math"));
  const widgetAreas = views.map((s) => {
    const area = s.previousElementSibling;
    if (!drawn(s)) return {ok: false, why: "not rendered by the widget manager"};
    if (!visible(area)) return {ok: false, why: "rendered with zero size"};
    const outputs = Array.from(area.querySelectorAll(".widget-output"));
    const empty = outputs.filter((o) => !Array.from(o.querySelectorAll(".jp-OutputArea-output, img, svg, canvas, pre"))
                                          .some(visible));
    if (empty.length) return {ok: false, why: `${empty.length} Output widget(s) drawn empty`};
    return {ok: true, height: area.getBoundingClientRect().height};
  });

  return {
    title: document.title,
    mathjax: {
      loaded: !!(window.MathJax && MathJax.version),
      version: window.MathJax ? MathJax.version || null : null,
      mathElements: mathEls.length,
      containers: document.querySelectorAll("mjx-container").length,
      untypeset: mathEls.filter((el) => !el.querySelector("mjx-container")).map(snippet).slice(0, 10),
      errors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"))
        .map((el) => el.getAttribute("data-mjx-error") || snippet(el)).slice(0, 10),
    },
    rawTex: rawTex.slice(0, 10),
    images: Array.from(document.images).map((img) => ({
      src: img.getAttribute("src").slice(0, 120), ok: img.complete && img.naturalWidth > 0 && img.naturalHeight > 0,
      inFigure: !!img.closest("figure"),
    })),
    errorOutputs: Array.from(document.querySelectorAll(".output.traceback, .output.error, .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"))
      .map(snippet).concat(Array.from(document.querySelectorAll(".cell_output, .widget-output"))
        .filter((el) => /Traceback \(most recent call last\)/.test(el.textContent)).map(snippet)),
    widgetErrors: Array.from(document.querySelectorAll(".jupyter-widgets, .widget-subarea"))
      .filter((el) => /Error displaying widget/.test(el.textContent)).map(snippet),
    widgetViews: widgetAreas,
    links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.href),
  };
})()
""")


@pytest.fixture(scope="module")
def site(book_build, browser):
    """Serve the built HTML on 127.0.0.1 (started after the browser, so Chromium is forked before any thread)."""
    if not book_build.ok:
        # test_book_build.py reports the failure itself; checking pages of a broken build would only add noise.
        pytest.skip("the book did not build cleanly; see tests/test_book_build.py")
    oa = book_support.offline_assets_module()
    if not oa.assets_present():
        message = "the book was built against CDNs (no vendor/ assets); it cannot render offline"
        if book_support.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with book_support.serve_directory(book_build.html) as base:
        yield base, book_build.html


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def _broken_links(links: list[str], base: str, root: Path) -> list[str]:
    broken = []
    for link in sorted(set(links)):
        url = urllib.parse.urlsplit(link)
        if url.scheme not in ("http", "https") or f"{url.scheme}://{url.netloc}" != base:
            continue  # external (not reachable here by design), mailto:, javascript: ...
        target = root / urllib.parse.unquote(url.path).lstrip("/")
        if url.path.endswith("/"):
            target = target / "index.html"
        if not target.exists():
            broken.append(f"{url.path} (no such file)")
        elif url.fragment and target.suffix == ".html" and url.fragment not in _anchors(target):
            broken.append(f"{url.path}#{url.fragment} (no such anchor)")
    return broken


@pytest.mark.parametrize("docname", PAGES)
def test_page_renders_offline(docname, browser, site):
    base, root = site
    browser.navigate(f"{base}/{docname}.html")
    report = browser.evaluate(PAGE_REPORT_JS % {"wait": WAIT_MS}, timeout=WAIT_MS / 1000 + 60)
    shot = book_support.SCREENSHOTS / f"{docname.replace('/', '__')}.png"
    browser.screenshot(shot)

    problems = []
    mj = report["mathjax"]
    if mj["mathElements"]:
        if not mj["loaded"]:
            problems.append("MathJax did not load")
        if mj["untypeset"]:
            problems.append(f"math left untypeset: {mj['untypeset']}")
        if mj["containers"] < mj["mathElements"]:
            problems.append(f"only {mj['containers']} mjx-container for {mj['mathElements']} math elements")
    if mj["errors"]:
        problems.append(f"MathJax errors: {mj['errors']}")
    if report["rawTex"]:
        problems.append(f"raw TeX in the rendered text: {report['rawTex']}")
    bad_images = [img["src"] for img in report["images"] if not img["ok"]]
    if bad_images:
        problems.append(f"images missing or empty: {bad_images}")
    if report["errorOutputs"]:
        problems.append(f"error output on the page: {report['errorOutputs']}")
    if report["widgetErrors"]:
        problems.append(f"widget manager errors: {report['widgetErrors']}")
    bad_views = [v["why"] for v in report["widgetViews"] if not v["ok"]]
    if bad_views:
        problems.append(f"widgets not drawn: {bad_views}")
    broken = _broken_links(report["links"], base, root)
    if broken:
        problems.append(f"broken internal links: {broken}")
    failed = browser.failed_loads(base)
    if failed:
        problems.append(f"files the page could not load: {failed}")
    exceptions = browser.exceptions()
    if exceptions:
        problems.append(f"JavaScript exceptions: {exceptions}")
    outside = [u for u in browser.requests()
               if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss") and not u.startswith(base)]
    if outside:
        problems.append(f"the page tried to reach the network: {outside}")

    assert not problems, f"{docname} (screenshot: {shot}):\n  " + "\n  ".join(problems)
    assert shot.stat().st_size > 10_000, f"the screenshot of {docname} is suspiciously small"


# ----------------------------------------------------------------------------------------------------------------
# Nothing is cut off: display equations, tables, algorithm boxes and code cells at a desktop and a phone width.
# ----------------------------------------------------------------------------------------------------------------
WIDTHS = {"desktop": 1280, "phone": 390}
MAX_CODE_COLUMNS = 88  # a code cell may scroll sideways only if none of its lines is longer than this

# Runs in the page after MathJax (and book/_ext/static/sobirl-fit.js) are done; lists every element wider than the
# column it sits in. scrollWidth > clientWidth means the content is clipped or needs a sideways scroll; a right
# edge beyond the article's means the element itself sticks out of the column.
OVERFLOW_JS = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = performance.now() + %(wait)d;
  // A page without math (the references) loads no MathJax: nothing to wait for.
  const mathjaxLoads = !!document.querySelector('script[src*="mathjax/"], script[src*="mathjax@"]');
  while (mathjaxLoads && performance.now() < deadline
         && !(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    await sleep(50);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise, sleep(%(wait)d)]);
  }
  if (window.sobirlFitDone) { await Promise.race([window.sobirlFitDone, sleep(%(wait)d)]); }
  await sleep(300);

  const article = document.querySelector("main article") || document.querySelector("article")
                  || document.querySelector("main");
  const right = article.getBoundingClientRect().right;
  const text = (el) => (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 90);
  const clipped = (el) => el.scrollWidth - el.clientWidth > 1;
  const sticksOut = (el) => el.getBoundingClientRect().right - right > 1;
  const shown = (el) => el.getClientRects().length > 0;  // skip content of closed <details>
  const problems = [];

  for (const m of document.querySelectorAll('mjx-container[display="true"]')) {
    if (!shown(m)) continue;
    const box = m.closest("div.math, .math") || m.parentElement;
    const inner = m.firstElementChild;
    const innerWidth = inner ? inner.getBoundingClientRect().width : 0;
    if (clipped(m) || clipped(box) || sticksOut(m) || innerWidth - m.clientWidth > 1) {
      problems.push({kind: "equation", need: Math.round(Math.max(m.scrollWidth, innerWidth)),
                     have: m.clientWidth, text: (m.getAttribute("aria-label") || text(m)).slice(0, 90)});
    }
  }
  for (const t of article.querySelectorAll("table")) {
    if (!shown(t)) continue;
    const wrap = t.parentElement;
    if (sticksOut(t) || clipped(wrap) || clipped(t)) {
      problems.push({kind: "table", need: t.scrollWidth, have: wrap.clientWidth, text: text(t)});
    }
  }
  for (const pre of article.querySelectorAll("pre")) {
    const inCode = !!pre.closest(".cell_input");
    if (!shown(pre) && !inCode) continue;  // hidden code cells count too: a reader may open them
    const inOutput = !!pre.closest(".cell_output");
    if (inOutput) continue;  // printed output is not checked here
    if (inCode) {
      const longest = Math.max(...pre.textContent.split("\n").map((l) => l.length));
      if (longest > %(cols)d) {
        problems.push({kind: "code line", need: longest, have: %(cols)d, text: text(pre)});
      } else if (shown(pre) && sticksOut(pre)) {
        problems.push({kind: "code cell", need: pre.scrollWidth, have: pre.clientWidth, text: text(pre)});
      }
    } else if (clipped(pre) || sticksOut(pre)) {
      problems.push({kind: "algorithm box", need: pre.scrollWidth, have: pre.clientWidth, text: text(pre)});
    }
  }
  return {problems: problems, pageScroll: document.documentElement.scrollWidth - document.documentElement.clientWidth};
})()
"""


@pytest.mark.parametrize("width_name", sorted(WIDTHS))
@pytest.mark.parametrize("docname", PAGES)
def test_nothing_overflows_its_column(docname, width_name, browser, site):
    """At a desktop width and at a phone width (390 px) no display equation, table or algorithm box is wider than
    its column, and code cells only scroll sideways when their lines are within 88 columns."""
    base, _ = site
    width = WIDTHS[width_name]
    saved = (browser.width, browser.height)
    browser.width, browser.height = width, 844 if width < 700 else 900
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": browser.width, "height": browser.height, "deviceScaleFactor": 1, "mobile": width < 700})
    try:
        browser.navigate(f"{base}/{docname}.html")
        report = browser.evaluate(OVERFLOW_JS % {"wait": WAIT_MS, "cols": MAX_CODE_COLUMNS},
                                  timeout=WAIT_MS / 1000 * 3 + 60)
        shot = book_support.SCREENSHOTS / f"{docname.replace('/', '__')}.{width_name}.png"
        browser.screenshot(shot)
    finally:
        browser.width, browser.height = saved
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": saved[0], "height": saved[1], "deviceScaleFactor": 1, "mobile": False})
    problems = [f"{p['kind']} needs {p['need']} but has {p['have']}: {p['text']}" for p in report["problems"]]
    if report["pageScroll"] > 1:
        problems.append(f"the page itself scrolls sideways by {report['pageScroll']} px")
    assert not problems, (f"{docname} at {width} px (screenshot: {shot}):\n  " + "\n  ".join(problems[:40])
                          + (f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""))
