"""Gray-Scott reaction-diffusion on padded blocks with numba.cuda: the twin of
:mod:`dagmpi.kernels.cpu.grayscott`.

``x[0]`` is U, ``x[1]`` is V, padded by one cell per spatial axis; one explicit
Euler step returns the unpadded (2, n, m) or (2, n, m, p) block, computed by
one thread per grid point (both fields at once, so each thread reads its
neighbourhood once).  Arrays as in :mod:`dagmpi.kernels.gpu.stencil`.
"""

from __future__ import annotations

from typing import Any

from numba import cuda

from .stencil import _empty_like, launch


@cuda.jit
def _step2d(x, du, dv, f, k, dt, out):
    j, i = cuda.grid(2)
    if i < out.shape[1] and j < out.shape[2]:
        u = x[0, i + 1, j + 1]
        v = x[1, i + 1, j + 1]
        lu = x[0, i, j + 1] + x[0, i + 2, j + 1] + x[0, i + 1, j] + x[0, i + 1, j + 2] - 4.0 * u
        lv = x[1, i, j + 1] + x[1, i + 2, j + 1] + x[1, i + 1, j] + x[1, i + 1, j + 2] - 4.0 * v
        uvv = u * v * v
        out[0, i, j] = u + dt * (du * lu - uvv + f * (1.0 - u))
        out[1, i, j] = v + dt * (dv * lv + uvv - (f + k) * v)


@cuda.jit
def _step3d(x, du, dv, f, k, dt, out):
    q, j, i = cuda.grid(3)
    if i < out.shape[1] and j < out.shape[2] and q < out.shape[3]:
        u = x[0, i + 1, j + 1, q + 1]
        v = x[1, i + 1, j + 1, q + 1]
        lu = (x[0, i, j + 1, q + 1] + x[0, i + 2, j + 1, q + 1] + x[0, i + 1, j, q + 1]
              + x[0, i + 1, j + 2, q + 1] + x[0, i + 1, j + 1, q] + x[0, i + 1, j + 1, q + 2] - 6.0 * u)
        lv = (x[1, i, j + 1, q + 1] + x[1, i + 2, j + 1, q + 1] + x[1, i + 1, j, q + 1]
              + x[1, i + 1, j + 2, q + 1] + x[1, i + 1, j + 1, q] + x[1, i + 1, j + 1, q + 2] - 6.0 * v)
        uvv = u * v * v
        out[0, i, j, q] = u + dt * (du * lu - uvv + f * (1.0 - u))
        out[1, i, j, q] = v + dt * (dv * lv + uvv - (f + k) * v)


def _run(kern: Any, x: Any, du: float, dv: float, f: float, k: float, dt: float) -> Any:
    grid = tuple(s - 2 for s in x.shape[1:])
    out = _empty_like(x, (2, *grid), x.dtype)
    launch(kern, grid, x, float(du), float(dv), float(f), float(k), float(dt), out)
    return out


def step2d(x: Any, du: float, dv: float, f: float, k: float, dt: float) -> Any:
    """One step on a padded 2-D block ``x`` of shape (2, n+2, m+2); returns (2, n, m)."""
    return _run(_step2d, x, du, dv, f, k, dt)


def step3d(x: Any, du: float, dv: float, f: float, k: float, dt: float) -> Any:
    """One step on a padded 3-D block ``x`` of shape (2, n+2, m+2, p+2); returns (2, n, m, p)."""
    return _run(_step3d, x, du, dv, f, k, dt)


def step(x: Any, du: float, dv: float, f: float, k: float, dt: float) -> Any:
    """One Gray-Scott step of a padded block of either dimension: a ``map_overlap`` function."""
    if x.ndim == 3:
        return step2d(x, du, dv, f, k, dt)
    if x.ndim == 4:
        return step3d(x, du, dv, f, k, dt)
    raise ValueError(f"grayscott.step: blocks of shape (2, n, m) or (2, n, m, p), got {x.shape}")
