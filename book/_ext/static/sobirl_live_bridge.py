"""Runs inside Pyodide, in the Web Worker of a live page (see book/_ext/live_widgets.py): the kernel side of the
ipywidgets protocol, without a kernel and without IPython.

ipywidgets talks to its front end through the ``comm`` package. Here every comm message is handed to JavaScript
(``post(kind, payload_json, buffers)``, set by the worker), which forwards it to the page's ipywidgets HTML manager;
messages from the page come back through :func:`handle_batch`.

ipywidgets imports a few names from IPython (``get_ipython``, ``display``, ``clear_output`` and the display
formatter). Loading IPython itself costs about 2 s and 5 MB in the browser, so a small stand-in module provides
them (:func:`install_ipython_standin`): ``display`` turns an object into its MIME bundle and, while an ``Output``
widget is in a ``with`` block, appends it to that widget's ``outputs`` trait, which is what a notebook front end does
with a kernel's display messages. ``plt.show()`` goes through the backend of this module (:func:`show`).

A batch of messages from the page is applied before any figure is recomputed: the widgets of ``sobirl_lite``
register their redraws with :func:`sobirl_lite.widgets._figure.request_redraw`, which here only records them, and each
distinct redraw then runs once. Several quick moves therefore cost one computation.
"""
from __future__ import annotations

import base64
import io
import json
import re
import sys
import types
import uuid
from pathlib import Path

post = None  # set by the worker before use: post(kind: str, payload: str, buffers: list)


# --------------------------------------------------------------------------------------------------------------
# matplotlib's font list. Pyodide's matplotlib 3.8.4 ships a prebuilt matplotlib/fontlist.json, but it is stamped
# with the version number of a later matplotlib (390, where 3.8 expects 330), so matplotlib discards it and scans
# every bundled font on each visit (1.7 s in the browser). The entries themselves have the 3.8 format (relative
# paths into mpl-data, the same fields): re-stamping the file makes matplotlib read it (a few ms).
_font_list: dict = {}  # the shipped font list's path and its modification time once re-stamped


def use_shipped_font_list(folder: Path | None = None) -> str:
    """Re-stamp the font list shipped in FOLDER (default: matplotlib's package folder, found without importing it)
    with the version of its font manager; return what was done (for the log)."""
    import importlib.util

    if folder is None:
        spec = importlib.util.find_spec("matplotlib")
        if spec is None or not spec.submodule_search_locations:
            return "no matplotlib"
        folder = Path(list(spec.submodule_search_locations)[0])
    fontlist, source = Path(folder) / "fontlist.json", Path(folder) / "font_manager.py"
    if not fontlist.is_file() or not source.is_file():
        return "no shipped font list"
    found = re.search(r"^    __version__ = (\d+)$", source.read_text(), re.M)
    if not found:
        return "font manager version not found"
    data = json.loads(fontlist.read_text())
    note = "font list already current"
    if data.get("_version") != int(found.group(1)):
        data["_version"] = int(found.group(1))
        fontlist.write_text(json.dumps(data))
        note = f"font list re-stamped for version {found.group(1)}"
    _font_list.update(path=fontlist, mtime=fontlist.stat().st_mtime_ns, text=fontlist.read_text())
    return note


def font_list_reused() -> bool:
    """True when matplotlib's font manager has loaded and did not rebuild (and rewrite) the shipped font list."""
    if "matplotlib.font_manager" not in sys.modules or "path" not in _font_list:
        return False
    return _font_list["path"].read_text() == _font_list["text"]


# --------------------------------------------------------------------------------------------------------------
# display() without IPython
capturing: list = []  # the Output widgets whose `with` block is running, innermost last
_pending_clear: set = set()


