"""The quick/full budget switch.

Notebooks and long-running helpers ask :func:`budget` how much work to do. The value comes from the
environment variable ``SOBIRL_BUDGET``:

* ``quick``: what the test command uses (every chapter well under a minute on 2 CPU cores);
* ``full`` (the default): what the rendered book shows, real results in a few minutes per chapter.

Use :func:`pick` to choose a value per budget, e.g. ``iters = pick(quick=200, full=3000)``.
"""
from __future__ import annotations

import os

ENV_VAR = "SOBIRL_BUDGET"
BUDGETS = ("quick", "full")


def budget() -> str:
    """Return the active budget, ``"quick"`` or ``"full"`` (read from ``$SOBIRL_BUDGET``, default ``"full"``)."""
    value = os.environ.get(ENV_VAR, "full").strip().lower() or "full"
    if value not in BUDGETS:
        raise ValueError(f"{ENV_VAR}={value!r} is not a budget; use one of {BUDGETS}")
    return value


def is_quick() -> bool:
    """True when the quick (test) budget is active."""
    return budget() == "quick"


def pick(*, quick, full):
    """Return ``quick`` under the quick budget and ``full`` otherwise."""
    return quick if is_quick() else full
