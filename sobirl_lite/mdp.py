"""Tabular entropy-regularised MDPs (Section 3.1 of Yang et al.) and two generators.

A :class:`TabularMDP` holds the lower-level MDP :math:`\\mathcal M_\\tau = (S, A, P, r, \\gamma, \\tau)` with an
initial distribution :math:`\\rho`. Transitions may be dense, shape ``(S, A, S)``, or a ``scipy.sparse`` matrix of
shape ``(S*A, S)`` whose row ``s*A + a`` is :math:`P(\\cdot\\mid s, a)` (state-major stacking, as in the paper). Every
other module reaches ``P`` only through the methods below (:meth:`TabularMDP.expect`,
:meth:`TabularMDP.adjoint`, :meth:`TabularMDP.policy_matrix`, :func:`solve_policy_system`), so dense and sparse
models share one code path.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

ROW_SUM_TOL = 1e-8


def _spla():
    """``scipy.sparse.linalg``, imported on first use: only sparse MDPs need it, and importing it costs a
    noticeable part of a live page's start in the browser."""
    import scipy.sparse.linalg

    return scipy.sparse.linalg


def _as_transitions(P, S_expected=None, A_expected=None, name="P"):
    """Validate transitions and return ``(P, S, A)`` with ``P`` dense (S, A, S) float64 or CSR (S*A, S)."""
    if sp.issparse(P):
        P = sp.csr_matrix(P, dtype=np.float64)
        n_rows, S = P.shape
        if A_expected is None:
            if S == 0 or n_rows % S:
                raise ValueError(f"sparse {name} has shape {P.shape}; expected (S*A, S)")
            A = n_rows // S
        else:
            A = A_expected
            if n_rows != S * A:
                raise ValueError(f"sparse {name} has shape {P.shape}; expected (S*A, S) = ({S * A}, {S})")
        data = P.data
        if not np.all(np.isfinite(data)):
            raise ValueError(f"{name} contains NaN or infinite probabilities")
        if np.any(data < 0):
            raise ValueError(f"{name} contains negative probabilities (min {data.min():.3g})")
        sums = np.asarray(P.sum(axis=1)).ravel()
    else:
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"{name} must have shape (S, A, S); got {P.shape}")
        S, A = P.shape[0], P.shape[1]
        if not np.all(np.isfinite(P)):
            raise ValueError(f"{name} contains NaN or infinite probabilities")
        if np.any(P < 0):
            raise ValueError(f"{name} contains negative probabilities (min {P.min():.3g})")
        sums = P.sum(axis=2).ravel()
    if S == 0 or A == 0:
        raise ValueError(f"{name} must have at least one state and one action; got S={S}, A={A}")
    if S_expected is not None and S != S_expected:
        raise ValueError(f"{name} has {S} states; expected {S_expected}")
    bad = np.abs(sums - 1.0) > ROW_SUM_TOL
    if np.any(bad):
        i = int(np.argmax(bad))
        raise ValueError(
            f"rows of {name} must sum to 1 (tolerance {ROW_SUM_TOL:g}); row (s={i // A}, a={i % A}) sums to "
            f"{sums[i]!r} ({int(bad.sum())} bad rows)"
        )
    return P, S, A


def _check_gamma(gamma):
    gamma = float(gamma)
    if not (0.0 <= gamma < 1.0) or not np.isfinite(gamma):
        raise ValueError(f"gamma must lie in [0, 1); got {gamma}")
    return gamma


def _check_distribution(rho, S, name="rho"):
    if rho is None:
        return np.full(S, 1.0 / S)
    if np.iscomplexobj(rho):
        raise ValueError(f"{name} is complex; a distribution must be real")
    rho = np.asarray(rho, dtype=np.float64)
    if rho.shape != (S,):
        raise ValueError(f"{name} must have shape (S,) = ({S},); got {rho.shape}")
    if not np.all(np.isfinite(rho)) or np.any(rho < 0) or abs(rho.sum() - 1.0) > ROW_SUM_TOL:
        raise ValueError(f"{name} must be a probability distribution (non-negative, summing to 1)")
    return rho


