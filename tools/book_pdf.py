"""A PDF of the whole book, printed from the built HTML by headless Chromium (offline, from the project's files).

    python tools/book_pdf.py [--html _build/html] [--out _build/pdf/sobirl-book.pdf]

Every page of the table of contents is opened in the same headless Chromium the browser test drives
(tests/book_support.py), served from 127.0.0.1 with the network closed. Once MathJax has typeset the math and the
widget manager has drawn each widget's saved first frame, the page is prepared for paper and printed with the DevTools
command ``Page.printToPDF``; ``pdfunite`` (poppler-utils) joins the pages in reading order.

Preparing for paper: the sidebars, header and buttons go; every dropdown (solutions, hidden code) is opened, so the
PDF is the teacher's complete copy; code lines wrap instead of being cut at the right margin; figures, tables and
widget frames are scaled to the text width. Math, figure numbers and cross-references are the HTML's own
("Fig. 3.2", "Exercise 4.1", equation tags), so they are the same in print.
"""
from __future__ import annotations

import argparse
import base64
import functools
import http.server
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_book_support():
    spec = importlib.util.spec_from_file_location("book_support", REPO / "tests" / "book_support.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("book_support", module)   # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["book_support"]


WAIT_MS = 30000

# Waits for MathJax, the widget manager and the images, then turns the page into a printable one. Returns a
# summary the caller checks (math typeset, widgets drawn).
PREPARE_JS = load_book_support().page_script(r"""
(async () => {
%(ready)s  // Open every dropdown: <details>, sphinx-togglebutton's hidden cells and admonitions.
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  document.querySelectorAll(".toggle-hidden, .toggle-details__container").forEach((el) => {
    el.classList.remove("toggle-hidden"); el.style.display = ""; });
  document.querySelectorAll("button.toggle-button").forEach((b) => b.remove());
  document.querySelectorAll(".cell.tag_hide-input .cell_input, .tag_hide-input .cell_input").forEach((el) => {
    el.style.display = ""; });
  const style = document.createElement("style");
  style.textContent = `
    @page { size: A4; margin: 16mm 14mm 16mm 14mm; }
    .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header-article, .bd-footer,
    .bd-footer-article, .prev-next-area, .header-article-items, .toggle-button, .headerlink,
    .bd-search, #pst-back-to-top, .skip-link, .sobirl-live-bar, .sobirl-live-button { display: none !important; }
    .bd-main, .bd-content, .bd-article-container, .bd-page-width, .bd-container, .bd-container__inner,
    .bd-article { max-width: none !important; width: auto !important; margin: 0 !important;
                   padding-left: 0 !important; padding-right: 0 !important; display: block !important; }
    html, body { font-size: 10.5pt !important; background: white !important; }
    pre, pre code, .highlight pre { white-space: pre-wrap !important; word-break: break-word !important;
                                     overflow: visible !important; max-height: none !important; }
    .cell_output, .output, .widget-subarea, .jupyter-widgets, .table-wrapper, .pst-scrollable-table-container {
        overflow: visible !important; max-width: 100%% !important; }
    img, svg, canvas, video { max-width: 100%% !important; height: auto !important; }
    table { max-width: 100%% !important; font-size: 8.5pt !important; }
    mjx-container[display="true"] { overflow-x: visible !important; max-width: 100%% !important; }
    figure, img, table, mjx-container[display="true"] { break-inside: avoid; }
    .cell, .cell_input, .cell_output, div.highlight, pre, .admonition { break-inside: auto !important; }
    h1, h2, h3 { break-after: avoid; }
    details, .toggle-details__container, .dropdown .admonition-title ~ * { display: block !important; }
  `;
  document.head.appendChild(style);
  await sleep(300);
  // Display math wider than the text block would be cut: scale it down to fit.
  const text = document.querySelector("main, article, body");
  const width = text ? text.getBoundingClientRect().width : document.body.clientWidth;
  let scaled = 0;
  document.querySelectorAll('mjx-container[display="true"]').forEach((m) => {
    const w = m.scrollWidth;
    if (w > width && w > 0) { m.style.fontSize = (100 * width / w).toFixed(1) + "%%"; scaled += 1; }
  });
  const math = document.querySelectorAll(".math, .MathJax, mjx-container").length;
  return {math: document.querySelectorAll("mjx-container").length, errors: document.querySelectorAll("mjx-merror").length,
          widgets: views.length, widgetsDrawn: views.filter(drawn).length, scaled, any: math};
})()
""")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def print_book(html: Path, out: Path, pages: list[str] | None = None, chromium: str | None = None) -> dict:
    """Print the toc pages of the built book in ``html`` into one PDF ``out``. Returns a per-page report."""
    bs = load_book_support()
    binary = chromium or bs.find_chromium()
    if binary is None:
        raise RuntimeError("Chromium is needed to print the book (Debian: apt-get install chromium; `make pdf` "
                           "installs it as root)")
    pdfunite = shutil.which("pdfunite")
    if pdfunite is None:
        raise RuntimeError("pdfunite is needed to join the pages (Debian: apt-get install poppler-utils; "
                           "`make pdf` installs it as root)")
    pages = pages or bs.toc_files()
    missing = [doc for doc in pages if not (html / f"{doc}.html").is_file()]
    if missing:
        raise RuntimeError(f"not in {html}: {missing}; build the book first (make book)")
    report = {}
    with tempfile.TemporaryDirectory(prefix="sobirl-pdf-") as tmp:
        tmp = Path(tmp)
        chrome = bs.Chromium(binary, tmp / "profile", width=900, height=1200)
        server = None
        try:
            chrome.open_tab()
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(_Quiet, directory=str(html)))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            base = f"http://127.0.0.1:{server.server_address[1]}"
            parts = []
            for i, doc in enumerate(pages):
                for attempt in (1, 2):      # a page that times out on a busy machine gets one more try
                    try:
                        state, pdf = _print_page(chrome, f"{base}/{doc}.html")
                        break
                    except bs.CDPError:
                        if attempt == 2 or chrome.proc.poll() is not None:
                            raise
                path = tmp / f"{i:03d}.pdf"
                path.write_bytes(base64.b64decode(pdf["data"]))
                parts.append(str(path))
                report[doc] = state
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            chrome.close()
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([pdfunite, *parts, str(out)], check=True)
    return report


