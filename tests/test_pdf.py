"""The PDF route of tools/book_pdf.py (`make pdf`): a few pages of the quick test build printed by headless Chromium.

Printing the whole book takes minutes, so the test prints three pages of the toc (the introduction, the first
chapter with its figures, widget and exercises, and the notation appendix) and checks what a reader would see: a
plausible number of A4 pages, pages that are not blank once rasterised with pdftoppm, typeset math (no TeX source
left), numbered figures and cross-references, and no line running off the right margin.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import book_support
from book_support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGES = ["book/intro", "book/01_soft_mdps", "book/notation"]


def _book_pdf():
    spec = importlib.util.spec_from_file_location("book_pdf", REPO / "tools" / "book_pdf.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("book_pdf", module)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def pdf(book_build, tmp_path_factory):
    if not book_build.ok:
        pytest.skip("the book did not build cleanly; see tests/test_book_build.py")
    missing = [tool for tool in ("pdftoppm", "pdfunite", "pdfinfo", "pdftotext") if shutil.which(tool) is None]
    if book_support.find_chromium() is None:
        missing.append("chromium")
    if missing:
        message = f"{missing} not installed (Debian: apt-get install poppler-utils chromium; `make test` does it as root)"
        if book_support.IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("pdf") / "book.pdf"
    report = _book_pdf().print_book(book_build.html, out, pages=PAGES)
    return out, report


def _pages(path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def test_pdf_has_a_plausible_number_of_pages(pdf):
    path, report = pdf
    n = _pages(path)
    # intro ~4, chapter 1 ~25 (figures, widget frame, exercises with their solutions), notation ~3
    assert 15 <= n <= 80, f"{n} pages for {PAGES}"
    assert all(r["errors"] == 0 for r in report.values()), report
    assert all(r["widgetsDrawn"] == r["widgets"] for r in report.values()), report


def test_pdf_pages_are_not_blank(pdf, tmp_path):
    path, _ = pdf
    n = _pages(path)
    for page in sorted({1, 2, n // 2, n - 1}):
        subprocess.run(["pdftoppm", "-r", "40", "-gray", "-f", str(page), "-l", str(page), str(path),
                        str(tmp_path / "p")], check=True)
        png = sorted(tmp_path.glob("p-*.pgm")) or sorted(tmp_path.glob("p*.pgm"))
        assert png, "pdftoppm wrote nothing"
        data = png[-1].read_bytes()
        # binary PGM: "P5\n<w> <h>\n255\n" then one byte per pixel
        header = re.match(rb"P5\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
        pixels = np.frombuffer(data[header.end():], dtype=np.uint8)
        ink = float(np.mean(pixels < 200))
        assert ink > 0.01, f"page {page} is (nearly) blank: {ink:.2%} of its pixels are dark"
        png[-1].unlink()


def test_pdf_text_has_typeset_math_and_numbered_references(pdf):
    path, _ = pdf
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "\\(" not in text and "\\frac" not in text and "$$" not in text, "TeX source left in the PDF"
    assert re.search(r"Fig\. 1\.\d", text), "no numbered figure reference"
    assert re.search(r"Exercise 1\.\d", text), "exercises are not numbered"
    assert "Soft MDPs" in text or "soft" in text.lower()


def test_pdf_lines_stay_inside_the_page(pdf):
    """pdftotext -bbox gives every word's box: none may end beyond the right edge of the page."""
    path, _ = pdf
    xml = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, text=True, check=True).stdout
    clipped = []
    for page in re.finditer(r'<page width="([\d.]+)" height="[\d.]+">(.*?)</page>', xml, re.S):
        width = float(page.group(1))
        for word in re.finditer(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)"[^>]*>([^<]*)</word>',
                                page.group(2)):
            if float(word.group(2)) > width - 5:
                clipped.append(word.group(3))
    assert not clipped, f"{len(clipped)} words reach the right edge of the page: {clipped[:10]}"
