"""`make assignments` (tools/otter_assignments.py): one otter-grader assignment per chapter, graded end to end.

* Fast, every chapter: the master notebook turns each exercise into an otter question (implementation exercises
  autograded with a public and a hidden test, the hidden one on another seed; written and experiment exercises
  manual, with an answer cell and a rubric), and no solution reaches the student notebook.
* Fast, every chapter: the autograder's requirements name the shipped sobirl_lite wheel and pin the chapter's
  libraries at the lock's versions.
* Slow, chapter 1, built once: `otter assign` builds the student notebook (no solution, no wheel) and the autograder
  zip. `otter run` (no Docker) grades a submission tuned to pass only the public cases 1/4 (the hidden test, on
  other random cases, catches it) in the test environment; and the zip proves self-sufficient: its requirements
  installed into an environment without the checkout, `otter run` there grades a correct submission 4/4 with the
  sobirl_lite of the shipped wheel.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

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


def _lock_versions() -> dict[str, str]:
    """name -> version of every package in requirements-lock.txt (names normalised as pip does)."""
    text = (REPO / "requirements-lock.txt").read_text()
    return {re.sub(r"[-_.]+", "-", m[1]).lower(): m[2]
            for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)==([^\s;]+)", text, re.M)}


@pytest.mark.parametrize("doc", CHAPTERS, ids=[d.split("/")[-1][:2] for d in CHAPTERS])
def test_the_autograder_installs_the_wheel_and_the_locked_libraries(doc, labels):
    nb, _ = otter_assignments.master_notebook(doc, DOCS, labels, hidden_seed=777, wheel="sobirl_lite-9.9-x.whl")
    config = yaml.safe_load(nb.cells[0].source.removeprefix("# ASSIGNMENT CONFIG"))
    assert config["autograder_files"] == ["sobirl_lite-9.9-x.whl"]          # the zip's files/, never the student's
    data = otter_assignments.chapter_data(book_support.read_notebook(REPO / f"{doc}.md"))
    assert config.get("files") == (["data"] if data else None)     # results the chapter reads: to both
    reqs = config["requirements"]
    assert "./files/sobirl_lite-9.9-x.whl" in reqs
    pins = dict(r.split("==") for r in reqs if "==" in r)
    assert {"numpy", "scipy"} <= set(pins), reqs
    lock = _lock_versions()
    wrong = {name: (version, lock.get(name)) for name, version in pins.items() if lock.get(name) != version}
    assert not wrong, f"pins that differ from requirements-lock.txt (pin, lock): {wrong}"
    assert config["python_version"] == "3.11"                 # requires-python's, the lock's resolution


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


@pytest.fixture(scope="module")
def chapter1(tmp_path_factory, labels):
    """Chapter 1's assignment, built once for the tests below (hidden seed 4242)."""
    if OTTER is None:
        pytest.skip("otter-grader is not installed (make setup installs it)")
    return otter_assignments.build("book/01_soft_mdps", tmp_path_factory.mktemp("assignments"), DOCS, labels,
                                   hidden_seed=4242)


