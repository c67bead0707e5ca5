"""The book's execution cache: a rebuild executes only the chapters whose code changed.

Checked on a toy book of two tiny notebooks that takes the book's own execution settings (the ``execute`` section
of ``_config.yml``) through the same two steps as ``make book``: ``tools/execute_book.py`` (chapters into the
jupyter-cache, two at a time) and ``jupyter-book build -W -n``. Each toy chapter appends its name to
``executions.log`` when it runs, so the log says exactly which chapters each step executed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import book_support
from book_support import REPO

execute_book = book_support.execute_book_module()

pytestmark = pytest.mark.slow

FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3 (ipykernel)
  language: python
  name: python3
---
"""


def _chapter(name: str, code: str, prose: str = "Some prose.") -> str:
    return FRONT_MATTER + f"""
# Chapter {name}

{prose}

```{{code-cell}} ipython3
with open("executions.log", "a") as log:  # one line per execution of this chapter
    log.write("{name}\\n")
{code}
```
"""


def _toy_book(root: Path) -> Path:
    execute = yaml.safe_load((REPO / "_config.yml").read_text())["execute"]
    assert execute["execute_notebooks"] == "cache"
    config = {"title": "Toy", "author": "tests", "only_build_toc_files": True, "execute": execute,
              "exclude_patterns": ["_build", "sobirl_lite", "executions.log"],
              "sphinx": {"local_extensions": {"execution_cache": str(REPO / "book" / "_ext")}}}
    root.mkdir()
    (root / "_config.yml").write_text(yaml.safe_dump(config))
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro",
                                                   "chapters": [{"file": "a"}, {"file": "b"}]}))
    (root / "intro.md").write_text("# Toy book\n\nTwo chapters.\n")
    (root / "a.md").write_text(_chapter("a", 'print("a says", 1)'))
    (root / "b.md").write_text(_chapter("b", 'print("b says", 2)'))
    (root / "sobirl_lite").mkdir()  # stands in for the package the chapters import (part of the fingerprint)
    (root / "sobirl_lite" / "__init__.py").write_text("A = 1\n")
    return root


def _execute(root: Path, budget: str = "quick") -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tools" / "execute_book.py"), "--root", str(root), "--budget", budget,
           "--jobs", "2"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _build(root: Path) -> str:
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going"], capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the toy book did not build:\n{log[-4000:]}"
    return log


def _executions(root: Path) -> list[str]:
    log = root / "executions.log"
    return sorted(log.read_text().split()) if log.is_file() else []