class TabularMDP:
    """An entropy-regularised tabular MDP (Section 3.1 of Yang et al.).

    Parameters
    ----------
    P : array (S, A, S) or scipy.sparse matrix (S*A, S)
        Transition probabilities :math:`P(s'\\mid s,a)`; every row must sum to 1 (tolerance 1e-8).
    r : array (S, A)
        Finite rewards :math:`r(s, a)`.
    gamma : float in [0, 1)
        Discount factor.
    tau : float > 0
        Entropy temperature.
    rho : array (S,), optional
        Initial-state distribution; uniform by default.

    Raises
    ------
    ValueError
        Naming the problem: wrong shapes, negative or NaN probabilities, rows not summing to 1, ``rho`` not a
        distribution, ``gamma`` outside [0, 1), ``tau <= 0``, non-finite rewards.
    """

    def __init__(self, P, r, gamma, tau, rho=None):
        self.P, self.S, self.A = _as_transitions(P)
        self.sparse = sp.issparse(self.P)
        self.gamma = _check_gamma(gamma)
        tau = float(tau)
        if not np.isfinite(tau) or tau <= 0:
            raise ValueError(f"tau must be a positive finite temperature; got {tau}")
        self.tau = tau
        self.rho = _check_distribution(rho, self.S)
        self.r = self._check_reward(r)

    def _check_reward(self, r):
        if np.iscomplexobj(r):  # float64 conversion would drop the imaginary part with only a warning
            raise ValueError("r is complex; rewards must be real")
        r = np.asarray(r, dtype=np.float64)
        if r.shape != (self.S, self.A):
            raise ValueError(f"r must have shape (S, A) = ({self.S}, {self.A}); got {r.shape}")
        if not np.all(np.isfinite(r)):
            raise ValueError("r contains non-finite rewards (NaN or inf)")
        return r

    def with_reward(self, r) -> "TabularMDP":
        """Same dynamics, gamma, tau and rho with a new reward ``r`` (S, A); only ``r`` is re-validated."""
        new = object.__new__(TabularMDP)
        new.__dict__.update(self.__dict__)
        new.r = self._check_reward(r)
        return new

    def __repr__(self):
        kind = "sparse" if self.sparse else "dense"
        return f"TabularMDP(S={self.S}, A={self.A}, gamma={self.gamma}, tau={self.tau}, {kind})"

    # --- the only places that touch P -------------------------------------------------------------------------
    def expect(self, V):
        """:math:`(PV)(s,a) = \\sum_{s'} P(s'|s,a) V(s')`. ``V`` (S,) -> (S, A); ``V`` (S, k) -> (S, A, k)."""
        V = np.asarray(V, dtype=np.float64)
        if self.sparse:
            out = self.P @ V
            return out.reshape((self.S, self.A) + V.shape[1:])
        return np.tensordot(self.P, V, axes=([2], [0]))

    def adjoint(self, u):
        """:math:`(P^\\top u)(s') = \\sum_{s,a} P(s'|s,a) u(s,a)`. ``u`` (S, A) -> (S,)."""
        u = np.asarray(u, dtype=np.float64)
        if self.sparse:
            return self.P.T @ u.reshape(-1)
        return np.tensordot(u, self.P, axes=([0, 1], [0, 1]))

    def policy_matrix(self, pi):
        """:math:`P_\\pi(s,s') = \\sum_a \\pi(a|s) P(s'|s,a)`: dense (S, S) array, or CSR when ``P`` is sparse."""
        pi = np.asarray(pi, dtype=np.float64)
        if self.sparse:
            rows = np.repeat(np.arange(self.S), self.A)
            Pi = sp.csr_matrix((pi.reshape(-1), (rows, np.arange(self.S * self.A))), shape=(self.S, self.S * self.A))
            return (Pi @ self.P).tocsr()
        return np.einsum("sa,sat->st", pi, self.P)

    def dense_P(self):
        """Transitions as a dense (S, A, S) array (materialises a sparse ``P``; meant for small models)."""
        if self.sparse:
            return self.P.toarray().reshape(self.S, self.A, self.S)
        return self.P


