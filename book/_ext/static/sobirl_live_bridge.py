"""Runs inside Pyodide, in the Web Worker of a live page (see book/_ext/live_widgets.py): the kernel side of the
ipywidgets protocol, without a kernel.

ipywidgets talks to its front end through the ``comm`` package. Here every comm message is handed to JavaScript
(``post(kind, payload_json, buffers)``, set by the worker), which forwards it to the page's ipywidgets HTML manager;
messages from the page come back through :func:`handle`. An IPython shell (no kernel) gives ``display`` and
``clear_output`` somewhere to go: while an ``Output`` widget is in a ``with`` block, what is displayed is appended to
its ``outputs`` trait, which is what a notebook front end does with the kernel's messages.
"""
from __future__ import annotations

import json
import uuid

import comm
from comm.base_comm import BaseComm, CommManager

post = None  # set by the worker before use: post(kind: str, payload: str, buffers: list)

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


def handle(message_json: str, buffers=()) -> None:
    """A comm message from the page: ``{"comm_id", "msg_id", "data"}`` (data as the front end sent it)."""
    msg = json.loads(message_json)
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


# --------------------------------------------------------------------------------------------------------------
# display() and Output capture, for widgets built with `interactive` or `with output:` (the intro's widget).
def _install_display_capture():
    import ipywidgets
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    capturing: list = []  # the Output widgets whose `with` block is running, innermost last
    pending_clear: set = set()

    class CapturePublisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            if not capturing:
                return
            out = capturing[-1]
            outputs = () if id(out) in pending_clear else tuple(out.outputs)
            pending_clear.discard(id(out))
            out.outputs = outputs + ({"output_type": "display_data", "data": data, "metadata": metadata or {}},)

        def clear_output(self, wait=False):
            if not capturing:
                return
            if wait:
                pending_clear.add(id(capturing[-1]))
            else:
                capturing[-1].outputs = ()

    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.instance(config=config, display_pub_class=CapturePublisher)

    def enter(self):
        capturing.append(self)

    def exit(self, etype, evalue, tb):
        if capturing and capturing[-1] is self:
            capturing.pop()
        pending_clear.discard(id(self))
        return False

    ipywidgets.Output.__enter__ = enter
    ipywidgets.Output.__exit__ = exit
    import matplotlib

    matplotlib.use("module://matplotlib_inline.backend_inline")


_install_display_capture()
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
