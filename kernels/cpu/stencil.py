"""Numba stencil kernels on padded blocks (``@njit(cache=True, nogil=True)``).

Each takes the block padded with its halo (depth 1) and writes the interior
result into ``out`` (the block's shape), so a ``map_overlap`` task allocates
nothing else; the ``*_step`` helpers return a new block for explicit time steps.
``cache=True`` keeps the compiled code on disk (``__pycache__`` next to this
file): only the very first call on a machine pays the compile time.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def laplace5(u, out):
    """2-D 5-point Laplacian (grid spacing 1) of the interior of ``u``."""
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            out[i, j] = (u[i, j + 1] + u[i + 2, j + 1] + u[i + 1, j] + u[i + 1, j + 2]
                         - 4.0 * u[i + 1, j + 1])
    return out


@njit(cache=True, nogil=True)
def laplace9(u, out):
    """2-D 9-point Laplacian, (4 * edges + corners - 20 * centre) / 6."""
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            edges = u[i, j + 1] + u[i + 2, j + 1] + u[i + 1, j] + u[i + 1, j + 2]
            corners = u[i, j] + u[i, j + 2] + u[i + 2, j] + u[i + 2, j + 2]
            out[i, j] = (4.0 * edges + corners - 20.0 * u[i + 1, j + 1]) / 6.0
    return out


@njit(cache=True, nogil=True)
def laplace7(u, out):
    """3-D 7-point Laplacian of the interior of ``u``."""
    n, m, p = out.shape
    for i in range(n):
        for j in range(m):
            for k in range(p):
                out[i, j, k] = (u[i, j + 1, k + 1] + u[i + 2, j + 1, k + 1] + u[i + 1, j, k + 1]
                                + u[i + 1, j + 2, k + 1] + u[i + 1, j + 1, k] + u[i + 1, j + 1, k + 2]
                                - 6.0 * u[i + 1, j + 1, k + 1])
    return out


@njit(cache=True, nogil=True)
def weighted2d(u, w, out):
    """Generic 2-D stencil: ``out[i, j] = sum(w * u[i:i+kh, j:j+kw])`` (``w`` of odd
    shape kh x kw, ``u`` padded by (kh//2, kw//2))."""
    n, m = out.shape
    kh, kw = w.shape
    for i in range(n):
        for j in range(m):
            s = 0.0
            for a in range(kh):
                for b in range(kw):
                    s += w[a, b] * u[i + a, j + b]
            out[i, j] = s
    return out


@njit(cache=True, nogil=True)
def heat5_step(u, alpha):
    """One explicit heat-equation step on a padded 2-D block: ``c + alpha * lap(c)``."""
    n, m = u.shape[0] - 2, u.shape[1] - 2
    out = np.empty((n, m), u.dtype)
    for i in range(n):
        for j in range(m):
            c = u[i + 1, j + 1]
            out[i, j] = c + alpha * (u[i, j + 1] + u[i + 2, j + 1] + u[i + 1, j] + u[i + 1, j + 2] - 4.0 * c)
    return out


def laplacian(u: np.ndarray) -> np.ndarray:
    """The 5-point (2-D) or 7-point (3-D) Laplacian of a block padded by 1: a
    ``map_overlap`` function."""
    out = np.empty(tuple(s - 2 for s in u.shape), u.dtype)
    if u.ndim == 2:
        return laplace5(u, out)
    if u.ndim == 3:
        return laplace7(u, out)
    raise ValueError(f"laplacian: 2-D or 3-D blocks, got {u.ndim}-D")
