"""Rewards parameterised by the upper-level variable :math:`x \\in \\mathbb R^n` (Section 3.1 of Yang et al.: :math:`r_x`, :math:`\\nabla r_x`).

Every reward exposes

* ``value(x) -> (S, A)``: :math:`r_x`;
* ``vjp(x, g) -> (n,)``: :math:`\\nabla r_x^\\top g = \\sum_{s,a} g(s,a)\\,\\nabla_x r_x(s,a)` for ``g`` (S, A);
* ``jacobian(x) -> (S, A, n)``: :math:`\\nabla r_x` itself (for teaching and forward-mode formulas);
* ``value_torch(x_t) -> (S, A)``: the same map on a float64 torch tensor, differentiable (used by the
  unrolled-autograd baseline).

The hyper-gradient only needs ``vjp``, so its cost does not grow with ``n`` beyond one vector-Jacobian product.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# torch is imported where it is used: the rest of the package runs without it (in Pyodide, torch does not exist).


def real_array(value, name: str):
    """``value`` as a float64 array; a ValueError naming ``name`` if it is complex (numpy would silently drop the
    imaginary part)."""
    if np.iscomplexobj(value) or (sp.issparse(value) and np.iscomplexobj(value.data)):
        raise ValueError(f"{name} is complex; rewards and their parameters must be real")
    return value if sp.issparse(value) else np.asarray(value, dtype=np.float64)


class _Reward:
    S: int
    A: int
    n: int

    def _check_x(self, x):
        x = real_array(x, "x")
        if x.shape != (self.n,):
            raise ValueError(f"x must have shape (n,) = ({self.n},); got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or infinite entries")
        return x

    def _check_g(self, g):
        g = real_array(g, "g")
        if g.shape != (self.S, self.A):
            raise ValueError(f"g must have shape (S, A) = ({self.S}, {self.A}); got {g.shape}")
        return g

    def __repr__(self):
        return f"{type(self).__name__}(S={self.S}, A={self.A}, n={self.n})"


class LinearReward(_Reward):
    """:math:`r_x(s,a) = \\phi(s,a)^\\top x` with features ``features`` of shape (S, A, n).

    ``features`` may also be a ``scipy.sparse`` matrix of shape (S*A, n) (row ``s*A + a``), e.g. one-hot or
    tile-coded features; then pass ``shape=(S, A)``. ``value`` and ``vjp`` then cost O(nnz), not O(S*A*n).
    """

    def __init__(self, features, shape=None):
        features = real_array(features, "features")
        if sp.issparse(features):
            if shape is None or len(shape) != 2 or shape[0] * shape[1] != features.shape[0]:
                raise ValueError(f"sparse features of shape {features.shape} need shape=(S, A) with S*A = {features.shape[0]}")
            features = sp.csr_matrix(features, dtype=np.float64)
            if not np.all(np.isfinite(features.data)):
                raise ValueError("features contain NaN or infinite entries")
            self.S, self.A = int(shape[0]), int(shape[1])
            self.n = features.shape[1]
        else:
            features = np.asarray(features, dtype=np.float64)
            if features.ndim != 3:
                raise ValueError(f"features must have shape (S, A, n); got {features.shape}")
            if not np.all(np.isfinite(features)):
                raise ValueError("features contain NaN or infinite entries")
            self.S, self.A, self.n = features.shape
        self.features = features
        self.sparse = sp.issparse(features)

    def value(self, x):
        x = self._check_x(x)
        if self.sparse:
            return (self.features @ x).reshape(self.S, self.A)
        return self.features @ x

    def vjp(self, x, g):
        self._check_x(x)
        g = self._check_g(g)
        if self.sparse:
            return self.features.T @ g.reshape(-1)
        return np.tensordot(g, self.features, axes=([0, 1], [0, 1]))

    def jacobian(self, x):
        self._check_x(x)
        if self.sparse:
            return self.features.toarray().reshape(self.S, self.A, self.n)
        return self.features

    def value_torch(self, x_t):
        import torch

        if self.sparse:
            coo = self.features.tocoo()
            idx = torch.as_tensor(np.vstack([coo.row, coo.col]), dtype=torch.long)
            F = torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data, dtype=x_t.dtype), coo.shape,
                                        check_invariants=False)
            return (F @ x_t).reshape(self.S, self.A)
        return torch.as_tensor(self.features, dtype=x_t.dtype) @ x_t


class TabularReward(_Reward):
    """:math:`r_x = x` reshaped to (S, A): one free parameter per state-action pair, ``n = S*A``.

    ``vjp`` is a reshape; the (S, A, S*A) Jacobian is built only when :meth:`jacobian` is called.
    """

    def __init__(self, S: int, A: int):
        if S < 1 or A < 1:
            raise ValueError(f"need S >= 1 and A >= 1; got S={S}, A={A}")
        self.S, self.A, self.n = int(S), int(A), int(S) * int(A)

    def value(self, x):
        return self._check_x(x).reshape(self.S, self.A)

    def vjp(self, x, g):
        self._check_x(x)
        return self._check_g(g).reshape(-1).copy()

    def jacobian(self, x):
        self._check_x(x)
        return np.eye(self.n).reshape(self.S, self.A, self.n)

    def value_torch(self, x_t):
        return x_t.reshape(self.S, self.A)


class TorchReward(_Reward):
    """Wrap any differentiable torch function ``fn: x (n,) -> r (S, A)`` (float64 tensors).

    Example: the paper's synthetic reward :math:`r_x(s,a) = c_{sa}\\,x^\\top M x` is
    ``TorchReward(lambda x: c * (x @ M @ x), S, A, n)`` with ``c``, ``M`` float64 tensors.
    """

    def __init__(self, fn, S: int, A: int, n: int):
        if not callable(fn):
            raise TypeError("fn must be a callable mapping a (n,) tensor to an (S, A) tensor")
        self.fn, self.S, self.A, self.n = fn, int(S), int(A), int(n)

    def value_torch(self, x_t):
        out = self.fn(x_t)
        if tuple(out.shape) != (self.S, self.A):
            raise ValueError(f"fn returned shape {tuple(out.shape)}; expected (S, A) = ({self.S}, {self.A})")
        return out

    def _tensor(self, x, requires_grad=False):
        import torch

        return torch.tensor(self._check_x(x), dtype=torch.float64, requires_grad=requires_grad)

    def value(self, x):
        import torch

        with torch.no_grad():
            r = self.value_torch(self._tensor(x)).numpy().astype(np.float64)
        if not np.all(np.isfinite(r)):
            raise ValueError("fn returned non-finite rewards")
        return r

    def vjp(self, x, g):
        import torch

        x_t = self._tensor(x, requires_grad=True)
        out = self.value_torch(x_t)
        (grad,) = torch.autograd.grad(out, x_t, grad_outputs=torch.as_tensor(self._check_g(g)), allow_unused=True)
        return np.zeros(self.n) if grad is None else grad.numpy().copy()

    def jacobian(self, x):
        import torch

        J = torch.autograd.functional.jacobian(self.value_torch, self._tensor(x))
        return J.numpy().reshape(self.S, self.A, self.n)