class PolicySystem:
    """An LU factorisation of :math:`I-\\gamma P_\\pi`, reusable for several right-hand sides and for the transpose.

    Dense ``P``: ``scipy.linalg.lu_factor``; sparse ``P``: ``scipy.sparse.linalg.splu``. The matrix is
    invertible for every policy: its eigenvalues lie in :math:`[1-\\gamma, 1+\\gamma]` in modulus (Prop. C.1).

    ``reuse`` may pass the system of an earlier policy on the same dynamics (the same ``P`` arrays and ``gamma``),
    for instance the one :func:`~sobirl_lite.soft.solve_soft_mdp` factorised last. Its factors then replace a new
    factorisation: as they are when the two policies are equal, and as the preconditioner of iterative refinement
    when they differ by at most :attr:`REUSE_GAP` in any entry (a refinement step is one product with
    :math:`I-\\gamma P_\\pi` and shrinks the error by about :math:`\\gamma\\|P_\\pi-P_{\\pi'}\\|/(1-\\gamma)`).
    Anything else (other dynamics, a distant policy, refinement that stops contracting) gets a fresh
    factorisation; ``reused`` says which happened. Inside :func:`sharing`, a system built for the same dynamics and
    the same policy as a shared one reuses its factors without being passed it.

    ``krylov=True`` (sparse models whose LU would fill in, e.g. random graphs) skips the factorisation and solves
    by restarted GMRES (relative residual ``KRYLOV_RTOL``, repeated on the residual until it reaches round-off);
    if GMRES has not converged after ``KRYLOV_CYCLES`` restarts the system factorises after all. ``method`` says which (``"lu"`` or ``"krylov"``).
    """

    REUSE_GAP = 1e-3   # largest max|pi - pi'| at which the factors of pi' serve pi (with refinement)
    MAX_REFINE = 30
    KRYLOV_RESTART, KRYLOV_CYCLES, KRYLOV_RTOL = 50, 6, 1e-10
    # below this many states a dense LU (2S^3/3 flops) costs less than restarted GMRES (tens of S^2 products, each
    # with Python overhead): at S=100 the hyper-gradient took 12.6 ms with GMRES, 1.4 ms with LU
    # (benchmarks/hypergradient.py, the S=100 and S=500 dense classes)
    KRYLOV_DENSE_MIN_S = 1000

    @classmethod
    def krylov_pays(cls, mdp: "TabularMDP") -> bool:
        """Whether GMRES is worth trying before a factorisation on ``mdp``: sparse ``P`` (whose LU may fill in, as on
        a random graph) or a dense model of more than ``KRYLOV_DENSE_MIN_S`` states."""
        return bool(mdp.sparse or mdp.S > cls.KRYLOV_DENSE_MIN_S)

    def __init__(self, mdp: "TabularMDP", pi, reuse: "PolicySystem | None" = None, krylov: bool = False):
        self.pi = np.array(pi, dtype=np.float64)  # a copy: the factors must not follow later edits of pi
        self.sparse, self.gamma, self._P = mdp.sparse, mdp.gamma, mdp.P
        self._op = None  # I - gamma P_pi itself: for refinement with another policy's factors, or for Krylov
        self._lu, self.reused, self.method = None, False, "lu"
        donor = reuse if reuse is not None else _shared_donor(mdp, self.pi)
        if donor is not None and donor.method == "krylov":
            if np.array_equal(self.pi, donor.pi) and donor._same_model(mdp):
                self._op, self.method, self.reused = donor._op, "krylov", True
                return
            donor = None
        if donor is not None and donor._can_serve(mdp, self.pi):
            self._lu, self._lu_pi, self.reused = donor._lu, donor._lu_pi, True
            if not np.array_equal(self.pi, self._lu_pi):
                same = donor._op is not None and np.array_equal(self.pi, donor.pi)
                self._op = donor._op if same else _operator(mdp, self.pi)
        elif krylov:
            # no factorisation: restarted GMRES on the sparse operator (falls back to LU if it does not converge)
            self._op, self.method = _operator(mdp, self.pi), "krylov"
        else:
            self._factorise(_operator(mdp, self.pi))

    def _factorise(self, A):
        self._lu = _spla().splu(A.tocsc()) if self.sparse else sla.lu_factor(A, check_finite=False)
        self._lu_pi, self._op, self.reused, self.method = self.pi, None, False, "lu"

    def _same_model(self, mdp) -> bool:
        return self.gamma == mdp.gamma and _same_transitions(self._P, mdp.P)

    def _can_serve(self, mdp, pi) -> bool:
        """Whether these factors can solve the system of ``pi`` on ``mdp`` (possibly with refinement)."""
        if self.method != "lu":
            return False
        return (self._lu_pi.shape == pi.shape and self._same_model(mdp)
                and float(np.max(np.abs(pi - self._lu_pi))) <= self.REUSE_GAP)

    def _krylov_solve(self, b, transpose):
        A = self._op.T if transpose else self._op
        cols = b[:, None] if b.ndim == 1 else b
        out = np.zeros_like(cols)
        eps = np.finfo(np.float64).eps
        for j in range(cols.shape[1]):
            y = out[:, j]
            # GMRES on the residual, repeated (iterative refinement), so that y is accurate to round-off and
            # not only to GMRES's relative tolerance
            for _ in range(4):
                res = cols[:, j] - A @ y
                if np.max(np.abs(res)) <= 64 * eps * max(np.max(np.abs(cols[:, j])), np.max(np.abs(y)), 1e-300):
                    break
                d, info = _spla().gmres(A, res, rtol=self.KRYLOV_RTOL, atol=0.0, restart=self.KRYLOV_RESTART,
                                     maxiter=self.KRYLOV_CYCLES)
                if info != 0:  # too slow to converge (a slowly mixing chain): factorise after all
                    self._factorise(self._op)
                    return self._lu_solve(b, transpose)
                y = y + d
            out[:, j] = y
        return out[:, 0] if b.ndim == 1 else out

    def _lu_solve(self, b, transpose):
        if self.sparse:
            return self._lu.solve(b, trans="T" if transpose else "N")
        return sla.lu_solve(self._lu, b, trans=1 if transpose else 0, check_finite=False)

    def solve(self, b, transpose: bool = False):
        """:math:`(I-\\gamma P_\\pi)^{-1} b`, or :math:`(I-\\gamma P_\\pi)^{-\\top} b`; ``b`` (S,) or (S, k)."""
        b = np.asarray(b, dtype=np.float64)
        if self.method == "krylov":
            return self._krylov_solve(b, transpose)
        y = self._lu_solve(b, transpose)
        if self._op is None:
            return y
        # iterative refinement: factors of a nearby policy, residual with this policy's exact matrix
        A = self._op.T if transpose else self._op
        previous = np.inf
        for _ in range(self.MAX_REFINE):
            res = b - A @ y
            size = float(np.max(np.abs(res), initial=0.0))
            floor = 16 * np.finfo(np.float64).eps * max(float(np.max(np.abs(b), initial=0.0)),
                                                         float(np.max(np.abs(y), initial=0.0)))
            if size <= floor:
                return y
            if size > 0.5 * previous:  # stalled: accept only at round-off level, else factorise afresh
                if size <= 1e3 * floor:
                    return y
                break
            previous = size
            y = y + self._lu_solve(res, transpose)
        self._factorise(self._op)
        return self._lu_solve(b, transpose)


