"""Launch links that work, or none (book/_ext/launch_links.py).

* The repository address is one setting: empty, no repository or issues button; set, both; a placeholder stops the
  build. Binder and Colab buttons are never drawn.
* In the built book (quick budget, the session's build) no page links to a placeholder repository, to a ``.md`` on
  Colab, or to Binder, and every notebook page offers a runnable ``.ipynb`` that exists, next to the wheel it installs.
* End to end: Chromium (network closed) clicks a page's download button; the saved notebook carries the address of
  the site that served it; run with a Python that has the chapter's libraries but not ``sobirl_lite`` and outside
  the checkout, its first cell installs the wheel from that site and the whole chapter runs with the quick budget.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import types
from pathlib import Path

import pytest

import book_support

PLACEHOLDERS = re.compile(r"github\.com/(sobirl-book/sobirl-book|executablebooks/jupyter-book)", re.I)
COLAB_MD = re.compile(r"colab\.research\.google\.com/[^\"'\s>]*\.md\b", re.I)
BINDER = re.compile(r"mybinder\.org|/v2/gh/", re.I)
HREF = re.compile(r"""href=["']([^"']+)["']""")
END_TO_END_PAGE = "book/01_soft_mdps"  # a chapter with a widget and glued figures, quick to run


@functools.lru_cache(maxsize=1)
def launch_links():
    import importlib.util

    spec = importlib.util.spec_from_file_location("launch_links", book_support.BOOK / "_ext" / "launch_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _configure(theme_options: dict) -> dict:
    config = types.SimpleNamespace(html_theme_options=theme_options, html_static_path=[])
    launch_links()._configure(None, config)
    return config.html_theme_options


# ---------------------------------------------------------------------------------------------------------------
# The setting
def test_repository_buttons_follow_the_one_setting():
    launch = {"notebook_interface": "jupyterlab", "binderhub_url": "https://mybinder.org",
              "colab_url": "https://colab.research.google.com", "thebe": True}
    unset = _configure({"repository_url": "", "launch_buttons": dict(launch), "use_repository_button": True})
    assert not unset["use_repository_button"] and not unset["use_issues_button"]
    assert not unset["use_edit_page_button"]
    # Jupyter Book's own default address counts as unset
    default = _configure({"repository_url": "https://github.com/executablebooks/jupyter-book"})
    assert default["repository_url"] == "" and not default["use_repository_button"]

    real = _configure({"repository_url": "https://github.com/someone/sobirl", "launch_buttons": dict(launch)})
    assert real["use_repository_button"] and real["use_issues_button"]
    for opts in (unset, real):
        assert not any(opts["launch_buttons"].get(k) for k in ("binderhub_url", "colab_url", "jupyterhub_url"))
        assert opts["launch_buttons"]["thebe"] is False


@pytest.mark.parametrize("url", ["https://github.com/sobirl-book/sobirl-book",
                                 "https://github.com/sobirl-book/sobirl-book.git"])
def test_placeholder_repository_is_refused(url):
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match="placeholder"):
        _configure({"repository_url": url})


def test_config_has_no_placeholder_or_colab_md():
    text = (book_support.REPO / "_config.yml").read_text()
    assert not PLACEHOLDERS.search(text)
    assert "colab_url: https" not in text and "binderhub_url: https" not in text


def test_setup_cell_is_short_and_picks_the_quick_budget():
    ll = launch_links()
    for doc in book_support.notebook_pages():
        nb = ll.runnable_notebook(book_support.page_source(doc))
        setup = nb.cells[1].source
        assert nb.cells[1].cell_type == "code" and 'os.environ["SOBIRL_BUDGET"] = "quick"' in setup
        assert ll.WHEEL_SITE_PATH in setup
        chapter_code = "\n".join(c.source for c in nb.cells[2:] if c.cell_type == "code")
        if re.search(r"""os\.path\.join\(["']data["']|["']data/""", chapter_code):
            assert "DATA = [" in setup, f"{doc} reads committed data but its set-up cell fetches none"
        too_long = [line for line in setup.splitlines() if len(line) > 88]
        assert not too_long, too_long
        compile(setup, f"{doc} set-up cell", "exec")
        # the set-up cell pins what the chapter imports, with the versions of pyproject.toml
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        pins = ll.pins()
        for module in ("torch", "pandas"):
            if re.search(rf"^\s*(import|from) {module}\b", code, re.M):
                assert pins[module] in setup, (doc, module)


# ---------------------------------------------------------------------------------------------------------------
# The built book
@pytest.fixture(scope="module")
def html(book_build) -> Path:
    if not book_build.ok:
        pytest.skip("the book did not build cleanly; see tests/test_book_build.py")
    return book_build.html


@pytest.mark.slow
def test_no_placeholder_colab_md_or_binder_links(html):
    bad = []
    for page in sorted(html.rglob("*.html")):
        for href in HREF.findall(page.read_text(encoding="utf-8", errors="replace")):
            if PLACEHOLDERS.search(href) or COLAB_MD.search(href) or BINDER.search(href):
                bad.append(f"{page.relative_to(html)}: {href}")
    assert not bad, "links that cannot work:\n  " + "\n  ".join(bad)


@pytest.mark.slow
def test_every_notebook_page_offers_a_runnable_notebook(html):
    ll = launch_links()
    assert (html / ll.WHEEL_SITE_PATH).is_file(), f"the wheel is missing from the site: {ll.WHEEL_SITE_PATH}"
    for doc in book_support.notebook_pages():
        page = (html / f"{doc}.html").read_text(encoding="utf-8")
        match = re.search(r'<a href="([^"]+)"[^>]*\n?[^>]*btn-download-runnable-notebook', page)
        assert match, f"{doc}: no runnable-notebook download button"
        target = (html / doc).parent / match.group(1)
        assert target.resolve().is_file(), f"{doc}: the download points at a missing file {match.group(1)}"
        nb = json.loads(target.read_text())
        assert nb["cells"][1]["cell_type"] == "code" and not any(c.get("outputs") for c in nb["cells"])
        # the committed results a chapter reads are served where its set-up cell fetches them
        for name in ll.chapter_data(ll.runnable_notebook(book_support.page_source(doc))):
            assert (html / ll.NOTEBOOK_DIR / name).is_file(), f"{doc}: {name} is not served with the site"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


def _python_without_sobirl_lite(tmp: Path) -> Path:
    """A virtual environment that sees this one's libraries (jupyter, numpy, ...) but not the editable sobirl_lite.

    A .pth line adds the site-packages folder to sys.path without running the .pth files in it, and one of those is
    what puts the checkout's sobirl_lite on the path.
    """
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "host_libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    check = subprocess.run([str(python), "-c", "import importlib.util as u; import numpy, pip, ipykernel; "
                            "assert u.find_spec('sobirl_lite') is None"], cwd=tmp, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    return python


@pytest.mark.slow
@pytest.mark.browser
def test_downloaded_notebook_runs_outside_the_checkout(html, tmp_path):
    binary = book_support.require_chromium("cannot click the download button")
    chrome = book_support.Chromium(binary, tmp_path / "profile")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    try:
        chrome.open_tab()
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            chrome.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)},
                        session=False)
            chrome.navigate(f"{base}/{END_TO_END_PAGE}.html", timeout=180)
            chrome.evaluate("document.querySelector('a.btn-download-runnable-notebook').click()", timeout=120)
            name = END_TO_END_PAGE.rsplit("/", 1)[-1] + ".ipynb"
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not (downloads / name).is_file():
                time.sleep(0.2)
            assert (downloads / name).is_file(), f"nothing downloaded: {list(downloads.iterdir())}"
            assert not chrome.exceptions()

            nb = json.loads((downloads / name).read_text())
            setup = "".join(nb["cells"][1]["source"])
            assert f'SITE = "{base}/"' in setup, "the download button did not write the site's address"

            python = _python_without_sobirl_lite(tmp_path)
            work = tmp_path / "elsewhere"  # not the checkout, not the book folder
            work.mkdir()
            (work / name).write_text(json.dumps(nb))
            runner = textwrap.dedent(f"""
                import nbformat, nbclient
                nb = nbformat.read({str(work / name)!r}, as_version=4)
                nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                        resources={{"metadata": {{"path": {str(work)!r}}}}}).execute()
                import sobirl_lite
                print("sobirl_lite from", sobirl_lite.__file__)
                nbformat.write(nb, {str(work / ('executed-' + name))!r})
            """)
            env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
                   "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "JUPYTER_PLATFORM_DIRS": "1",
                   "MPLBACKEND": "agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
            proc = book_support.run_starting_kernels([str(python), "-c", runner], cwd=work, env=env, timeout=900)
        finally:
            server.shutdown()
            server.server_close()
    finally:
        chrome.close()
    assert proc.returncode == 0, f"the downloaded notebook failed outside the checkout:\n{proc.stderr[-4000:]}"
    assert "sobirl_lite from" in proc.stdout and str(book_support.REPO) not in proc.stdout.split("from", 1)[1], \
        proc.stdout
    executed = json.loads((work / f"executed-{name}").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
