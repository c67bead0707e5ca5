"""Launch links that work, or none; and every chapter as a notebook that runs outside the repository.

Sphinx extension ``launch_links`` (listed under ``sphinx.local_extensions`` in ``_config.yml``). Two jobs:

Repository, issues, Binder and Colab buttons
    The repository's address is one setting, ``repository.url`` in ``_config.yml``. While it is empty, no
    repository or issues button is drawn. Once it is set, both are. A placeholder address (Jupyter Book's own default,
    or the ``sobirl-book/sobirl-book`` stand-in this book once had) stops the build with a message. Binder and Colab
    buttons are never drawn: Colab opens only ``.ipynb`` files from GitHub, and the chapters are committed as MyST
    ``.md``; Binder would resolve the pins to the multi-GB CUDA build of torch. The downloadable notebook below is
    the way to run a chapter elsewhere, Colab included (File, Upload notebook).

A runnable ``.ipynb`` of every notebook page
    Written to ``notebooks/<page>.ipynb`` in the HTML output and offered in the page's download menu. It is the
    chapter converted by jupytext, without outputs, with one cell in front that makes it run outside the checkout:
    it installs ``sobirl_lite`` from the wheel shipped with the site (``WHEEL_SITE_PATH``, without its dependency
    pins) plus whichever of the chapter's libraries are missing, stands in for ``myst_nb.glue`` (figures are shown
    where they are computed), and picks the quick budget. The site's address is not known when the book is built
    (the same HTML may be served from anywhere), so the download button's script writes it into that cell as the
    file is saved (``sobirl-download-notebook.js``); with ``html.baseurl`` set in ``_config.yml`` it is written at
    build time instead.

The wheel: the live-widget machinery builds ``sobirl_lite`` into ``WHEEL_SITE_PATH`` of the HTML output; if it is not
there when the build finishes (live pages off), this extension builds it with the same ``live_widgets.build_wheel``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # the sibling modules, also when run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import live_widgets  # noqa: E402  (one wheel build, one wheel folder)

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = Path(__file__).resolve().parent / "static"
DOWNLOAD_JS = "sobirl-download-notebook.js"
NOTEBOOK_DIR = "notebooks"  # folder of the HTML output holding the downloadable notebooks
BUTTON_LABEL = "download-runnable-notebook"  # the download menu entry gets class btn-<label>

# Repository addresses that are not this book's repository.
PLACEHOLDER_REPOSITORIES = ("github.com/executablebooks/jupyter-book", "github.com/sobirl-book/sobirl-book")
JUPYTER_BOOK_DEFAULT_REPOSITORY = "https://github.com/executablebooks/jupyter-book"
LAUNCH_KEYS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "jupyterlite_url")

# Top-level module -> distribution, for the libraries a chapter may need beyond the standard library.
MODULE_DISTRIBUTIONS = {
    "numpy": "numpy", "scipy": "scipy", "matplotlib": "matplotlib", "ipywidgets": "ipywidgets", "tqdm": "tqdm",
    "gymnasium": "gymnasium", "pandas": "pandas", "torch": "torch", "ale_py": "ale-py",
    "cv2": "opencv-python-headless", "minatar": "minatar",
}
# What sobirl_lite's tabular part imports; the Atari part (sobirl_lite.atari) needs ATARI_MODULES as well.
CORE_MODULES = ("numpy", "scipy", "matplotlib", "ipywidgets", "tqdm", "gymnasium")
ATARI_MODULES = ("torch", "ale_py", "cv2", "minatar")
# torch from PyPI is the CUDA build on Linux (several GB); the CPU build is enough for every chapter.
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def _warn(message: str) -> None:
    """A warning printed to the log, not raised through Sphinx's logger (the book is built with -W)."""
    print(f"WARNING (launch links): {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Pins and the wheel
def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def wheel_name() -> str:
    """File name of the pure-Python wheel of sobirl_lite that setuptools builds."""
    meta = project()
    return f"{meta['name'].replace('-', '_')}-{meta['version']}-py3-none-any.whl"


# Where the wheel sits in the HTML output, relative to the site's root: the live widgets' folder, so both install the
# same file.
WHEEL_SITE_DIR = live_widgets.WHEELS_DIR
WHEEL_SITE_PATH = f"{WHEEL_SITE_DIR}/{wheel_name()}"


def pins() -> dict[str, str]:
    """Distribution name -> ``name==version`` for every pinned dependency of pyproject.toml (all extras)."""
    meta = project()
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    out = {}
    for req in reqs:
        name = re.split(r"[=<>!~ \[;]", req, maxsplit=1)[0].strip().lower()
        out[name] = req.split(";")[0].strip()
    return out


# ----------------------------------------------------------------------------------------------------------------
# The downloadable notebook
IMPORT_LINE = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", re.MULTILINE)
# A chapter reads committed results from book/data/<folder> (e.g. os.path.join("data", "beamrider")); those small
# files are served next to the notebooks and fetched by the set-up cell. Checkpoints and lock files are not.
DATA_DIR = REPO_ROOT / "book" / "data"
DATA_REFERENCE = re.compile(r"""["']data["']\s*,\s*["'](\w+)["']|["']data/(\w+)""")
DATA_SUFFIXES = (".csv", ".json", ".md", ".sh", ".txt")
DATA_MAX_BYTES = 1 << 20


def chapter_data(nb) -> list[str]:
    """Paths (relative to the chapter's folder, e.g. ``data/beamrider/x.csv``) of the data files it reads."""
    folders = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            folders.update(a or b for a, b in DATA_REFERENCE.findall(cell.source))
    files = []
    for folder in sorted(folders):
        for path in sorted((DATA_DIR / folder).rglob("*")):
            if path.is_file() and path.suffix in DATA_SUFFIXES and path.stat().st_size <= DATA_MAX_BYTES:
                files.append(path.relative_to(DATA_DIR.parent).as_posix())
    return files


def chapter_modules(nb) -> list[str]:
    """Third-party top-level modules the notebook needs: the package's own, plus those its code cells import."""
    imported = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            imported.update(IMPORT_LINE.findall(cell.source))
    tops = {name.split(".")[0] for name in imported}
    modules = list(CORE_MODULES)
    if any(name == "sobirl_lite.atari" or name.startswith("sobirl_lite.atari.") for name in imported):
        modules += [m for m in ATARI_MODULES if m not in modules]
    modules += sorted(m for m in tops if m in MODULE_DISTRIBUTIONS and m not in modules)
    return modules


def setup_source(modules: list[str], site: str = "", data: list[str] = ()) -> str:
    """The first cell of a downloadable notebook (lines <= 88 columns)."""
    pinned = pins()
    needs = {m: pinned.get(MODULE_DISTRIBUTIONS[m], MODULE_DISTRIBUTIONS[m]) for m in modules}
    needs_lines = "".join(f"    {json.dumps(m)}: {json.dumps(req)},\n" for m, req in needs.items())
    fetch_data = ""
    if data:
        data_lines = "".join(f"    {json.dumps(name)},\n" for name in data)
        fetch_data = f'''
DATA = [  # results committed with the book that this chapter reads
{data_lines}]
if not SITE and not all(os.path.exists(name) for name in DATA):
    raise RuntimeError("SITE is empty: set it to the book's address to fetch DATA")
for name in DATA:
    if not os.path.exists(name):
        os.makedirs(os.path.dirname(name), exist_ok=True)
        url = SITE.rstrip("/") + "/{NOTEBOOK_DIR}/" + name
        urllib.request.urlretrieve(url, name)
'''
    return f'''\
# Run this cell first. Outside the book's repository (Colab, a fresh Jupyter) it
# installs sobirl_lite from the wheel published with the book and any library
# below that is missing (those already installed are kept); it then picks the
# quick budget (seconds to a few minutes per chapter).
import importlib.util
import os
import subprocess
import sys
import types
import urllib.request

import IPython.display

SITE = {json.dumps(site)}  # the book's address, written in by its download button
WHEEL = {json.dumps(WHEEL_SITE_PATH)}
NEEDS = {{  # module: the version the book was checked with
{needs_lines}}}
os.environ["SOBIRL_BUDGET"] = "quick"  # "full" gives the book's numbers (slower)


def pip_install(*args):
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])


if not SITE and importlib.util.find_spec("sobirl_lite") is None:
    raise RuntimeError("SITE is empty: download this notebook with the book's "
                       "download button, or set SITE to the book's address")
if importlib.util.find_spec("sobirl_lite") is None:
    # without its pins: the libraries are handled below
    pip_install("--no-deps", SITE.rstrip("/") + "/" + WHEEL)
missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
if "torch" in missing:  # the CPU build; PyPI's default on Linux is the CUDA one
    pip_install(NEEDS["torch"], "--index-url", {json.dumps(TORCH_INDEX)})
if [m for m in missing if m != "torch"]:
    pip_install(*[NEEDS[m] for m in missing if m != "torch"])
if importlib.util.find_spec("myst_nb") is None:
    # the book places figures in its text with myst_nb.glue; here they show in place
    myst_nb = types.ModuleType("myst_nb")
    myst_nb.glue = lambda name, obj, display=True: IPython.display.display(obj)
    sys.modules["myst_nb"] = myst_nb
{fetch_data}'''


def runnable_notebook(source: Path, site: str = ""):
    """The chapter at SOURCE as an nbformat notebook with the set-up cell in front (no outputs)."""
    import jupytext
    import nbformat

    nb = jupytext.read(source, fmt="md:myst")
    intro = nbformat.v4.new_markdown_cell(
        "*Downloaded from the SoBiRL interactive book.* The first code cell below makes this chapter run "
        "outside the book's repository and picks the quick budget; run it before the others. Directives such as "
        "`{glue:figure}` are the book's own markup: the figures they place appear in this notebook below the cells "
        "that compute them.")
    setup = nbformat.v4.new_code_cell(setup_source(chapter_modules(nb), site, chapter_data(nb)))
    setup.metadata["tags"] = ["sobirl-setup"]
    nb.cells[:0] = [intro, setup]
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


# ----------------------------------------------------------------------------------------------------------------
# Sphinx extension
def _placeholder(url: str) -> bool:
    low = url.lower().rstrip("/")
    return any(low.endswith(p) or f"//{p}" in low or low.endswith(p + ".git") for p in PLACEHOLDER_REPOSITORIES)


def _configure(app, config) -> None:
    opts = dict(config.html_theme_options or {})
    url = (opts.get("repository_url") or "").strip()
    if url.rstrip("/") == JUPYTER_BOOK_DEFAULT_REPOSITORY:
        url = ""  # repository.url left out of _config.yml: Jupyter Book fills in its own address
    if url and _placeholder(url):
        from sphinx.errors import ConfigError

        raise ConfigError(f"repository.url in _config.yml is a placeholder ({url}); set it to the book's "
                          "repository or leave it empty (no repository buttons are drawn then)")
    opts["repository_url"] = url
    opts["use_repository_button"] = opts["use_issues_button"] = bool(url)
    if not url:
        opts["use_edit_page_button"] = False
    launch = dict(opts.get("launch_buttons") or {})
    for key in LAUNCH_KEYS:
        launch[key] = ""
    launch["thebe"] = False
    opts["launch_buttons"] = launch
    config.html_theme_options = opts
    if str(STATIC_DIR) not in [str(p) for p in config.html_static_path]:
        config.html_static_path = list(config.html_static_path) + [str(STATIC_DIR)]


def _is_notebook_page(app, pagename: str) -> Path | None:
    try:
        path = Path(app.env.doc2path(pagename))
    except Exception:  # noqa: BLE001 - generated pages (search, genindex) have no source
        return None
    if path.suffix != ".md" or not path.is_file():
        return None
    head = path.read_text(encoding="utf-8")[:2000]
    return path if head.startswith("---") and "\nkernelspec:" in head.split("\n---", 1)[0] else None


def _add_download(app, pagename, templatename, context, doctree) -> None:
    if app.builder.format != "html":
        return
    source = _is_notebook_page(app, pagename)
    if source is None:
        return
    import nbformat

    site = (app.config.html_baseurl or "").strip()
    out = Path(app.outdir) / NOTEBOOK_DIR / f"{pagename}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = runnable_notebook(source, site)
    nbformat.write(nb, out)
    for name in chapter_data(nb):  # served next to the notebooks, where the set-up cell fetches them
        target = Path(app.outdir) / NOTEBOOK_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DATA_DIR.parent / name, target)
    button = {
        "type": "link",
        "url": context["pathto"](f"{NOTEBOOK_DIR}/{pagename}.ipynb", 1),
        "text": "runnable .ipynb",
        "icon": "fas fa-code",
        "tooltip": "Download this chapter as a notebook that runs outside the book (quick budget)",
        "label": BUTTON_LABEL,
    }
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"].insert(0, button)
            break
    else:
        context.setdefault("header_buttons", []).append(
            {"type": "group", "tooltip": "Download this page", "icon": "fas fa-download", "buttons": [button],
             "label": "download-buttons"})


def _ensure_wheel(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    wheel = Path(app.outdir) / WHEEL_SITE_PATH
    if wheel.is_file():
        return
    try:
        live_widgets.build_wheel(wheel.parent)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        _warn(f"{exc}; the downloadable notebooks will not find the wheel at {WHEEL_SITE_PATH}")


def setup(app):
    app.connect("config-inited", _configure, priority=150)
    app.add_js_file(DOWNLOAD_JS, priority=600)
    # After sphinx-book-theme has filled in the header buttons (priority 501).
    app.connect("html-page-context", _add_download, priority=800)
    # Late, so that a wheel built by the live-widget machinery is found first.
    app.connect("build-finished", _ensure_wheel, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}
