"""Tile kernels of the tiled linear algebra: LAPACK/BLAS through scipy, in place.

Tiles are C-ordered numpy arrays; LAPACK wants Fortran order.  A C-ordered tile
``t`` *is* the Fortran-ordered matrix ``t.T``, so every kernel passes ``t.T``
(no copy) and asks LAPACK for the transposed operation: e.g. the lower
Cholesky factor of a C tile is the upper factor of its Fortran view.  With
``overwrite_*`` the result lands in the tile's own buffer (a tile that is not
writable, or ``fresh`` -- still the caller's input -- is copied first).
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def _own(t: np.ndarray, fresh: bool) -> np.ndarray:
    if fresh or not t.flags.writeable or not t.flags.c_contiguous:
        return np.array(t, order="C", copy=True)
    return t


def _lapack(dtype: np.dtype, name: str):  # type: ignore[no-untyped-def]
    from scipy.linalg import blas, lapack

    prefix = {np.dtype(np.float64): "d", np.dtype(np.float32): "s"}.get(np.dtype(dtype))
    if prefix is None:
        raise TypeError(f"tiled linear algebra takes float32 or float64 tiles, not {dtype}")
    mod = lapack if name == "potrf" else blas
    return getattr(mod, prefix + name)


def potrf(a: np.ndarray, step: int, row0: int, fresh: bool = False) -> np.ndarray:
    """The lower Cholesky factor of the diagonal tile ``a`` (its upper triangle zeroed)."""
    a = _own(a, fresh)
    c, info = _lapack(a.dtype, "potrf")(a.T, lower=0, overwrite_a=1, clean=1)
    if info > 0:
        raise np.linalg.LinAlgError(
            f"Matrix is not positive definite: the leading minor of order {row0 + info} is not positive "
            f"(in diagonal tile ({step}, {step}), at step {step} of the tiled Cholesky)")
    if info < 0:
        raise ValueError(f"potrf: argument {-info} had an illegal value")
    return c.T


def trsm(l: np.ndarray, b: np.ndarray, fresh: bool = False) -> np.ndarray:
    """``b @ inv(l).T`` for a lower-triangular ``l``: a panel tile below the diagonal."""
    b = _own(b, fresh)
    return _lapack(b.dtype, "trsm")(1.0, l.T, b.T, side=0, lower=0, trans_a=1, overwrite_b=1).T


def syrk(a: np.ndarray, c: np.ndarray, fresh: bool = False) -> np.ndarray:
    """``c - a @ a.T`` on the lower triangle of a diagonal tile (the upper is not used)."""
    c = _own(c, fresh)
    return _lapack(c.dtype, "syrk")(-1.0, a.T, beta=1.0, c=c.T, trans=1, lower=0, overwrite_c=1).T


def gemm_nt(a: np.ndarray, b: np.ndarray, c: np.ndarray, fresh: bool = False) -> np.ndarray:
    """``c - a @ b.T`` (a trailing update of the Cholesky)."""
    c = _own(c, fresh)
    return _lapack(c.dtype, "gemm")(-1.0, b.T, a.T, beta=1.0, c=c.T, trans_a=1, overwrite_c=1).T


def gemm_acc(a: np.ndarray, b: np.ndarray, c: Optional[np.ndarray] = None) -> np.ndarray:
    """``c + a @ b`` (``a @ b`` when ``c`` is None): one term of a tiled matmul's k-sum,
    accumulated in place in ``c``."""
    if c is None:
        return np.matmul(a, b)
    dt = np.result_type(a, b, c)
    if dt in (np.float64, np.float32) and a.dtype == b.dtype == c.dtype == dt:
        c = _own(c, False)
        return _lapack(dt, "gemm")(1.0, b.T, a.T, beta=1.0, c=c.T, overwrite_c=1).T
    return c + a @ b


def trsm_left(l: np.ndarray, b: np.ndarray, lower: bool, trans: bool, unit: bool = False) -> np.ndarray:
    """Solve ``op(l) x = b`` for a triangular tile ``l``."""
    from scipy.linalg import solve_triangular

    return solve_triangular(l, b, lower=lower, trans=1 if trans else 0, unit_diagonal=unit, check_finite=False)


def sub_matmul(b: np.ndarray, a: np.ndarray, x: np.ndarray, trans: bool, fresh: bool = False) -> np.ndarray:
    """``b - op(a) @ x`` (a substitution update), in place in ``b``."""
    b = _own(b, fresh)
    b -= (a.T if trans else a) @ x
    return b


def qr_block(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A row block's reduced QR (TSQR's first level)."""
    q, r = np.linalg.qr(a)
    return q, r


def qr_stack(*rs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """QR of the stacked R factors: ``(Q2, R)``."""
    q, r = np.linalg.qr(np.concatenate(rs, axis=0))
    return q, r


def first(pair: tuple) -> np.ndarray:
    return pair[0]


def second(pair: tuple) -> np.ndarray:
    return pair[1]


def qr_apply(q1: tuple, q2: tuple, start: int, stop: int) -> np.ndarray:
    """A row block of the final Q: its own Q times its rows of the second level's Q."""
    return q1[0] @ q2[0][start:stop]


def tril(a: np.ndarray) -> np.ndarray:
    return np.tril(a)


def zeros(shape: tuple, dtype: str) -> np.ndarray:
    return np.zeros(shape, dtype)
