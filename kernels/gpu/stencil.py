"""numba.cuda stencil kernels on padded blocks: twins of :mod:`dagmpi.kernels.cpu.stencil`.

Same signatures and the same arithmetic: each takes the block padded with its
halo (depth 1) and writes the interior result into ``out``; ``heat5_step`` and
``laplacian`` return a new block.  One thread per output point; thread ``x``
runs along the last (contiguous) axis so that a warp reads consecutive cells.
The arrays are anything exposing ``__cuda_array_interface__`` (CuPy arrays),
or numpy arrays under ``NUMBA_ENABLE_CUDASIM=1``; new outputs come from the
input's own array module (:func:`_empty_like`).  CuPy inputs are launched on
CuPy's current stream, so the kernels order with the CuPy work around them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

#: Threads per block, in (x, y[, z]) order: x along the last axis.
THREADS_2D = (16, 16)
THREADS_3D = (8, 8, 4)


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.partition(".")[0] == "cupy"


def _empty_like(u: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised array of ``shape`` from the same array module as ``u``."""
    if _is_cupy(u):
        import cupy

        return cupy.empty(shape, dtype)
    if hasattr(u, "__cuda_array_interface__"):  # a numba device array, say
        return cuda.device_array(shape, dtype)
    return np.empty(shape, dtype)


def _stream(u: Any) -> Any:
    """CuPy's current stream for a CuPy array, else numba's default stream (0)."""
    if _is_cupy(u):
        import cupy

        ptr = cupy.cuda.get_current_stream().ptr
        if ptr:
            return cuda.external_stream(ptr)
    return 0


def _config(u: Any, shape: tuple[int, ...]) -> tuple:
    """``(blocks, threads, stream)`` covering ``shape`` (C order) with one thread per point."""
    threads = THREADS_2D if len(shape) == 2 else THREADS_3D
    blocks = tuple(-(-s // t) for s, t in zip(reversed(shape), threads))
    return blocks, threads, _stream(u)


def launch(kern: Any, shape: tuple[int, ...], *args: Any) -> None:
    """Launch ``kern`` over ``shape`` (a 2-D or 3-D output); nothing for an empty one."""
    if 0 in shape:
        return
    blocks, threads, stream = _config(args[0], shape)
    kern[blocks, threads, stream](*args)


@cuda.jit
def _laplace5(u, out):
    j, i = cuda.grid(2)
    if i < out.shape[0] and j < out.shape[1]:
        out[i, j] = (u[i, j + 1] + u[i + 2, j + 1] + u[i + 1, j] + u[i + 1, j + 2]
                     - 4.0 * u[i + 1, j + 1])


@cuda.jit
def _laplace9(u, out):
    j, i = cuda.grid(2)
    if i < out.shape[0] and j < out.shape[1]:
        edges = u[i, j + 1] + u[i + 2, j + 1] + u[i + 1, j] + u[i + 1, j + 2]
        corners = u[i, j] + u[i, j + 2] + u[i + 2, j] + u[i + 2, j + 2]
        out[i, j] = (4.0 * edges + corners - 20.0 * u[i + 1, j + 1]) / 6.0


@cuda.jit
def _laplace7(u, out):
    k, j, i = cuda.grid(3)
    if i < out.shape[0] and j < out.shape[1] and k < out.shape[2]:
        out[i, j, k] = (u[i, j + 1, k + 1] + u[i + 2, j + 1, k + 1] + u[i + 1, j, k + 1]
                        + u[i + 1, j + 2, k + 1] + u[i + 1, j + 1, k] + u[i + 1, j + 1, k + 2]
                        - 6.0 * u[i + 1, j + 1, k + 1])


@cuda.jit
def _weighted2d(u, w, out):
    j, i = cuda.grid(2)
    if i < out.shape[0] and j < out.shape[1]:
        s = 0.0
        for a in range(w.shape[0]):
            for b in range(w.shape[1]):
                s += w[a, b] * u[i + a, j + b]
        out[i, j] = s


@cuda.jit
def _heat5(u, alpha, out):
    j, i = cuda.grid(2)
    if i < out.shape[0] and j < out.shape[1]:
        c = u[i + 1, j + 1]
        out[i, j] = c + alpha * (u[i, j + 1] + u[i + 2, j + 1] + u[i + 1, j] + u[i + 1, j + 2] - 4.0 * c)


def laplace5(u: Any, out: Any) -> Any:
    """2-D 5-point Laplacian (grid spacing 1) of the interior of ``u``, into ``out``."""
    launch(_laplace5, out.shape, u, out)
    return out


def laplace9(u: Any, out: Any) -> Any:
    """2-D 9-point Laplacian, (4 * edges + corners - 20 * centre) / 6, into ``out``."""
    launch(_laplace9, out.shape, u, out)
    return out


def laplace7(u: Any, out: Any) -> Any:
    """3-D 7-point Laplacian of the interior of ``u``, into ``out``."""
    launch(_laplace7, out.shape, u, out)
    return out


def weighted2d(u: Any, w: Any, out: Any) -> Any:
    """Generic 2-D stencil: ``out[i, j] = sum(w * u[i:i+kh, j:j+kw])`` (``w`` of odd
    shape kh x kw, ``u`` padded by (kh//2, kw//2))."""
    launch(_weighted2d, out.shape, u, w, out)
    return out


def heat5_step(u: Any, alpha: float) -> Any:
    """One explicit heat-equation step on a padded 2-D block: ``c + alpha * lap(c)``."""
    out = _empty_like(u, (u.shape[0] - 2, u.shape[1] - 2), u.dtype)
    launch(_heat5, out.shape, u, float(alpha), out)
    return out


def laplacian(u: Any) -> Any:
    """The 5-point (2-D) or 7-point (3-D) Laplacian of a block padded by 1: a
    ``map_overlap`` function."""
    out = _empty_like(u, tuple(s - 2 for s in u.shape), u.dtype)
    if u.ndim == 2:
        return laplace5(u, out)
    if u.ndim == 3:
        return laplace7(u, out)
    raise ValueError(f"laplacian: 2-D or 3-D blocks, got {u.ndim}-D")
