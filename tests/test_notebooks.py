"""Every chapter in _toc.yml runs as a test under nbval (`pytest --nbval-lax`), with the quick budget.

nbval only collects .ipynb files, and the book's sources are jupytext MyST markdown. Each chapter is therefore
converted with jupytext into the git-ignored _build/nbval/ and handed to a child pytest running nbval. A child
process keeps nbval's options (and its one kernel per notebook) away from the rest of the suite, gives one test id per
chapter, and lets us time the chapter from nbval's own report (JUnit XML).

`--nbval-lax` checks that every cell runs without error; outputs are compared only for cells tagged
`nbval-check-output`. Cells tagged `nbval-skip` are not run (tag a `skip-execution` cell with both:
tests/test_book_structure.py checks it).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET

import pytest

import book_support

CHAPTER_BUDGET_S = 60.0   # issue 3: every tabular chapter runs in under a minute at SOBIRL_BUDGET=quick
SMOKE_CHAPTERS = {"book/08_beamrider": 180.0}  # issue 6: the live Atari smoke run may take up to 3 minutes
CELL_TIMEOUT_S = 300      # a single hung cell fails instead of blocking the suite


@pytest.mark.parametrize("docname", book_support.notebook_pages())
def test_chapter_runs_under_nbval(docname):
    ipynb = book_support.convert_for_nbval(docname)
    junit = ipynb.with_suffix(".junit.xml")
    junit.unlink(missing_ok=True)
    env = {**os.environ, "SOBIRL_BUDGET": "quick", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    cmd = [sys.executable, "-m", "pytest", str(ipynb), "--nbval-lax", "--nbval-current-env",
           f"--nbval-cell-timeout={CELL_TIMEOUT_S}", "-p", "no:cacheprovider", "-q", "--no-header",
           f"--junitxml={junit}", "-o", "junit_family=xunit2", "--rootdir", str(ipynb.parent)]
    proc = subprocess.run(cmd, cwd=ipynb.parent, env=env, capture_output=True, text=True,
                          timeout=CELL_TIMEOUT_S * 4)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)  # nbval colours its report
    assert proc.returncode == 0, f"nbval failed on {docname} (exit {proc.returncode}):\n{output[-8000:]}"

    suite = ET.parse(junit).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    cases = suite.findall("testcase")
    assert cases, f"nbval collected no cell from {docname}"
    cell_seconds = sum(float(case.get("time", 0)) for case in cases)
    # Reported, not asserted: a timed test fails on a loaded machine for reasons that are not bugs (the project rule
    # is that speed lives in benchmarks). `pytest -rw` lists chapters over their budget.
    budget_s = SMOKE_CHAPTERS.get(docname, CHAPTER_BUDGET_S)
    if cell_seconds >= budget_s:
        warnings.warn(f"{docname} took {cell_seconds:.1f} s of cell time under SOBIRL_BUDGET=quick (budget "
                      f"{budget_s:.0f} s): shrink its quick budget with sobirl_lite.budget.pick")
    print(f"{docname}: {cell_seconds:.1f} s of cell time")
