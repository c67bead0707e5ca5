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
  cells before the Exercises section are identical to the book's (checked here), which the test book build runs
  already (tests/test_notebooks.py); running the chapters a second time would only repeat that.
"""
from __future__ import annotations

import html as html_lib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import book_support
from book_support import REPO

if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))

_spec = importlib.util.spec_from_file_location("student_edition", REPO / "tools" / "student_edition.py")
student_edition = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_edition)  # type: ignore[union-attr]

STUDENT_DIR = book_support.STUDENT_DIR
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
# (the fixture student_build is conftest.py's: tests/test_student_pdf.py prints the same build)
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
    # typography as the source's: a solution's "policy's" is "policy’s" on the page
    pages = {p: book_support.plain_typography(_normalise_html(p.read_text(encoding="utf-8")))
             for p in html.rglob("*.html")}
    notebooks = {p: book_support.plain_typography(_notebook_text(p)) for p in html.rglob("*.ipynb")}
    assert len(notebooks) >= len(CHAPTERS)
    everything = {**pages, **notebooks}
    for doc, strings in leaks.items():
        for path, text in everything.items():
            found = [s for s in strings if book_support.plain_typography(s) in text]
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
    proc = book_support.run_starting_kernels(
        [sys.executable, "-m", "pytest", *paths, "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=300",
         "-p", "no:cacheprovider", "-q", "--no-header", "--rootdir", str(tmp_path)],
        cwd=tmp_path, env=env, timeout=1200)
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"nbval failed on the student exercises:\n{output[-6000:]}"
    assert re.search(r"\d+ passed", output)


# ---------------------------------------------------------------------------------------------------------------
# Standalone student notebooks (tools/standalone_notebook.py): they run and read outside the book
_MYST_LEFT = re.compile(r"^\s*(:{3,}|`{3,})\{[\w:-]+\}"                         # a directive
                        r"|\{(doc|ref|numref|eq|cite|cite:p|cite:t|prf:ref)\}`"     # a role
                        r"|^\([\w-]+\)=\s*$", re.M)                                 # a label


@pytest.fixture(scope="module")
def standalone_notebooks(student_sources, tmp_path_factory):
    out, _ = student_sources
    return student_edition.write_standalone(out, tmp_path_factory.mktemp("standalone"))


def test_standalone_notebooks_run_outside_the_book(standalone_notebooks):
    import standalone_notebook

    macros = standalone_notebook.book_macros()
    undefined = re.compile(r"\\(" + "|".join(map(re.escape, macros)) + r")(?![A-Za-z])")
    names = {p.stem for p in standalone_notebooks}
    assert {doc.split("/")[-1] for doc in CHAPTERS} <= names
    for path in standalone_notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        setup = code[0].source
        assert "sobirl-setup" in book_support.cell_tags(code[0])
        assert 'os.environ["SOBIRL_BUDGET"] = "quick"' in setup and "pip_install(" in setup and "WHEEL" in setup
        assert "def glue(name, obj, display=True)" in setup                  # glue displays, no myst_nb needed
        assert not any(re.search(r"^\s*(from|import) myst_nb", c.source, re.M) for c in code), path.name
        md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        left = _MYST_LEFT.search(md)
        assert left is None, f"{path.name}: MyST markup left for a plain front end: {left.group(0)!r}"
        found = undefined.search(md)
        assert found is None, f"{path.name}: the book's macro {found.group(0)} is not expanded"
        if book_support.CHAPTER_FILE.match(path.stem + ".md"):                 # the stubs, no solutions
            assert "raise NotImplementedError" in "\n".join(c.source for c in code)
        assert nb.metadata["kernelspec"]["name"] == "python3"


def test_macro_expansion_and_markdown_fallback():
    import standalone_notebook

    macros = standalone_notebook.book_macros()
    assert standalone_notebook.expand_macros(r"$\pistar{x}\in\Simplex$, $x\in\R^n\Rightarrow$", macros) == \
        r"$\pi^{*}_{x}\in\Delta$, $x\in\mathbb{R}^n\Rightarrow$"
    assert standalone_notebook.expand_macros(r"$\Vstar{x_{k+1}}$", macros) == r"$V^{*}_{x_{k+1}}$"
    text = ":::{prf:theorem} Big\n:label: thm-x\n\nBody {cite:p}`a,b` and {doc}`01_soft_mdps`.\n:::"
    out = standalone_notebook.plain_markdown(text, {"01_soft_mdps": "Soft MDPs"}, macros)
    assert out == "**Theorem: Big.**\n\nBody (a; b) and Soft MDPs."
    # a display with & but no environment (Sphinx adds `split`): aligned, or Jupyter's MathJax says "Misplaced &"
    out = standalone_notebook.plain_markdown("$$\na&=b\\\\\n&=c\n$$", {}, macros)
    assert out == "$$\n\\begin{aligned}\na&=b\\\\\n&=c\n\\end{aligned}\n$$"


@pytest.mark.slow
def test_a_standalone_notebook_runs_with_the_quick_budget(standalone_notebooks, tmp_path):
    """Chapter 2's standalone notebook, run top to bottom by nbclient in a folder outside the book (sobirl_lite is
    installed here, so the set-up cell installs nothing): no cell fails except the exercise checks at their stubs."""
    import nbclient

    path = next(p for p in standalone_notebooks if p.name.startswith("02_"))
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "exercise-check" in book_support.cell_tags(cell):
            cell.source = ("try:\n" + "\n".join("    " + ln for ln in cell.source.splitlines())
                           + "\nexcept NotImplementedError:\n    pass")
    env = {"SOBIRL_BUDGET": "full"}           # the set-up cell must switch to quick itself
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        words = book_support.execute_book_module().KERNEL_START_FAILURES
        book_support.retry_kernel_start(
            lambda: nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                            resources={"metadata": {"path": str(tmp_path)}}).execute(),
            lambda outcome: isinstance(outcome, RuntimeError) and str(outcome).startswith(words))
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if "image/png" in o.get("data", {})]
    assert shown, "no figure displayed: the glue stand-in did not show them"


# ---------------------------------------------------------------------------------------------------------------
# Licences, and the plan's claims
def test_licences_are_stated():
    assert "MIT License" in (REPO / "LICENSE").read_text()
    content = (REPO / "LICENSE-CONTENT").read_text()
    assert "CC BY-SA 4.0" in content and "creativecommons.org/licenses/by-sa/4.0" in content
    import yaml

    footer = yaml.safe_load((REPO / "_config.yml").read_text())["html"]["extra_footer"]
    assert "CC BY-SA 4.0" in footer and "MIT" in footer
    readme = (REPO / "README.md").read_text()
    assert "CC BY-SA 4.0" in readme and "MIT licence" in readme


WRONG_CLAIMS = [
    (re.compile(r"under a minute", re.I), "chapters 7, 8 and 11 take minutes with the quick budget"),
    # the intro once said "The launch buttons at the top of a page open it in JupyterLab, Binder or Colab"
    (re.compile(r"launch buttons?[^.]*\b(Binder|Colab)\b", re.I), "no Binder or Colab button is drawn"),
]


def test_no_wrong_run_time_or_launch_button_claims():
    for path in [REPO / "README.md", REPO / "Makefile", REPO / "book" / "_ext" / "launch_links.py",
                 *sorted((REPO / "book").glob("*.md"))]:
        text = " ".join(path.read_text(encoding="utf-8").split())
        for pattern, why in WRONG_CLAIMS:
            found = pattern.search(text)
            assert found is None, f"{path.name}: {found.group(0)!r}: {why}"


def test_the_teaching_plan_covers_every_chapter_and_names_each_exercise_kind():
    import otter_assignments

    teaching = (REPO / "book" / "teaching.md").read_text(encoding="utf-8")
    outcomes = teaching.split("## Learning outcomes")[1].split("## A schedule")[0]
    schedule = teaching.split("## A schedule")[1].split("## Student workload")[0]
    table = teaching.split("## Homework or lab?")[1].split("## Grading")[0]
    assert "## Student workload" in teaching
    header = next(ln for ln in table.splitlines() if ln.startswith("| chapter"))
    columns = [c.strip().split(" ")[0] for c in header.strip("|").split("|")]
    for doc in CHAPTERS:
        name = doc.split("/")[-1]
        assert f"{{doc}}`{name}`" in outcomes, f"{name} missing from the outcomes"
        assert f"{{doc}}`{name}`" in schedule, f"{name} missing from the schedule"
        _, exercises = otter_assignments.split_exercises(book_support.read_notebook(book_support.page_source(doc)))
        for ex in exercises:
            rows = [ln for ln in table.splitlines() if f"{{ref}}`{ex.label}`" in ln]
            assert len(rows) == 1, f"{ex.label} is not in the exercise table once"
            cells = [c for c in rows[0].strip().strip("|").split("|")]
            column = next(columns[i] for i, c in enumerate(cells) if f"{{ref}}`{ex.label}`" in c)
            assert column == ex.kind, f"{ex.label} is listed as {column}, but it is a {ex.kind} exercise"


# ---------------------------------------------------------------------------------------------------------------
# A standalone student notebook in a JupyterLab outside the book (no .lab settings, no jupytext.toml), with the pinned
# jupyterlab-myst (which renders its markdown as MyST, math by KaTeX) and without it (JupyterLab's own Markdown and
# MathJax, as in a student's plain install): it runs, and it reads cleanly in both, thanks to the fallbacks the
# notebook carries (plain markdown, macros expanded, a glue that displays). tests/test_lab.py drives JupyterLab and
# looks at what it rendered (RENDER_JS, check_rendered).
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("front_end", ["jupyterlab-myst", "plain"])
def test_a_standalone_notebook_runs_and_renders_in_plain_jupyterlab(standalone_notebooks, tmp_path, front_end):
    import test_lab as lab_support      # how tests/test_lab.py drives JupyterLab and reads what it rendered
    import time
    import urllib.parse

    binary = book_support.require_chromium("cannot open a student notebook in JupyterLab")
    path = next(p for p in standalone_notebooks if p.name.startswith("01_"))
    root = tmp_path / "student"              # a folder outside the book: no jupytext.toml, no .lab settings
    root.mkdir()
    shutil.copy2(path, root / path.name)
    if front_end == "plain":
        # what `jupyter labextension disable jupyterlab-myst` writes, in this test's own configuration folder
        (tmp_path / "config" / "labconfig").mkdir(parents=True)
        (tmp_path / "config" / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"jupyterlab-myst": True}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "SOBIRL_BUDGET": "full",   # the notebook picks quick
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("JUPYTER_CONFIG_PATH", None)
    with book_support.jupyterlab(root, tmp_path, env) as (base, token):
        browser = book_support.Chromium(binary, tmp_path / "chromium-profile", width=1400, height=1000)
        try:
            browser.open_tab()
            browser.navigate(f"{base}/lab/tree/{urllib.parse.quote(path.name)}?token={token}", timeout=180)
            opened = browser.evaluate(lab_support.OPENED_JS % {"ms": 180000}, timeout=210)
            assert opened.get("notebook") and opened.get("kernel") == "python3", opened
            finished = browser.evaluate(lab_support.RUN_ALL_JS % {"ms": 480000}, timeout=510)
            cells = browser.evaluate(lab_support.CELLS_JS)
            assert finished, f"the notebook did not finish: {cells}"
            errors = [(c["index"], c["errors"]) for c in cells["cells"] if c["errors"]]
            # only the exercise check may stop, at the stub
            assert all(all(e.startswith("NotImplementedError") for e in errs) for _, errs in errors), errors
            time.sleep(1)
            seen = browser.evaluate(lab_support.RENDER_JS % {"ms": 180000}, timeout=240)
            browser.screenshot(book_support.SCREENSHOTS / f"lab__student_01_soft_mdps__{front_end}.png")
        finally:
            browser.close()
    if front_end == "plain":
        assert seen["myst"] == 0, "jupyterlab-myst rendered cells although it was disabled: the test sees no plain lab"
    else:
        assert seen["myst"] == seen["markdown"], f"jupyterlab-myst rendered {seen['myst']} of {seen['markdown']} cells"
    nb = nbformat.read(path, as_version=4)
    glued = sum(len(re.findall(r"^\s*glue\(", c.source, re.M)) for c in nb.cells if c.cell_type == "code")
    assert glued >= 4, f"chapter 1's student notebook glues {glued} figures, fewer than the book's four"
    problems = lab_support.check_rendered(seen, figures=glued, min_math=50)
    assert not problems, f"{path.name} in JupyterLab ({front_end}) does not read cleanly:\n" + "\n".join(problems)