def _operator(mdp: "TabularMDP", pi):
    """:math:`I-\\gamma P_\\pi`: dense (S, S), or CSR for sparse ``P``."""
    P_pi = mdp.policy_matrix(pi)
    if mdp.sparse:
        return (sp.identity(mdp.S, format="csr") - mdp.gamma * P_pi).tocsr()
    A = -mdp.gamma * P_pi
    A.flat[:: mdp.S + 1] += 1.0  # I - gamma P_pi without allocating I
    return A


def _same_buffer(a, b) -> bool:
    return (a is b or (a.shape == b.shape and a.dtype == b.dtype and a.strides == b.strides
                       and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]))


def _same_transitions(P1, P2) -> bool:
    """True when ``P1`` and ``P2`` are the same arrays in memory (an MDP with another reward shares them)."""
    if P1 is P2:
        return True
    if sp.issparse(P1) and sp.issparse(P2):
        return P1.shape == P2.shape and all(_same_buffer(getattr(P1, k), getattr(P2, k))
                                            for k in ("data", "indices", "indptr"))
    if sp.issparse(P1) or sp.issparse(P2):
        return False
    return _same_buffer(P1, P2)


_SHARED = threading.local()


@contextmanager
def sharing(system: PolicySystem):
    """Within the block, ``PolicySystem(mdp, pi)`` for ``system``'s dynamics and exactly its policy reuses its
    factors. :func:`~sobirl_lite.hypergrad.hypergradient` wraps the upper level's gradient in it: an upper-level
    objective that evaluates :math:`\\pi^*` in a model with the same ``P`` and ``gamma`` (reward shaping) then
    needs no factorisation of its own."""
    stack = getattr(_SHARED, "systems", ())
    _SHARED.systems = stack + (system,)
    try:
        yield system
    finally:
        _SHARED.systems = stack


