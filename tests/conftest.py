"""Shared fixtures. The book fixtures build the book once per session for test_book_build.py and test_browser.py."""
from __future__ import annotations

import os

import pytest

import book_support


@pytest.fixture(scope="session")
def book_build(request) -> book_support.BookBuild:
    """The book built with the quick budget into _build/test-book (warnings are errors), with offline assets.

    Built once per run: under pytest-xdist the first worker to ask builds it and the others wait for that build
    (book_support.shared_book_build). Fetching the npm assets is idempotent and prints a warning instead of failing
    when the registry is unreachable; the browser test then decides whether a CDN build is acceptable (not under CI).
    """
    reuse = os.environ.get("SOBIRL_REUSE_TEST_BOOK") == "1" and not book_support.IN_CI
    if reuse and (book_support.TEST_BOOK_DIR / "build.log").is_file():
        # For iterating on the browser tests: keep the last build instead of building again (never under CI).
        return book_support.reuse_book()
    run_id = getattr(request.config, "workerinput", {}).get("testrunuid")  # pytest-xdist's key (no underscore)
    return book_support.shared_book_build(run_id)


@pytest.fixture(scope="session")
def student_build(request, book_build):
    """(build process, HTML folder) of the student edition made from the test book's execution, as `make student`
    makes it from `make book`'s; built once per run (book_support.shared_student_build), warnings are errors."""
    if book_build.returncode != 0:
        pytest.skip("the book did not build; see test_book_build.py")
    run_id = getattr(request.config, "workerinput", {}).get("testrunuid")
    return book_support.shared_student_build(run_id), book_support.STUDENT_DIR / "html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium, one per test module (the page tests and the live-widget tests); skips without it (fails
    under CI, where a browser is required)."""
    binary = book_support.require_chromium("cannot check the rendered book")
    chrome = book_support.Chromium(binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        chrome.open_tab()
        yield chrome
    finally:
        chrome.close()


# -- scheduling on pytest-xdist workers (make test: -n 2 --dist loadfile --no-loadscope-reorder) -----------------------
# --dist loadfile runs each test module whole on one worker, so a module-scoped fixture is set up once (the student
# edition builds into _build/student, the PDF prints the book, JupyterLab starts a server). (--dist loadgroup with
# xdist_group marks would be finer, but pytest-xdist 3.8.0 cannot rename pytest 9.2's node ids: the groups are
# silently ignored.) The modules are dispatched in the order below.
# The longest of the modules that read the built book, longest first (so that none of them starts last, when the
# other worker has nothing left to do); measured with --durations on the development machine.
LONG_BOOK_MODULES = ["test_browser.py", "test_live_html.py", "test_student.py", "test_pdf.py",
                     "test_student_pdf.py", "test_launch_links.py"]


def _rank(item, modules_needing_book: set[str]) -> tuple[int, int]:
    """Where ITEM goes in the run: the book build first (one worker builds it, executing every chapter, while the
    other runs the package tests), then the package tests, and last the modules that read the built book, the
    chapters' own tests among them (by then it is built, so no worker sits waiting for it)."""
    module = item.path.name
    if module == "test_book_build.py":
        return (0, 0)
    if module in modules_needing_book:
        longest = next((i for i, name in enumerate(LONG_BOOK_MODULES) if name == module), len(LONG_BOOK_MODULES))
        return (2, longest)
    return (1, 0)


def pytest_collection_modifyitems(config, items):
    needing_book = {item.path.name for item in items if "book_build" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: _rank(item, needing_book))  # stable: within a rank the collection order stays
