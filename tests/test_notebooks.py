"""Every chapter in _toc.yml runs without error with the quick budget: one test per chapter.

The chapters are executed once per test run, by the test book build (tests/test_book_build.py, the two steps of
`make book` into _build/test-book): tools/execute_book.py runs each notebook page top to bottom in a fresh kernel in
`book/`, exactly as the published book is executed, with errors not allowed, and stores each chapter that ran
cleanly in the build's jupyter-cache with its execution time. Every mathematical claim of a chapter is an `assert`,
so a chapter whose claim fails raises and is missing from the cache. This module reads that record instead of
executing every chapter a second time (a run of each chapter under nbval, as earlier versions did, doubled the CPU
time `make test` spends in chapters for no check the build does not make):

* a chapter that raised fails here with the traceback execute_book.py printed for it;
* a chapter that ran must be in the cache under its current code (jupyter-cache matches a notebook on its code cells,
  so a stale entry from an older chapter does not count);
* its execution time with the quick budget is printed, and a warning is raised past 60 s (3 minutes for the
  BeamRider smoke run); time is not asserted, since a loaded machine is not a bug (speed lives in `benchmarks/`).
"""
from __future__ import annotations

import re
import warnings

import pytest

import book_support

CHAPTER_BUDGET_S = 60.0   # issue 3: every tabular chapter runs in under a minute at SOBIRL_BUDGET=quick
SMOKE_CHAPTERS = {"book/08_beamrider": 180.0}  # issue 6: the live Atari smoke run may take up to 3 minutes


def failure_report(log: str, filename: str) -> str | None:
    """The traceback execute_book.py printed for FILENAME (``execute_book: NAME FAILED after N s:`` and what follows,
    up to its next line), or None if it reported no failure for it."""
    match = re.search(rf"^execute_book: {re.escape(filename)} FAILED after .*?(?=^execute_book: |\Z)", log,
                      re.M | re.S)
    return match.group(0) if match else None


def test_failure_report_finds_the_chapters_traceback():
    log = ("execute_book: a.md executed in 3 s\nexecute_book: b.md FAILED after 2 s:\nTraceback ...\n"
           "AssertionError: claim\nexecute_book: c.md executed in 1 s\n")
    assert "AssertionError: claim" in failure_report(log, "b.md")
    assert failure_report(log, "a.md") is None and failure_report(log, "c.md") is None


@pytest.mark.parametrize("docname", book_support.notebook_pages())
def test_chapter_runs(docname, book_build):
    from jupyter_cache import get_cache
    from myst_nb.core.read import myst_nb_reader_plugin

    source = book_support.page_source(docname)
    failed = failure_report(book_build.log, source.name)
    assert failed is None, f"{docname} raised while the book was executed:\n{failed[-8000:]}"
    cache_dir = book_support.TEST_BOOK_DIR / "_build" / ".jupyter_cache"
    assert cache_dir.is_dir(), f"the book build executed nothing; its log ends:\n{book_build.log[-4000:]}"
    try:
        record = get_cache(str(cache_dir)).match_cache_notebook(myst_nb_reader_plugin(str(source)))
    except KeyError:
        pytest.fail(f"{docname} was not executed by the book build (no cache entry for its current code); "
                    f"the build log ends:\n{book_build.log[-4000:]}")
    seconds = float(record.data.get("execution_seconds", 0.0))
    # Reported, not asserted: a timed test fails on a loaded machine for reasons that are not bugs (the project rule
    # is that speed lives in benchmarks). `pytest -rw` lists chapters over their budget.
    budget_s = SMOKE_CHAPTERS.get(docname, CHAPTER_BUDGET_S)
    if seconds >= budget_s:
        warnings.warn(f"{docname} took {seconds:.1f} s under SOBIRL_BUDGET=quick (budget {budget_s:.0f} s): "
                      "shrink its quick budget with sobirl_lite.budget.pick")
    print(f"{docname}: {seconds:.1f} s of execution")
