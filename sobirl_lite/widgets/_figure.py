"""A matplotlib figure shown inside an ``ipywidgets.Output``, drawn without a running kernel.

Widgets in this package own a :class:`FigureView`: a matplotlib ``Figure`` that is *not* managed by pyplot (so it
is never displayed twice by the inline backend) and an ``Output`` widget whose ``outputs`` trait holds the figure
as a PNG. Setting ``outputs`` directly, instead of ``with output: display(...)``, works the same inside a kernel,
under ``nbclient`` (the saved widget state then carries the first frame into the static HTML) and in a plain
``pytest`` process, where unit tests read the PNG back.

Two things keep a slider move cheap, which matters most in the browser (Pyodide is several times slower than
CPython). The constrained layout runs on the first frame of a panel arrangement only; later frames reuse the axes
positions it found. And widgets route their redraws through :func:`request_redraw`, which a live page's bridge
defers so that several messages arriving together (quick moves of different sliders) cost one redraw; a redraw
may be a generator that yields a cheap preview first (see :func:`run_redraw`).
"""
from __future__ import annotations

import base64
import contextlib
import io
import os

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Width in CSS pixels of the column the figures are shown in, when known: a live page passes the reader's column in
# the environment variable SOBIRL_LIVE_COLUMN_PX. Narrower than a figure, a view lays its side-by-side panels out one
# above the other at the column's width, instead of letting the browser shrink the picture until its labels are
# unreadable.
column_px: int | None = int(os.environ["SOBIRL_LIVE_COLUMN_PX"]) if os.environ.get(
    "SOBIRL_LIVE_COLUMN_PX", "").isdigit() else None
NARROW_BELOW_PX = 640

_deferred: list | None = None  # while a live page applies a batch of messages: the redraws asked for


def run_redraw(redraw) -> None:
    """Run REDRAW to the end. A generator redraw yields preview callables, which are skipped here."""
    result = redraw()
    if hasattr(result, "__next__"):
        for _ in result:
            pass


def request_redraw(redraw) -> None:
    """Run REDRAW now (a kernel, tests), or record it while :func:`deferred_redraws` is active (a live page)."""
    if _deferred is None:
        run_redraw(redraw)
    else:
        _deferred.append({"redraw": redraw})


@contextlib.contextmanager
def deferred_redraws(pending: list):
    """Within the block, :func:`request_redraw` appends ``{"redraw": f}`` to PENDING instead of running f."""
    global _deferred
    previous, _deferred = _deferred, pending
    try:
        yield pending
    finally:
        _deferred = previous


def unique_redraws(pending: list) -> list:
    """PENDING with each redraw once, at the place of its last request (whose fields it keeps)."""
    last = {}
    for i, item in enumerate(pending):
        last[id(item["redraw"])] = i
    return [item for i, item in enumerate(pending) if last[id(item["redraw"])] == i]


def redraw_on_change(controls, update) -> None:
    """Observe the ``value`` of each control and redraw through :func:`request_redraw`."""
    for control in controls:
        control.observe(lambda _change: request_redraw(update), names="value")


def _break_lines(text: str, width_px: float, font_px: float) -> str:
    """TEXT with line breaks at spaces outside ``$...$`` so that no line is much wider than WIDTH_PX (an average
    glyph taken as 0.6 FONT_PX wide; mathematics counted by its source length, an overestimate)."""
    per_line = max(12, int(width_px / (0.6 * font_px)))
    if len(text) <= per_line or "\n" in text:
        return text
    words, current, in_math = [], "", False
    for ch in text:  # split at spaces outside mathematics
        if ch == "$":
            in_math = not in_math
        if ch == " " and not in_math:
            words.append(current)
            current = ""
        else:
            current += ch
    words.append(current)
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > per_line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


