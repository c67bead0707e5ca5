"""One otter-grader assignment per chapter, built from the book's own sources (``make assignments``).

    python tools/otter_assignments.py [--chapters 01,04] [--out _build/assignments] [--hidden-seed N]

For each chapter ``NN_name`` this writes, under ``OUT/NN_name/``:

* ``master.ipynb``: the teacher's otter-assign notebook: the chapter as the student edition shows it (runnable
  outside the book: tools/standalone_notebook.py) and, in its Exercises section, one otter *question* per exercise;
* ``dist/student/NN_name.ipynb``: the notebook to hand out (no solutions; ``grader.check`` cells for the public
  tests);
* ``dist/autograder/NN_name-autograder_*.zip``: the autograder for Gradescope or for local grading with
  ``otter run -a ZIP SUBMISSION.ipynb`` (no Docker needed, it grades in the current environment). It is
  self-sufficient: it carries a wheel of ``sobirl_lite`` built from this checkout (under ``files/``; the student's
  folder gets none, the notebook installs the package from the book's site) and its ``environment.yml``, from
  which Gradescope's image is built, installs that wheel and the chapter's libraries at the lock's versions;
* ``dist/student/data/``, for a chapter that reads results committed with the book (chapters 8 and 9): those files,
  where the notebook's set-up cell looks for them (they are in the autograder zip too);
* ``rubric.md``: the points, the hand-grading rubric of each written or experiment exercise and its model answer.

Implementation exercises (a code cell tagged ``reference-implementation`` inside the solution) become autograded
questions. The function's body is the solution (the student gets the stub of the student edition); the tests wrap
the exercise's ``check_*`` checker of :mod:`sobirl_lite.exercises`: a *public* test with the checker's own seed (the
cases the student's check cell runs) and a *hidden* test with a different seed, so different random cases, which
only the autograder holds. The checkers refuse an answer that merely calls the package. The hidden seeds derive from
``--hidden-seed`` (``make assignments HIDDEN_SEED=...``): pick your own per course, since the default is public.

Written and experiment exercises become manually graded questions with an answer cell; their rubric and model
answer (the book's solution) go to ``rubric.md``, which stays with the teacher.
"""
from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
import standalone_notebook  # noqa: E402
import student_edition  # noqa: E402
from book_pdf import load_book_support  # noqa: E402

launch_links = standalone_notebook.launch_links     # the pins, the wheel's name, the chapter's libraries
DEFAULT_HIDDEN_SEED = 20260
OTTER_PIN = "otter-grader==7.0.0"          # as in pyproject.toml (the test extra)
POINTS = {"public": 1, "hidden": 3, "manual": 3}
CAPSTONE_POINTS = {"public": 2, "hidden": 8}   # Algorithm 1 end to end
_EXERCISE = re.compile(r"^(?P<fence>:{3,})\{exercise\}\s*(?P<title>.*)$")
_SOL_START = re.compile(r"^(?P<fence>:{3,})\{solution-start\}\s*(?P<label>\S+)")
_SOL_END = re.compile(r"^(?P<fence>:{3,})\{solution-end\}")
_CHECKER = re.compile(r"\b(check_\w+)\(")
# The kind of each written exercise that is not a derivation (book/teaching.md's table says the same; a test checks):
# an experiment runs code and reports what it shows, a calculation works a number out and checks it.
WRITTEN_KINDS = {
    "ex-ch5-2": "experiment", "ex-ch6-3": "experiment", "ex-ch7-2": "experiment",
    "ex-ch6-2": "calculation", "ex-ch8-2": "calculation", "ex-ch8-3": "calculation",
}


class AssignmentError(RuntimeError):
    """The chapter's Exercises section breaks an assumption (an exercise without a label, an unclosed solution)."""


@dataclass
class Exercise:
    """One exercise of a chapter: its statement, its solution (markdown and code cells) and its check cells."""

    label: str
    title: str
    statement: str
    solution_md: list[str] = field(default_factory=list)
    solution_code: list = field(default_factory=list)        # nbformat code cells
    checks: list = field(default_factory=list)               # cells tagged exercise-check after the solution

    @property
    def reference(self):
        refs = [c for c in self.solution_code if "reference-implementation" in c.metadata.get("tags", [])]
        return refs[0] if refs else None

    @property
    def kind(self) -> str:
        if self.reference is not None:
            return "implementation"
        return WRITTEN_KINDS.get(self.label, "derivation")

    @property
    def name(self) -> str:
        return self.label.replace("-", "_")


