"""The bilevel problem (eq. (1) of Yang et al.): :math:`\\min_x \\phi(x) = f(x, \\pi^*_x)`, with :math:`\\pi^*_x` optimal in
the entropy-regularised MDP :math:`\\mathcal M_\\tau(x) = (S, A, P, r_x, \\gamma, \\tau)`."""
from __future__ import annotations

import numpy as np

from .mdp import TabularMDP


class BilevelProblem:
    """Dynamics ``P`` ((S, A, S) or sparse (S*A, S)), a parameterised ``reward`` (see :mod:`sobirl_lite.rewards`),
    an ``upper`` objective (see :mod:`sobirl_lite.upper`), ``gamma`` in [0, 1), ``tau > 0`` and ``rho`` (S,).

    ``P`` is validated once here; :meth:`mdp` then only checks the new reward.
    """

    def __init__(self, P, reward, upper, gamma, tau, rho=None):
        self._template = TabularMDP(P, np.zeros(_shape_of(P)), gamma, tau, rho)
        S, A = self._template.S, self._template.A
        if (reward.S, reward.A) != (S, A):
            raise ValueError(f"reward is over (S, A) = ({reward.S}, {reward.A}) but P has (S, A) = ({S}, {A})")
        for method in ("value", "grad_x", "grad_pi"):
            if not callable(getattr(upper, method, None)):
                raise TypeError(f"upper must have a {method}(x, pi) method")
        _check_upper_shapes(upper, S, A, reward.n)
        self.reward, self.upper = reward, upper
        self.S, self.A, self.n = S, A, reward.n
        self.gamma, self.tau, self.rho = self._template.gamma, self._template.tau, self._template.rho

    @classmethod
    def from_mdp(cls, mdp: TabularMDP, reward, upper):
        """A problem sharing ``mdp``'s dynamics, gamma, tau and rho (its reward is replaced by ``reward``)."""
        return cls(mdp.P, reward, upper, mdp.gamma, mdp.tau, mdp.rho)

    @property
    def P(self):
        return self._template.P

    def mdp(self, x) -> TabularMDP:
        """The lower-level MDP :math:`\\mathcal M_\\tau(x)` with reward ``reward.value(x)`` (S, A)."""
        return self._template.with_reward(self.reward.value(x))

    def __repr__(self):
        return (f"BilevelProblem(S={self.S}, A={self.A}, n={self.n}, gamma={self.gamma}, tau={self.tau}, "
                f"reward={self.reward!r}, upper={self.upper!r})")


def _check_upper_shapes(upper, S, A, n):
    """Catch an upper objective built for another problem at construction, not later as a numpy broadcast error:
    its declared (S, A) and n, then one probe at x = 0 and the uniform policy (grad_pi (S, A), grad_x (n,))."""
    up_S, up_A = getattr(upper, "S", None), getattr(upper, "A", None)
    if up_S is not None and (up_S, up_A) != (S, A):
        raise ValueError(f"the upper objective is over (S, A) = ({up_S}, {up_A}) but P has (S, A) = ({S}, {A})")
    up_n = getattr(upper, "n", None)
    if up_n is not None and up_n != n:
        raise ValueError(f"the upper objective expects x of size n = {up_n} but the reward has n = {n}")
    x0, pi0 = np.zeros(n), np.full((S, A), 1.0 / A)
    g_pi = np.shape(upper.grad_pi(x0, pi0))
    g_x = np.shape(upper.grad_x(x0, pi0))
    if g_pi != (S, A) or g_x != (n,):
        raise ValueError(f"the upper objective's gradients have shapes grad_pi {g_pi} and grad_x {g_x}; "
                         f"this problem needs ({S}, {A}) and ({n},)")


def _shape_of(P):
    if hasattr(P, "toarray"):  # scipy.sparse (S*A, S)
        n_rows, S = P.shape
        return (S, n_rows // S) if S and n_rows % S == 0 else (0, 0)
    P = np.asarray(P)
    return P.shape[:2] if P.ndim == 3 else (0, 0)