def _shared_donor(mdp, pi):
    for system in reversed(getattr(_SHARED, "systems", ())):
        if system.pi.shape == pi.shape and np.array_equal(system.pi, pi) and system._same_model(mdp):
            return system
    return None


def solve_policy_system(mdp: TabularMDP, pi, b, transpose: bool = False):
    """Solve :math:`(I-\\gamma P_\\pi) y = b`, or :math:`(I-\\gamma P_\\pi)^\\top y = b` with ``transpose=True``.

    ``pi`` (S, A); ``b`` (S,) or (S, k). One LU factorisation (dense, or sparse for sparse ``P``); use
    :class:`PolicySystem` directly to reuse it.
    """
    return PolicySystem(mdp, pi).solve(b, transpose)


# --------------------------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------------------------
# above this many (S*A*S) entries the argsort of random_mdp would need gigabytes: draw successors by rejection instead
# (a different random stream, so every model small enough for the argsort keeps the successors it always had)
_ARGSORT_LIMIT = 50_000_000


def _distinct_successors(rng, rows: int, S: int, branching: int) -> np.ndarray:
    """(rows, branching) successor indices, distinct within each row, uniform over subsets, in O(rows * branching)
    memory: draw with replacement, redraw the rows that repeat a state (few when branching << S), and fall back to
    a per-row permutation for the rest when branching is a large fraction of S."""
    cols = rng.integers(0, S, size=(rows, branching))
    for _ in range(100):
        ordered = np.sort(cols, axis=1)
        repeats = np.flatnonzero(np.any(ordered[:, 1:] == ordered[:, :-1], axis=1))
        if repeats.size == 0:
            return cols
        cols[repeats] = rng.integers(0, S, size=(repeats.size, branching))
    for r in repeats:  # dense rows (branching close to S): rejection is slow there, a permutation is not
        cols[r] = rng.permutation(S)[:branching]
    return cols


def random_mdp(S: int, A: int, branching: int | None = None, seed=0, gamma: float = 0.9, tau: float = 1.0,
               reward_scale: float = 1.0, sparse: bool = False) -> TabularMDP:
    """A random MDP: each (s, a) moves to ``branching`` distinct random successors with Dirichlet(1) weights.

    ``branching=None`` means every state is a possible successor (dense rows). Rewards are uniform on
    ``[0, reward_scale]``. Same ``seed``, same MDP. ``sparse=True`` stores ``P`` as CSR (S*A, S); with a small
    ``branching`` it scales to millions of states (successors drawn by rejection when S*A*S exceeds 5e7).
    """
    if S < 1 or A < 1:
        raise ValueError(f"need S >= 1 and A >= 1; got S={S}, A={A}")
    branching = S if branching is None else int(branching)
    if not 1 <= branching <= S:
        raise ValueError(f"branching must lie in [1, S={S}]; got {branching}")
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(branching), size=S * A)  # (S*A, branching)
    if S * A * S <= _ARGSORT_LIMIT:
        # argsort of uniform noise: a random subset of successors per row, without a Python loop
        cols = np.argsort(rng.random((S * A, S)), axis=1)[:, :branching]
    else:
        cols = _distinct_successors(rng, S * A, S, branching)
    rows = np.repeat(np.arange(S * A), branching)
    P = sp.csr_matrix((weights.ravel(), (rows, cols.ravel())), shape=(S * A, S))
    r = reward_scale * rng.random((S, A))
    if not sparse:
        P = P.toarray().reshape(S, A, S)
    return TabularMDP(P, r, gamma, tau)


@dataclass(frozen=True)
class GridLayout:
    """Geometry of a :func:`gridworld`: state ``s = row * width + col``; actions 0..3 = up, down, left, right."""

    height: int
    width: int
    walls: frozenset
    goal: tuple
    start: tuple | None

    ACTIONS = ("up", "down", "left", "right")
    MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))

    def state(self, row: int, col: int) -> int:
        return row * self.width + col

    def coords(self, s: int) -> tuple:
        return divmod(int(s), self.width)

    def to_grid(self, values):
        """Reshape a per-state array (S,) or (S, ...) to (height, width, ...); walls become NaN."""
        grid = np.array(values, dtype=np.float64).reshape((self.height, self.width) + np.shape(values)[1:])
        for (rw, cl) in self.walls:
            grid[rw, cl] = np.nan
        return grid


