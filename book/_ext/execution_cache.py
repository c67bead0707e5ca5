"""Cached chapters keep their outputs in ``jupyter_execute``: a small Sphinx extension around a myst-nb 1.4.0 quirk.

With ``execute_notebooks: cache`` (``_config.yml``) myst-nb renders a chapter found in the jupyter-cache from a merged
copy of the notebook, but writes the notebook it read (code without outputs) to ``_build/jupyter_execute``, which
``make student`` and the live widgets (``live_widgets.py``) read. This extension makes myst-nb's cache client merge
the cached outputs and metadata (widget state included) into the notebook it was given, so the page and the written
notebook are the same. tests/test_book_cache.py checks the written notebook; drop this file once myst-nb writes the
merged notebook itself.
"""
from __future__ import annotations

from myst_nb.core.execute.cache import NotebookClientCache

_START_CLIENT = NotebookClientCache.start_client


def _start_client_merging_in_place(self) -> None:
    given = self._notebook
    _START_CLIENT(self)
    merged = self._notebook
    if merged is not given:  # a cache hit: jupyter-cache returned a merged deep copy
        given.cells[:] = merged.cells
        given.metadata.clear()
        given.metadata.update(merged.metadata)
        given.nbformat, given.nbformat_minor = merged.nbformat, merged.nbformat_minor
        self._notebook = given


def setup(app):
    NotebookClientCache.start_client = _start_client_merging_in_place
    return {"parallel_read_safe": True, "parallel_write_safe": True}
