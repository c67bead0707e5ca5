"""Upper-level objectives :math:`f(x, \\pi)` (eq. (1) of Yang et al.; reward shaping of their Section 3.3; a direct policy gradient).

An upper-level objective is any object with

* ``value(x, pi) -> float``;
* ``grad_x(x, pi) -> (n,)``: :math:`\\nabla_x f(x, \\pi)`;
* ``grad_pi(x, pi) -> (S, A)``: :math:`\\nabla_\\pi f(x, \\pi)`, the gradient with respect to the policy treated as a
  free (S, A) array (direct parameterisation, not restricted to the simplex).
"""
from __future__ import annotations

import numpy as np

from .mdp import PolicySystem, TabularMDP, _as_transitions, _check_distribution, _check_gamma
from .rewards import real_array


class QuadraticUpper:
    """:math:`f(x,\\pi) = \\tfrac12\\|x\\|^2 + \\tfrac12\\|\\pi\\|^2`: the paper's synthetic upper level (chapter 4 of the book)."""

    def value(self, x, pi):
        return 0.5 * float(np.dot(x, x)) + 0.5 * float(np.sum(np.asarray(pi) ** 2))

    def grad_x(self, x, pi):
        return np.asarray(x, dtype=np.float64).copy()

    def grad_pi(self, x, pi):
        return np.asarray(pi, dtype=np.float64).copy()

    def __repr__(self):
        return "QuadraticUpper()"


class UpperValue:
    """Minus the (unregularised) value of :math:`\\pi` in an upper-level MDP :math:`\\mathcal M_u` (Section 3.3 of Yang et al.):
    :math:`f(x,\\pi) = -\\mu_u^\\top V^\\pi_u`, with :math:`V^\\pi_u = (I-\\gamma P_{u,\\pi})^{-1} r_{u,\\pi}`.

    This is the reward-shaping objective: the lower level learns on a shaped reward :math:`r_x`, the upper
    level scores the resulting policy on the true reward ``r_u``. :math:`f` does not depend on ``x``.

    Parameters: ``P`` (S, A, S) or sparse (S*A, S), ``r`` (S, A), ``gamma`` in [0, 1), ``mu`` (S,) (uniform by
    default), ``n`` the dimension of ``x`` (for ``grad_x``).

    ``grad_pi`` is the direct-parameterisation policy gradient (the soft one of chapter 4's PBRL baseline, at :math:`\\tau = 0`):
    :math:`-\\partial V_u/\\partial\\pi(a|s) = -\\,[\\mu_u^\\top(I-\\gamma P_{u,\\pi})^{-1}](s)\\;Q^\\pi_u(s,a)`.
    """

    def __init__(self, P, r, gamma, mu=None, n: int | None = None):
        P, S, A = _as_transitions(P, name="P_u")
        r = real_array(r, "r_u")
        if r.shape != (S, A) or not np.all(np.isfinite(r)):
            raise ValueError(f"r_u must be a finite (S, A) = ({S}, {A}) array; got shape {r.shape}")
        # reuse TabularMDP's transition helpers; tau is irrelevant here (no entropy in the upper level)
        self._mdp = TabularMDP(P, r, _check_gamma(gamma), tau=1.0, rho=_check_distribution(mu, S, "mu"))
        self.S, self.A, self.n = S, A, n

    @classmethod
    def from_mdp(cls, mdp: TabularMDP, r=None, n: int | None = None):
        """The upper-level MDP sharing ``mdp``'s dynamics, discount and initial distribution (reward ``r`` or ``mdp.r``)."""
        return cls(mdp.P, mdp.r if r is None else r, mdp.gamma, mdp.rho, n=n)

    @property
    def mdp(self) -> TabularMDP:
        return self._mdp

    def _system(self, pi) -> PolicySystem:
        # GMRES first where it pays (sparse P: the LU of a random graph fills in and can take minutes);
        # PolicySystem factorises after all where GMRES does not converge (a slow grid). Inside sharing(), the
        # lower level's own system for this policy is taken instead.
        return PolicySystem(self._mdp, pi, krylov=PolicySystem.krylov_pays(self._mdp))

    def evaluate(self, pi, system: PolicySystem | None = None):
        """Unregularised ``(V_u, Q_u)`` of ``pi`` in the upper-level MDP; shapes (S,), (S, A)."""
        m = self._mdp
        system = self._system(pi) if system is None else system
        V = system.solve((pi * m.r).sum(axis=1))
        return V, m.r + m.gamma * m.expect(V)

    def value(self, x, pi):
        V, _ = self.evaluate(pi)
        return -float(self._mdp.rho @ V)

    def grad_x(self, x, pi):
        n = np.size(x) if self.n is None else self.n
        return np.zeros(n)

    def grad_pi(self, x, pi):
        system = self._system(pi)  # one factorisation serves both solves
        _, Q = self.evaluate(pi, system)
        occupancy = system.solve(self._mdp.rho, transpose=True)  # mu^T (I - gamma P_pi)^-1
        return -occupancy[:, None] * Q

    def __repr__(self):
        return f"UpperValue(S={self.S}, A={self.A}, gamma={self._mdp.gamma})"
