"""A matplotlib figure shown inside an ``ipywidgets.Output``, drawn without a running kernel.

Widgets in this package own a :class:`FigureView`: a matplotlib ``Figure`` that is *not* managed by pyplot (so it
is never displayed twice by the inline backend) and an ``Output`` widget whose ``outputs`` trait holds the figure
as a PNG. Setting ``outputs`` directly, instead of ``with output: display(...)``, works the same inside a kernel,
under ``nbclient`` (the saved widget state then carries the first frame into the static HTML) and in a plain
``pytest`` process, where unit tests read the PNG back.
"""
from __future__ import annotations

import base64
import io

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


class FigureView:
    """A figure plus the ``Output`` widget that shows it.

    Call :meth:`clear` to get a blank figure, draw on ``view.figure``, then :meth:`show` to push the PNG.
    ``n_draws`` counts :meth:`show` calls and ``png`` holds the last frame's bytes (tests use both).
    """

    def __init__(self, figsize=(9.0, 3.8), dpi=100):
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        FigureCanvasAgg(self.figure)
        self.dpi = dpi
        self.output = widgets.Output(layout=widgets.Layout(min_height=f"{int(figsize[1] * dpi)}px"))
        self.png = b""
        self.n_draws = 0

    def clear(self):
        """Remove every axes (and colorbar) and return the blank figure."""
        self.figure.clear()
        return self.figure

    def show(self):
        """Render the figure to PNG and make it the only output of the ``Output`` widget."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=self.dpi)
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
