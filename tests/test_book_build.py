"""The book builds with `jupyter-book build . -W -n --keep-going` (quick budget): no warning, no execution error."""
from __future__ import annotations

import re

import pytest

import book_support

pytestmark = pytest.mark.slow


def test_book_builds_without_warnings(book_build):
    log = re.sub(r"\x1b\[[0-9;]*m", "", book_build.log)
    problems = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in book_build.problems]
    tail = "\n".join(log.splitlines()[-80:])
    report = ("warnings/errors:\n  " + "\n  ".join(problems) + "\n" if problems else "") + f"log tail:\n{tail}"
    assert book_build.returncode == 0 and not problems, (
        f"jupyter-book build -W -n failed (exit {book_build.returncode}; full log in "
        f"{book_support.TEST_BOOK_DIR / 'build.log'}):\n{report}")
    assert (book_build.html / "index.html").exists()


def _require_build(book_build):
    if book_build.returncode != 0:
        pytest.skip("the book did not build; see test_book_builds_without_warnings")


def test_every_toc_page_is_rendered(book_build):
    _require_build(book_build)
    for doc in book_support.toc_files():
        assert (book_build.html / f"{doc}.html").exists(), f"{doc}.html missing from the build"


def test_offline_assets_are_shipped_with_the_html(book_build):
    """MathJax, RequireJS and the widget manager are loaded from files next to the HTML, not from a CDN."""
    _require_build(book_build)
    oa = book_support.offline_assets_module()
    if not oa.assets_present():
        message = "vendor/ has no offline assets (npm registry unreachable?): the book was built against CDNs"
        if book_support.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    static = book_build.html / "_static"
    for rel in (oa.MATHJAX_JS, oa.REQUIRE_JS, oa.EMBED_AMD_JS):
        assert (static / rel).is_file(), f"{rel} was not copied into the HTML output"
    # MathJax loads fonts relative to its own URL: they must be there too.
    assert any((static / oa.PREFIX / "mathjax" / "es5" / "output" / "chtml" / "fonts").rglob("*.woff"))
    for doc in book_support.toc_files():
        html = (book_build.html / f"{doc}.html").read_text(encoding="utf-8")
        srcs = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)
        remote = [s for s in srcs if re.match(r"(https?:)?//", s)]
        assert not remote, f"{doc}.html loads scripts from the network: {remote}"
        if 'class="math' in html:
            assert any(oa.MATHJAX_JS in s for s in srcs), f"{doc}.html has math but not the local MathJax"
        if "application/vnd.jupyter.widget-view+json" in html:
            assert any(oa.EMBED_AMD_JS in s for s in srcs), f"{doc}.html has widgets but not the local manager"
            assert any(oa.REQUIRE_JS in s for s in srcs), f"{doc}.html has widgets but not the local RequireJS"
