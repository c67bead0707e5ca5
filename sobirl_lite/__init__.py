"""sobirl_lite: bilevel reinforcement learning via closed-form hyper-gradients.

The package behind the SoBiRL interactive book (Yang, Gao & Yuan, arXiv:2405.19697). Lower layers first:
``mdp`` (TabularMDP, generators) -> ``soft`` (soft Bellman operator, value map, solver) -> ``rewards`` and
``upper`` (the two levels' parameterisations) -> ``problem`` (BilevelProblem) -> ``hypergrad`` (eq. (9)).
"""
from . import budget  # the module: sobirl_lite.budget.pick(...)
from .budget import is_quick, pick
from .mdp import GridLayout, PolicySystem, TabularMDP, gridworld, random_mdp, solve_policy_system
from .soft import (SoftSolution, consistency_residuals, entropy, evaluate_policy, log_softmax_policy,
                   soft_bellman, soft_max, soft_value_map, softmax_policy, solve_soft_mdp)
from .rewards import LinearReward, TabularReward, TorchReward
from .upper import QuadraticUpper, UpperValue
from .bilevel import BilevelProblem
from .hypergrad import (HypergradientParts, ImplicitDerivatives, adjoint_vector, finite_difference_hypergradient,
                        forward_hypergradient, hypergradient, hypergradient_parts, implicit_derivatives, phi,
                        unrolled_hypergradient, unrolled_step)

__version__ = "0.1.0"
