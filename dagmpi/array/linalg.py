"""Linear algebra on DArrays: norms, ``matmul`` (``@``), tiled Cholesky, triangular
and SPD solves, TSQR.  Tile kernels: LAPACK/BLAS through scipy
(``dagmpi.kernels.cpu.tiles``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import api
from . import core
from . import grid as g


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> core.DArray:
    """``numpy.linalg.norm`` for vectors and matrices, as reductions near the data:
    ``None``/``'fro'`` (2-norm of the elements), ``inf``, ``-inf``, ``1``, ``-1``,
    ``0`` and any ``p`` for vectors; ``'fro'``, ``1``, ``-1``, ``inf``, ``-inf``
    for matrices (the spectral norm ``2`` needs an SVD: not here)."""
    x = core.asarray(x)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        x = x.astype(np.float64)
    if axis is None and ord is None:
        return _finish(np.sqrt(core.reduction(_abs2(x), "sum")), x.ndim, keepdims, None)
    if axis is None:
        if x.ndim == 1:
            axis = 0
        elif x.ndim == 2:
            axis = (0, 1)
        else:
            raise ValueError("improper number of dimensions to norm: give axis= for arrays of more than 2")
    if isinstance(axis, (tuple, list)) and len(axis) == 1:
        axis = axis[0]
    if isinstance(axis, (tuple, list)):
        if x.ndim != 2 or len(axis) != 2:
            raise ValueError("matrix norms need a 2-D array and axis=(0, 1)")
        r, c = (core._axis(a, 2) for a in axis)
        if ord in (None, "fro"):
            out = np.sqrt(core.reduction(_abs2(x), "sum"))
        elif ord in (1, -1):
            out = core.reduction(core.reduction(abs(x), "sum", axis=r), "max" if ord == 1 else "min")
        elif ord in (np.inf, -np.inf):
            out = core.reduction(core.reduction(abs(x), "sum", axis=c), "max" if ord > 0 else "min")
        elif ord == "nuc" or ord in (2, -2):
            raise ValueError(f"norm(ord={ord!r}) needs singular values, which the tiled layer does not "
                             f"compute; use ord='fro', 1 or inf, or np.linalg.norm(A.to_numpy(), {ord!r})")
        else:
            raise ValueError(f"invalid norm order {ord!r} for matrices")
        return _finish(out, 2, keepdims, (r, c))
    ax = core._axis(axis, x.ndim)
    if ord in (None, 2):
        out = np.sqrt(core.reduction(_abs2(x), "sum", axis=ax))
    elif ord == np.inf:
        out = core.reduction(abs(x), "max", axis=ax)
    elif ord == -np.inf:
        out = core.reduction(abs(x), "min", axis=ax)
    elif ord == 0:
        out = core.reduction((x != 0).astype(np.float64), "sum", axis=ax)
    elif ord == 1:
        out = core.reduction(abs(x), "sum", axis=ax)
    elif isinstance(ord, str):
        raise ValueError(f"invalid norm order {ord!r} for vectors")
    else:
        out = core.reduction(abs(x) ** ord, "sum", axis=ax) ** (1.0 / ord)
    return _finish(out, x.ndim, keepdims, (ax,))


def _abs2(x: core.DArray) -> core.DArray:
    if np.issubdtype(x.dtype, np.complexfloating):
        return abs(x) ** 2
    return x * x


def _finish(out: core.DArray, ndim: int, keepdims: bool, axes: Any) -> core.DArray:
    if not keepdims:
        return out.compute()
    axes = tuple(range(ndim)) if axes is None else axes
    shape = list(out.shape)
    for a in sorted(axes):
        shape.insert(a, 1)
    return out.reshape(tuple(shape)) if shape else out


# ------------------------------------------------------------------ tiled algorithms

def _tiles_module():  # type: ignore[no-untyped-def]
    from . import tiles  # (host or GPU kernels, by where the tiles are)

    return tiles


def _2d(x: Any, what: str) -> core.DArray:
    x = core.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what} needs a 2-D array, got shape {x.shape}")
    return x


def _float(x: core.DArray) -> core.DArray:
    if x.dtype not in (np.float64, np.float32):
        return x.astype(np.float64)
    return x


def _grid_owners(nb: tuple[int, int], gpu: bool = False) -> np.ndarray:
    return core._plan(tuple((1,) * n for n in nb), gpu)


def _zeros(gpu: bool) -> tuple:
    """``(function, ...)`` of a zero tile task, in GPU memory for a GPU array."""
    from . import blockops as ops

    t = _tiles_module()
    return (ops.on_gpu, t.zeros) if gpu else (t.zeros,)


#: Floating-point operations a ``matmul`` task aims at (about 15 ms on one core at
#: 70 GFLOP/s): the k-sum of an output tile runs in tasks of as many tile products
#: as reach it (4 at 512^2 tiles, every one at 128^2).  One task per product made
#: 512^2 tiles 10% slower on 2 workers: rank 0's work and the messages per task.
GEMM_TASK_FLOPS = 1e9
#: ... and at most this many bytes of input tiles (a matrix-vector product's
#: products are cheap: by flops alone one task would pull a whole row panel).
GEMM_TASK_BYTES = 64 << 20


def matmul(a: Any, b: Any) -> core.DArray:
    """``a @ b`` for 2-D DArrays: each output tile is computed on its owner (the
    block-cyclic plan), pulling the row panel of ``a`` and column panel of ``b`` it
    needs, with the k-sum accumulated in place there (``dgemm``, ``beta=1``), a run
    of tile products per task (:data:`GEMM_TASK_FLOPS`, :data:`GEMM_TASK_BYTES`)."""
    a, b = core.asarray(a), core.asarray(b)
    if a.ndim == 1 or b.ndim == 1:
        a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
        b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
        out = matmul(a2, b2)
        if a.ndim == 1 and b.ndim == 1:
            return core.reduction(a * b, "sum")
        return out.reshape(out.shape[1]) if a.ndim == 1 else out.reshape(out.shape[0])
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: 1-D or 2-D arrays, got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} not aligned: {a.shape[1]} (dim 1) != "
                         f"{b.shape[0]} (dim 0)")
    dtype = np.result_type(a.dtype, b.dtype)
    if a.dtype != dtype:
        a = a.astype(dtype)
    if b.dtype != dtype:
        b = b.astype(dtype)
    if b.chunks[0] != a.chunks[1]:
        b = core.rechunk(b, (a.chunks[1], b.chunks[1]))
    t = _tiles_module()
    at, bt = a.tasks, b.tasks
    chunks = (a.chunks[0], b.chunks[1])
    nb = g.nblocks(chunks)
    gpu = a.device == "gpu" or b.device == "gpu"
    owners = _grid_owners(nb, gpu)
    out = np.empty(nb, dtype=object)
    nk = at.shape[1]
    mi, nj, kk = max(a.chunks[0], default=1), max(b.chunks[1], default=1), max(a.chunks[1], default=1)
    by_flops = math.ceil(GEMM_TASK_FLOPS / max(2 * mi * nj * kk, 1))
    by_bytes = GEMM_TASK_BYTES // max(dtype.itemsize * kk * (mi + nj), 1)
    group = max(1, min(nk, by_flops, by_bytes))
    for i in range(nb[0]):
        for j in range(nb[1]):
            acc = None
            for k0 in range(0, nk, group):
                ks = range(k0, min(nk, k0 + group))
                args = [at[i, k] for k in ks] + [bt[k, j] for k in ks] + ([] if acc is None else [acc])
                acc = api.spawn(t.gemm_sum, len(ks), *args, options=core._opts("gemm", prefer=owners[i, j]))
            if acc is None:  # an empty inner dimension
                acc = api.spawn(*_zeros(gpu), g.block_shape(chunks, (i, j)), dtype.str,
                                options=core._opts("zeros", prefer=owners[i, j], gpu=gpu))
            out[i, j] = acc
    return core.DArray(chunks, dtype, out, owners, name="matmul")


def cholesky(a: Any, lower: bool = True) -> core.DArray:
    """The Cholesky factor of a symmetric positive-definite DArray, by the tiled
    right-looking algorithm (POTRF, TRSM, SYRK, GEMM tile tasks), each tile updated
    in place on its owner; the next panel's tasks have priority over the trailing
    updates.  A matrix that is not positive definite makes the result's fetch raise
    ``numpy.linalg.LinAlgError`` naming the tile and step."""
    a = _float(_2d(a, "cholesky"))
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"cholesky needs a square matrix, got shape {a.shape}")
    if a.chunks[1] != a.chunks[0]:
        a = core.rechunk(a, (a.chunks[0], a.chunks[0]))
    t = _tiles_module()
    n = len(a.chunks[0])
    src = a.tasks
    gpu = a.device == "gpu"
    owners = _grid_owners((n, n), gpu)
    offs = g.offsets(a.chunks[0])
    T = {(i, j): src[i, j] for i in range(n) for j in range(i + 1)}
    touched: set = set()

    def opts(name: str, i: int, j: int, prio: int) -> Any:
        return core.Options(name=name, priority=prio, scope=core.scope(prefer=int(owners[i, j]), gpu=gpu),
                            move=False)

    def fresh(ij: tuple[int, int]) -> bool:
        if ij in touched:
            return False
        touched.add(ij)
        return True

    for k in range(n):
        panel = 3 * (n - k)
        T[k, k] = api.spawn(t.potrf, T[k, k], k, offs[k], fresh((k, k)), options=opts("potrf", k, k, panel))
        for i in range(k + 1, n):
            T[i, k] = api.spawn(t.trsm, T[k, k], T[i, k], fresh((i, k)), options=opts("trsm", i, k, panel))
        for i in range(k + 1, n):
            for j in range(k + 1, i + 1):
                prio = panel - 1 if j == k + 1 else 0
                if i == j:
                    T[i, i] = api.spawn(t.syrk, T[i, k], T[i, i], fresh((i, i)), options=opts("syrk", i, i, prio))
                else:
                    T[i, j] = api.spawn(t.gemm_nt, T[i, k], T[j, k], T[i, j], fresh((i, j)),
                                        options=opts("gemm", i, j, prio))
    out = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(n):
            if j <= i:
                out[i, j] = T[i, j]
            else:
                out[i, j] = api.spawn(*_zeros(gpu), (a.chunks[0][i], a.chunks[0][j]), a.dtype.str,
                                      options=core._opts("zeros", prefer=int(owners[i, j]), gpu=gpu))
    L = core.DArray(a.chunks, a.dtype, out, owners, name="cholesky")
    return L if lower else L.T


def solve_triangular(a: Any, b: Any, lower: bool = False, trans: Any = 0, unit_diagonal: bool = False) -> core.DArray:
    """Solve ``op(a) x = b`` for a triangular DArray ``a`` (``trans``: 0/'N', 1/'T'),
    by tiled substitution: a TRSM per diagonal tile, GEMM updates of the rest, each
    on the owner of the right-hand side's tile.  ``b``: 1-D or 2-D."""
    a = _float(_2d(a, "solve_triangular"))
    b = core.asarray(b)
    vec = b.ndim == 1
    if vec:
        b = b.reshape(b.shape[0], 1)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"solve_triangular needs a square matrix, got shape {a.shape}")
    if b.ndim != 2 or b.shape[0] != a.shape[0]:
        raise ValueError(f"solve_triangular: shapes {a.shape} and {b.shape} do not agree "
                         f"({a.shape[0]} rows against {b.shape[0]})")
    t_ = {0: False, "N": False, 1: True, "T": True, 2: True, "C": True}.get(trans)
    if t_ is None:
        raise ValueError(f"trans must be 0, 1, 'N' or 'T', got {trans!r}")
    b = _float(b)
    if a.chunks[1] != a.chunks[0]:
        a = core.rechunk(a, (a.chunks[0], a.chunks[0]))
    if b.chunks[0] != a.chunks[0]:
        b = core.rechunk(b, (a.chunks[0], b.chunks[1]))
    dtype = np.result_type(a.dtype, b.dtype)
    t = _tiles_module()
    at, bt = a.tasks, b.tasks
    n = at.shape[0]
    # op(a) is lower when (lower and not trans) or (upper and trans): forward substitution
    forward = lower != t_
    order = range(n) if forward else range(n - 1, -1, -1)
    out = np.empty(bt.shape, dtype=object)
    for j in range(bt.shape[1]):
        x: dict[int, Any] = {}
        touched: set = set()
        for i in order:
            rhs = bt[i, j]
            for k in (range(i) if forward else range(i + 1, n)):
                tile = at[k, i] if t_ else at[i, k]  # op(a)[i, k]
                rhs = api.spawn(t.sub_matmul, rhs, tile, x[k], t_, i not in touched,
                                options=core._opts("gemm", near=bt[i, j]))
                touched.add(i)
            x[i] = api.spawn(t.trsm_left, at[i, i], rhs, lower, t_, unit_diagonal,
                             options=core._opts("trsm", near=bt[i, j]))
            out[i, j] = x[i]
    res = core.DArray(b.chunks, dtype, out, b._owners, name="solve_triangular")
    return res.reshape(res.shape[0]) if vec else res


