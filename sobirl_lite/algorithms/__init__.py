"""Bilevel RL algorithms, one module each, all returning a :class:`History`."""
from ._common import DivergenceError
from .history import COLUMNS, History
from .sobirl import SoBiRLConfig, pmd_update, policy_mirror_descent, sobirl
from .drlhf import DRLHFConfig, drlhf, rl_true_reward
from .m_sobirl import MSoBiRLConfig, m_sobirl
from .exact_hgd import ExactHGDConfig, exact_hgd
from .itd import ITDConfig, itd, unrolled_step
from .pbrl import PBRLConfig, pbrl, value_penalty, value_penalty_gradients
from .parl import PARLConfig, parl, parl_hypergradient
