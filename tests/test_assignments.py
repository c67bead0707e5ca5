"""`make assignments` (tools/otter_assignments.py): one otter-grader assignment per chapter, graded end to end.

* Fast, every chapter: the master notebook turns each exercise into an otter question (implementation exercises
  autograded with a public and a hidden test, the hidden one on another seed; written and experiment exercises
  manual, with an answer cell and a rubric), and no solution reaches the student notebook.
* Slow, chapter 1: `otter assign` builds the student notebook and the autograder zip; `otter run` (no Docker)
  grades a correct submission 4/4 and a submission tuned to pass only the public cases 1/4 (the hidden test, on
  other random cases, catches it).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest

import book_support
from book_support import REPO

if str(REPO / "tools") not in sys.path:
    sys.path.insert(0, str(REPO / "tools"))
import otter_assignments  # noqa: E402

DOCS = book_support.toc_files()
CHAPTERS = [d for d in DOCS if re.match(r"\d\d_", d.split("/")[-1])]
OTTER = shutil.which("otter", path=str(REPO / ".venv" / "bin")) or shutil.which("otter")


@pytest.fixture(scope="module")
def labels():
    return otter_assignments.standalone_notebook.book_labels(DOCS)


@pytest.mark.parametrize("doc", CHAPTERS, ids=[d.split("/")[-1][:2] for d in CHAPTERS])
def test_every_exercise_becomes_a_question(doc, labels):
    nb, exercises = otter_assignments.master_notebook(doc, DOCS, labels, hidden_seed=777)
    assert exercises, f"{doc}: no exercise found"
    raw = [c.source for c in nb.cells if c.cell_type == "raw"]
    assert raw[0].startswith("# ASSIGNMENT CONFIG")
    questions = [r for r in raw if r.startswith("# BEGIN QUESTION")]
    assert len(questions) == len(exercises)
    implementation = [e for e in exercises if e.kind == "implementation"]
    assert implementation, f"{doc}: no autograded exercise"
    tests = [c.source for c in nb.cells if c.cell_type == "code" and "# BEGIN TEST CONFIG" in c.source]
    assert len(tests) == 2 * len(implementation)
    hidden = [t for t in tests if "hidden: true" in t]
    assert len(hidden) == len(implementation) and all(re.search(r"seed=\d+\)", t) for t in hidden)
    assert all("seed=" not in t for t in tests if t not in hidden)        # the public test: the checker's seed
    manual = [q for q in questions if "manual: true" in q]
    assert len(manual) == len(exercises) - len(implementation)
    rubric = otter_assignments.rubric_markdown(doc.split("/")[-1], exercises, labels, 777)
    for ex in exercises:
        assert ex.label in rubric
    # nothing of MyST is left for a plain front end, and the book's macros are expanded
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.search(r"^:{3,}\{|\{(doc|ref|numref|cite:p|cite:t|prf:ref)\}`", text, re.M)
    assert not re.search(r"\\(pistar|Vstar|Qstar|Simplex|Hent|softmax)(?![A-Za-z])", text)
    assert not any("from myst_nb import" in c.source for c in nb.cells if c.cell_type == "code")


def test_the_solution_cell_shows_the_stub_to_students():
    ref = 'def f(a, b):\n    """Doc."""\n    c = a + b\n    return c\n'
    src = otter_assignments.solution_cell_source(ref)
    assert "# BEGIN SOLUTION NO PROMPT" in src and "# END SOLUTION" in src and "# BEGIN PROMPT" in src
    compile(src, "<solution>", "exec")                          # the teacher's version runs as it stands


# ---------------------------------------------------------------------------------------------------------------
# End to end with otter
def _public_gammas(n_cases: int = 8, seed: int = 0) -> list[float]:
    """The discount factors of check_soft_bellman's public cases (its first random draws)."""
    from sobirl_lite import exercises

    return [g for _, _, g, _ in exercises._sizes(np.random.default_rng(seed), n_cases)]


SOLUTION = """\
    m = Q.max(axis=1)
    V = m + tau * np.log(np.exp((Q - m[:, None]) / tau).sum(axis=1))
    return r + gamma * P @ V"""
# Right on the public cases only: it recognises them by their discount factors and leaves gamma out elsewhere.
TUNED = """\
    m = Q.max(axis=1)
    V = m + tau * np.log(np.exp((Q - m[:, None]) / tau).sum(axis=1))
    public = %r
    if any(abs(gamma - g) < 1e-12 for g in public):
        return r + gamma * P @ V
    return r + P @ V"""


def _submission(student, body: str, path):
    nb = nbformat.read(student, as_version=4)
    stubs = [c for c in nb.cells if c.cell_type == "code" and "def soft_bellman_np" in c.source]
    assert len(stubs) == 1 and "raise NotImplementedError" in stubs[0].source
    stubs[0].source = re.sub(r"^    raise NotImplementedError\(.*\)$", body, stubs[0].source, flags=re.M)
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_otter_grades_a_correct_and_a_tuned_submission(tmp_path):
    if OTTER is None:
        pytest.skip("otter-grader is not installed (make setup installs it)")
    made = otter_assignments.build("book/01_soft_mdps", tmp_path / "assignments", DOCS,
                                   otter_assignments.standalone_notebook.book_labels(DOCS), hidden_seed=4242)
    student = made["student"]
    text = "\n".join(c.source for c in nbformat.read(student, as_version=4).cells) + student.read_text()
    assert "seed=4242" not in text and "return r + gamma * P @ V" not in text     # hidden test, solution
    assert "raise NotImplementedError" in text and 'grader.check("ex_ch1_implement")' in text
    assert "Model answer" in made["rubric"].read_text(encoding="utf-8")
    _, exercises = otter_assignments.split_exercises(book_support.read_notebook(REPO / "book" / "01_soft_mdps.md"))
    solution_lines = [ln.strip() for ex in exercises for ln in ex.solution_md if len(ln.strip()) > 40]
    solution_lines += [ln.strip() for ex in exercises for c in ex.solution_code if ex.kind != "implementation"
                       for ln in c.source.splitlines() if len(ln.strip()) > 30]
    assert len(solution_lines) > 10
    leaked = [ln for ln in solution_lines if ln in text]
    assert not leaked, f"solution text in the student notebook: {leaked[:3]}"
    scores = {}
    for name, body in (("correct", SOLUTION), ("tuned", TUNED % (_public_gammas(),))):
        sub = _submission(student, body, tmp_path / f"{name}.ipynb")
        out = tmp_path / f"results-{name}"
        out.mkdir()
        proc = subprocess.run([OTTER, "run", "-a", str(made["autograder"]), "-o", str(out), "--no-logo", str(sub)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=900,
                              env={**__import__("os").environ, "SOBIRL_BUDGET": "quick"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results = json.loads((out / "results.json").read_text())
        scores[name] = {t["name"]: (t.get("score"), t.get("max_score")) for t in results["tests"]}
    assert scores["correct"]["ex_ch1_implement"] == (4, 4), scores
    assert scores["tuned"]["ex_ch1_implement"] == (1, 4), scores           # public 1 point, hidden 0 of 3
