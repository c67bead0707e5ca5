"""Ship MathJax 3 and the ipywidgets HTML manager with the book, so it reads offline.

Out of the box, Sphinx loads MathJax from a CDN and myst-nb loads RequireJS plus
``@jupyter-widgets/html-manager`` from CDNs. A reader without network (a classroom, a train, a sandbox) then sees raw
TeX and empty widget boxes. This file does two jobs:

``python book/_ext/offline_assets.py fetch``
    Downloads pinned npm packages with ``npm pack`` (the npm client checks the registry's integrity hash) and unpacks
    the few files the book needs into the git-ignored ``vendor/`` folder. Idempotent: nothing is fetched when the
    manifest already matches the pins. When npm or the registry is unreachable it prints a clear warning and exits 0,
    so the book still builds (with CDN assets).

Sphinx extension ``offline_assets`` (listed under ``sphinx.local_extensions`` in ``_config.yml``)
    If ``vendor/`` holds the files, adds ``vendor/static`` to ``html_static_path`` (so Sphinx copies it into
    ``_static/`` of the HTML output) and points ``mathjax_path`` and myst-nb's ``nb_ipywidgets_js`` at the copies.
    Otherwise it keeps the CDN defaults and prints a warning. The warning is printed, not raised through Sphinx's
    logger, on purpose: the book is built with ``-W`` and a missing download must not turn into a failed build.

Why ``vendor/`` and not ``_static/``: Jupyter Book 1 adds every ``.js`` file found in a source ``_static`` folder to
every page, which would load the widget manager twice and MathJax's hundreds of component files as scripts.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

# Exact versions: the html-manager 1.0.x line is the one ipywidgets 8.1 embeds (ipywidgets/_version.py says ^1.0.1).
PACKAGES = {
    "mathjax": "3.2.2",
    "@jupyter-widgets/html-manager": "1.0.15",
    "requirejs": "2.3.7",
}

REPO_ROOT = Path(__file__).resolve().parents[2]
VENDOR = REPO_ROOT / "vendor"
# Everything under STATIC is copied verbatim into the HTML output's _static/ folder.
STATIC = VENDOR / "static"
PREFIX = "sobirl-vendor"  # sub-folder of _static/ that holds the vendored files
MANIFEST = VENDOR / "manifest.json"

# Paths relative to _static/ in the built HTML (Sphinx prefixes relative script paths with _static/).
MATHJAX_JS = f"{PREFIX}/mathjax/es5/tex-mml-chtml.js"
REQUIRE_JS = f"{PREFIX}/requirejs/require.js"
EMBED_AMD_JS = f"{PREFIX}/html-manager/dist/embed-amd.js"
# Widgets that the HTML manager does not bundle (none of the book's) would still come from this CDN.
WIDGETS_CDN = "https://cdn.jsdelivr.net/npm/"

NPM_TIMEOUT_S = 300


def _warn(message: str) -> None:
    """Print a warning that stands out in a build log without being a Sphinx warning (the build runs with -W)."""
    bar = "!" * 100
    print(f"\n{bar}\nWARNING (offline assets): {message}\n{bar}\n", file=sys.stderr, flush=True)


def assets_present(static: Path = STATIC) -> bool:
    """True when every file the pages reference exists in the vendored static folder."""
    return all((static / rel).is_file() for rel in (MATHJAX_JS, REQUIRE_JS, EMBED_AMD_JS))


def _manifest_ok() -> bool:
    try:
        return json.loads(MANIFEST.read_text())["packages"] == PACKAGES and assets_present()
    except (OSError, ValueError, KeyError):
        return False


def _npm_pack(spec: str, dest: Path) -> Path:
    """Run ``npm pack SPEC`` into DEST and return the tarball path."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (Debian: apt-get install npm)")
    proc = subprocess.run(
        [npm, "pack", spec, "--pack-destination", str(dest), "--json", "--silent"],
        capture_output=True, text=True, timeout=NPM_TIMEOUT_S, cwd=dest,
        env={**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false",
             "npm_config_audit": "false"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"npm pack {spec} failed: {(proc.stderr or proc.stdout).strip()[-2000:]}")
    info = json.loads(proc.stdout)
    return dest / info[0]["filename"]


def _extract(tarball: Path, members_prefix: str, target: Path, skip: tuple[str, ...] = ()) -> None:
    """Unpack the members under ``package/<members_prefix>`` of an npm tarball into TARGET (keeping sub-paths).

    Members whose file name is in SKIP or ends with ``.map`` are left out (source maps and the builds we do not load).
    """
    prefix = f"package/{members_prefix}".rstrip("/")
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            if member.name != prefix and not member.name.startswith(prefix + "/"):
                continue
            if Path(member.name).name in skip or member.name.endswith(".map"):
                continue
            rel = Path(member.name).relative_to("package")
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src, open(out, "wb") as dst:  # type: ignore[union-attr]
                shutil.copyfileobj(src, dst)


def _live_widgets():
    """The sibling module live_widgets.py (Pyodide for the live widgets), imported by path like this file."""
    import importlib.util

    if "live_widgets" not in sys.modules:
        spec = importlib.util.spec_from_file_location("live_widgets", Path(__file__).with_name("live_widgets.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules["live_widgets"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["live_widgets"]


def fetch(force: bool = False) -> bool:
    """Populate ``vendor/`` from the npm registry. Returns True when the offline assets are in place.

    Also fetches Pyodide and its wheels for the live widgets (``live_widgets.fetch``, which warns on its own).
    """
    _live_widgets().fetch(force)
    if not force and _manifest_ok():
        print(f"offline assets: up to date in {STATIC}")
        return True
    try:
        with tempfile.TemporaryDirectory(prefix="sobirl-npm-") as tmp:
            tmpdir = Path(tmp)
            staging = tmpdir / "static" / PREFIX
            tarballs = {name: _npm_pack(f"{name}@{version}", tmpdir) for name, version in PACKAGES.items()}
            # MathJax's combined component loads fonts and extra TeX packages relative to its own URL: keep es5/ whole.
            _extract(tarballs["mathjax"], "es5", staging / "mathjax")
            # Only the AMD bundle (self-contained: base, controls, output) and the icon fonts it references are used.
            _extract(tarballs["@jupyter-widgets/html-manager"], "dist", staging / "html-manager",
                     skip=("embed.js", "libembed-amd.js"))
            _extract(tarballs["requirejs"], "require.js", staging / "requirejs")
            for name in ("mathjax", "@jupyter-widgets/html-manager", "requirejs"):  # keep the licences with the code
                sub = {"mathjax": "mathjax", "@jupyter-widgets/html-manager": "html-manager",
                       "requirejs": "requirejs"}[name]
                _extract(tarballs[name], "LICENSE", staging / sub)
            if not assets_present(tmpdir / "static"):
                raise RuntimeError("the npm packages did not contain the expected files")
            if STATIC.exists():
                shutil.rmtree(STATIC)
            VENDOR.mkdir(exist_ok=True)
            shutil.move(str(tmpdir / "static"), str(STATIC))
        MANIFEST.write_text(json.dumps({"packages": PACKAGES, "files": [MATHJAX_JS, REQUIRE_JS, EMBED_AMD_JS]},
                                       indent=2))
        print(f"offline assets: fetched {', '.join(f'{k}@{v}' for k, v in PACKAGES.items())} into {STATIC}")
        return True
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, tarfile.TarError) as exc:
        _warn(f"could not fetch MathJax / the ipywidgets manager from the npm registry ({exc}). "
              "The book will still build, but it will load them from CDNs and will not render math or widgets "
              "without network.")
        return assets_present()


# ----------------------------------------------------------------------------------------------------------------
# Sphinx extension
SHIM_DIR = Path(__file__).resolve().parent / "static"
SHIM_JS = "sobirl-mathjax2-shim.js"


def _configure(app, config) -> None:
    # The MathJax-2 shim for ipywidgets is needed whichever way MathJax is loaded.
    config.html_static_path = list(config.html_static_path) + [str(SHIM_DIR)]
    if not assets_present():
        _warn("vendor/ has no MathJax / ipywidgets manager (run `python book/_ext/offline_assets.py fetch`, "
              "which `make book` does). Falling back to the CDNs: the HTML will need network for math and widgets.")
        app.config.sobirl_offline_assets = False
        return
    config.html_static_path = list(config.html_static_path) + [str(STATIC)]
    config.mathjax_path = MATHJAX_JS
    # Insertion order matters: RequireJS must be on the page before the AMD build of the widget manager.
    config.nb_ipywidgets_js = {
        REQUIRE_JS: {},
        EMBED_AMD_JS: {"data-jupyter-widgets-cdn": WIDGETS_CDN},
    }
    app.config.sobirl_offline_assets = True


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated <script> entries from a page.

    With Sphinx 7.4, the inline scripts that sphinx-thebe and sphinx-togglebutton register once per build show up
    twice on every page; the second ``const THEBE_JS_URL = ...`` is a SyntaxError in the browser console.
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        # The copies differ only in filename None vs "" (an inline script), so compare on what reaches the HTML.
        filename = getattr(js, "filename", js) or ""
        attributes = tuple(sorted((getattr(js, "attributes", None) or {}).items()))
        key = (str(filename), attributes)
        if key in seen:
            continue
        seen.add(key)
        unique.append(js)
    scripts[:] = unique


def _widget_assets_path(app, pagename, templatename, context, doctree) -> None:
    """Tell the widget manager where its icon fonts are.

    The AMD bundle computes the URL of its Font Awesome files from its RequireJS module URI, which by default is
    relative to the *page* (``book/@jupyter-widgets/html-manager/dist/...``, a 404). A RequireJS ``paths`` entry that
    maps the manager's module ids into the vendored ``dist/`` folder fixes that (RequireJS reads a global ``require``
    object as its configuration when it loads). ``__jupyter_widgets_assets_path__`` is the manager's own override,
    set as well for code that reads it. Only the offline build has the fonts next to the manager.
    """
    if not app.config.sobirl_offline_assets or app.builder.format != "html":
        return
    dist = context["pathto"](f"_static/{PREFIX}/html-manager/dist/", 1)
    body = (
        "(function () {\n"
        f"  var dist = new URL({json.dumps(dist)}, document.baseURI).href;\n"
        "  window.__jupyter_widgets_assets_path__ = dist;\n"
        "  var paths = {'@jupyter-widgets/html-manager/dist': dist.replace(/\\/$/, ''),\n"
        "               '@jupyter-widgets/html-manager': dist + 'index'};\n"
        "  if (typeof window.require === 'function' && window.require.config) { window.require.config({paths: paths}); }\n"
        "  else { window.require = {paths: paths}; }\n"
        "})();"
    )
    app.add_js_file(None, priority=450, body=body)


def setup(app):
    app.add_config_value("sobirl_offline_assets", False, "html")
    # Priority above myst-nb's own config-inited handler (500), which copies nb_* values into its NbParserConfig.
    app.connect("config-inited", _configure, priority=100)
    # Early (priority 100 < the default 500) so the shim runs before the MathJax config and the widget manager.
    app.add_js_file(SHIM_JS, priority=100)
    # Late, after Sphinx's MathJax and myst-nb's widget scripts have been added to the page.
    app.connect("html-page-context", _widget_assets_path)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    # "Make this page interactive": Pyodide in a Web Worker (book/_ext/live_widgets.py).
    app.setup_extension(_live_widgets().__name__)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1.0"}


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in {"fetch", "check"}:
        print("usage: python book/_ext/offline_assets.py fetch [--force] | check", file=sys.stderr)
        sys.exit(2)
    if args[0] == "check":
        sys.exit(0 if assets_present() else 1)
    fetch(force="--force" in args)
    sys.exit(0)  # a failed download is a warning, never an error: the book still builds from CDNs