def gridworld(height: int = 5, width: int = 5, walls=(), goal=None, start=(0, 0), slip: float = 0.1,
              goal_reward: float = 1.0, step_reward: float = 0.0, gamma: float = 0.95, tau: float = 0.1,
              absorbing_goal: bool = True, sparse: bool | None = None) -> TabularMDP:
    """A grid world with walls, slippery moves and a sparse goal reward.

    Each cell is a state ``s = row * width + col``; the four actions move up, down, left, right. With
    probability ``1 - slip`` the intended move happens, otherwise one of the four moves is taken uniformly at
    random. Moves into a wall or off the grid leave the agent in place. The reward is ``goal_reward`` for any
    action taken in the goal cell and ``step_reward`` elsewhere; the goal is absorbing by default. ``rho`` is
    the point mass on ``start`` (uniform over free cells when ``start=None``).

    Wall cells stay in the state space (as unreachable self-loops) so that arrays reshape to the grid; the
    returned MDP carries a :class:`GridLayout` as ``mdp.layout``. ``sparse`` defaults to True above 2,500 cells.
    """
    if height < 1 or width < 1:
        raise ValueError(f"grid must be at least 1x1; got {height}x{width}")
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must be a probability in [0, 1]; got {slip}")
    goal = (height - 1, width - 1) if goal is None else tuple(goal)
    walls = frozenset(tuple(w) for w in walls)
    for name, cell in (("goal", goal), ("start", start)):
        if cell is not None and (not (0 <= cell[0] < height and 0 <= cell[1] < width) or cell in walls):
            raise ValueError(f"{name} {cell} must be a free cell inside the {height}x{width} grid")
    S, A = height * width, 4
    sparse = S > 2500 if sparse is None else sparse

    rows_idx, cols_idx = np.divmod(np.arange(S), width)
    wall_mask = np.zeros((height, width), dtype=bool)
    for (rw, cl) in walls:
        wall_mask[rw, cl] = True
    # successor of each (s, move) when the move succeeds; blocked moves stay put
    succ = np.empty((S, 4), dtype=np.int64)
    for m, (dr, dc) in enumerate(GridLayout.MOVES):
        nr, nc = rows_idx + dr, cols_idx + dc
        ok = (nr >= 0) & (nr < height) & (nc >= 0) & (nc < width)
        nr_c, nc_c = np.where(ok, nr, rows_idx), np.where(ok, nc, cols_idx)
        ok &= ~wall_mask[nr_c, nc_c]
        succ[:, m] = np.where(ok, nr_c * width + nc_c, np.arange(S))
    # action a takes move m with prob (1-slip)[m==a] + slip/4
    probs = np.full((4, 4), slip / 4) + (1 - slip) * np.eye(4)  # (a, m)
    row_ids = np.repeat(np.arange(S * A), 4)  # each (s, a) row has 4 candidate moves
    col_ids = np.repeat(succ, A, axis=0).reshape(S, A, 4)  # succ[s, m] for every a
    data = np.broadcast_to(probs, (S, A, 4))
    absorbing = wall_mask.ravel().copy()
    g = goal[0] * width + goal[1]
    if absorbing_goal:
        absorbing[g] = True
    col_ids = np.where(absorbing[:, None, None], np.arange(S)[:, None, None], col_ids)
    P = sp.csr_matrix((data.ravel(), (row_ids, col_ids.ravel())), shape=(S * A, S))  # duplicates are summed
    if not sparse:
        P = P.toarray().reshape(S, A, S)

    r = np.full((S, A), float(step_reward))
    r[g] = goal_reward
    r[wall_mask.ravel()] = 0.0
    if start is None:
        free = ~wall_mask.ravel()
        rho = free / free.sum()
    else:
        rho = np.zeros(S)
        rho[start[0] * width + start[1]] = 1.0
    mdp = TabularMDP(P, r, gamma, tau, rho)
    mdp.layout = GridLayout(height, width, walls, goal, None if start is None else tuple(start))
    return mdp
