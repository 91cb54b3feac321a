"""Gray-Scott reaction-diffusion on padded blocks (``@njit(cache=True, nogil=True)``).

The two fields are the two components of one block: ``x[0]`` is U, ``x[1]`` is
V, padded by one cell per spatial axis (a ``map_overlap`` block with depth
``(0, 1, 1)`` or ``(0, 1, 1, 1)``).  One explicit Euler step::

    U' = U + dt * (Du * lap(U) - U V^2 + F (1 - U))
    V' = V + dt * (Dv * lap(V) + U V^2 - (F + k) V)

with the 5-point (2-D) or 7-point (3-D) Laplacian on a unit grid.  The numpy
twin :func:`step_numpy` computes the same on a whole periodic field (the
reference the tests compare against).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def step2d(x, du, dv, f, k, dt):
    """One step on a padded 2-D block ``x`` of shape (2, n+2, m+2); returns (2, n, m)."""
    n, m = x.shape[1] - 2, x.shape[2] - 2
    out = np.empty((2, n, m), x.dtype)
    for i in range(n):
        for j in range(m):
            u = x[0, i + 1, j + 1]
            v = x[1, i + 1, j + 1]
            lu = x[0, i, j + 1] + x[0, i + 2, j + 1] + x[0, i + 1, j] + x[0, i + 1, j + 2] - 4.0 * u
            lv = x[1, i, j + 1] + x[1, i + 2, j + 1] + x[1, i + 1, j] + x[1, i + 1, j + 2] - 4.0 * v
            uvv = u * v * v
            out[0, i, j] = u + dt * (du * lu - uvv + f * (1.0 - u))
            out[1, i, j] = v + dt * (dv * lv + uvv - (f + k) * v)
    return out


@njit(cache=True, nogil=True)
def step3d(x, du, dv, f, k, dt):
    """One step on a padded 3-D block ``x`` of shape (2, n+2, m+2, p+2); returns (2, n, m, p)."""
    n, m, p = x.shape[1] - 2, x.shape[2] - 2, x.shape[3] - 2
    out = np.empty((2, n, m, p), x.dtype)
    for i in range(n):
        for j in range(m):
            for q in range(p):
                u = x[0, i + 1, j + 1, q + 1]
                v = x[1, i + 1, j + 1, q + 1]
                lu = (x[0, i, j + 1, q + 1] + x[0, i + 2, j + 1, q + 1] + x[0, i + 1, j, q + 1]
                      + x[0, i + 1, j + 2, q + 1] + x[0, i + 1, j + 1, q] + x[0, i + 1, j + 1, q + 2] - 6.0 * u)
                lv = (x[1, i, j + 1, q + 1] + x[1, i + 2, j + 1, q + 1] + x[1, i + 1, j, q + 1]
                      + x[1, i + 1, j + 2, q + 1] + x[1, i + 1, j + 1, q] + x[1, i + 1, j + 1, q + 2] - 6.0 * v)
                uvv = u * v * v
                out[0, i, j, q] = u + dt * (du * lu - uvv + f * (1.0 - u))
                out[1, i, j, q] = v + dt * (dv * lv + uvv - (f + k) * v)
    return out


def step(x: np.ndarray, du: float, dv: float, f: float, k: float, dt: float) -> np.ndarray:
    """One Gray-Scott step of a padded block of either dimension: a ``map_overlap`` function."""
    if x.ndim == 3:
        return step2d(x, du, dv, f, k, dt)
    if x.ndim == 4:
        return step3d(x, du, dv, f, k, dt)
    raise ValueError(f"grayscott.step: blocks of shape (2, n, m) or (2, n, m, p), got {x.shape}")


def step_numpy(state: np.ndarray, du: float, dv: float, f: float, k: float, dt: float) -> np.ndarray:
    """The same step in numpy on a whole periodic field ``state`` of shape (2, *grid)."""
    u, v = state[0], state[1]
    axes = range(u.ndim)

    def lap(a: np.ndarray) -> np.ndarray:
        return sum(np.roll(a, 1, ax) + np.roll(a, -1, ax) for ax in axes) - 2 * u.ndim * a

    uvv = u * v * v
    return np.stack([u + dt * (du * lap(u) - uvv + f * (1.0 - u)),
                     v + dt * (dv * lap(v) + uvv - (f + k) * v)])
