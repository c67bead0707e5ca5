"""A chapter notebook that runs and reads well outside the book: plain Jupyter, JupyterLab, Colab.

The book's pages are MyST: directives (``:::{exercise}``, ``{glue:figure}``, ``{prf:theorem}``), roles
(``{doc}``, ``{cite:p}``, ``{numref}``), and MathJax macros defined in ``_config.yml`` (``\\R``, ``\\pistar{x}``).
A front end without MyST shows them raw. :func:`standalone` rewrites one notebook:

* markdown: each directive becomes plain markdown (a bold title, its body, a figure's caption in italics), each
  role its text (a page's title, a figure's number, an author-year citation), labels ``(name)=`` vanish, and the
  book's macros are expanded in place, so MathJax, KaTeX or any renderer shows them without a definition;
* code: the ``from myst_nb import glue`` line goes; the first code cell is the set-up cell of the book's runnable
  downloads (``book/_ext/launch_links.py``: installs ``sobirl_lite`` from the site's wheel where it is missing,
  picks the quick budget), followed by a ``glue`` that displays its figure where it is computed;
* outputs: a glued figure stored under myst-nb's record mime type (which Jupyter does not display) is shown in the
  cell that computed it.

Used by the student edition (tools/student_edition.py) and the otter assignments (tools/otter_assignments.py).
"""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "book" / "_ext") not in sys.path:
    sys.path.insert(0, str(REPO / "book" / "_ext"))
import launch_links  # noqa: E402  (the set-up cell: one copy, the book's)

