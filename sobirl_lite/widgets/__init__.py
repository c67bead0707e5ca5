"""Interactive widgets for the book, one function per widget, each returning an ipywidgets object whose first
frame is already drawn (so the static HTML shows a real figure). Submodules by chapter."""
from .soft import contraction_widget, soft_gridworld_widget  # chapters 1 and 2
from .hypergrad import goal_distractor_problem, hypergradient_field, hypergradient_field_widget  # chapter 3
from .m_sobirl import m_sobirl_widget  # chapter 4
from .rlhf import rlhf_widget  # chapter 7