# ----------------------------------------------------------------------------------------------------------------
# Reading the Exercises section
def split_exercises(nb) -> tuple[list, list[Exercise]]:
    """(the cells before '## Exercises', the exercises after it), from a chapter read with its solutions."""
    cells = list(nb.cells)
    start = next((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                  and re.search(r"^## Exercises\s*$", c.source, re.M)), None)
    if start is None:
        raise AssignmentError("no '## Exercises' heading")
    head_md, _, tail = cells[start].source.partition("## Exercises")
    before = cells[:start] + ([nbformat.v4.new_markdown_cell(head_md.rstrip())] if head_md.strip() else [])
    stream = [("md", tail)] + [("md", c.source) if c.cell_type == "markdown" else ("code", c)
                               for c in cells[start + 1:]]
    exercises, current, in_solution = [], None, False
    for kind, item in stream:
        if kind == "code":
            tags = item.metadata.get("tags", [])
            if current is None:
                continue
            if in_solution:
                current.solution_code.append(item)
            elif "exercise-check" in tags:
                current.checks.append(item)
            continue
        lines, i = item.splitlines(), 0
        while i < len(lines):
            line = lines[i]
            if m := _EXERCISE.match(line):
                j = next((k for k in range(i + 1, len(lines)) if lines[k].strip() == m["fence"]), None)
                if j is None:
                    raise AssignmentError(f"exercise {m['title']!r} is not closed in one markdown cell")
                body = lines[i + 1:j]
                label = next((b.split(":", 2)[2].strip() for b in body if b.startswith(":label:")), None)
                if label is None:
                    raise AssignmentError(f"exercise {m['title']!r} has no :label:")
                text = "\n".join(b for b in body if not re.match(r"^:[\w-]+:", b)).strip()
                current = Exercise(label, m["title"].strip(), text)
                exercises.append(current)
                i = j + 1
            elif m := _SOL_START.match(line):
                in_solution = True
                i = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == m["fence"]) + 1
            elif m := _SOL_END.match(line):
                in_solution = False
                i = next(k for k in range(i + 1, len(lines)) if lines[k].strip() == m["fence"]) + 1
            else:
                if in_solution and current is not None:
                    current.solution_md.append(line)
                i += 1
    return before, exercises


# ----------------------------------------------------------------------------------------------------------------
# The master notebook
def _raw(text: str):
    return nbformat.v4.new_raw_cell(text)


def _function_name(source: str) -> str:
    names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    if not names:
        raise AssignmentError("a reference implementation without a function")
    return names[-1]


def solution_cell_source(reference: str) -> str:
    """The reference implementation with otter's markers: the body is the solution, the student sees the stub."""
    stub = student_edition.stub_source(reference).splitlines()
    tree = ast.parse(reference)
    lines = reference.splitlines()
    out, last = [], 0
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        first = node.body[1] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body[0]
        indent = " " * first.col_offset
        out += lines[last:first.lineno - 1]
        out.append(f"{indent}# BEGIN SOLUTION NO PROMPT")
        out += lines[first.lineno - 1:node.end_lineno]
        out.append(f"{indent}# END SOLUTION")
        raise_line = next(s for s in stub if s.strip().startswith("raise NotImplementedError") and
                          s.startswith(indent))
        out += [f'{indent}""" # BEGIN PROMPT', raise_line, f'{indent}""" # END PROMPT']
        last = node.end_lineno
    out += lines[last:]
    return "\n".join(out) + "\n"


def _test_cell(name: str, function: str, checker: str, points: int, hidden: bool, seed: int | None) -> str:
    seed_arg = f", seed={seed}" if seed is not None else ""
    return (f'""" # BEGIN TEST CONFIG\npoints: {points}\nhidden: {str(hidden).lower()}\n'
            f'""" # END TEST CONFIG\n'
            f"def test_{name}({function}):\n"
            f"    from sobirl_lite.exercises import {checker}\n"
            f"    {checker}({function}{seed_arg})\n\n"
            f"test_{name}({function})\n")


