"""Fused elementwise programs compiled with Numba: one loop over the block, no temporaries.

The array layer describes a chain of elementwise operations as a small tree (see
``dagmpi.array.blockops``).  numpy evaluates it one operation at a time; even in
cache-sized strips that is several passes and a Python call per operation and
strip.  Here the tree becomes the body of one ``@njit(nogil=True)`` loop,
compiled once per process for each program *shape* (the constants are
arguments, so ``A * 2`` and ``A * 3`` share a kernel):

    map:  out[i] = f(x0[i], x1[i], ..., c0, c1, ...)
    sum:  s += f(...)             (with ``fastmath={'reassoc'}`` so it vectorises)
    min/max: likewise

Only programs whose results are sure to match numpy's are compiled: float64 or
int64 leaves of the block's own shape and C order, Python-number constants, and
operations in :data:`OPS` (no integer division or power, whose corner cases differ
between numpy and Numba); anything else returns ``None`` and the caller keeps
numpy.  The sum differs from numpy's pairwise sum by rounding only.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Sequence

import numpy as np

#: ufunc name -> (arity, template) for the generated scalar expression.
OPS = {
    "add": (2, "({0} + {1})"), "subtract": (2, "({0} - {1})"), "multiply": (2, "({0} * {1})"),
    "true_divide": (2, "({0} / {1})"), "divide": (2, "({0} / {1})"),
    "negative": (1, "(-{0})"), "positive": (1, "(+{0})"), "absolute": (1, "abs({0})"),
    "less": (2, "({0} < {1})"), "less_equal": (2, "({0} <= {1})"), "greater": (2, "({0} > {1})"),
    "greater_equal": (2, "({0} >= {1})"), "equal": (2, "({0} == {1})"), "not_equal": (2, "({0} != {1})"),
    "sqrt": (1, "np.sqrt({0})"), "exp": (1, "np.exp({0})"), "log": (1, "np.log({0})"),
    "sin": (1, "np.sin({0})"), "cos": (1, "np.cos({0})"), "tanh": (1, "np.tanh({0})"),
    "square": (1, "({0} * {0})"),
}
_FLOAT_ONLY = {"true_divide", "divide", "sqrt", "exp", "log", "sin", "cos", "tanh", "power"}
_OK_LEAF = (np.dtype(np.float64), np.dtype(np.int64))

_cache: dict[tuple, Optional[Callable]] = {}
_lock = threading.Lock()


def _gen(prog: tuple, leaf_dtypes: Sequence[np.dtype], consts: list, floaty: list) -> Optional[str]:
    """The scalar expression of ``prog`` (``None`` if it cannot be compiled safely)."""
    kind = prog[0]
    if kind == "leaf":
        dt = leaf_dtypes[prog[1]]
        if dt is None:
            return None
        if dt == np.float64:
            floaty[0] = True
        return f"x{prog[1]}[i]"
    if kind == "const":
        v = prog[1]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if isinstance(v, float):
            floaty[0] = True
        consts.append(v)
        return f"c{len(consts) - 1}"
    if kind != "ufunc" or prog[2]:
        return None
    name = getattr(prog[1], "__name__", "")
    if name == "power" and len(prog) == 5 and prog[4][0] == "const" and prog[4][1] == 2:
        inner = _gen(prog[3], leaf_dtypes, consts, floaty)
        return None if inner is None else f"sq({inner})"
    if name not in OPS:
        return None
    arity, template = OPS[name]
    if len(prog) - 3 != arity:
        return None
    parts = []
    for child in prog[3:]:
        sub_floaty = [False]
        code = _gen(child, leaf_dtypes, consts, sub_floaty)
        if code is None:
            return None
        if name in _FLOAT_ONLY and not sub_floaty[0] and arity == 1:
            return None
        floaty[0] = floaty[0] or sub_floaty[0]
        parts.append(code)
    if name in _FLOAT_ONLY and not floaty[0]:
        return None
    if name in ("less", "less_equal", "greater", "greater_equal", "equal", "not_equal"):
        floaty[0] = False
    return template.format(*parts)


def _compile(key: tuple, source: str, fastmath: Any) -> Optional[Callable]:
    import numba

    scope: dict[str, Any] = {"np": np}
    exec(compile(source, f"<dagmpi fused kernel {abs(hash(key)) & 0xffffffff:08x}>", "exec"), scope)
    sq = numba.njit(inline="always")(scope["sq"])
    scope["sq"] = sq
    return numba.njit(nogil=True, fastmath=fastmath)(scope["kernel"])


def kernel(prog: tuple, mode: str, out_dtype: np.dtype, leaves: Sequence[Any],
           shape: tuple[int, ...]) -> Optional[tuple[Callable, list, list]]:
    """A compiled kernel for ``prog`` over ``leaves`` (``mode``: ``"map"``, ``"sum"``,
    ``"min"``, ``"max"``), with the arrays and constants to call it with, or ``None``
    where numpy must do it."""
    if mode == "map" and out_dtype not in (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)):
        return None
    if mode != "map" and out_dtype not in (np.dtype(np.float64), np.dtype(np.int64)):
        return None
    dtypes: list = []
    arrays = []
    for x in leaves:
        if (isinstance(x, np.ndarray) and x.dtype in _OK_LEAF and x.shape == tuple(shape)
                and x.flags.c_contiguous):
            dtypes.append(x.dtype)
            arrays.append(x.reshape(-1))
        else:
            return None
    consts: list = []
    expr = _gen(prog, dtypes, consts, [False])
    if expr is None:
        return None
    key = (expr, mode, out_dtype.str, tuple(d.str for d in dtypes), tuple(type(c).__name__ for c in consts))
    with _lock:
        fn = _cache.get(key, False)
        if fn is False:
            args = ", ".join([f"x{i}" for i in range(len(arrays))] + [f"c{i}" for i in range(len(consts))])
            head = "def sq(v):\n    return v * v\n"
            if mode == "map":
                body = (f"def kernel(out, {args}):\n    for i in range(out.size):\n"
                        f"        out[i] = {expr}\n    return 0\n")
                fm: Any = False
            elif mode == "sum":
                body = (f"def kernel(n, {args}):\n    s = {'0.0' if out_dtype.kind == 'f' else '0'}\n"
                        f"    for i in range(n):\n        s += {expr}\n    return s\n")
                fm = {"reassoc", "nsz"} if out_dtype.kind == "f" else False
            else:
                cmp = "<" if mode == "min" else ">"
                body = (f"def kernel(n, {args}):\n    i = 0\n    s = {expr}\n"
                        f"    for i in range(1, n):\n        v = {expr}\n"
                        f"        if v {cmp} s or v != v:\n            s = v\n"
                        f"            if v != v:\n                return v\n    return s\n")
                fm = False
            try:
                fn = _compile(key, head + body, fm)
            except Exception:  # Numba missing or refusing: numpy does it
                fn = None
            _cache[key] = fn
    if fn is None:
        return None
    return fn, arrays, consts


def run_map(prog: tuple, out_dtype: Any, leaves: Sequence[Any], shape: tuple[int, ...]) -> Optional[np.ndarray]:
    """The block ``prog`` computes, in one compiled loop, or ``None``."""
    out_dtype = np.dtype(out_dtype)
    k = kernel(prog, "map", out_dtype, leaves, shape)
    if k is None:
        return None
    fn, arrays, consts = k
    out = np.empty(shape, out_dtype)
    fn(out.reshape(-1), *arrays, *consts)
    return out


def run_reduce(prog: tuple, mode: str, out_dtype: Any, leaves: Sequence[Any],
               shape: tuple[int, ...]) -> Optional[Any]:
    """``sum``/``min``/``max`` of the values ``prog`` computes over the block, in one
    compiled loop without storing them, or ``None``."""
    out_dtype = np.dtype(out_dtype)
    n = int(np.prod(shape))
    if n == 0:
        return None
    k = kernel(prog, mode, out_dtype, leaves, shape)
    if k is None:
        return None
    fn, arrays, consts = k
    return out_dtype.type(fn(n, *arrays, *consts))
