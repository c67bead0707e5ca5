# JupyterLab configuration for `make lab` (and tests/test_lab.py, which starts the same server).
# `make lab` puts this folder on JUPYTER_CONFIG_PATH, so it adds to a reader's own Jupyter configuration
# instead of replacing it; anything given on the command line still wins.
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The server's root is the repository, so that jupytext finds the repository's jupytext.toml (it looks in the
# notebook's folder and its parents, up to the root); the file browser opens on the chapters in book/. A notebook's
# kernel starts in its own folder (book/), where the book build runs the chapters too, so relative paths such as
# data/... behave the same.
c.ServerApp.root_dir = str(HERE.parent)  # noqa: F821 - `c` is provided by Jupyter's config loader
c.LabApp.default_url = "/lab/tree/book"  # noqa: F821
# settings/overrides.json: the MyST chapters (.md) open as notebooks (jupytext) and JupyterLab fetches no news.
c.LabApp.app_settings_dir = str(HERE / "settings")  # noqa: F821

# jupyterlab-myst (installed with JupyterLab, enabled by being installed) renders the markdown cells as MyST. The
# contents manager in chapters_in_lab.py adds what it needs to render a chapter as the book does (the book's macros
# from _config.yml, glued figures) when a chapter opens, and takes it away again when it is saved. It is jupytext's
# contents manager underneath, so the jupytext server extension keeps it as it is. Loaded from its file, so that
# .lab/ need not be on sys.path.
_spec = importlib.util.spec_from_file_location("sobirl_chapters_in_lab", HERE / "chapters_in_lab.py")
_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _module
_spec.loader.exec_module(_module)
c.ServerApp.contents_manager_class = _module.ChapterContentsManager  # noqa: F821