def question_cells(ex: Exercise, labels: dict, hidden_seed: int) -> list:
    """The otter cells of one exercise (question, prompt, solution, tests) followed by its check cells."""
    prompt = nbformat.v4.new_markdown_cell(standalone_notebook.plain_markdown(
        f"**Exercise ({ex.label}): {ex.title}.**\n\n{ex.statement}", labels))
    if ex.kind == "implementation":
        checkers = sorted({m for c in ex.checks for m in _CHECKER.findall(c.source)})
        if len(checkers) != 1:
            raise AssignmentError(f"{ex.label}: expected one check_* call after the solution; found {checkers}")
        function = _function_name(ex.reference.source)
        points = CAPSTONE_POINTS if "capstone" in ex.label else POINTS
        cells = [_raw(f"# BEGIN QUESTION\nname: {ex.name}\npoints: {points['public'] + points['hidden']}"),
                 prompt, _raw("# BEGIN SOLUTION"),
                 nbformat.v4.new_code_cell(solution_cell_source(ex.reference.source)),
                 _raw("# END SOLUTION"),
                 _raw("# BEGIN TESTS"),
                 nbformat.v4.new_code_cell(_test_cell("public", function, checkers[0], points["public"], False,
                                                      None)),
                 nbformat.v4.new_code_cell(_test_cell("hidden", function, checkers[0], points["hidden"], True,
                                                      hidden_seed)),
                 _raw("# END TESTS"), _raw("# END QUESTION")]
        for check in ex.checks:                      # the friendly check: names the case and the slip
            cell = nbformat.v4.new_code_cell(check.source)
            cell.metadata["tags"] = ["exercise-check"]
            cells.append(cell)
        return cells
    solution = [nbformat.v4.new_markdown_cell(standalone_notebook.plain_markdown("\n".join(ex.solution_md).strip(),
                                                                                labels))]
    for code in ex.solution_code:
        solution.append(nbformat.v4.new_code_cell("# BEGIN SOLUTION NO PROMPT\n" + code.source.rstrip()
                                                  + "\n# END SOLUTION\n"))
    return [_raw(f"# BEGIN QUESTION\nname: {ex.name}\nmanual: true\npoints: {POINTS['manual']}"), prompt,
            _raw("# BEGIN SOLUTION"), *solution, _raw("# END SOLUTION"), _raw("# END QUESTION")]


RUBRICS = {
    "derivation": [
        ("1", "the statement is proved for the general case asked (not only checked on examples), with each step "
              "justified by a definition, an equation of the chapter or a named result"),
        ("1", "the key step of the model answer below (or an equivalent argument) is present and correct"),
        ("1", "the numerical check runs, tests the identity or bound on random instances with a tolerance, and "
              "would fail if the statement were false"),
    ],
    "calculation": [
        ("1", "the quantities are set up correctly (the formula or schedule used is stated and is the right one)"),
        ("1", "the number is right, with its unit, to the precision the model answer gives"),
        ("1", "a code cell computes or checks it, and the answer says what follows from it"),
    ],
    "experiment": [
        ("1", "the experiment runs as asked (sizes, seeds, parameters stated) and its output is shown"),
        ("1", "the numbers or figure support the conclusion; variability over seeds or runs is reported"),
        ("1", "the interpretation matches the model answer below and says what the run cannot show"),
    ],
}


def rubric_markdown(chapter: str, exercises: list[Exercise], labels: dict, hidden_seed: int) -> str:
    out = [f"# Rubric: {labels.get(chapter, chapter)} ({chapter})", "",
           "Teacher only: this file holds the model answers. Autograded questions are scored by `otter run` or "
           "Gradescope; the others by hand with the criteria below (one point each).", ""]
    for ex in exercises:
        if ex.kind == "implementation":
            pts = CAPSTONE_POINTS if "capstone" in ex.label else POINTS
            checker = sorted({m for c in ex.checks for m in _CHECKER.findall(c.source)})
            out += [f"## {ex.label}: {ex.title} (autograded, {pts['public'] + pts['hidden']} points)", "",
                    f"* public test ({pts['public']}): `{', '.join(checker)}` with its own seed, as in the "
                    "notebook's check cell;",
                    f"* hidden test ({pts['hidden']}): the same checker with seed {hidden_seed} (other random "
                    "cases); an answer that calls `sobirl_lite` is refused.", ""]
            continue
        out += [f"## {ex.label}: {ex.title} ({ex.kind}, {POINTS['manual']} points, graded by hand)", ""]
        out += [f"* [{p}] {text}" for p, text in RUBRICS[ex.kind]]
        out += ["", "Model answer:", "",
                standalone_notebook.plain_markdown("\n".join(ex.solution_md).strip(), labels), ""]
        for code in ex.solution_code:
            out += ["```python", code.source.rstrip(), "```", ""]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# What the autograder installs
