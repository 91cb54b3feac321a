"""Numba stencil kernels on padded blocks (``@njit(cache=True, nogil=True)``).

``laplace5/9/7`` and ``weighted2d`` take the block padded with its halo (depth 1)
and write the interior result into ``out`` (the block's shape); ``heat5_step`` and
``laplacian`` return a new block (``map_overlap`` functions).
``cache=True`` keeps the compiled code on disk (``__pycache__`` next to this
file): only the very first call on a machine pays the compile time.

``heat5_step`` and ``laplacian`` also carry a faces form (``fn.dagmpi_faces(block,
lo_0, hi_0, lo_1, hi_1, ...)``: the block and its neighbours' one-element faces,
per axis, low then high; it returns a new block).  ``map_overlap`` calls it, when
the depth is 1 on every axis and no axis has ``boundary="none"``, instead of
copying the block into a padded one: that copy cost as much as the kernel itself.
A user's own star stencil may carry a ``dagmpi_faces`` attribute the same way.
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


@njit(cache=True, nogil=True)
def _star5_faces(c, up, down, left, right, heat, alpha):
    """The 5-point star on block ``c`` with its faces (``up``/``down``: 1 x m rows,
    ``left``/``right``: n x 1 columns): ``c + alpha * lap(c)`` if ``heat``, else
    ``lap(c)``; the same sums in the same order as the padded kernels."""
    n, m = c.shape
    out = np.empty((n, m), c.dtype)
    for i in range(n):
        a = up[0] if i == 0 else c[i - 1]
        b = down[0] if i == n - 1 else c[i + 1]
        row = c[i]
        o = out[i]
        if m == 1:
            x = row[0]
            s = a[0] + b[0] + left[i, 0] + right[i, 0] - 4.0 * x
            o[0] = x + alpha * s if heat else s
            continue
        x = row[0]
        s = a[0] + b[0] + left[i, 0] + row[1] - 4.0 * x
        o[0] = x + alpha * s if heat else s
        if heat:
            for j in range(1, m - 1):
                x = row[j]
                o[j] = x + alpha * (a[j] + b[j] + row[j - 1] + row[j + 1] - 4.0 * x)
        else:
            for j in range(1, m - 1):
                o[j] = a[j] + b[j] + row[j - 1] + row[j + 1] - 4.0 * row[j]
        x = row[m - 1]
        s = a[m - 1] + b[m - 1] + row[m - 2] + right[i, 0] - 4.0 * x
        o[m - 1] = x + alpha * s if heat else s
    return out


@njit(cache=True, nogil=True)
def _lap7_faces(c, lo0, hi0, lo1, hi1, lo2, hi2):
    """The 3-D 7-point Laplacian of block ``c`` with its six faces (one element thick)."""
    n, m, p = c.shape
    out = np.empty((n, m, p), c.dtype)
    for i in range(n):
        for j in range(m):
            a = lo0[0, j] if i == 0 else c[i - 1, j]
            b = hi0[0, j] if i == n - 1 else c[i + 1, j]
            w = lo1[i, 0] if j == 0 else c[i, j - 1]
            e = hi1[i, 0] if j == m - 1 else c[i, j + 1]
            row = c[i, j]
            o = out[i, j]
            if p == 1:
                o[0] = a[0] + b[0] + w[0] + e[0] + lo2[i, j, 0] + hi2[i, j, 0] - 6.0 * row[0]
                continue
            o[0] = a[0] + b[0] + w[0] + e[0] + lo2[i, j, 0] + row[1] - 6.0 * row[0]
            for k in range(1, p - 1):  # (no branch: vectorised)
                o[k] = a[k] + b[k] + w[k] + e[k] + row[k - 1] + row[k + 1] - 6.0 * row[k]
            o[p - 1] = a[p - 1] + b[p - 1] + w[p - 1] + e[p - 1] + row[p - 2] + hi2[i, j, 0] - 6.0 * row[p - 1]
    return out


def _heat5_faces(c: np.ndarray, up: np.ndarray, down: np.ndarray, left: np.ndarray, right: np.ndarray,
                 alpha: float) -> np.ndarray:
    """``heat5_step`` on a block and its four faces (no padded copy)."""
    return _star5_faces(c, up, down, left, right, True, alpha)


def _laplacian_faces(c: np.ndarray, *faces: np.ndarray) -> np.ndarray:
    """``laplacian`` on a block and its faces (low then high, per axis)."""
    if c.ndim == 2:
        return _star5_faces(c, *faces, False, 0.0)
    if c.ndim == 3:
        return _lap7_faces(c, *faces)
    raise ValueError(f"laplacian: 2-D or 3-D blocks, got {c.ndim}-D")


heat5_step.dagmpi_faces = _heat5_faces


def laplacian(u: np.ndarray) -> np.ndarray:
    """The 5-point (2-D) or 7-point (3-D) Laplacian of a block padded by 1: a
    ``map_overlap`` function."""
    out = np.empty(tuple(s - 2 for s in u.shape), u.dtype)
    if u.ndim == 2:
        return laplace5(u, out)
    if u.ndim == 3:
        return laplace7(u, out)
    raise ValueError(f"laplacian: 2-D or 3-D blocks, got {u.ndim}-D")


laplacian.dagmpi_faces = _laplacian_faces