class FigureView:
    """A figure plus the ``Output`` widget that shows it.

    Call :meth:`clear` to get a blank figure (or :meth:`subplots` for a blank figure with its panels), draw, then
    :meth:`show` to push the PNG. ``n_draws`` counts :meth:`show` calls and ``png`` holds the last frame's bytes
    (tests use both). ``narrow`` is true when the view stacks side-by-side panels for a narrow column.
    """

    def __init__(self, figsize=(9.0, 3.8), dpi=100, layout=None):
        self.dpi = dpi
        self._layout = dict(layout or {})  # options of the constrained layout (e.g. wspace)
        self.narrow = column_px is not None and column_px < min(NARROW_BELOW_PX, figsize[0] * dpi)
        self.figsize = (column_px / dpi, figsize[1]) if self.narrow else tuple(figsize)
        self.figure = Figure(figsize=self.figsize, dpi=dpi)
        self.figure.set_layout_engine("constrained", **self._layout)
        FigureCanvasAgg(self.figure)
        # No minimum height: the picture sets the height, so a figure scaled down to a narrow column leaves no gap.
        self.output = widgets.Output()
        self.png = b""
        self.n_draws = 0
        self._arrangement = None  # what the current frame's panels are (subplots arguments)
        self._positions = {}      # arrangement -> axes positions the constrained layout found for it

    def clear(self):
        """Remove every axes (and colorbar) and return the blank figure."""
        self.figure.clear()
        self._arrangement = None
        return self.figure

    def subplots(self, nrows=1, ncols=1, **kwargs):
        """A blank figure with ``Figure.subplots(nrows, ncols, **kwargs)``; in a narrow view a single row of
        panels becomes a column (``width_ratios`` then dropped), the figure growing in height to fit."""
        self.clear()
        if self.narrow and nrows == 1 and ncols > 1:
            kwargs.pop("width_ratios", None)
            nrows, ncols = ncols, 1
            self.figure.set_size_inches(self.figsize[0], self.figsize[1] * 0.8 * nrows)
        self._arrangement = (nrows, ncols, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        return self.figure.subplots(nrows, ncols, **kwargs)

    def _fix_layout(self):
        """Reuse the positions of the first frame of this arrangement, or let the constrained layout find them."""
        fig, key = self.figure, self._arrangement
        known = self._positions.get(key) if key is not None else None
        if known is not None and len(known) == len(fig.axes):
            # No layout engine at all: even a placeholder engine makes savefig draw the figure twice.
            fig.set_layout_engine(None)
            if fig.get_layout_engine() is not None:  # rcParams ask for a layout: make it a no-op instead
                fig.set_layout_engine("none")
            for ax, pos in zip(fig.axes, known):
                ax.set_position(pos)
            return False
        fig.set_layout_engine("constrained", **self._layout)
        return True

    def show(self):
        """Render the figure to PNG and make it the only output of the ``Output`` widget."""
        if self.narrow:  # a title written for a wide panel would be cut at the column's edge: break it
            for ax in self.figure.axes:
                ax.title.set_text(_break_lines(ax.title.get_text(), self.figsize[0] * self.dpi,
                                               ax.title.get_fontsize() * self.dpi / 72))
        learn = self._fix_layout()
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi)
        if learn and self._arrangement is not None:
            self._positions[self._arrangement] = [ax.get_position(original=True).frozen() for ax in self.figure.axes]
        self.png = buf.getvalue()
        width, height = self.figure.canvas.get_width_height()
        self.output.outputs = (
            {
                "output_type": "display_data",
                "data": {
                    "image/png": base64.b64encode(self.png).decode("ascii"),
                    "text/plain": f"<Figure size {width}x{height}>",
                },
                # width only: where the column is narrower than the figure, the browser scales the height with it
                # (a fixed height too would squeeze the figure sideways)
                "metadata": {"image/png": {"width": width}},
            },
        )
        self.n_draws += 1
        return self.png


def panel(controls, view: FigureView, note: str | None = None):
    """Stack the controls (one row) above the figure; an optional HTML ``note`` goes between them."""
    rows = [widgets.HBox(list(controls), layout=widgets.Layout(flex_flow="row wrap"))]
    if note:
        rows.append(widgets.HTML(note))
    rows.append(view.output)
    return widgets.VBox(rows)


def settings_row(settings, axes, what: str, panel_size: tuple[float, float], **subplots):
    """``(settings, axes)`` for small multiples: SETTINGS as a non-empty list (WHAT names one setting in the error),
    AXES as given (one per setting) or a new row of panels of PANEL_SIZE inches (extra ``plt.subplots`` options in
    SUBPLOTS), flattened."""
    import matplotlib.pyplot as plt
    import numpy as np

    settings = list(settings)
    if not settings:
        raise ValueError(f"small multiples need at least one {what} setting")
    if axes is None:
        width, height = panel_size
        _, axes = plt.subplots(1, len(settings), figsize=(width * len(settings), height), layout="constrained",
                               **subplots)
    axes = np.atleast_1d(axes).ravel()
    if len(axes) != len(settings):
        raise ValueError(f"got {len(axes)} axes for {len(settings)} settings")
    return settings, axes