# Where the wheel sits in the zip: otter puts autograder_files under files/, and Gradescope's setup.sh runs mamba on
# /autograder/source/environment.yml, and mamba runs pip for its pip section in the folder of that file (libmamba:
# the working directory is the file's parent); so the requirement is a path relative to it.
WHEEL_IN_ZIP = "./files/{wheel}"


def grading_python() -> str:
    """The Python of the grading image: the oldest the project supports, the one the lock is resolved for."""
    spec = launch_links.project()["requires-python"]
    match = re.fullmatch(r">=\s*(\d+\.\d+)", spec.strip())
    if match is None:
        raise AssignmentError(f"requires-python {spec!r} is not of the form '>=X.Y'")
    return match[1]


def grading_requirements(book_nb, wheel: str) -> list[str]:
    """The pip requirements the autograder adds to otter's own: the wheel of sobirl_lite, then every library the
    chapter's notebook imports (the autograder runs the whole submission, not only the tests) at the version the
    book was checked with. The wheel brings its own pins (pyproject.toml), torch among them: from PyTorch's CPU
    index, which pip prefers there (2.13.0+cpu sorts above 2.13.0) over PyPI's multi-GB CUDA build."""
    pins = launch_links.pins()
    libraries = [launch_links.MODULE_DISTRIBUTIONS[m] for m in launch_links.chapter_modules(book_nb)]
    missing = [d for d in libraries if d not in pins]
    if missing:
        raise AssignmentError(f"no pin in pyproject.toml for {missing}: add them so the autograder installs "
                              "the versions the book is checked with")
    return ([f"--extra-index-url {launch_links.TORCH_INDEX}", WHEEL_IN_ZIP.format(wheel=wheel)]
            + [pins[d] for d in dict.fromkeys(libraries)])


def book_site() -> str:
    """The book's address (``html.baseurl`` of _config.yml; empty while unset), as the student edition writes it into
    the notebooks' set-up cell: from there they install sobirl_lite."""
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    return ((config.get("html") or {}).get("baseurl") or "").strip()


def chapter_data(book_nb) -> list[str]:
    """The committed results the chapter reads (``data/<folder>/...``, relative to book/): the assignment ships them
    next to the notebook, for the student and for the autograder, so neither has to fetch them from the site."""
    return launch_links.chapter_data(book_nb)


def master_notebook(doc: str, docs: list[str], labels: dict, hidden_seed: int, wheel: str | None = None):
    """(the otter-assign master notebook, the exercises) of one chapter (``doc`` like ``book/01_soft_mdps``).

    ``wheel`` is the file name of the sobirl_lite wheel that :func:`build` puts next to the master notebook
    (default: the name setuptools gives it)."""
    book = load_book_support().read_notebook(REPO / f"{doc}.md")
    before, exercises = split_exercises(book)
    head = nbformat.v4.new_notebook(cells=before, metadata=dict(book.metadata))
    head = standalone_notebook.standalone(student_edition.student_notebook(head), docs, book_site(), labels=labels)
    name = Path(doc).name
    wheel = wheel or launch_links.wheel_name()
    settings = {
        "name": name, "run_tests": False, "init_cell": False, "check_all_cell": False, "export_cell": False,
        "solutions_pdf": False, "template_pdf": False, "save_environment": False, "generate": True,
        "tests": {"files": False, "ok_format": False},
        # the grading image: its Python, and what it installs besides otter (see grading_requirements)
        "python_version": grading_python(),
        "requirements": grading_requirements(book, wheel),
        # into the zip only: a file listed under `files` would be copied to the student's folder as well, where the
        # notebook's set-up cell does not look for it (it installs from the book's site)
        "autograder_files": [wheel],
    }
    if chapter_data(book):          # the folder build() copies them into: to the student's folder and the zip
        settings["files"] = ["data"]
    config = "# ASSIGNMENT CONFIG\n" + yaml.safe_dump(settings, sort_keys=False, width=1000)
    # after the set-up cell (which installs sobirl_lite): otter, and the grader of the public tests
    init = nbformat.v4.new_code_cell(
        "# otter-grader runs the public tests of this assignment (the grader.check cells below)\n"
        "if importlib.util.find_spec(\"otter\") is None:\n"
        f"    pip_install({OTTER_PIN!r})\n"
        "import otter\n\n"
        f"grader = otter.Notebook({name + '.ipynb'!r})\n")
    cells = [_raw(config), *head.cells[:2], init, *head.cells[2:], nbformat.v4.new_markdown_cell("## Exercises")]
    for k, ex in enumerate(exercises):
        cells += question_cells(ex, labels, hidden_seed + k)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=head.metadata)
    return nb, exercises