def mime_bundle(obj) -> tuple[dict, dict]:
    """``(data, metadata)`` of OBJ as a notebook would display it (widgets, figures, _repr_*_ methods, text)."""
    if hasattr(obj, "_repr_mimebundle_"):
        bundle = obj._repr_mimebundle_()
        if isinstance(bundle, tuple):
            return dict(bundle[0]), dict(bundle[1] or {})
        if bundle:
            return dict(bundle), {}
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        buf = io.BytesIO()
        obj.savefig(buf, format="png", bbox_inches="tight")
        return {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": repr(obj)}, {}
    data = {"text/plain": repr(obj)}
    for mime, method in (("text/html", "_repr_html_"), ("image/svg+xml", "_repr_svg_"),
                         ("text/latex", "_repr_latex_"), ("text/markdown", "_repr_markdown_")):
        if hasattr(obj, method):
            value = getattr(obj, method)()
            if value is not None:
                data[mime] = value
    if hasattr(obj, "_repr_png_"):
        png = obj._repr_png_()
        if png is not None:
            data["image/png"] = base64.b64encode(png).decode("ascii")
    return data, {}


def display(*objs, **kwargs):
    """Append each object to the innermost ``Output`` in a ``with`` block (outside one, nothing is shown)."""
    for obj in objs:
        if not capturing:
            continue
        data, metadata = mime_bundle(obj)
        out = capturing[-1]
        outputs = () if id(out) in _pending_clear else tuple(out.outputs)
        _pending_clear.discard(id(out))
        out.outputs = outputs + ({"output_type": "display_data", "data": data, "metadata": metadata},)


def clear_output(wait=False):
    """Clear the innermost capturing ``Output`` now, or (``wait``) when something new is displayed."""
    if not capturing:
        return
    if wait:
        _pending_clear.add(id(capturing[-1]))
    else:
        capturing[-1].outputs = ()


class _Formatter:
    def format(self, obj, include=None, exclude=None):
        return mime_bundle(obj)


class InteractiveShell:
    """The one attribute ipywidgets reads: ``instance().display_formatter.format``."""

    display_formatter = _Formatter()
    _instance = None

    @classmethod
    def instance(cls, *args, **kwargs):
        cls._instance = cls._instance or cls()
        return cls._instance

    @classmethod
    def initialized(cls):
        return False


def install_ipython_standin() -> None:
    """Register a minimal ``IPython`` package in ``sys.modules`` (only when the real one is absent)."""
    try:
        import IPython  # noqa: F401  (the real one, if the page's packages brought it)
        return
    except ImportError:
        pass
    root = types.ModuleType("IPython")
    root.__path__ = []
    root.__doc__ = "Stand-in for IPython in a live page of the SoBiRL book (sobirl_live_bridge.py)."
    root.version_info = (8, 0, 0, "stand-in")
    root.get_ipython = lambda: None
    root.display = display
    disp = types.ModuleType("IPython.display")
    disp.display, disp.clear_output = display, clear_output
    core = types.ModuleType("IPython.core")
    core.__path__ = []
    shell = types.ModuleType("IPython.core.interactiveshell")
    shell.InteractiveShell = InteractiveShell
    getipython = types.ModuleType("IPython.core.getipython")
    getipython.get_ipython = root.get_ipython
    core_display = types.ModuleType("IPython.core.display_functions")
    core_display.display, core_display.clear_output = display, clear_output
    root.core, core.interactiveshell, core.getipython = core, shell, getipython
    for module in (root, disp, core, shell, getipython, core_display):
        sys.modules[module.__name__] = module


# matplotlib backend "module://sobirl_live_bridge": Agg canvases; plt.show() displays and closes pyplot's figures.
# (Set up at the end of start-up, after the font list: FigureCanvas and FigureManager must be module attributes.)
FigureCanvas = FigureManager = None


def show(*args, **kwargs):
    import matplotlib.pyplot as plt

    for num in plt.get_fignums():
        display(plt.figure(num))
    plt.close("all")


def _install_output_capture():
    import ipywidgets

    def enter(self):
        capturing.append(self)

    def exit(self, etype, evalue, tb):
        if capturing and capturing[-1] is self:
            capturing.pop()
        _pending_clear.discard(id(self))
        return False

    ipywidgets.Output.__enter__ = enter
    ipywidgets.Output.__exit__ = exit


# --------------------------------------------------------------------------------------------------------------
# comms
import comm  # noqa: E402
from comm.base_comm import BaseComm, CommManager  # noqa: E402

_manager = CommManager()
_parent = {"msg_id": ""}  # the page message being handled; replies carry it (ipywidgets' echo protocol needs it)


class WorkerComm(BaseComm):
    """A comm whose messages go to the page through the worker's postMessage."""

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        payload = {
            "msg_type": msg_type, "comm_id": self.comm_id, "data": data or {}, "metadata": metadata or {},
            "parent": _parent["msg_id"], "msg_id": uuid.uuid4().hex, **keys,
        }
        post("comm", json.dumps(payload), [bytes(b) for b in (buffers or [])])


comm.create_comm = lambda **kwargs: WorkerComm(**kwargs)
comm.get_comm_manager = lambda: _manager


def _apply(msg: dict, buffers) -> None:
    target = _manager.comms.get(msg["comm_id"])
    if target is None:
        return
    _parent["msg_id"] = msg["msg_id"]
    try:
        target.handle_msg({
            "header": {"msg_id": msg["msg_id"], "msg_type": "comm_msg"}, "parent_header": {}, "metadata": {},
            "content": {"comm_id": msg["comm_id"], "data": msg["data"]},
            "buffers": [memoryview(b.to_bytes() if hasattr(b, "to_bytes") else bytes(b)) for b in buffers],
        })
    finally:
        _parent["msg_id"] = ""


def handle(message_json: str, buffers=()) -> None:
    """One comm message from the page: ``{"comm_id", "msg_id", "data"}`` (data as the front end sent it)."""
    handle_batch(json.dumps([json.loads(message_json)]), [list(buffers)])


def handle_batch(messages_json: str, buffers=()) -> None:
    """Comm messages from the page that arrived together: apply them all, then run each redraw they asked for once.

    A redraw's replies carry the id of the last message that asked for it.
    """
    from sobirl_lite.widgets import _figure

    messages = json.loads(messages_json)
    buffers = list(buffers) or [[] for _ in messages]
    pending = []
    with _figure.deferred_redraws(pending):
        for msg, bufs in zip(messages, buffers):
            _apply(msg, bufs)
            for item in pending:
                item.setdefault("parent", msg["msg_id"])
    first_error = None
    for item in _figure.unique_redraws(pending):
        _continuations.pop(id(item["redraw"]), None)  # a newer request supersedes the unfinished one
        _parent["msg_id"] = item["parent"]
        try:
            result = item["redraw"]()
            if hasattr(result, "__next__"):  # staged: show the preview now, the rest when the page is idle
                preview = next(result, None)
                if preview is not None:
                    preview()
                    _continuations[id(item["redraw"])] = (result, item["parent"])
        except Exception as exc:  # one failing figure must not stop the others; the page is told afterwards
            first_error = first_error or exc
        finally:
            _parent["msg_id"] = ""
    if first_error is not None:
        raise first_error


_continuations: dict = {}  # id(redraw) -> (generator, message id) of a staged redraw still to finish


def has_work() -> bool:
    """True while a staged redraw has stages left (the worker then calls :func:`continue_work` when idle)."""
    return bool(_continuations)


def continue_work() -> None:
    """Run the oldest unfinished staged redraw to its end (previews it yields on the way are shown)."""
    if not _continuations:
        return
    key = next(iter(_continuations))
    generator, parent = _continuations.pop(key)
    _parent["msg_id"] = parent
    try:
        for preview in generator:
            preview()
    finally:
        _parent["msg_id"] = ""


# --------------------------------------------------------------------------------------------------------------
# start-up and the page's cells
font_note = use_shipped_font_list()
install_ipython_standin()
_install_output_capture()
import matplotlib  # noqa: E402
from matplotlib.backend_bases import FigureManagerBase as FigureManager  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg as FigureCanvas  # noqa: E402

matplotlib.use("module://sobirl_live_bridge")
namespace: dict = {"__name__": "__main__"}


def run_cell(source: str, display_last: bool):
    """Execute a cell of the page in one shared namespace; with ``display_last``, return the model id of the widget
    that its last expression evaluates to (the widget the static page shows for that cell)."""
    import ast

    import ipywidgets

    tree = ast.parse(source)
    last = None
    if display_last and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<page cell>", "exec"), namespace)
    if last is None:
        return None
    value = eval(compile(last, "<page cell>", "eval"), namespace)
    if not isinstance(value, ipywidgets.Widget):
        raise TypeError(f"the cell's last expression is a {type(value).__name__}, not a widget")
    return value.model_id