def _otter_run(otter: list[str], made, submission, out, cwd, env=None):
    """Grade SUBMISSION with `otter run` against the chapter's zip; (score, max score) per question."""
    out.mkdir()
    proc = book_support.run_starting_kernels([*otter, "run", "-a", str(made["autograder"]), "-o", str(out),
                                              "--no-logo", str(submission)], cwd=cwd, timeout=900,
                                             env={**(env or os.environ), "SOBIRL_BUDGET": "quick"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: (t.get("score"), t.get("max_score")) for t in results["tests"]}


@pytest.mark.slow
def test_the_student_notebook_holds_no_solution_and_no_wheel(chapter1):
    made = chapter1
    student = made["student"]
    text = "\n".join(c.source for c in nbformat.read(student, as_version=4).cells) + student.read_text()
    assert "seed=4242" not in text and "return r + gamma * P @ V" not in text     # hidden test, solution
    assert "raise NotImplementedError" in text and 'grader.check("ex_ch1_implement")' in text
    assert "Model answer" in made["rubric"].read_text(encoding="utf-8")
    assert not list(student.parent.rglob("*.whl"))             # the wheel is the autograder's alone
    _, exercises = otter_assignments.split_exercises(book_support.read_notebook(REPO / "book" / "01_soft_mdps.md"))
    solution_lines = [ln.strip() for ex in exercises for ln in ex.solution_md if len(ln.strip()) > 40]
    solution_lines += [ln.strip() for ex in exercises for c in ex.solution_code if ex.kind != "implementation"
                       for ln in c.source.splitlines() if len(ln.strip()) > 30]
    assert len(solution_lines) > 10
    leaked = [ln for ln in solution_lines if ln in text]
    assert not leaked, f"solution text in the student notebook: {leaked[:3]}"


@pytest.mark.slow
def test_otter_run_catches_a_submission_tuned_to_the_public_cases(chapter1, tmp_path):
    sub = _submission(chapter1["student"], TUNED % (_public_gammas(),), tmp_path / "tuned.ipynb")
    scores = _otter_run([OTTER], chapter1, sub, tmp_path / "results", cwd=tmp_path)
    assert scores["ex_ch1_implement"] == (1, 4), scores           # public 1 point, hidden 0 of 3


def _environment_without_the_checkout(root) -> Path:
    """A virtual environment (its Python returned) that sees the test environment's packages except sobirl_lite.

    Why not a fresh environment with everything installed from the index: otter-grader, numpy, scipy, matplotlib
    and their dependencies take minutes to install, too long for `make test`. Here the environment's own
    site-packages starts empty; a .pth file adds a folder of links to the test environment's packages, leaving out
    sobirl_lite's editable install (its finder, its .pth, its metadata) and every .pth file (so nothing there runs or
    extends the path). pip in this environment sees those packages as installed, so installing the zip's
    requirements has only the wheel left to install, into the environment's own site-packages. The pins are the
    lock's in both (the fast test above checks the requirements against the lock)."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    base = root / "base-packages"
    base.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        name = entry.name.lower()
        if name.startswith(("sobirl_lite", "sobirl-lite", "__editable__")) or name.endswith(".pth"):
            continue
        (base / entry.name).symlink_to(entry)
    (purelib / "test-environment-packages.pth").write_text(f"{base}\n")
    return python


@pytest.mark.slow
def test_the_autograder_zip_installs_what_it_grades_with(chapter1, tmp_path):
    """The zip for Gradescope, self-sufficient: its environment.yml names the wheel it carries (built from this
    checkout), and its pip requirements, installed as mamba installs them on Gradescope (from the folder of
    environment.yml) but with no index at all, give an environment in which `otter run` grades a correct
    submission 4/4 with the sobirl_lite of that wheel, run from outside the checkout."""
    made = chapter1
    source = tmp_path / "source"                                  # Gradescope's /autograder/source
    with zipfile.ZipFile(made["autograder"]) as zf:
        zf.extractall(source)
    wheel = made["wheel"].name
    assert (source / "files" / wheel).is_file()
    with zipfile.ZipFile(source / "files" / wheel) as whl:    # built from this checkout
        assert whl.read("sobirl_lite/exercises.py") == (REPO / "sobirl_lite" / "exercises.py").read_bytes()
    env_yml = yaml.safe_load((source / "environment.yml").read_text())
    deps = env_yml["dependencies"]
    assert f"python={otter_assignments.grading_python()}" in deps
    pip_reqs = next(d["pip"] for d in deps if isinstance(d, dict))
    assert f"./files/{wheel}" in pip_reqs
    # otter's own line, with extras (Google Sheets plugin, PDF tools) that local grading does not use: the test
    # environment's otter-grader of the same version stands in for it
    otter_line = [r for r in pip_reqs if r.startswith("otter-grader")]
    assert otter_line == [otter_assignments.OTTER_PIN.replace("==", "[grading,plugins]==")], pip_reqs
    ours = [r for r in pip_reqs if r not in otter_line]
    (tmp_path / "requirements.txt").write_text("\n".join(ours) + "\n")

    python = _environment_without_the_checkout(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    where = [str(python), "-c", "import importlib.util as u; s = u.find_spec('sobirl_lite'); print(s and s.origin)"]
    before = subprocess.run(where, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert before.strip() == "None", f"sobirl_lite is importable before the install: {before}"
    # --no-index: the wheel is the only thing allowed to come in (the CPU-torch index line is ignored with it)
    proc = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-input", "-r",
                           str(tmp_path / "requirements.txt")], cwd=source, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    installed = subprocess.run(where, cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(installed.strip()).is_relative_to(tmp_path / "venv"), installed

    sub = _submission(made["student"], SOLUTION, tmp_path / "correct.ipynb")
    # and the kernel that grades it reports where its sobirl_lite came from
    nb = nbformat.read(sub, as_version=4)
    report = tmp_path / "kernel.json"
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, sys, sobirl_lite\n"
        f"open({str(report)!r}, 'w').write(json.dumps([sys.executable, sobirl_lite.__file__]))\n"))
    nbformat.write(nb, sub)
    scores = _otter_run([str(python), "-m", "otter"], made, sub, tmp_path / "results", cwd=tmp_path, env=env)
    assert scores["ex_ch1_implement"] == (4, 4), scores
    executable, package = json.loads(report.read_text())
    assert Path(executable).parent == python.parent, executable
    assert Path(package).is_relative_to(tmp_path / "venv"), package