def _print_page(chrome, url: str):
    """Open ``url``, prepare it for paper (PREPARE_JS) and print it: returns (page summary, printToPDF result)."""
    chrome.navigate(url, timeout=120)
    chrome.send("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        state = chrome.evaluate(PREPARE_JS % {"wait": WAIT_MS}, timeout=WAIT_MS / 1000 + 90)
        pdf = chrome.send("Page.printToPDF", {
            "printBackground": True, "preferCSSPageSize": True, "displayHeaderFooter": True,
            "headerTemplate": "<div></div>",
            "footerTemplate": ('<div style="font-size:8px;width:100%;text-align:center;color:#666">'
                               '<span class="title"></span> &middot; <span class="pageNumber"></span></div>'),
        }, timeout=300)
    finally:
        chrome.send("Emulation.setEmulatedMedia", {"media": ""})
    return state, pdf


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", type=Path, default=REPO / "_build" / "html")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "pdf" / "sobirl-book.pdf")
    args = parser.parse_args(argv)
    report = print_book(args.html.resolve(), args.out.resolve())
    bad = {doc: r for doc, r in report.items() if r["errors"] or r["widgetsDrawn"] < r["widgets"]}
    for doc, r in report.items():
        print(f"  {doc}: {r['math']} formulas, {r['widgetsDrawn']}/{r['widgets']} widgets drawn"
              + (f", {r['scaled']} wide formulas scaled" if r["scaled"] else ""))
    if bad:
        print(f"book_pdf: math errors or undrawn widgets on {sorted(bad)}", file=sys.stderr)
        return 1
    print(f"book_pdf: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
