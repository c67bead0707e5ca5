"""The student edition of the book: the same pages with every solution and reference implementation taken out.

    python tools/student_edition.py [--executed DIR] [--out DIR] [--no-html]
    python tools/student_edition.py --out DIR --print-pdf FILE.pdf   (make student-pdf: prints DIR/html)

What changes, page by page (everything else is copied as is):

* a gated solution (``solution-start`` ... ``solution-end`` of sphinx-exercise) is removed with everything inside
  it: the worked text, its check cells and their outputs; a plain ``solution`` directive likewise;
* a code cell tagged ``reference-implementation`` (it sits inside a solution) becomes a stub with the same
  signature and docstring whose body raises ``NotImplementedError``;
* a code cell tagged ``exercise-check`` (it calls a checker of ``sobirl_lite.exercises``) loses its output and is
  tagged ``raises-exception``: until the student fills in the stub it stops with ``NotImplementedError``, which
  nbval and myst-nb accept for cells with that tag;
* a cell tagged ``remove-in-student`` is dropped; the teacher's page is left out of the table of contents.

Execution is reused, not repeated: when ``--executed`` names the ``jupyter_execute`` folder of a book build (``make
book`` writes ``_build/jupyter_execute``), each chapter is taken from there with its outputs and widget state, and
the student book is built with execution switched off. The pages outside the Exercises sections are identical to
the executed book's, so their outputs are the book's own. Without ``--executed`` the chapters are read from their
MyST sources and executed by the build.

Standalone notebooks: ``OUT/notebooks/book/*.ipynb`` are the same student notebooks rewritten by
``tools/standalone_notebook.py`` to run and read outside the book (plain Jupyter, JupyterLab, Colab): a first cell
that installs ``sobirl_lite`` from the site's wheel and picks the quick budget, no ``myst_nb`` import, directives,
roles and macros as plain markdown and math, glued figures shown where they are computed. They replace the
``.ipynb`` downloads of the student HTML (``html/_sources``), so a student who downloads a page gets one that runs.

Output: ``OUT/src`` (the sources the student HTML is built from), ``OUT/notebooks`` and ``OUT/html``.
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
from book_pdf import load_book_support  # noqa: E402  (the tests' reader of _toc.yml: one copy)
import standalone_notebook  # noqa: E402
TEACHER_ONLY = {"book/teaching"}      # toc entries left out of the student edition
STUB_MESSAGE = "Exercise: replace this line with your implementation."

# Opening and closing fences of the directives that hold solutions. A fence is 3 or more colons or backticks.
_SOLUTION_START = re.compile(r"^(?P<fence>:{3,}|`{3,})\{solution-start\}")
_SOLUTION_END = re.compile(r"^(?P<fence>:{3,}|`{3,})\{solution-end\}")
_SOLUTION = re.compile(r"^(?P<fence>:{3,}|`{3,})\{solution\}")
# The older chapter template: a solution in a dropdown admonition, its check cell right after it.
_ADMONITION_SOLUTION = re.compile(r"^(?P<fence>:{3,}|`{3,})\{admonition\}\s*Solution")


class StudentEditionError(RuntimeError):
    """The sources break an assumption of the conversion (an unclosed solution, a stub that is not a function)."""


# ---------------------------------------------------------------------------------------------------------------
# One notebook
def stub_source(source: str) -> str:
    """A reference implementation with every top-level function body replaced by ``raise NotImplementedError``.

    The signature and docstring stay (the student needs them); nothing of the body does. Only function definitions
    (and imports) may appear in such a cell, so that no part of the answer can hide in module-level code.
    """
    tree = ast.parse(source)
    out = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(ast.unparse(node))
            continue
        if not isinstance(node, ast.FunctionDef):
            raise StudentEditionError("a reference-implementation cell may hold only imports and function "
                                      f"definitions; found {type(node).__name__} at line {node.lineno}")
        lines = source.splitlines()
        body_start = node.body[0].lineno
        doc = ast.get_docstring(node, clean=False)
        header = "\n".join(lines[node.lineno - 1 - len(node.decorator_list):body_start - 1])
        if doc is not None:     # keep the docstring as written (its quotes and line breaks)
            first = node.body[0]
            header += "\n" + "\n".join(lines[first.lineno - 1:first.end_lineno])
        indent = " " * (node.body[0].col_offset)
        out.append(f"{header}\n{indent}raise NotImplementedError({STUB_MESSAGE!r})")
    return "\n\n\n".join(out) + "\n"


def _strip_solutions_from_markdown(text: str, in_solution: bool) -> tuple[str, bool, bool]:
    """Remove solution directives from one markdown cell; ``in_solution`` carries a gated solution across cells.

    The third value says whether the cell ends with an old-style solution admonition, whose check cells follow.
    """
    kept, lines, i = [], text.splitlines(), 0
    ends_with_admonition = False
    while i < len(lines):
        line = lines[i]
        if in_solution:
            m = _SOLUTION_END.match(line)
            if m:
                i = _skip_directive(lines, i, m.group("fence"))
                in_solution = False
            else:
                i += 1
            continue
        m = _SOLUTION_START.match(line)
        if m:
            i = _skip_directive(lines, i, m.group("fence"))
            in_solution = True
            continue
        m = _SOLUTION.match(line) or _ADMONITION_SOLUTION.match(line)
        if m:
            i = _skip_directive(lines, i, m.group("fence"))
            ends_with_admonition = bool(_ADMONITION_SOLUTION.match(line))
            continue
        if line.strip():
            ends_with_admonition = False
        kept.append(line)
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n"), in_solution, ends_with_admonition


def _skip_directive(lines: list[str], i: int, fence: str) -> int:
    """Index of the line after the directive opened at ``lines[i]`` with ``fence``."""
    for j in range(i + 1, len(lines)):
        if lines[j].strip() == fence:
            return j + 1
    raise StudentEditionError(f"directive opened with {fence!r} is never closed: {lines[i]!r}")


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def student_notebook(nb):
    """The student version of one notebook (a new object; ``nb`` is left alone)."""
    nb = nbformat.from_dict(copy.deepcopy(nb))
    out, in_solution, stubs, after_admonition = [], False, 0, False
    for cell in nb.cells:
        tags = _tags(cell)
        if "remove-in-student" in tags:
            continue
        if cell.cell_type == "markdown":
            text, in_solution, after_admonition = _strip_solutions_from_markdown(cell.source, in_solution)
            if text.strip():
                cell.source = text
                out.append(cell)
            continue
        if after_admonition and cell.cell_type == "code" and "exercise-check" not in tags:
            continue                          # the check cells of an old-style solution
        if cell.cell_type != "code":
            if not in_solution:
                out.append(cell)
            continue
        if "reference-implementation" in tags:
            if not in_solution:
                raise StudentEditionError("a reference-implementation cell must sit inside a solution")
            stub = nbformat.v4.new_code_cell(stub_source(cell.source))
            stub.metadata["tags"] = ["exercise-stub"]
            out.append(stub)
            stubs += 1
            continue
        if in_solution:
            continue
        if "exercise-check" in tags:
            cell.outputs, cell.execution_count = [], None
            cell.metadata["tags"] = sorted(set(tags) | {"raises-exception"})
        out.append(cell)
    if in_solution:
        raise StudentEditionError("a solution-start has no solution-end")
    nb.cells = out
    nb.metadata.setdefault("sobirl", {})["student_edition"] = {"stubs": stubs}
    return nb


# ---------------------------------------------------------------------------------------------------------------
# The whole book
def _drop_from_toc(toc: dict, docs: set[str]) -> dict:
    def keep(entries):
        out = []
        for entry in entries or []:
            if entry.get("file") in docs:
                continue
            if "sections" in entry:
                entry = {**entry, "sections": keep(entry["sections"])}
            out.append(entry)
        return out

    toc = dict(toc)
    if "parts" in toc:
        toc["parts"] = [dict(part, chapters=keep(part.get("chapters"))) for part in toc["parts"]]
        toc["parts"] = [part for part in toc["parts"] if part["chapters"]]
    if "chapters" in toc:
        toc["chapters"] = keep(toc["chapters"])
    return toc


def _is_notebook(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return text.startswith("---\n") and "\nkernelspec:" in text.split("\n---", 1)[0]


def _restore_glue(nb, glue_json: Path) -> None:
    """Put back the glued outputs (figures pasted by ``glue:figure``) that myst-nb moved out of an executed notebook.

    myst-nb stores them in ``NAME.glue.json`` beside the executed notebook; a build with execution off reads them
    from the notebook's outputs instead. They go, with their original mime prefix (which Jupyter does not display),
    into the first code cell.
    """
    if not glue_json.exists():
        return
    import json

    records = json.loads(glue_json.read_text(encoding="utf-8"))
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    if first is None or not records:
        return
    for output in records.values():
        prefix = output.get("metadata", {}).get("scrapbook", {}).get("mime_prefix", "")
        output = dict(output, data={prefix + k: v for k, v in output["data"].items()})
        first.outputs.append(nbformat.from_dict(output))


def write_sources(out: Path, executed: Path | None) -> list[Path]:
    """Write the student sources into ``out`` (emptied first). Returns the student notebooks written."""
    import jupytext

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    docs = [d for d in load_book_support().toc_files(REPO / "_toc.yml") if d not in TEACHER_ONLY]
    written = []
    for doc in docs:
        src = REPO / f"{doc}.md"
        dst = out / src.relative_to(REPO)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not _is_notebook(src):
            shutil.copy2(src, dst)
            continue
        done = executed / f"{Path(doc).relative_to('book')}.ipynb" if executed else None
        if done is not None and done.exists():
            if done.stat().st_mtime < src.stat().st_mtime:
                raise StudentEditionError(f"{done} is older than {src}: rebuild the book first (make book)")
            nb = nbformat.read(done, as_version=4)
            _restore_glue(nb, done.with_suffix(".glue.json"))
        else:
            if executed is not None:
                raise StudentEditionError(f"{done} is missing: build the book first (make book)")
            nb = jupytext.read(src, fmt="md:myst")
        nb.metadata.pop("jupytext", None)       # the .ipynb is the source now, not a paired .md
        nb.metadata.pop("source_map", None)
        path = dst.with_suffix(".ipynb")
        nbformat.write(student_notebook(nb), path)
        written.append(path)
    # The rest of the book: bibliography, local extensions and data (linked, not copied), configuration.
    for name in ("book/references.bib",):
        shutil.copy2(REPO / name, out / name)
    for name in ("book/_ext", "book/data", "vendor"):
        if (REPO / name).exists():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(REPO / name, out / name)
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    (out / "_toc.yml").write_text(yaml.safe_dump(_drop_from_toc(toc, TEACHER_ONLY), sort_keys=False))
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["title"] = f"{config['title']} (student edition)"
    # The chapters are .ipynb here (the book's own config ignores notebooks, its sources being MyST .md).
    config["exclude_patterns"] = [p for p in config.get("exclude_patterns", []) if not p.endswith(".ipynb")]
    config.setdefault("execute", {})["execute_notebooks"] = "off" if executed else "force"
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["hide_solutions"] = True       # a second lock: sphinx-exercise drops any solution left over
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return written


def write_standalone(src: Path, out: Path) -> list[Path]:
    """The standalone student notebooks (see the module docstring) from the student sources in ``src``."""
    if out.exists():
        shutil.rmtree(out)
    docs = load_book_support().toc_files(REPO / "_toc.yml")
    labels = standalone_notebook.book_labels(docs)
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    site = ((config.get("html") or {}).get("baseurl") or "").strip()
    written = []
    for path in sorted((src / "book").glob("*.ipynb")):
        nb = standalone_notebook.standalone(nbformat.read(path, as_version=4), docs, site, labels)
        target = out / "book" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def build_html(src: Path, html: Path, budget: str = "full", timeout: float = 3600) -> subprocess.CompletedProcess:
    """``jupyter-book build`` of the student sources, warnings as errors; the HTML ends up in ``html``."""
    work = src.parent / "_jb"
    if work.exists():
        shutil.rmtree(work)
    jb = Path(sys.executable).with_name("jupyter-book")
    env = {**os.environ, "SOBIRL_BUDGET": budget, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    proc = subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", str(src), "-W", "-n",
                           "--keep-going", "--path-output", str(work)],
                          cwd=src, env=env, capture_output=True, text=True, timeout=timeout)
    (src.parent / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode == 0:
        if html.exists():
            shutil.rmtree(html)
        shutil.move(str(work / "_build" / "html"), html)
        shutil.rmtree(work, ignore_errors=True)
    return proc


def print_pdf(out: Path, pdf: Path, pages: list[str] | None = None) -> int:
    """Print the student HTML in ``out/html`` to ``pdf`` with tools/book_pdf.py: every page of the student toc, or
    ``pages`` (some of them: tests/test_student_pdf.py prints one chapter)."""
    import book_pdf

    toc = out / "src" / "_toc.yml"
    if not (out / "html").is_dir() or not toc.is_file():
        print(f"student edition: no student build in {out}; run make student first", file=sys.stderr)
        return 1
    student_pages = load_book_support().toc_files(toc)
    outside = [doc for doc in pages or () if doc not in student_pages]
    if outside:       # a teacher's page left in out/html by an older build must not reach the students' copy
        print(f"student edition: {outside} are not pages of the student edition", file=sys.stderr)
        return 1
    pages = list(pages) if pages else student_pages
    report = book_pdf.print_book(out / "html", pdf, pages=pages)
    bad = sorted(doc for doc, r in report.items() if r["errors"] or r["widgetsDrawn"] < r["widgets"])
    if bad:
        print(f"student edition: math errors or undrawn widgets on {bad}", file=sys.stderr)
        return 1
    print(f"student edition: wrote {pdf} ({len(pages)} documents of the student toc)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executed", type=Path, default=None,
                        help="jupyter_execute folder of a book build to reuse (e.g. _build/jupyter_execute/book)")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "student")
    parser.add_argument("--no-html", action="store_true", help="write the sources only")
    parser.add_argument("--print-pdf", type=Path, default=None,
                        help="print the student HTML already built in OUT to this PDF (nothing is rebuilt)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if args.print_pdf is not None:
        return print_pdf(out, args.print_pdf.resolve())
    notebooks = write_sources(out / "src", args.executed.resolve() if args.executed else None)
    standalone = write_standalone(out / "src", out / "notebooks")
    print(f"student edition: {len(notebooks)} notebooks in {out / 'src'}, runnable ones in {out / 'notebooks'}")
    if args.no_html:
        return 0
    proc = build_html(out / "src", out / "html", budget=os.environ.get("SOBIRL_BUDGET", "full"))
    if proc.returncode != 0:
        print((proc.stdout + proc.stderr)[-6000:], file=sys.stderr)
        print(f"student edition: the build failed (log in {out / 'build.log'})", file=sys.stderr)
        return 1
    for path in standalone:           # the page's .ipynb download: the notebook that runs outside the book
        target = out / "html" / "_sources" / "book" / path.name
        if target.parent.is_dir():
            shutil.copy2(path, target)
    print(f"student edition: HTML in {out / 'html'} (open index.html); notebooks in {out / 'notebooks' / 'book'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