GLUE_MIME_PREFIX = "application/papermill.record/"
_GLUE_CALL = re.compile(r"""\bglue\(\s*["']([^"']+)["']""")
_MYST_NB_IMPORT = re.compile(r"^\s*(from myst_nb import [^\n]*|import myst_nb[^\n]*)\n?", re.M)
_FENCE_OPEN = re.compile(r"^(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
_ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<body>[^`]*)`")
_LABEL_LINE = re.compile(r"^\(([\w-]+)\)=\s*$")
GLUE_STAND_IN = '''

def glue(name, obj, display=True):
    """Stand-in for myst_nb.glue: shows the figure (or value) right here."""
    IPython.display.display(obj)
'''


# ----------------------------------------------------------------------------------------------------------------
# Macros
def book_macros() -> dict[str, tuple[str, int]]:
    """name -> (expansion, number of arguments) from the MathJax configuration in _config.yml."""
    config = yaml.safe_load((REPO / "_config.yml").read_text(encoding="utf-8"))
    macros = config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    return {name: (value, 0) if isinstance(value, str) else (value[0], int(value[1]))
            for name, value in macros.items()}


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the {...} group opening at ``start`` (nested braces allowed) and the index after it."""
    if start >= len(text) or text[start] != "{":
        return None
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i], i + 1
    return None


def expand_macros(text: str, macros: dict[str, tuple[str, int]] | None = None) -> str:
    """Replace each book macro (``\\R``, ``\\Vstar{x}``) by its definition; ``\\Rightarrow`` and the like are left."""
    macros = book_macros() if macros is None else macros
    pattern = re.compile(r"\\(" + "|".join(sorted(map(re.escape, macros), key=len, reverse=True)) + r")(?![A-Za-z])")
    for _ in range(5):                       # a macro may expand to another one
        out, pos, changed = [], 0, False
        for m in pattern.finditer(text):
            if m.start() < pos:
                continue
            body, nargs = macros[m.group(1)]
            end, args = m.end(), []
            for _ in range(nargs):
                group = _braced(text, end)
                if group is None:
                    break
                args.append(group[0])
                end = group[1]
            if len(args) < nargs:
                continue
            for k, arg in enumerate(args, 1):
                body = body.replace(f"#{k}", arg)
            out.append(text[pos:m.start()])
            # a letter right after the expansion must not glue onto a command name ("\mathbb{R}x" is fine,
            # "\Deltax" is not)
            nxt = text[end:end + 1]
            out.append("{" + body + "}" if nxt.isalpha() and body[-1:].isalpha() else body)
            pos, changed = end, True
        out.append(text[pos:])
        text = "".join(out)
        if not changed:
            break
    return text


# ----------------------------------------------------------------------------------------------------------------
# Labels, titles and numbers across the book (what roles refer to)
def book_labels(docs: list[str]) -> dict[str, str]:
    """label -> the text a role pointing at it shows: page titles, section headings, figure numbers, the titles
    of theorems and exercises. ``docs`` are toc entries such as ``book/01_soft_mdps``."""
    labels = {}
    for doc in docs:
        path = REPO / f"{doc}.md"
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), Path(doc).name)
        labels[Path(doc).name] = labels[doc] = title
        prefix = re.match(r"(\d+)_", Path(doc).name)
        chapter, figure = (int(prefix.group(1)) if prefix else None), 0
        for i, line in enumerate(lines):
            if m := _LABEL_LINE.match(line):
                heading = next((ln.lstrip("#").strip() for ln in lines[i + 1:i + 4] if ln.startswith("#")), m[1])
                labels[m[1]] = heading
            elif m := _FENCE_OPEN.match(line):
                name, arg = m["name"], m["arg"].strip()
                options = {}
                for ln in lines[i + 1:i + 6]:
                    if o := _OPTION.match(ln):
                        options[o["key"]] = o["value"].strip()
                label = options.get("label") or options.get("name")
                if name in ("glue:figure", "figure"):
                    figure += 1
                    if label:
                        labels[label] = f"Figure {chapter}.{figure}" if chapter is not None else "the figure"
                elif label and name.startswith("prf:"):
                    kind = name.split(":", 1)[1].capitalize()
                    labels[label] = f"{kind} ({arg})" if arg else kind
                elif label and name == "exercise":
                    labels[label] = f"the exercise “{arg}”" if arg else "the exercise"
    return labels


def _role_text(role: str, body: str, labels: dict[str, str]) -> str:
    explicit = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^>]+)>$", body)
    if explicit and explicit["text"]:
        return explicit["text"]
    target = explicit["target"] if explicit else body
    if role in ("cite:p", "cite:t", "cite"):
        keys = [k.strip() for k in target.split(",")]
        return ("(" + "; ".join(keys) + ")") if role == "cite:p" else "; ".join(keys)
    if role == "math":
        return f"${body}$"
    if role == "eq":
        return f"({target})"
    name = target.split("/")[-1]
    return labels.get(target) or labels.get(name) or name


# ----------------------------------------------------------------------------------------------------------------
# Markdown
def plain_markdown(text: str, labels: dict[str, str], macros=None) -> str:
    """One markdown cell of MyST as plain markdown (see the module docstring)."""
    out, fences = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if _LABEL_LINE.match(line):
            i += 1
            continue
        m = _FENCE_OPEN.match(line)
        if m:
            name, arg = m["name"], m["arg"].strip()
            i += 1
            options = {}
            while i < len(lines) and (o := _OPTION.match(lines[i])):
                options[o["key"]] = o["value"].strip()
                i += 1
            fences.append((m["fence"], name))
            if name in ("math",):
                out.append("$$")
                fences[-1] = (m["fence"], "math")
            elif name in ("glue:figure", "figure"):
                label = options.get("name") or options.get("label") or ""
                number = labels.get(label, "Figure")
                out.append(f"*{number} (drawn by the code cell above):*")
            elif name == "bibliography":
                out.append("*(The bibliography is on the book's References page.)*")
            else:
                kind = name.split(":")[-1].replace("-", " ")
                title = f"{kind.capitalize()}: {arg}" if arg and name != "admonition" else (arg or kind.capitalize())
                if name == "prf:proof":
                    title = "Proof" + (f" ({arg})" if arg else "")
                out.append(f"**{title}.**")
            continue
        if fences and line.strip() == fences[-1][0]:
            fence, name = fences.pop()
            if name == "math":
                out.append("$$")
            elif name == "prf:proof":
                out.append("∎")
            i += 1
            continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    for _ in range(2):                  # twice: a title put in by a role may hold a role itself
        text = _ROLE.sub(lambda m: _role_text(m["role"], m["body"], labels), text)
    text = re.sub(r"(\$\$)\s*\(([\w-]+)\)", r"\1", text)      # $$ ... $$ (label): the label is MyST's
    text = re.sub(r"\$\$(.+?)\$\$", _split_lines, text, flags=re.S)
    return expand_macros(text, macros)


def _split_lines(m: re.Match) -> str:
    """A display with line breaks or alignment points but no environment: Sphinx wraps it in ``split``; a notebook
    renders it as written, where ``&`` is an error. Wrap it in ``aligned`` (what ``split`` does, inside ``$$``)."""
    body = m.group(1)
    if ("&" in body or "\\\\" in body) and "\\begin{" not in body:
        body = "\n\\begin{aligned}" + body.rstrip() + "\n\\end{aligned}\n"
    return "$$" + body + "$$"


# ----------------------------------------------------------------------------------------------------------------
# The notebook
def _show_glued_outputs(nb) -> None:
    """Outputs stored under myst-nb's record mime type become ordinary displays, in the cell that glued them."""
    by_name = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for name in _GLUE_CALL.findall(cell.source):
            by_name[name] = cell
    first = next((c for c in nb.cells if c.cell_type == "code"), None)
    for cell in [c for c in nb.cells if c.cell_type == "code"]:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if any(k.startswith(GLUE_MIME_PREFIX) for k in data):
                plain = {k[len(GLUE_MIME_PREFIX):]: v for k, v in data.items() if k.startswith(GLUE_MIME_PREFIX)}
                name = output.get("metadata", {}).get("scrapbook", {}).get("name")
                shown = nbformat.v4.new_output("display_data", data=plain)
                target = by_name.get(name, cell)
                if target is cell:
                    kept.append(shown)
                else:
                    target.setdefault("outputs", []).append(shown)
            else:
                kept.append(output)
        cell.outputs = kept
    del first


def standalone(nb, docs: list[str], site: str = "", labels: dict[str, str] | None = None):
    """A copy of ``nb`` that runs and renders outside the book (see the module docstring)."""
    nb = nbformat.from_dict(copy.deepcopy(nb))
    labels = book_labels(docs) if labels is None else labels
    macros = book_macros()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = plain_markdown(cell.source, labels, macros)
        elif cell.cell_type == "code":
            cell.source = _MYST_NB_IMPORT.sub("", cell.source)
    _show_glued_outputs(nb)
    setup = nbformat.v4.new_code_cell(launch_links.setup_source(launch_links.chapter_modules(nb), site,
                                                                launch_links.chapter_data(nb)) + GLUE_STAND_IN)
    setup.metadata["tags"] = ["sobirl-setup", "remove-cell"]
    intro = nbformat.v4.new_markdown_cell(
        "*From the student edition of the SoBiRL interactive book.* Run the next cell first: outside the book's "
        "repository it installs `sobirl_lite` from the book's site and picks the quick budget (set `SITE` to the "
        "book's address if it is empty). Text and figures: CC BY-SA 4.0; code: MIT.")
    intro.metadata["tags"] = ["remove-cell"]
    nb.cells[:0] = [intro, setup]
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb
