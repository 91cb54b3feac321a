"""Linear algebra on DArrays (norms here; tiled factorisations build on them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import core


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
