"""Nothing is cut off the page: display equations, tables and algorithm boxes fit their column at every width.

* ``static/sobirl-fit.css``: plain-text boxes (the ```` ```text ```` blocks that hold the algorithms' pseudocode)
  wrap their long lines instead of running past the column; table cells may wrap, and on narrow screens tables
  use a smaller font. Code cells are left alone: a horizontal scroll inside a code cell is acceptable, and the
  chapters keep their code lines within 88 columns.
* ``static/sobirl-fit.js``: after MathJax has typeset the page (and again on every resize), a display equation
  (or a table) that is wider than its column is scaled down until it fits, but never below half its size. One that
  still does not fit is too wide to read on that screen and has to be broken into lines in the source;
  ``tests/test_browser.py`` reports it. ``window.sobirlFitDone`` resolves after the first pass.
"""
from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"


def _configure(app, config) -> None:
    if str(STATIC_DIR) not in [str(p) for p in config.html_static_path]:
        config.html_static_path = list(config.html_static_path) + [str(STATIC_DIR)]


def setup(app):
    app.connect("config-inited", _configure, priority=160)
    app.add_css_file("sobirl-fit.css")
    app.add_js_file("sobirl-fit.js", priority=950, defer="defer")
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
