import numpy as np
import pytest

from sobirl_lite import budget
from sobirl_lite.algorithms import History


def test_budget_switch(monkeypatch):
    monkeypatch.setenv("SOBIRL_BUDGET", "quick")
    assert budget.is_quick() and budget.pick(quick=1, full=2) == 1
    monkeypatch.setenv("SOBIRL_BUDGET", "FULL")
    assert budget.budget() == "full" and budget.pick(quick=1, full=2) == 2
    monkeypatch.delenv("SOBIRL_BUDGET")
    assert budget.budget() == "full"
    monkeypatch.setenv("SOBIRL_BUDGET", "huge")
    with pytest.raises(ValueError, match="SOBIRL_BUDGET"):
        budget.budget()


def test_history_records_columns():
    h = History("demo", {"beta": 0.1})
    for k, g in enumerate([1.0, 0.5, 0.1]):
        h.record(iteration=k, grad_norm=g, backups=10 * (k + 1))
    assert len(h) == 3
    np.testing.assert_array_equal(h["backups"], [10, 20, 30])
    assert np.all(np.isnan(h["samples"]))
    assert np.all(np.diff(h["wall_time"]) >= 0)
    assert h.first_below("grad_norm", 0.5, by="backups") == 20
    assert h.first_below("grad_norm", 0.01) is None
    with pytest.raises(KeyError, match="unknown"):
        h.record(foo=1)
    with pytest.raises(KeyError):
        h["foo"]
