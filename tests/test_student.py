"""The student edition (tools/student_edition.py, `make student`): nothing of a solution leaks, and it runs.

* A fast check on the sources: every solution directive and every reference implementation is gone, each
  implementation exercise has a stub that raises NotImplementedError, and the pages before the Exercises sections
  are the book's own.
* The build: the student edition is built from the quick-budget test build's executed notebooks (the same route as
  `make student`, which reuses `make book`'s execution), with warnings as errors; then every page of its HTML and
  every downloadable notebook is searched for the text of the solutions and the bodies of the reference
  implementations.
* nbval: the cells of each student notebook that the book itself does not run, i.e. those of its Exercises section,
  run under `pytest --nbval-lax`; a check cell must stop with NotImplementedError and nothing else may fail. The
  cells before the Exercises section are identical to the book's (checked here), which tests/test_notebooks.py runs
  under nbval already; running the chapters a second time would only repeat that.
"""
from __future__ import annotations

import html as html_lib
import importlib.util
import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

import book_support
from book_support import REPO

_spec = importlib.util.spec_from_file_location("student_edition", REPO / "tools" / "student_edition.py")
student_edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_edition)  # type: ignore[union-attr]

STUDENT_DIR = book_support.BUILD / "test-student"
CHAPTERS = [doc for doc in book_support.notebook_pages() if book_support.CHAPTER_FILE.match(doc.split("/")[-1] + ".md")]
# Every chapter has an implementation exercise and its checker.
IMPLEMENTATION_CHAPTERS = CHAPTERS


# ---------------------------------------------------------------------------------------------------------------
# What must not leak: read from the book's sources
def _solution_spans(nb):
    """(markdown text, code cells) inside the solutions of a MyST notebook, and the reference implementations."""
    prose, code, refs, inside, old_style, after_old = [], [], [], False, None, False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            after_old = False
            for line in cell.source.splitlines():
                if old_style is not None:                 # inside an old-style solution admonition
                    if line.strip() == old_style:
                        old_style, after_old = None, True
                    else:
                        prose.append(line)
                elif re.match(r"^(:{3,}|`{3,})\{solution-start\}", line):
                    inside = True
                elif re.match(r"^(:{3,}|`{3,})\{solution-end\}", line):
                    inside = False
                elif m := re.match(r"^(:{3,}|`{3,})\{admonition\}\s*Solution", line):
                    old_style = m.group(1)
                elif inside:
                    prose.append(line)
                elif line.strip():
                    after_old = False
        elif inside or after_old:
            (refs if "reference-implementation" in book_support.cell_tags(cell) else code).append(cell.source)
    return prose, code, refs


def _plain_fragments(line: str, min_len: int = 30) -> list[str]:
    """Math- and markup-free runs of a prose line, long enough to be distinctive (they survive rendering)."""
    pieces = re.split(r"\$[^$]*\$|`[^`]*`|\{[^}]*\}|\*+|_+", line)
    return [" ".join(p.split()) for p in pieces if len(" ".join(p.split())) >= min_len]


def _body_lines(source: str) -> list[str]:
    """The code lines of the function bodies in a reference implementation (not signature, not docstring)."""
    import ast

    tree = ast.parse(source)
    lines = source.splitlines()
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            for stmt in body:
                out += [ln.split("#")[0].strip() for ln in lines[stmt.lineno - 1:stmt.end_lineno]]
    return [ln for ln in out if len(ln) >= 10]


def secrets() -> dict[str, list[str]]:
    """Per chapter, the strings that only a solution contains.

    Dropped: anything also found outside the solutions (in any chapter: a generic line such as a loop header is not
    an answer) and any line of the package's own source, which students can read anyway (chapter 8 prints some).
    """
    notebooks = {doc: book_support.read_notebook(book_support.page_source(doc)) for doc in CHAPTERS}
    visible = " ".join(" ".join(c.source.split()) for nb in notebooks.values()
                       for c in student_edition.student_notebook(nb).cells)
    package = {" ".join(line.split("#")[0].split()) for path in (REPO / "sobirl_lite").rglob("*.py")
               for line in path.read_text(encoding="utf-8").splitlines()}
    out = {}
    for doc, nb in notebooks.items():
        prose, code, refs = _solution_spans(nb)
        found = [f for line in prose for f in _plain_fragments(line)]
        found += [" ".join(ln.split()) for src in code for ln in src.splitlines() if len(ln.strip()) >= 25
                  and not ln.strip().startswith("#")]
        found += [" ".join(ln.split()) for src in refs for ln in _body_lines(src)]
        out[doc] = sorted({s for s in found if s not in visible and s not in package})
    return out