def cho_solve(c_and_lower: Any, b: Any) -> core.DArray:
    """Solve ``A x = b`` given the Cholesky factor: ``cho_solve((L, True), b)`` (or
    ``cho_solve(L, b)`` for a lower factor), as scipy.linalg.cho_solve."""
    if isinstance(c_and_lower, tuple):
        c, lower = c_and_lower
    else:
        c, lower = c_and_lower, True
    c = _2d(c, "cho_solve")
    if lower:
        y = solve_triangular(c, b, lower=True)
        return solve_triangular(c, y, lower=True, trans=1)
    y = solve_triangular(c, b, lower=False, trans=1)
    return solve_triangular(c, y, lower=False)


def solve(a: Any, b: Any, assume_a: str = "pos") -> core.DArray:
    """Solve ``a x = b`` for a symmetric positive-definite ``a`` (``assume_a="pos"``:
    tiled Cholesky, then two triangular solves)."""
    if assume_a not in ("pos", "sym pos"):
        raise ValueError(f"da.linalg.solve handles symmetric positive-definite systems (assume_a='pos'); "
                         f"got assume_a={assume_a!r}: for a general matrix use scipy.linalg.solve on "
                         f"A.to_numpy()")
    a = _2d(a, "solve")
    b = core.asarray(b)
    if b.shape[0] != a.shape[0]:
        raise ValueError(f"solve: shapes {a.shape} and {b.shape} do not agree")
    return cho_solve((cholesky(a), True), b)