def build_wheel(dest: Path) -> Path:
    """The sobirl_lite wheel of this checkout, built into ``dest`` (the book's own build: live_widgets)."""
    wheel = launch_links.live_widgets.build_wheel(dest)
    if wheel.name != launch_links.wheel_name():
        raise AssignmentError(f"the wheel is {wheel.name}, expected {launch_links.wheel_name()}")
    return wheel


def build(doc: str, out: Path, docs: list[str], labels: dict, hidden_seed: int,
          wheel: Path | None = None) -> dict[str, Path]:
    """Write the master notebook and run ``otter assign``; returns the paths of what it made.

    ``wheel``: a sobirl_lite wheel already built (by :func:`build_wheel`), to ship in the autograder; without it
    one is built."""
    name = Path(doc).name
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if wheel is None:
        wheel = build_wheel(folder)
    else:
        if not wheel.is_file():
            raise AssignmentError(f"no wheel at {wheel}")
        shutil.copy2(wheel, folder / wheel.name)
    nb, exercises = master_notebook(doc, docs, labels, hidden_seed, wheel=wheel.name)
    for path in chapter_data(load_book_support().read_notebook(REPO / f"{doc}.md")):
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "book" / path, folder / path)
    master = folder / f"{name}.ipynb"
    nbformat.write(nb, master)
    (folder / "rubric.md").write_text(rubric_markdown(name, exercises, labels, hidden_seed), encoding="utf-8")
    otter = Path(sys.executable).with_name("otter")
    proc = subprocess.run([str(otter) if otter.exists() else "otter", "assign", "--no-run-tests", "--no-pdfs",
                           master.name, "dist"], cwd=folder, capture_output=True, text=True)
    (folder / "assign.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AssignmentError(f"otter assign failed for {name}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    zips = sorted((folder / "dist" / "autograder").glob("*.zip"))
    if not zips:
        raise AssignmentError(f"otter assign wrote no autograder zip for {name}")
    student = folder / "dist" / "student"
    if any(student.rglob("*.whl")):     # what goes there is handed out as it is: only what students need
        raise AssignmentError(f"otter assign put the sobirl_lite wheel into {student}")
    return {"master": master, "student": student / f"{name}.ipynb", "autograder": zips[-1],
            "rubric": folder / "rubric.md", "wheel": folder / wheel.name}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chapters", default="", help="comma-separated chapter numbers (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "_build" / "assignments")
    parser.add_argument("--hidden-seed", type=int, default=DEFAULT_HIDDEN_SEED,
                        help="base of the hidden tests' seeds (choose your own per course)")
    args = parser.parse_args(argv)
    support = load_book_support()
    docs = support.toc_files(REPO / "_toc.yml")
    chapters = [d for d in docs if re.match(r"\d\d_", Path(d).name)]
    if args.chapters:
        wanted = {c.strip().zfill(2) for c in args.chapters.split(",")}
        chapters = [d for d in chapters if Path(d).name[:2] in wanted]
    labels = standalone_notebook.book_labels(docs)
    out = args.out.resolve()
    wheel = build_wheel(out / "_wheel")              # one build for every chapter
    for k, doc in enumerate(chapters):
        made = build(doc, out, docs, labels, args.hidden_seed + 100 * k, wheel=wheel)
        print(f"{Path(doc).name}: student {made['student']}, autograder {made['autograder'].name}, "
              f"rubric {made['rubric'].name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
