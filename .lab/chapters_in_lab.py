"""What `make lab` adds to a chapter it opens, so that jupyterlab-myst shows it as the book does, and takes away again
when the chapter is saved.

jupyterlab-myst (pinned with JupyterLab) renders markdown cells as MyST: admonitions, `{prf:...}` statements and
proofs, exercises and solutions, `{ref}`/`{numref}`/`{prf:ref}` references and `{doc}` links all render. Two things
the chapters rely on it cannot do from the chapter's text alone:

* **The book's TeX macros** (`\\R`, `\\pistar{x}`, ...) are defined once, in `_config.yml`, as MathJax configuration
  for Sphinx. jupyterlab-myst reads macros only from MyST front matter (`math:`) at the top of the notebook's first
  markdown cell; it never looks at notebook metadata, which is where jupytext puts a chapter's YAML header. So the
  chapter opens with one more markdown cell in front, holding that front matter, built from `_config.yml` each time
  a chapter is opened (no second copy of the macros to keep in step).
* **Glued figures.** A chapter stores each figure with myst-nb's `glue(name, fig, display=False)`, under a MIME type
  that JupyterLab does not display, and places it with `{glue:figure}`, a myst-nb directive that jupyterlab-myst
  does not know ("Unknown Directive"). JupyterLab cannot place an output inside a markdown cell, so the figure is
  shown where it is drawn instead: a second added cell, a code cell, makes `glue` also display what it stores (in this
  kernel only; the book build never sees the cell), and each `{glue:figure} NAME` opens as a MyST `{figure}` without
  an image: the caption, numbered and labelled (so `{numref}` finds it), right below the cell that drew the figure.

Saving drops the two added cells and puts each `{glue:figure} NAME` line back, so the `.md` on disk (and its paired
`.ipynb`) is what it would be without this module; tests/test_lab.py checks both the rendering and the round trip.
What stays short of the book: jupyterlab-myst has no bibliography (a citation shows its key with a warning mark) and
sees one notebook at a time (a reference to a label on another page shows the label, a `{doc}` link the file name).
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from jupytext.async_contentsmanager import AsyncTextFileContentsManager

CONFIG = Path(__file__).resolve().parents[1] / "_config.yml"
MARK = "sobirl_lab"  # cell metadata key of everything this module adds or changes; never reaches the .md
ADDED = "added"
GLUE_FIGURE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{glue:figure\}[ \t]+\S+[ \t]*$")

GLUE_CELL = '''\
# Added by `make lab` when it opened this chapter; it is not saved to the chapter. In the book each figure stored by
# glue() appears where a {glue:figure} places it; JupyterLab cannot place an output in the text, so here glue() also
# shows the figure in the cell that draws it (the caption follows right below that cell).
import myst_nb
import myst_nb.ext.glue


def _glue_and_show(name, variable, display=True):
    myst_nb.ext.glue.glue(name, variable, display=True)


myst_nb.glue = _glue_and_show'''


def book_macros(config: Path = CONFIG) -> dict[str, str]:
    """The macros of _config.yml's MathJax configuration as MyST front matter's `math:` wants them: "\\name" -> body.
    MathJax writes a macro with arguments as [body, count]; KaTeX, which jupyterlab-myst uses, counts the #1, #2 in
    the body itself."""
    tex = yaml.safe_load(config.read_text(encoding="utf-8"))["sphinx"]["config"]["mathjax3_config"]["tex"]
    return {"\\" + name: body if isinstance(body, str) else body[0] for name, body in tex["macros"].items()}


def front_matter_source(macros: dict[str, str]) -> str:
    body = yaml.safe_dump({"math": macros}, sort_keys=False, allow_unicode=True, width=1000)
    return ("---\n# The book's TeX macros (from _config.yml) for jupyterlab-myst. Added by `make lab` when it opened "
            "this chapter;\n# it is not saved to the chapter.\n" + body + "---")


def _new_cell(nb: dict, cell_type: str, source: str) -> dict:
    cell = {"cell_type": cell_type, "metadata": {MARK: ADDED, "editable": False, "deletable": False},
            "source": source}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):     # cell ids exist from nbformat 4.5 on
        cell["id"] = f"{MARK}-{cell_type}"
    return cell


def for_lab(nb: dict, macros: dict[str, str] | None = None) -> dict:
    """A chapter notebook (as jupytext read it) as JupyterLab should show it (see the module docstring)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        lines = cell["source"].split("\n")
        originals = []
        for i, line in enumerate(lines):
            if m := GLUE_FIGURE.match(line):
                originals.append(line)
                lines[i] = m["fence"] + "{figure}"
        if originals:
            cell["source"] = "\n".join(lines)
            cell.setdefault("metadata", {})[MARK] = {"glue_figure": originals}
    added = [_new_cell(nb, "markdown", front_matter_source(book_macros() if macros is None else macros)),
             _new_cell(nb, "code", GLUE_CELL)]
    nb["cells"][:0] = added
    return nb


def for_disk(nb: dict) -> dict:
    """The inverse of for_lab: the notebook as the chapter's .md holds it. A reader's edits in a changed cell are
    kept; only the `{figure}` lines that were `{glue:figure} NAME` lines get their original back, in order."""
    nb = copy.deepcopy(nb)
    cells = []
    for cell in nb["cells"]:
        mark = cell.get("metadata", {}).pop(MARK, None)
        if mark == ADDED:
            continue
        if isinstance(mark, dict) and mark.get("glue_figure"):
            originals = list(mark["glue_figure"])
            lines = cell["source"].split("\n")
            for i, line in enumerate(lines):
                m = re.match(r"^(`{3,}|:{3,})\{figure\}[ \t]*$", line)
                if m and originals and GLUE_FIGURE.match(originals[0])["fence"] == m[1]:
                    lines[i] = originals.pop(0)
            cell["source"] = "\n".join(lines)
        cells.append(cell)
    nb["cells"] = cells
    return nb


def _is_chapter(path: str, model: dict | None) -> bool:
    """A MyST markdown file opened as a notebook (the chapters; jupytext pairs them with an .ipynb, which is left
    alone: what is saved there comes from the same model, after for_disk)."""
    return path.strip("/").endswith(".md") and bool(model) and model.get("type") == "notebook"


class ChapterContentsManager(AsyncTextFileContentsManager):
    """Jupytext's contents manager, with for_lab on the way to JupyterLab and for_disk on the way back."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):  # noqa: A002 - the base's names
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if content and _is_chapter(path, model) and model.get("content"):
            model["content"] = for_lab(model["content"])
        return model

    async def save(self, model, path=""):
        if _is_chapter(path, model) and model.get("content"):
            model = {**model, "content": for_disk(model["content"])}
        return await super().save(model, path)