def qr(a: Any) -> tuple[core.DArray, core.DArray]:
    """Reduced QR of a tall-and-skinny DArray (one block column) by TSQR: a QR per
    row block where it lives, one QR of the stacked R factors, then each block's Q
    times its rows of the second Q (again where it lives).  Returns ``(Q, R)``."""
    a = _float(_2d(a, "qr"))
    m, n = a.shape
    if m < n:
        raise ValueError(f"qr (TSQR) needs a tall matrix (rows >= columns), got shape {a.shape}")
    if len(a.chunks[1]) != 1:
        a = core.rechunk(a, (a.chunks[0], (n,)))
    t = _tiles_module()
    src = a.tasks
    firsts, rs, heights = [], [], []
    for i in range(src.shape[0]):
        qr1 = api.spawn(t.qr_block, src[i, 0], options=core._opts("qr", near=src[i, 0]))
        firsts.append(qr1)
        rs.append(api.spawn(t.second, qr1, options=core._opts("qr-r", near=qr1)))
        heights.append(min(a.chunks[0][i], n))
    q2 = api.spawn(t.qr_stack, *rs, options=core._opts("qr-stack"))
    offs = [0]
    for h in heights:
        offs.append(offs[-1] + h)
    qt = np.empty(src.shape, dtype=object)
    for i, qr1 in enumerate(firsts):
        qt[i, 0] = api.spawn(t.qr_apply, qr1, q2, offs[i], offs[i + 1], options=core._opts("qr-q", near=src[i, 0]))
    rt = np.empty((1, 1), dtype=object)
    rt[0, 0] = api.spawn(t.second, q2, options=core._opts("qr-r", near=q2))
    Q = core.DArray(a.chunks, a.dtype, qt, a._owners, name="qr.Q")
    R = core.DArray(((n,), (n,)), a.dtype, rt, None, name="qr.R")
    return Q, R