def test_a_rebuild_executes_only_the_edited_chapter(tmp_path):
    root = _toy_book(tmp_path / "toy")
    proc = _execute(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _executions(root) == ["a", "b"]
    _build(root)
    assert _executions(root) == ["a", "b"], "the build executed a chapter that execute_book.py had cached"
    html = root / "_build" / "html"
    assert "a says 1" in (html / "a.html").read_text() and "b says 2" in (html / "b.html").read_text()
    # The executed notebooks that `make student` reads (_build/jupyter_execute) carry the cached outputs.
    executed = json.loads((root / "_build" / "jupyter_execute" / "a.ipynb").read_text())
    outputs = [out for cell in executed["cells"] if cell["cell_type"] == "code" for out in cell["outputs"]]
    assert any("a says 1" in "".join(out.get("text", "")) for out in outputs), executed["cells"]

    (root / "b.md").write_text(_chapter("b", 'print("b says", 3)'))  # a code edit in chapter b
    assert _execute(root).returncode == 0
    _build(root)
    assert _executions(root) == ["a", "b", "b"], "only the edited chapter may run again"
    assert "b says 3" in (html / "b.html").read_text()

    (root / "a.md").write_text(_chapter("a", 'print("a says", 1)', prose="A typo fixed."))  # prose only
    proc = _execute(root)
    assert proc.returncode == 0 and "every chapter is cached" in proc.stdout
    assert _executions(root) == ["a", "b", "b"], "a prose edit must not execute anything"


def test_a_package_change_runs_everything_and_a_failing_chapter_stops(tmp_path):
    root = _toy_book(tmp_path / "toy")
    assert _execute(root).returncode == 0 and _executions(root) == ["a", "b"]
    assert _execute(root).returncode == 0 and _executions(root) == ["a", "b"]      # nothing changed
    (root / "sobirl_lite" / "__init__.py").write_text("A = 2\n")                    # the package changed
    assert _execute(root).returncode == 0 and _executions(root) == ["a", "a", "b", "b"]
    # The budget is part of the same fingerprint (tools/execute_book.py), so another budget also starts afresh.
    assert execute_book.fingerprint(root, "quick") != execute_book.fingerprint(root, "full")

    (root / "b.md").write_text(_chapter("b", 'raise RuntimeError("broken chapter")'))
    proc = _execute(root)
    assert proc.returncode == 1
    assert "b.md FAILED" in proc.stderr and "broken chapter" in proc.stderr
    assert _executions(root) == ["a", "a", "b", "b", "b"]                          # a stayed cached


FLAKY_KERNEL = """import pathlib, sys
tries = pathlib.Path(sys.argv[1])
tries.write_text(tries.read_text() + "x" if tries.exists() else "x")
if len(tries.read_text()) <= int(sys.argv[2]):
    sys.exit(1)  # dies before it answers kernel_info, as a kernel that lost its ports does
from ipykernel import kernelapp
kernelapp.launch_new_instance(argv=sys.argv[3:])
"""


def _flaky_kernel(tmp_path: Path, deaths: int) -> dict:
    """A kernelspec ``flaky`` whose first ``deaths`` starts exit at once; the environment that makes it visible."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "flaky"
    spec_dir.mkdir(parents=True)
    (spec_dir / "launch.py").write_text(FLAKY_KERNEL)
    argv = [sys.executable, str(spec_dir / "launch.py"), str(tmp_path / "starts.txt"), str(deaths),
            "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "flaky", "language": "python"}))
    return {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}


@pytest.mark.parametrize("deaths", [2, 3])
def test_a_kernel_that_dies_at_start_is_started_again_then_reported(tmp_path, deaths):
    """execute_book.py starts a kernel up to three times (a kernel that dies at start has run nothing)."""
    root = _toy_book(tmp_path / "toy")
    for name in ("a", "b"):
        text = _chapter(name, f'print("{name} says", 1)').replace("name: python3", "name: flaky")
        (root / f"{name}.md").write_text(text)
    (root / "b.md").unlink()
    (root / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro",
                                                   "chapters": [{"file": "a"}]}))
    env = _flaky_kernel(tmp_path, deaths)
    cmd = [sys.executable, str(REPO / "tools" / "execute_book.py"), "--root", str(root), "--jobs", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    starts = len((tmp_path / "starts.txt").read_text())
    if deaths == 2:                                 # it dies twice, the third start runs the chapter
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert starts == deaths + 1 and _executions(root) == ["a"]
        assert proc.stderr.count("the kernel failed to start") == deaths
    else:                                           # it dies at all three starts: one clear failure, no crash
        assert proc.returncode == 1 and _executions(root) == []
        assert starts == 3
        assert "a.md FAILED" in proc.stderr and "failed to start 3 times" in proc.stderr
        assert "Kernel died before replying to kernel_info" in proc.stderr


@pytest.mark.parametrize("stuck_runs", [1, 2])
def test_a_chapter_whose_cell_times_out_runs_once_more_in_a_fresh_kernel(tmp_path, stuck_runs):
    """A cell past --timeout: the chapter runs again in a fresh kernel; a second timeout fails it with the cell."""
    root = _toy_book(tmp_path / "toy")
    stuck = ("import os, time\n"
             "runs = open('executions.log').read().split().count('a')\n"
             f"if runs <= {stuck_runs}:\n"
             "    time.sleep(120)  # stuck, as a kernel whose reply never comes")
    (root / "a.md").write_text(_chapter("a", stuck))
    cmd = [sys.executable, str(REPO / "tools" / "execute_book.py"), "--root", str(root), "--jobs", "2",
           "--timeout", "5"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.stderr.count("ran past 5 s; running the chapter again") == 1, proc.stderr
    if stuck_runs == 1:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _executions(root) == ["a", "a", "b"]
    else:
        assert proc.returncode == 1 and "a.md FAILED" in proc.stderr and "time.sleep(120)" in proc.stderr
        assert _executions(root) == ["a", "a", "b"]


def test_the_tests_retry_a_kernel_start_and_nothing_else():
    """book_support.retry_kernel_start, as the nbval, otter and nbclient tests use it: a start failure is tried
    again (three calls in all), any other error is raised at once."""
    words = execute_book.KERNEL_START_FAILURES
    start_failed = lambda outcome: isinstance(outcome, RuntimeError) and str(outcome).startswith(words)  # noqa: E731
    calls = []

    def dies(times, then=None):
        def run():
            calls.append(1)
            if len(calls) <= times:
                raise RuntimeError("Kernel died before replying to kernel_info")
            if then is not None:
                raise then
            return "ran"
        return run

    assert book_support.retry_kernel_start(dies(2), start_failed) == "ran" and len(calls) == 3
    calls.clear()
    with pytest.raises(RuntimeError, match="Kernel died"):
        book_support.retry_kernel_start(dies(3), start_failed)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        book_support.retry_kernel_start(dies(0, then=ValueError("a cell failed")), start_failed)
    assert len(calls) == 1
