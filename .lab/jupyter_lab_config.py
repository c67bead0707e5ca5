# JupyterLab configuration for `make lab` (and tests/test_lab.py, which starts the same server).
# `make lab` puts this folder on JUPYTER_CONFIG_PATH, so it adds to a reader's own Jupyter configuration
# instead of replacing it; anything given on the command line still wins.
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
