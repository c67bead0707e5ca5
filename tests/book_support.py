"""Shared helpers for the book tests: the table of contents, jupytext conversion, the book build and a small
headless-Chromium driver.

Kept free of test functions so that pytest does not collect it; the fixtures that use it live in ``conftest.py``.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import importlib.util
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
BUILD = REPO / "_build"
TEST_BOOK_DIR = BUILD / "test-book"  # output of the book build run by the tests
STUDENT_DIR = BUILD / "test-student"  # the student edition made from it (src/, html/)
SCREENSHOTS = REPO / "screenshots"   # full-page screenshots from the browser test (git-ignored)

# A numbered chapter file, e.g. book/03_hypergradient.md.
CHAPTER_FILE = re.compile(r"^\d\d_[a-z0-9_]+\.md$")

IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# ---------------------------------------------------------------------------------------------------------------
# Table of contents and pages
def toc_files(toc_path: Path = REPO / "_toc.yml") -> list[str]:
    """Every document listed in ``_toc.yml`` (root first), as repo-relative paths without suffix, in reading order."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    walk(toc.get("sections"))
    return files


def page_source(docname: str) -> Path:
    """The source file of a toc entry (the toc omits the suffix)."""
    for suffix in (".md", ".ipynb", ".rst"):
        path = REPO / f"{docname}{suffix}"
        if path.exists():
            return path
    return REPO / f"{docname}.md"


