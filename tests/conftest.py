"""Shared fixtures. The book fixtures build the book once per session for test_book_build.py and test_browser.py."""
from __future__ import annotations

import os

import pytest

import book_support


@pytest.fixture(scope="session")
def book_build() -> book_support.BookBuild:
    """The book built with the quick budget into _build/test-book (warnings are errors), with offline assets.

    Fetching the npm assets is idempotent and prints a warning instead of failing when the registry is unreachable;
    the browser test then decides whether a CDN build is acceptable (not under CI).
    """
    book_support.offline_assets_module().fetch()
    reuse = os.environ.get("SOBIRL_REUSE_TEST_BOOK") == "1" and not book_support.IN_CI
    if reuse and (book_support.TEST_BOOK_DIR / "build.log").is_file():
        # For iterating on the browser tests: keep the last build instead of building again (never under CI).
        return book_support.reuse_book()
    return book_support.build_book()


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