def _normalise_html(text: str) -> str:
    text = re.sub(r"<script[^>]*>.*?</script>|<style[^>]*>.*?</style>", " ", text, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", "", text)).split())


def _notebook_text(path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        parts.append("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
        for out in cell.get("outputs", []):
            parts.append(json.dumps(out))
    return " ".join(" ".join(parts).split())


# ---------------------------------------------------------------------------------------------------------------
def test_every_chapter_has_an_implementation_exercise_with_a_checker():
    assert len(IMPLEMENTATION_CHAPTERS) >= 10
    for doc in IMPLEMENTATION_CHAPTERS:
        nb = book_support.read_notebook(book_support.page_source(doc))
        refs = [c for c in nb.cells if "reference-implementation" in book_support.cell_tags(c)]
        checks = [c for c in nb.cells if "exercise-check" in book_support.cell_tags(c)]
        assert refs, f"{doc}: no implementation exercise (a code cell tagged reference-implementation)"
        assert checks and all("sobirl_lite.exercises import check_" in c.source for c in checks), \
            f"{doc}: each implementation exercise needs a check cell calling sobirl_lite.exercises.check_*"


@pytest.fixture(scope="module")
def student_sources(tmp_path_factory):
    """The student edition's sources, converted from the MyST sources (no execution)."""
    out = tmp_path_factory.mktemp("student") / "src"
    notebooks = student_edition.write_sources(out, executed=None)
    return out, notebooks


def test_student_sources_hold_stubs_and_no_solution(student_sources):
    out, notebooks = student_sources
    leaks = secrets()
    assert sum(len(v) for v in leaks.values()) > 50, "found too few solution strings to search for"
    for doc in CHAPTERS:
        path = out / f"{doc}.ipynb"
        assert path in notebooks
        nb = nbformat.read(path, as_version=4)
        text = _notebook_text(path)
        for directive in ("{solution}", "{solution-start}", "{solution-end}"):
            assert directive not in text, f"{doc}: a {directive} directive survived"
        stubs = [c for c in nb.cells if "exercise-stub" in book_support.cell_tags(c)]
        assert all("raise NotImplementedError" in c.source for c in stubs)
        checks = [c for c in nb.cells if "exercise-check" in book_support.cell_tags(c)]
        if doc in IMPLEMENTATION_CHAPTERS:
            assert stubs and checks, f"{doc}: no stub or no check cell"
        assert all("raises-exception" in book_support.cell_tags(c) and not c.get("outputs")
                              for c in checks)
        found = [s for s in leaks[doc] if s in text]
        assert not found, f"{doc}: solution text in the student notebook: {found[:5]}"


def _split_at_exercises(cells):
    for i, cell in enumerate(cells):
        if cell.cell_type == "markdown" and re.search(r"^## Exercises\s*$", cell.source, re.M):
            return cells[:i], cells[i:]
    raise AssertionError("no '## Exercises' heading")


def test_student_pages_before_the_exercises_are_the_books(student_sources):
    out, _ = student_sources
    for doc in CHAPTERS:
        book = book_support.read_notebook(book_support.page_source(doc))
        student = nbformat.read(out / f"{doc}.ipynb", as_version=4)
        (b_head, _), (s_head, _) = _split_at_exercises(book.cells), _split_at_exercises(student.cells)
        assert [c.source for c in b_head if c.cell_type == "code"] == \
               [c.source for c in s_head if c.cell_type == "code"], f"{doc}: code before the exercises differs"


def test_stub_keeps_signature_and_docstring_only():
    src = 'import numpy as np\n\n\ndef f(a, b=2):\n    """Doc\n    more."""\n    c = a + b\n    return c\n'
    stub = student_edition.stub_source(src)
    assert 'def f(a, b=2):\n    """Doc\n    more."""\n    raise NotImplementedError' in stub
    assert "a + b" not in stub and "return" not in stub
    with pytest.raises(student_edition.StudentEditionError, match="only imports and function definitions"):
        student_edition.stub_source("SECRET = 3\n")


# ---------------------------------------------------------------------------------------------------------------
# The built student edition (reuses the test build's execution)
@pytest.fixture(scope="module")
def student_build(book_build):
    if book_build.returncode != 0:
        pytest.skip("the book did not build; see test_book_build.py")
    executed = book_support.TEST_BOOK_DIR / "_build" / "jupyter_execute" / "book"
    src = STUDENT_DIR / "src"
    student_edition.write_sources(src, executed)
    proc = student_edition.build_html(src, STUDENT_DIR / "html", budget="quick", timeout=1200)
    return proc, STUDENT_DIR / "html"


@pytest.mark.slow
def test_student_edition_builds_without_warnings(student_build):
    proc, html = student_build
    log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    problems = [line for line in log.splitlines() if book_support.SPHINX_PROBLEM.search(line)]
    assert proc.returncode == 0 and not problems, "student edition build failed:\n" + "\n".join(
        problems or log.splitlines()[-60:])
    for doc in CHAPTERS:
        page = (html / f"{doc}.html").read_text(encoding="utf-8")
        assert "NotImplementedError" in page, f"{doc}: the stub is not on the page"
        assert (html / "_sources" / f"{doc}.ipynb").is_file(), f"{doc}: no downloadable notebook"
        assert "student edition" in page


@pytest.mark.slow
def test_no_solution_leaks_into_the_student_build(student_build):
    proc, html = student_build
    if proc.returncode != 0:
        pytest.skip("the student edition did not build")
    leaks = secrets()
    pages = {p: _normalise_html(p.read_text(encoding="utf-8")) for p in html.rglob("*.html")}
    notebooks = {p: _notebook_text(p) for p in html.rglob("*.ipynb")}
    assert len(notebooks) >= len(CHAPTERS)
    everything = {**pages, **notebooks}
    for doc, strings in leaks.items():
        for path, text in everything.items():
            found = [s for s in strings if s in text]
            assert not found, f"{path.relative_to(html)}: text of a solution of {doc}: {found[:5]}"
    # and the solution checks the book prints are gone with their cells
    assert not any("agree with sobirl_lite" in text for text in everything.values())


@pytest.mark.slow
def test_student_exercises_run_under_nbval(student_build, tmp_path):
    """The Exercises section of every student notebook under nbval: stubs define, checks stop with
    NotImplementedError (asserted by a cell added here after each check), nothing else fails."""
    proc, html = student_build
    if proc.returncode != 0:
        pytest.skip("the student edition did not build")
    # One notebook, one kernel, for all chapters: the exercise cells are self-contained (each check cell imports its
    # checker), so they need nothing from each other, and a kernel start per chapter would only cost time.
    cells = [nbformat.v4.new_code_cell(f"import os, sys\nos.chdir({str(REPO / 'book')!r})")]
    for doc in CHAPTERS:
        nb = nbformat.read(STUDENT_DIR / "src" / f"{doc}.ipynb", as_version=4)
        _, exercises = _split_at_exercises(nb.cells)
        code = [cell for cell in exercises if cell.cell_type == "code"]
        assert code, f"{doc}: no exercise code in the student notebook"
        for cell in code:
            tags = sorted(book_support.cell_tags(cell))
            cells.append(nbformat.v4.new_code_cell(f"# {doc}\n" + cell.source, metadata={"tags": tags}))
            if "exercise-check" in tags:
                cells.append(nbformat.v4.new_code_cell(
                    "# added by tests/test_student.py: the check above must have stopped at the stub\n"
                    "assert type(getattr(sys, 'last_value', None)).__name__ == 'NotImplementedError'\n"
                    "sys.last_value = None"))
    path = tmp_path / "student_exercises.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata), path)
    paths = [str(path)]
    env = {**os.environ, "SOBIRL_BUDGET": "quick", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", *paths, "--nbval-lax", "--nbval-current-env",
                           "--nbval-cell-timeout=300", "-p", "no:cacheprovider", "-q", "--no-header",
                           "--rootdir", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"nbval failed on the student exercises:\n{output[-6000:]}"
    assert re.search(r"\d+ passed", output)