def front_matter(path: Path) -> dict:
    """The YAML front matter of a markdown file ({} when there is none)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        return {}
    return yaml.safe_load(text[4:end]) or {}


def is_notebook_page(path: Path) -> bool:
    """A MyST-markdown notebook: front matter with a kernelspec (plain pages such as the notation appendix have none)."""
    return path.suffix == ".md" and "kernelspec" in front_matter(path)


def notebook_pages() -> list[str]:
    """Docnames of the toc pages that are executable notebooks."""
    return [doc for doc in toc_files() if is_notebook_page(page_source(doc))]


def read_notebook(path: Path):
    """Read a jupytext MyST notebook into an nbformat NotebookNode."""
    import jupytext

    return jupytext.read(path, fmt="md:myst")


def cell_tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


# ---------------------------------------------------------------------------------------------------------------
# Offline assets and the book build
def offline_assets_module():
    """Import book/_ext/offline_assets.py (it is a Sphinx extension, not part of the package)."""
    spec = importlib.util.spec_from_file_location("offline_assets", BOOK / "_ext" / "offline_assets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@functools.cache
def execute_book_module():
    """Import tools/execute_book.py (a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("execute_book", REPO / "tools" / "execute_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def retry_kernel_start(run, failed_to_start, tries: int = 3):
    """``run()``, again (TRIES calls in all) while ``failed_to_start(outcome)`` says a kernel it started died before
    running a cell; the outcome is a return value or a raised exception. Under the suite's load a kernel can lose the
    ports jupyter_client chose for it to another process before it binds them; tools/execute_book.py retries the
    same way. Any other outcome is returned (or raised) at once."""
    for attempt in range(1, tries + 1):
        try:
            outcome = run()
        except Exception as err:  # noqa: BLE001 - sorted below
            if attempt == tries or not failed_to_start(err):
                raise
        else:
            if attempt == tries or not failed_to_start(outcome):
                return outcome
        print("a kernel failed to start; running it again", file=sys.stderr)


def run_starting_kernels(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, **kwargs)`` under :func:`retry_kernel_start`: run again
    while it failed with jupyter_client's words for a kernel that died at start in its output."""
    words = execute_book_module().KERNEL_START_FAILURES
    return retry_kernel_start(
        lambda: subprocess.run(cmd, capture_output=True, text=True, **kwargs),
        lambda proc: isinstance(proc, subprocess.CompletedProcess) and proc.returncode != 0
        and any(w in proc.stdout + proc.stderr for w in words))


# Sphinx's own warning/error lines: "path:line: WARNING: ...", "WARNING: ...", "ERROR: ...".
SPHINX_PROBLEM = re.compile(r"(^|: )(WARNING|ERROR|SEVERE|CRITICAL): ")


@dataclass
class BookBuild:
    returncode: int
    log: str = field(repr=False)
    html: Path
    seconds: float
    problems: list[str] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.problems and (self.html / "index.html").exists()


def build_book(out_dir: Path = TEST_BOOK_DIR, budget: str = "quick", timeout: float = 1800) -> BookBuild:
    """Build the book as ``make book`` does, with the given budget, into OUT_DIR (from nothing: OUT_DIR is emptied):
    the chapters into the execution cache by tools/execute_book.py ($SOBIRL_BOOK_JOBS at a time, default 2: the
    other test worker's tests spend much of their time waiting on subprocesses, browsers and servers, and a second
    chapter fills that time), then ``jupyter-book build -W -n`` (warnings are errors)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    env = {**os.environ, "SOBIRL_BUDGET": budget, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    execute = [sys.executable, str(REPO / "tools" / "execute_book.py"), "--budget", budget,
               "--jobs", os.environ.get("SOBIRL_BOOK_JOBS", "2"), "--cache", str(out_dir / "_build" / ".jupyter_cache")]
    if budget == "quick":  # no quick-budget cell takes a minute even on a loaded machine: a stuck one fails fast
        execute += ["--timeout", "300"]
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", ".", "-W", "-n", "--keep-going",
           "--path-output", str(out_dir)]
    start = time.perf_counter()
    proc = subprocess.run(execute, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    log = proc.stdout + proc.stderr
    if proc.returncode == 0:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        log += proc.stdout + proc.stderr
    seconds = time.perf_counter() - start
    (out_dir / "build.log").write_text(log)
    (out_dir / "build.json").write_text(json.dumps({"returncode": proc.returncode, "seconds": seconds}))
    problems = [line for line in log.splitlines() if SPHINX_PROBLEM.search(line)]
    return BookBuild(proc.returncode, log, out_dir / "_build" / "html", seconds, problems)


def reuse_book(out_dir: Path = TEST_BOOK_DIR) -> BookBuild:
    """The build that ``build_book`` left in OUT_DIR, read back from its log and exit code (SOBIRL_REUSE_TEST_BOOK=1,
    and the pytest-xdist workers that did not build it)."""
    log = (out_dir / "build.log").read_text()
    problems = [line for line in log.splitlines() if SPHINX_PROBLEM.search(line)]
    ok = (out_dir / "_build" / "html" / "index.html").is_file()
    saved = out_dir / "build.json"
    returncode = json.loads(saved.read_text())["returncode"] if saved.is_file() else (0 if ok else 1)
    return BookBuild(returncode, log, out_dir / "_build" / "html", 0.0, problems)


@contextlib.contextmanager
def build_lock(path: Path = BUILD / "test-book.lock"):
    """Hold an exclusive lock on PATH: the pytest-xdist workers of one run take turns, so one builds the test book
    while the others wait for it (POSIX ``flock``; the lock goes with the process if it dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_book_build(run_id: str | None, out_dir: Path = TEST_BOOK_DIR) -> BookBuild:
    """The test book, built once per test run however many pytest-xdist workers ask for it.

    RUN_ID names the run (pytest-xdist's ``testrun_uid``; None without xdist). The first worker to ask builds under
    the lock and records RUN_ID beside the build; a worker that finds its own RUN_ID there reuses that build, exit
    code and log included. The npm assets are fetched under the same lock, so two workers never write vendor/ at once.
    """
    with build_lock():
        offline_assets_module().fetch()
        marker = out_dir / "testrun.txt"
        if run_id is not None and marker.is_file() and marker.read_text() == run_id:
            return reuse_book(out_dir)
        build = build_book(out_dir)
        if run_id is not None:
            marker.write_text(run_id)
        return build


# Sphinx's smart quotes render "x" as “x”, it's as it’s, -- as – and ... as …: a search for a source string in the
# rendered text reads both through plain_typography.
_TYPOGRAPHY = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "…": "..."})


def plain_typography(text: str) -> str:
    """TEXT with straight quotes, one hyphen for any dash and three dots for an ellipsis."""
    return re.sub(r"-+", "-", text.translate(_TYPOGRAPHY))


def shared_student_build(run_id: str | None, book_dir: Path = TEST_BOOK_DIR,
                         out_dir: Path = STUDENT_DIR) -> subprocess.CompletedProcess:
    """The student edition built from the test book's execution (the route of `make student`), once per test run.

    As :func:`shared_book_build`: the modules reading it (tests/test_student.py, tests/test_student_pdf.py) may run
    on different pytest-xdist workers; the first builds under a lock, the others get that build's exit code and log.
    Returns the build's process (stdout: its log); the HTML is in ``out_dir / "html"``, the sources in
    ``out_dir / "src"``.
    """
    with build_lock(BUILD / "test-student.lock"):
        marker, saved, log = out_dir / "testrun.txt", out_dir / "build.json", out_dir / "build.log"
        if run_id is not None and marker.is_file() and marker.read_text() == run_id and saved.is_file():
            return subprocess.CompletedProcess("student build", json.loads(saved.read_text())["returncode"],
                                               log.read_text() if log.is_file() else "", "")
        marker.unlink(missing_ok=True)
        spec = importlib.util.spec_from_file_location("student_edition", REPO / "tools" / "student_edition.py")
        student_edition = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(student_edition)  # type: ignore[union-attr]
        student_edition.write_sources(out_dir / "src", book_dir / "_build" / "jupyter_execute" / "book")
        proc = student_edition.build_html(out_dir / "src", out_dir / "html", budget="quick", timeout=1200)
        saved.write_text(json.dumps({"returncode": proc.returncode}))
        if run_id is not None:
            marker.write_text(run_id)
        return proc


# ---------------------------------------------------------------------------------------------------------------
# A JupyterLab server for the Lab tests (tests/test_lab.py, tests/test_student.py)
LAB_START_TIMEOUT_S = 180  # generous: a loaded 2-core machine is slow, not broken


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyterlab(root: Path, tmp: Path, env: dict[str, str]):
    """A JupyterLab server on ROOT, run with ENV, its settings, workspaces and log under TMP; yields (base URL, token).

    ``window.jupyterapp`` is exposed so a test can wait for the kernel and run cells as the Run menu does; the news
    and update notices are off (they would cover the page in screenshots). On exit the server is asked to stop with
    its kernels (SIGTERM); its whole session is killed if it has not within 20 s."""
    port, token = free_port(), secrets.token_hex(16)
    settings = tmp / "user-settings"
    notices = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notices.parent.mkdir(parents=True, exist_ok=True)
    notices.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    jupyter_lab = Path(sys.executable).with_name("jupyter-lab")
    cmd = [str(jupyter_lab) if jupyter_lab.exists() else "jupyter-lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "jupyterlab.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LAB_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"JupyterLab exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab did not answer within {LAB_START_TIMEOUT_S} s:\n"
                                     f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            print(f"JupyterLab exited with {proc.returncode}; log tail:\n{log.read_text()[-2000:]}")


# ---------------------------------------------------------------------------------------------------------------
# Headless Chromium
def find_chromium() -> str | None:
    """Path of a Chromium binary: $CHROMIUM, else Debian's /usr/bin/chromium or one on PATH."""
    candidates = [os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    for cand in candidates:
        if cand and Path(cand).exists() and os.access(cand, os.X_OK):
            return cand
    return None


# How a page script begins (a %-template over ``wait`` in ms): wait until MathJax has typeset, every widget view is
# drawn and every image has loaded, or the wait ran out. The browser test and tools/book_pdf.py both start with it.
PAGE_READY_JS = r"""
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = performance.now() + %(wait)d;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise, sleep(%(wait)d)]);
  }
  const views = Array.from(document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]'));
  const drawn = (s) => {
    const area = s.previousElementSibling;
    return area && area.classList.contains("widget-subarea") && area.querySelector(".jupyter-widgets");
  };
  while (performance.now() < deadline && !views.every(drawn)) { await sleep(100); }
  // Images: make lazy ones load now, then wait for all of them.
  for (const img of document.images) { img.loading = "eager"; }
  await Promise.all(Array.from(document.images).map((img) => img.complete ? null :
      new Promise((r) => { img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 10000); })));
"""


def page_script(template: str) -> str:
    """TEMPLATE with its ``%(ready)s`` replaced by :data:`PAGE_READY_JS` (still a template over ``wait``)."""
    return template.replace("%(ready)s", PAGE_READY_JS.strip("\n") + "\n")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm"}
    seen: list | None = None  # when a list: every request path is appended to it

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass

    def send_head(self):
        if self.seen is not None:
            self.seen.append(self.path)
        return super().send_head()


@contextlib.contextmanager
def serve_directory(directory: Path, seen: list | None = None):
    """Serve DIRECTORY on 127.0.0.1 (a free port, .wasm with its MIME type for Pyodide); yields the base URL.
    SEEN, when given, collects the path of every request that reached the server. Start it after Chromium, so that
    the browser is forked before this thread exists."""
    handler = functools.partial(type("_Handler", (_QuietHandler,), {"seen": seen}), directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def require_chromium(purpose: str) -> str:
    """The Chromium binary, or skip the calling test (fail under CI, where a browser is required)."""
    import pytest

    binary = find_chromium()
    if binary is None:
        message = f"Chromium is not installed (Debian: `apt-get install chromium`, which `make test` does as root); {purpose}"
        if IN_CI:
            pytest.fail(message + " -- a browser is required under CI")
        pytest.skip(message)
    return binary


class CDPError(RuntimeError):
    pass


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    Only the standard library is needed: the browser reads NUL-terminated JSON commands on fd 3 and writes responses
    and events on fd 4. This gives what the plain ``--dump-dom``/``--screenshot`` switches cannot: waiting for
    MathJax and the widget manager to finish, reading the page state with JavaScript, the list of network requests
    the page attempted, and a screenshot of the full page height.

    The network is closed to everything but the loopback server: host names resolve to nothing and any other
    connection goes to a proxy address where nothing listens.
    """

    def __init__(self, binary: str, profile_dir: Path, width: int = 1280, height: int = 900):
        self.width, self.height = width, height
        cmd_r, self._cmd_w = os.pipe()   # we write commands, the browser reads them on fd 3
        self._res_r, res_w = os.pipe()   # the browser writes on fd 4, we read
        args = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-pipe", f"--user-data-dir={profile_dir}",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-quic", "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost",
            "--hide-scrollbars", "--mute-audio", f"--window-size={width},{height}",
            "about:blank",
        ]

        def wire_fds():
            # Runs in the child between fork and exec. Move both ends above 9 first, so that neither dup2 can
            # clobber the other when the pipe happened to get fd 3 or 4.
            high_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)  # os.dup2 makes the copies inheritable
            os.dup2(high_w, 4)

        # close_fds=False: closing would also close the fds 3 and 4 just made. Python's own fds are created
        # non-inheritable (PEP 446), so nothing else leaks into the browser.
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=wire_fds)
        os.close(cmd_r)
        os.close(res_w)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []
        self.session: str | None = None

    # -- protocol plumbing ------------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._res_r], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise CDPError("Chromium closed the DevTools pipe (did it crash?)")
                self._buffer += chunk
            elif self.proc.poll() is not None:
                raise CDPError(f"Chromium exited with code {self.proc.returncode}")
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, *, session: bool = True, timeout: float = 60) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            event = self._read_message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    # -- high-level API -----------------------------------------------------------------------------------------
    def open_tab(self) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                             session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url: str, timeout: float = 60) -> None:
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired", timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 90):
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in result:
            raise CDPError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page, not just the viewport."""
        # Grow the viewport to the page height, as a very tall window would be: capturing beyond a small viewport
        # leaves sticky sidebars and 100vh elements laid out for the small one.
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = int(min(max(size["height"], self.height), 30000))
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        try:
            self.evaluate("new Promise((r) => requestAnimationFrame(() => setTimeout(r, 300)))")
            shot = self.send("Page.captureScreenshot", {"format": "png"}, timeout=120)
        finally:
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def failed_loads(self, base: str) -> list[str]:
        """Local resources that did not load: HTTP errors from our server and aborted transfers.

        The browser's own /favicon.ico probe and transfers it cancelled itself (e.g. a font superseded by another
        format) do not count.
        """
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"]
                for e in self.events if e.get("method") == "Network.requestWillBeSent"}
        out = []
        for e in self.events:
            params = e.get("params", {})
            if e.get("method") == "Network.responseReceived":
                url, status = params["response"]["url"], params["response"]["status"]
                if status >= 400 and url.startswith(base) and not url.endswith("/favicon.ico"):
                    out.append(f"{url} (HTTP {status})")
            elif e.get("method") == "Network.loadingFailed" and not params.get("canceled"):
                url = urls.get(params["requestId"], "?")
                if url.startswith(base):
                    out.append(f"{url} ({params.get('errorText')})")
        return out

    def exceptions(self) -> list[str]:
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                details = e["params"]["exceptionDetails"]
                out.append(details.get("exception", {}).get("description") or details.get("text", "?"))
        return out

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=10)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
