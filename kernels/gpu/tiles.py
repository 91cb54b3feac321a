"""Tile kernels of the tiled linear algebra on the GPU: CuPy twins of
:mod:`dagmpi.kernels.cpu.tiles` (cuBLAS / cuSOLVER underneath).

Same signatures, results and errors as the CPU kernels; ``fresh`` and in-place
updates mean the same (a tile that is ``fresh`` -- still the caller's input --,
not C-contiguous or not on the device is copied before it is overwritten).
The array module comes from :func:`_xp` and the triangular solve from
:func:`_solve_triangular`, so the tests run this logic on numpy/scipy.
cuSOLVER does not raise on a matrix that is not positive definite: it stops
with ``devInfo`` set and leaves the failing pivot non-positive (or NaN) on the
factor's diagonal, which is what :func:`potrf` checks.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _xp() -> Any:
    """The array module: CuPy (imported when first used)."""
    import cupy

    return cupy


def _solve_triangular() -> Callable:
    """``solve_triangular`` of the array module: cupyx's (cuBLAS trsm)."""
    from cupyx.scipy.linalg import solve_triangular

    return solve_triangular


def _own(t: Any, fresh: bool) -> Any:
    xp = _xp()
    if (fresh or not isinstance(t, xp.ndarray) or not t.flags.c_contiguous
            or not getattr(t.flags, "writeable", True)):
        return xp.array(t, order="C", copy=True)
    return t


def _check(dtype: Any) -> None:
    if np.dtype(dtype) not in _FLOATS:
        raise TypeError(f"tiled linear algebra takes float32 or float64 tiles, not {dtype}")


def _not_spd(step: int, order: Optional[int]) -> np.linalg.LinAlgError:
    where = "" if order is None else f": the leading minor of order {order} is not positive"
    return np.linalg.LinAlgError(
        f"Matrix is not positive definite{where} "
        f"(in diagonal tile ({step}, {step}), at step {step} of the tiled Cholesky)")


def potrf(a: Any, step: int, row0: int, fresh: bool = False) -> Any:
    """The lower Cholesky factor of the diagonal tile ``a`` (its upper triangle zeroed);
    only the lower triangle of ``a`` is read."""
    xp = _xp()
    _check(a.dtype)
    try:
        c = xp.linalg.cholesky(a)
    except np.linalg.LinAlgError as e:  # numpy, or CuPy under cupyx.errstate(linalg="raise")
        raise _not_spd(step, None) from e
    bad = ~(xp.diagonal(c) > 0)  # a non-positive or NaN pivot: where the factorisation stopped
    if bool(bad.any()):
        raise _not_spd(step, row0 + int(xp.argmax(bad)) + 1)
    return c


def trsm(l: Any, b: Any, fresh: bool = False) -> Any:
    """``b @ inv(l).T`` for a lower-triangular ``l``: a panel tile below the diagonal."""
    _check(b.dtype)
    b = _own(b, fresh)
    # x l^T = b  <=>  l x^T = b^T; b.T is b's buffer in Fortran order, solved in place.
    return _solve_triangular()(l, b.T, lower=True, overwrite_b=True, check_finite=False).T


def syrk(a: Any, c: Any, fresh: bool = False) -> Any:
    """``c - a @ a.T`` on the lower triangle of a diagonal tile (the upper is not used)."""
    _check(c.dtype)
    c = _own(c, fresh)
    c -= a @ a.T
    return c


def gemm_nt(a: Any, b: Any, c: Any, fresh: bool = False) -> Any:
    """``c - a @ b.T`` (a trailing update of the Cholesky)."""
    _check(c.dtype)
    c = _own(c, fresh)
    c -= a @ b.T
    return c


def gemm_acc(a: Any, b: Any, c: Optional[Any] = None) -> Any:
    """``c + a @ b`` (``a @ b`` when ``c`` is None): one term of a tiled matmul's k-sum,
    accumulated in place in ``c``."""
    xp = _xp()
    if c is None:
        return xp.matmul(a, b)
    dt = np.result_type(a.dtype, b.dtype, c.dtype)
    if dt in _FLOATS and a.dtype == b.dtype == c.dtype == dt:
        c = _own(c, False)
        c += a @ b
        return c
    return c + a @ b


def trsm_left(l: Any, b: Any, lower: bool, trans: bool, unit: bool = False) -> Any:
    """Solve ``op(l) x = b`` for a triangular tile ``l``."""
    return _solve_triangular()(l, b, lower=lower, trans=1 if trans else 0, unit_diagonal=unit,
                               check_finite=False)


def sub_matmul(b: Any, a: Any, x: Any, trans: bool, fresh: bool = False) -> Any:
    """``b - op(a) @ x`` (a substitution update), in place in ``b``."""
    b = _own(b, fresh)
    b -= (a.T if trans else a) @ x
    return b


def qr_block(a: Any) -> tuple[Any, Any]:
    """A row block's reduced QR (TSQR's first level)."""
    q, r = _xp().linalg.qr(a)
    return q, r


def qr_stack(*rs: Any) -> tuple[Any, Any]:
    """QR of the stacked R factors: ``(Q2, R)``."""
    xp = _xp()
    q, r = xp.linalg.qr(xp.concatenate(rs, axis=0))
    return q, r


def first(pair: tuple) -> Any:
    """The first of a pair (the Q of a QR)."""
    return pair[0]


def second(pair: tuple) -> Any:
    """The second of a pair (the R of a QR)."""
    return pair[1]


def qr_apply(q1: tuple, q2: tuple, start: int, stop: int) -> Any:
    """A row block of the final Q: its own Q times its rows of the second level's Q."""
    return q1[0] @ q2[0][start:stop]


def tril(a: Any) -> Any:
    """The lower triangle of ``a``."""
    return _xp().tril(a)


def zeros(shape: tuple, dtype: str) -> Any:
    """A tile of zeros on the device."""
    return _xp().zeros(shape, dtype)
