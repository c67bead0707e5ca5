"""Static checks on the book sources: the toc, the chapter template, tags, citations and macros (fast, no kernel)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

import book_support
from book_support import BOOK, REPO

TOC_DOCS = book_support.toc_files()
NOTEBOOKS = book_support.notebook_pages()
CHAPTERS = [doc for doc in TOC_DOCS if book_support.CHAPTER_FILE.match(book_support.page_source(doc).name)]


def _config() -> dict:
    return yaml.safe_load((REPO / "_config.yml").read_text())


def test_every_toc_entry_exists():
    missing = [doc for doc in TOC_DOCS if not book_support.page_source(doc).exists()]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    assert len(TOC_DOCS) == len(set(TOC_DOCS)), "a page is listed twice in _toc.yml"


def test_every_numbered_chapter_is_in_the_toc():
    """only_build_toc_files would silently skip a chapter that was written but never added to _toc.yml."""
    listed = {book_support.page_source(doc).resolve() for doc in TOC_DOCS}
    drafts = [p.name for p in sorted(BOOK.glob("*.md")) if book_support.CHAPTER_FILE.match(p.name)]
    unlisted = [name for name in drafts if (BOOK / name).resolve() not in listed]
    assert not unlisted, f"chapters missing from _toc.yml (uncomment their lines): {unlisted}"


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_notebook_front_matter(docname):
    fm = book_support.front_matter(book_support.page_source(docname))
    rep = fm.get("jupytext", {}).get("text_representation", {})
    assert rep.get("format_name") == "myst", f"{docname}: jupytext front matter must declare format_name: myst"
    assert fm["kernelspec"].get("name") == "python3", f"{docname}: kernelspec name must be python3"


@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_skip_execution_cells_are_also_skipped_by_nbval(docname):
    """nbval ignores the `skip-execution` tag that myst-nb honours, so such a cell would run in the tests."""
    nb = book_support.read_notebook(book_support.page_source(docname))
    bad = [i for i, cell in enumerate(nb.cells)
           if cell.cell_type == "code" and "skip-execution" in book_support.cell_tags(cell)
           and "nbval-skip" not in book_support.cell_tags(cell)]
    assert not bad, f"{docname}: code cells {bad} are tagged skip-execution but not nbval-skip"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_follows_the_template(docname):
    """Each chapter opens with what the reader will learn and ends with exercises (book/CONTRIBUTING-chapters.md)."""
    text = book_support.page_source(docname).read_text(encoding="utf-8")
    body = text.split("\n---", 1)[1] if text.startswith("---") else text
    head = "\n".join(body.strip().splitlines()[:30])
    assert "What you will learn" in head, f"{docname}: open with a 'What you will learn' admonition"
    assert re.search(r"^##\s+Exercises", body, re.M), f"{docname}: needs an '## Exercises' section"
    assert re.search(r":class:\s*dropdown", body), f"{docname}: exercise solutions go in dropdowns"
    assert "assert" in body, f"{docname}: solutions and claims are checked by asserts"


@pytest.mark.parametrize("docname", TOC_DOCS)
def test_no_tag_inside_a_split_equation(docname):
    """Sphinx wraps a $$ block containing \\\\ in `split`, where MathJax rejects \\tag (see CONTRIBUTING-chapters.md)."""
    text = book_support.page_source(docname).read_text(encoding="utf-8")
    bad = [block.strip()[:80] for block in re.findall(r"^\$\$\s*\n(.*?)\n\$\$", text, re.M | re.S)
           if "\\\\" in block and "\\tag" in block]
    assert not bad, (f"{docname}: \\tag in a multi-line $$ block renders as a MathJax error; use a bare "
                     f"\\begin{{equation*}}...\\tag{{N}}\\end{{equation*}} block instead: {bad}")


@pytest.mark.parametrize("docname", TOC_DOCS)
def test_tagged_equations_are_not_numbered_twice(docname):
    """An unstarred amsmath environment gets Sphinx's number (e.g. "(6.2)") beside its \\tag (the paper's "(15)")."""
    text = book_support.page_source(docname).read_text(encoding="utf-8")
    bad = [m.group(0)[:60] for m in re.finditer(r"\\begin\{(equation|align|gather|multline)\}(.*?)\\end\{\1\}",
                                                 text, re.S) if "\\tag" in m.group(2)]
    assert not bad, f"{docname}: a tagged equation in an unstarred environment shows two numbers; star it: {bad}"


@pytest.mark.parametrize("docname", TOC_DOCS)
def test_code_lines_fit_the_column(docname):
    """Code cells are shown as written: a line over 88 columns scrolls sideways (the browser test measures the same
    on the rendered page; this catches it without building the book)."""
    text = book_support.page_source(docname).read_text(encoding="utf-8")
    long = [line.strip()[:60] for cell in re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```", text, re.M | re.S)
            for line in cell.splitlines() if len(line) > 88]
    assert not long, f"{docname}: code lines over 88 columns: {long}"


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(encoding="utf-8"), re.M))


def test_every_citation_key_is_in_the_bibliography():
    keys = _bib_keys()
    assert "yang2024sobirl" in keys
    for doc in TOC_DOCS:
        text = book_support.page_source(doc).read_text(encoding="utf-8")
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
            for key in (k.strip() for k in group.split(",")):
                assert key in keys, f"{doc}: cites {key!r}, which is not in book/references.bib"


def test_notation_macros_are_defined():
    """The macros the notation appendix advertises exist in _config.yml's MathJax configuration."""
    macros = _config()["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    advertised = set(re.findall(r"`\\([A-Za-z]+)(?:\{[^`]*\})?`", (BOOK / "notation.md").read_text()))
    assert advertised, "notation.md lists no macros"
    missing = sorted(advertised - set(macros))
    assert not missing, f"notation.md names macros that _config.yml does not define: {missing}"


def test_execution_errors_fail_the_build():
    """Guard the settings that make a failing cell fail `make book` instead of rendering a traceback."""
    execute = _config()["execute"]
    assert execute["execute_notebooks"] == "cache"   # tools/execute_book.py clears it when the package changes
    assert execute["allow_errors"] is False
    assert execute["raise_on_error"] is True


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_no_ipynb_is_committed():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert not tracked, f".md is the only source; remove these notebooks from git: {tracked}"
