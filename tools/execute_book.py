"""Execute the book's notebooks into its jupyter-cache, several chapters at a time, before the Sphinx build.

    python tools/execute_book.py [--root DIR] [--budget full|quick] [--jobs N] [--cache DIR] [--timeout S]

``_config.yml`` sets ``execute_notebooks: cache``: myst-nb takes a chapter's outputs from the jupyter-cache when a
notebook with the same code cells was executed before, and executes it (one chapter at a time) otherwise. This
script fills that cache first, running the chapters that have no entry yet in a pool of ``--jobs`` processes, so that
the build that follows (``jupyter-book build``) finds every chapter cached and only renders. ``make book`` runs it.

What a cache entry depends on. jupyter-cache keys a notebook on its code cells alone, so a prose edit re-executes
nothing and a code edit re-executes that chapter only. It cannot see what the code imports: the package
``sobirl_lite``, the committed data in ``book/data``, the pinned environment or the budget. A fingerprint of those is
kept beside the cache (``fingerprint.txt``); when it changes, the cache and Sphinx's saved environment are removed, so
every chapter is executed again and every page re-read.

A chapter that raises is reported with its traceback and the script exits with status 1 (``make book`` stops there,
as the build itself would on that error). Chapters run in ``book/`` (``run_in_temp: false``) like the build's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
READER = {"name": "myst_nb_md", "type": "plugin"}  # myst-nb's MyST reader, as the build reads the chapters
# What chapters import or read besides their own code: a change to any of these invalidates the whole cache.
FINGERPRINT_GLOBS = ("sobirl_lite/**/*.py", "book/data/**/*", "pyproject.toml", "requirements-lock.txt")


def notebook_pages(root: Path) -> list[Path]:
    """The pages of ``_toc.yml`` (reading order) that myst-nb treats as notebooks."""
    from myst_nb.core.read import is_myst_markdown_notebook

    if str(REPO / "tools") not in sys.path:
        sys.path.insert(0, str(REPO / "tools"))
    from book_pdf import load_book_support  # the tests' reader of _toc.yml: one copy

    files = load_book_support().toc_files(root / "_toc.yml")
    pages = []
    for name in files:
        path = root / (name if name.endswith((".md", ".ipynb")) else name + ".md")
        if path.suffix == ".ipynb" or is_myst_markdown_notebook(path.read_text("utf8")):
            pages.append(path)
    return pages


def fingerprint(root: Path, budget: str) -> str:
    """Hash of the budget, the Python version and every file the chapters depend on besides their own code."""
    digest = hashlib.sha256(f"budget={budget}\npython={sys.version.split()[0]}\n".encode())
    for pattern in FINGERPRINT_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# jupyter_client's words when a kernel process ends, or never answers, before it has run a cell. Under load (the test
# suite starts kernels, browsers and Ray workers side by side) a kernel can lose the ports it was given to another
# process and exit at start; nothing of the chapter has run then, so starting it again is safe.
KERNEL_START_FAILURES = ("Kernel died before replying to kernel_info", "Kernel didn't respond")
KERNEL_START_TRIES = 3
# A cell that runs past --timeout is run again once, with the whole chapter in a fresh kernel: the test suite saw the
# introduction's kernel finish a cell (a widget) and go idle while nbclient went on waiting for its reply. A chapter
# that is merely too slow times out the second time too and fails.
TIMEOUT_TRIES = 2


def _execute(path: str, timeout: int, threads: str) -> tuple[str, object, float, str | None]:
    """Run in a pool process: read and execute one chapter in its own folder; returns (path, notebook, seconds,
    traceback or None). A kernel that fails to start is started again, up to ``KERNEL_START_TRIES`` times in all; a
    chapter with a cell past ``timeout`` seconds runs again once (``TIMEOUT_TRIES``)."""
    from jupyter_cache.executors import utils as executor_utils
    from myst_nb.core.read import myst_nb_reader_plugin
    from nbclient.exceptions import CellTimeoutError

    # Chapters running side by side: one thread each (inherited by the kernel), unless the caller chose.
    os.environ.setdefault("OMP_NUM_THREADS", threads)
    os.environ.setdefault("MKL_NUM_THREADS", threads)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    attempt, timeouts = 1, 0
    while True:
        nb = myst_nb_reader_plugin(path)
        try:
            result = executor_utils.single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                                        allow_errors=False)
        except RuntimeError as err:
            if not str(err).startswith(KERNEL_START_FAILURES):
                raise
            if attempt == KERNEL_START_TRIES:
                return path, nb, 0.0, (f"the kernel failed to start {KERNEL_START_TRIES} times; the last time:\n"
                                       + traceback.format_exc())
            print(f"execute_book: {Path(path).name}: the kernel failed to start ({err}); starting it again",
                  file=sys.stderr, flush=True)
            attempt += 1
            continue
        if isinstance(result.err, CellTimeoutError) and timeouts + 1 < TIMEOUT_TRIES:
            timeouts += 1
            print(f"execute_book: {Path(path).name}: a cell ran past {timeout} s; running the chapter again in a "
                  "fresh kernel", file=sys.stderr, flush=True)
            continue
        return path, nb, result.time, (result.exc_string if result.err is not None else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO, help="book root (holds _toc.yml); default: the checkout")
    parser.add_argument("--budget", choices=("quick", "full"), default=os.environ.get("SOBIRL_BUDGET", "full"))
    parser.add_argument("--jobs", type=int, default=2, help="chapters executed at once (default 2)")
    parser.add_argument("--cache", type=Path, default=None, help="jupyter-cache folder (default ROOT/_build/.jupyter_cache)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800, as _config.yml)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    root = args.root.resolve()
    cache_dir = (args.cache or root / "_build" / ".jupyter_cache").resolve()
    os.environ["SOBIRL_BUDGET"] = args.budget  # inherited by the pool and the kernels

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from myst_nb.core.read import myst_nb_reader_plugin

    key = fingerprint(root, args.budget)
    stamp = cache_dir / "fingerprint.txt"
    if cache_dir.exists() and (not stamp.is_file() or stamp.read_text().strip() != key):
        print(f"execute_book: the package, data, pins or budget changed; clearing {cache_dir} and the saved "
              "Sphinx environment so every chapter runs again")
        shutil.rmtree(cache_dir)
        shutil.rmtree(cache_dir.parent / ".doctrees", ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache = get_cache(str(cache_dir))
    stamp.write_text(key + "\n")
    times_file = cache_dir / "execution-seconds.json"
    last = json.loads(times_file.read_text()) if times_file.is_file() else {}

    todo = []
    for page in notebook_pages(root):
        try:
            cache.match_cache_notebook(myst_nb_reader_plugin(str(page)))
        except KeyError:
            todo.append(page)
    if not todo:
        print("execute_book: every chapter is cached")
        return 0
    # Longest first (from the last run; later chapters first when unknown), so no long chapter starts last.
    order = {str(p): i for i, p in enumerate(todo)}
    todo.sort(key=lambda p: (-last.get(p.name, -1.0), -order[str(p)]))
    threads = os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))
    print(f"execute_book: executing {len(todo)} notebook(s), {args.jobs} at a time, budget {args.budget}: "
          + ", ".join(p.name for p in todo), flush=True)
    failed, start = [], time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_execute, str(p), args.timeout, threads): p for p in todo}
        for future in as_completed(futures):
            name = futures[future].name
            try:
                path, nb, seconds, error = future.result()
            except Exception:  # the executor itself failed (not a cell): report it as this chapter's failure
                path, nb, seconds, error = str(futures[future]), None, 0.0, traceback.format_exc()
            if error is not None:
                failed.append(name)
                print(f"execute_book: {name} FAILED after {seconds:.0f} s:\n{error}", file=sys.stderr, flush=True)
                continue
            stage = cache.add_nb_to_project(path, read_data=READER)
            cache.cache_notebook_bundle(CacheBundleIn(nb, stage.uri, data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            last[name] = seconds
            print(f"execute_book: {name} executed in {seconds:.0f} s", flush=True)
    times_file.write_text(json.dumps(last, indent=1, sort_keys=True) + "\n")
    print(f"execute_book: {len(todo) - len(failed)} of {len(todo)} executed in {time.perf_counter() - start:.0f} s"
          " (wall)")
    if failed:
        print(f"execute_book: failing chapter(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
