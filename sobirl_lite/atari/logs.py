"""Reading run directories written by :mod:`.trainers` (``progress.csv`` + ``config.json`` [+ ``README.md``]).

:func:`read_progress` splits the CSV into its three kinds of rows (games, outer iterations, evaluations) and returns float columns (``NaN`` where a row has
no value), which is all the book's figures need; no pandas required.
"""
from __future__ import annotations

import csv
import json
import os
from typing import NamedTuple

import numpy as np

from .run_files import CONFIG_NAME, CSV_FIELDS, CSV_NAME


def _float(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def read_progress(path: str) -> dict:
    """``{"episode": {column: (n,) float array}, "iteration": {...}, "eval": {...}}`` from a ``progress.csv``
    (``eval`` has no rows in logs written before evaluation games existed)."""
    rows = {"episode": [], "iteration": [], "eval": []}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["kind"], []).append(row)
    out = {}
    for kind, rs in rows.items():
        out[kind] = {c: np.array([_float(r.get(c)) for r in rs]) for c in CSV_FIELDS if c != "kind"}
    return out


class RunLog(NamedTuple):
    """A finished (or checkpointed) run: its ``config.json`` as a dict, its three kinds of rows, and the README."""

    name: str
    meta: dict
    episodes: dict
    iterations: dict
    readme: str
    evals: dict = {}

    @property
    def command(self) -> str:
        return " ".join(self.meta["command"])

    @property
    def steps(self) -> int:
        """Agent steps the log reaches (last iteration row)."""
        it = self.iterations["global_step"]
        return int(it[-1]) if it.size else 0


def read_run(run_dir: str) -> RunLog:
    """Load one run directory."""
    with open(os.path.join(run_dir, CONFIG_NAME)) as f:
        meta = json.load(f)
    progress = read_progress(os.path.join(run_dir, CSV_NAME))
    readme_path = os.path.join(run_dir, "README.md")
    readme = open(readme_path).read() if os.path.exists(readme_path) else ""
    return RunLog(os.path.basename(os.path.normpath(run_dir)), meta, progress["episode"], progress["iteration"], readme,
                  progress["eval"])


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (shorter at the start), ``(n,)``."""
    values = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)
