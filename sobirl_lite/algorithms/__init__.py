"""Bilevel RL algorithms, one module each, all returning a :class:`History`."""
from .history import COLUMNS, History
