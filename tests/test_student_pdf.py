"""The student PDF (`make student-pdf`: tools/student_edition.py --print-pdf, i.e. tools/book_pdf.py on the student
HTML): one chapter of the student edition built for the tests, printed by headless Chromium.

Printing every page takes minutes, so this prints chapter 1 (figures, a widget, the exercises with their stubs)
through the same function as `make student-pdf`, and checks what a student would get: a plausible number of A4 pages,
typeset math, the implementation stub, and none of the solutions' text. The text check has a control: the exercises'
statements, taken from the same source with the same extraction, must be found in the PDF, so a check that could not
see the text at all would fail instead of passing. (Printed from the teacher's build instead, the same check finds
every one of chapter 1's solution strings.) The student build is conftest.py's, shared with tests/test_student.py.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

import book_support
import test_student                                         # the solution strings and the loaded student_edition

CHAPTER = "book/01_soft_mdps"


@pytest.fixture(scope="module")
def student_pdf(student_build, tmp_path_factory):
    proc, html = student_build
    if proc.returncode != 0:
        pytest.skip("the student edition did not build; see tests/test_student.py")
    missing = [tool for tool in ("pdfunite", "pdfinfo", "pdftotext") if shutil.which(tool) is None]
    if book_support.find_chromium() is None:
        missing.append("chromium")
    if missing:
        message = (f"{missing} not installed (Debian: apt-get install poppler-utils chromium; `make test` does it "
                   "as root)")
        if book_support.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("student-pdf") / "student.pdf"
    status = test_student.student_edition.print_pdf(html.parent, out, pages=[CHAPTER])
    assert status == 0, "tools/student_edition.py --print-pdf failed (math errors or undrawn widgets)"
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    return out, text


def _squeezed(text: str) -> str:
    """Plain quotes and dashes, no whitespace: a line wrapped in the PDF (even inside a word of a code line) and
    Sphinx's typography still match the source."""
    return book_support.plain_typography(re.sub(r"\s+", "", text))


@pytest.mark.slow
@pytest.mark.browser
def test_student_pdf_has_a_plausible_number_of_pages(student_pdf):
    path, _ = student_pdf
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    # the teacher's chapter 1 prints to about 25 A4 pages with its solutions; the student's has none of them
    assert 8 <= pages <= 60, f"{pages} pages for {CHAPTER}"


@pytest.mark.slow
@pytest.mark.browser
def test_student_pdf_has_typeset_math_and_the_stub(student_pdf):
    _, text = student_pdf
    assert "\\(" not in text and "\\frac" not in text and "$$" not in text, "TeX source left in the PDF"
    assert "NotImplementedError" in text, "the implementation exercise's stub is not printed"
    assert re.search(r"Exercise 1\.\d", text), "exercises are not numbered"


@pytest.mark.slow
@pytest.mark.browser
def test_student_pdf_holds_no_solution(student_pdf):
    _, text = student_pdf
    printed = _squeezed(text)
    secrets = test_student.secrets()[CHAPTER]
    assert len(secrets) >= 10, "too few solution strings to check against"
    leaked = [s for s in secrets if _squeezed(s) in printed]
    assert not leaked, f"text of a solution in the student PDF: {leaked[:5]}"
    # the control: the statements of the same exercises, extracted the same way, are there
    nb = book_support.read_notebook(book_support.page_source(CHAPTER))
    statements = [fragment for cell in nb.cells if cell.cell_type == "markdown"
                  for block in re.findall(r"^:{3,}\{exercise\}.*?^:{3,}$", cell.source, re.M | re.S)
                  for line in block.splitlines()[1:-1] if not line.startswith(":")
                  for fragment in test_student._plain_fragments(line)]
    missing = [s for s in statements if _squeezed(s) not in printed]
    assert len(statements) >= 3 and not missing, (
        f"{len(missing)} of {len(statements)} exercise statements not found in the PDF's text, so the leak check "
        f"above cannot be trusted: {missing[:5]}")


def test_print_pdf_refuses_a_page_outside_the_student_toc(tmp_path, capsys):
    """An older build may have left the teacher's page in the HTML folder: it is refused, not printed."""
    student_edition = test_student.student_edition
    (tmp_path / "html").mkdir()
    (tmp_path / "src").mkdir()
    toc = yaml.safe_load((book_support.REPO / "_toc.yml").read_text())
    (tmp_path / "src" / "_toc.yml").write_text(yaml.safe_dump(
        student_edition._drop_from_toc(toc, student_edition.TEACHER_ONLY)))
    assert student_edition.print_pdf(tmp_path, tmp_path / "x.pdf", pages=["book/teaching"]) == 1
    assert "not pages of the student edition" in capsys.readouterr().err
    assert not (tmp_path / "x.pdf").exists()
