"""Gray-Scott reaction-diffusion on padded blocks (``@njit(cache=True, nogil=True)``).

The two fields are the two components of one block: ``x[0]`` is U, ``x[1]`` is
V, padded by one cell per spatial axis (a ``map_overlap`` block with depth
``(0, 1, 1)`` or ``(0, 1, 1, 1)``).  One explicit Euler step::

    U' = U + dt * (Du * lap(U) - U V^2 + F (1 - U))
    V' = V + dt * (Dv * lap(V) + U V^2 - (F + k) V)

with the 5-point (2-D) or 7-point (3-D) Laplacian on a unit grid.  The numpy
twin :func:`step_numpy` computes the same on a whole periodic field (the
reference the tests compare against).  ``step`` has a faces form
(``step.dagmpi_faces``: the block unpadded and its neighbours' faces), which
``map_overlap`` calls instead of copying the block into a padded one.
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


@njit(cache=True, nogil=True)
def _step2d_faces(x, up, down, left, right, du, dv, f, k, dt):
    """:func:`step2d` on an unpadded block ``x`` (2, n, m) and its faces (``up``/``down``:
    (2, 1, m), ``left``/``right``: (2, n, 1)); the same sums in the same order."""
    n, m = x.shape[1], x.shape[2]
    out = np.empty((2, n, m), x.dtype)
    for i in range(n):
        au = up[0, 0] if i == 0 else x[0, i - 1]
        bu = down[0, 0] if i == n - 1 else x[0, i + 1]
        av = up[1, 0] if i == 0 else x[1, i - 1]
        bv = down[1, 0] if i == n - 1 else x[1, i + 1]
        ru, rv = x[0, i], x[1, i]
        for j in range(m):
            u = ru[j]
            v = rv[j]
            wu = left[0, i, 0] if j == 0 else ru[j - 1]
            eu = right[0, i, 0] if j == m - 1 else ru[j + 1]
            wv = left[1, i, 0] if j == 0 else rv[j - 1]
            ev = right[1, i, 0] if j == m - 1 else rv[j + 1]
            lu = au[j] + bu[j] + wu + eu - 4.0 * u
            lv = av[j] + bv[j] + wv + ev - 4.0 * v
            uvv = u * v * v
            out[0, i, j] = u + dt * (du * lu - uvv + f * (1.0 - u))
            out[1, i, j] = v + dt * (dv * lv + uvv - (f + k) * v)
    return out


def _step_faces(x: np.ndarray, *faces: np.ndarray, du: float, dv: float, f: float, k: float,
                dt: float) -> np.ndarray:
    """:func:`step` on a block and its faces (``map_overlap``'s faces form, depth
    ``(0, 1, 1)`` or ``(0, 1, 1, 1)``): the 2-D kernel directly; a 3-D block is padded
    here (its corners are not read) and given to :func:`step3d`."""
    params = (du, dv, f, k, dt)
    if len(faces) != 2 * (x.ndim - 1):
        raise ValueError(f"grayscott.step's faces form: {len(faces)} faces for a block of shape {x.shape}; "
                         "it takes depth (0, 1, 1) or (0, 1, 1, 1)")
    if x.ndim == 3:
        return _step2d_faces(x, *faces, *params)
    if x.ndim == 4:
        p = np.zeros((2,) + tuple(n + 2 for n in x.shape[1:]), x.dtype)
        p[:, 1:-1, 1:-1, 1:-1] = x
        for a in range(3):
            for side, face in zip((0, -1), faces[2 * a:2 * a + 2]):
                key = [slice(None), slice(1, -1), slice(1, -1), slice(1, -1)]
                key[a + 1] = side
                p[tuple(key)] = np.take(face, 0, axis=a + 1)
        return step3d(p, *params)
    raise ValueError(f"grayscott.step: blocks of shape (2, n, m) or (2, n, m, p), got {x.shape}")


def step(x: np.ndarray, du: float, dv: float, f: float, k: float, dt: float) -> np.ndarray:
    """One Gray-Scott step of a padded block of either dimension: a ``map_overlap`` function."""
    if x.ndim == 3:
        return step2d(x, du, dv, f, k, dt)
    if x.ndim == 4:
        return step3d(x, du, dv, f, k, dt)
    raise ValueError(f"grayscott.step: blocks of shape (2, n, m) or (2, n, m, p), got {x.shape}")


step.dagmpi_faces = _step_faces


def step_numpy(state: np.ndarray, du: float, dv: float, f: float, k: float, dt: float) -> np.ndarray:
    """The same step in numpy on a whole periodic field ``state`` of shape (2, *grid)."""
    u, v = state[0], state[1]
    axes = range(u.ndim)

    def lap(a: np.ndarray) -> np.ndarray:
        return sum(np.roll(a, 1, ax) + np.roll(a, -1, ax) for ax in axes) - 2 * u.ndim * a

    uvv = u * v * v
    return np.stack([u + dt * (du * lap(u) - uvv + f * (1.0 - u)),
                     v + dt * (dv * lap(v) + uvv - (f + k) * v)])
