"""One history type for every bilevel algorithm in the book, so figures and tables compare like with like."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

#: Columns every algorithm records (NaN where a quantity does not apply or was not asked for).
COLUMNS = (
    "iteration",       # outer iteration k
    "grad_norm",       # ||ĝ_k||: the norm of the algorithm's own hyper-gradient estimate
    "true_grad_norm",  # ||∇φ(x_k)|| from the closed form (9), when the run was asked to track it
    "phi",             # φ(x_k) = f(x_k, π*_{x_k}) when tracked, else f(x_k, π_k)
    "inner_iterations",  # inner iterations used at this outer step
    "backups",         # cumulative Bellman backups (one backup = one application of B or T to all states)
    "samples",         # cumulative environment transitions sampled (model-free methods)
    "wall_time",       # seconds since the run started
)


@dataclass
class History:
    """Per-iteration record of a run. ``h["grad_norm"]`` gives a column as an array; ``h.x`` is the final iterate
    (n,); ``h.xs`` the iterates when the run kept them; ``h.config`` the hyperparameters used."""

    algorithm: str
    config: dict = field(default_factory=dict)
    x: np.ndarray | None = None
    xs: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def record(self, **values):
        """Append one row; unknown column names raise, missing ones are NaN; ``wall_time`` is filled in."""
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown History columns {sorted(unknown)}; known: {COLUMNS}")
        row = {c: float(values.get(c, np.nan)) for c in COLUMNS}
        if "wall_time" not in values:
            row["wall_time"] = time.perf_counter() - self._t0
        self.rows.append(row)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in COLUMNS:
            raise KeyError(f"unknown column {column!r}; known: {COLUMNS}")
        return np.array([row[column] for row in self.rows])

    def __len__(self):
        return len(self.rows)

    def first_below(self, column: str, threshold: float, by: str = "iteration"):
        """Value of column ``by`` at the first row where ``column`` <= ``threshold`` (None if never)."""
        values = self[column]
        hits = np.flatnonzero(values <= threshold)
        return None if hits.size == 0 else float(self[by][hits[0]])

    def __repr__(self):
        return f"History({self.algorithm!r}, {len(self)} rows, config={self.config})"
