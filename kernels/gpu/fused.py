"""Fused elementwise programs as CuPy kernels: the GPU twin of :mod:`dagmpi.kernels.cpu.fused`.

The same program trees (``dagmpi.array.blockops``) and the same rules for what
is compiled: the scalar expression comes from the CPU module's generator
(:func:`dagmpi.kernels.cpu.fused._gen`, so both accept exactly the same
programs) and is rewritten into CUDA C++ for one ``cupy.ElementwiseKernel``
(``map``) or ``cupy.ReductionKernel`` (``sum``/``min``/``max``).  Constants are
kernel arguments, so ``A * 2`` and ``A * 3`` share a kernel; kernels are cached
per process by program shape.  ``min``/``max`` propagate NaN like numpy.
:func:`source` is pure string generation (no CuPy), for tests and inspection.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np

from dagmpi.kernels.cpu.fused import _OK_LEAF, _gen

#: Device helpers the expressions call (``abs`` and ``sq`` of the CPU source).
PREAMBLE = """\
template <typename T> __device__ T dm_abs(T v) { return v < T(0) ? -v : v; }
__device__ double dm_abs(double v) { return fabs(v); }
template <typename T> __device__ T dm_sq(T v) { return v * v; }
"""

_CTYPE = {"f8": "double", "i8": "long long"}
_INF = {"f8": ("__longlong_as_double(0x7ff0000000000000LL)", "__longlong_as_double(0xfff0000000000000LL)"),
        "i8": ("9223372036854775807LL", "(-9223372036854775807LL - 1)")}
_REDUCE = {"sum": "a + b", "min": "(a < b || a != a) ? a : b", "max": "(a > b || a != a) ? a : b"}
_I64 = np.iinfo(np.int64)


class Source(NamedTuple):
    """The pieces of one CuPy kernel (see ``cupy.ElementwiseKernel`` / ``cupy.ReductionKernel``)."""

    key: tuple            #: cache key: the program's shape, not its constants
    name: str             #: the kernel's C name
    in_params: str        #: e.g. ``"float64 x0, float64 x1, int64 c0"``
    out_params: str       #: ``"float64 out"``
    expr: str             #: map: ``"out = <expr>"``; reductions: the map expression
    reduce_expr: str      #: ``""`` for a map
    identity: str         #: ``""`` for a map
    reduce_type: str      #: ``""`` for a map
    consts: list          #: the constants to pass after the arrays


def to_cuda(expr: str) -> str:
    """Rewrite a scalar expression of the CPU generator into CUDA C++."""
    expr = re.sub(r"\bx(\d+)\[i\]", r"x\1", expr)
    expr = re.sub(r"\bnp\.", "", expr)
    expr = re.sub(r"\babs\(", "dm_abs(", expr)
    return re.sub(r"\bsq\(", "dm_sq(", expr)


def source(prog: tuple, mode: str, out_dtype: Any, leaf_dtypes: Sequence[Any]) -> Optional[Source]:
    """The CUDA kernel for ``prog`` (``mode``: ``"map"``, ``"sum"``, ``"min"``, ``"max"``)
    over leaves of ``leaf_dtypes``, or ``None`` where the CPU module would not compile it."""
    out_dtype = np.dtype(out_dtype)
    if mode == "map" and out_dtype not in (np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)):
        return None
    if mode != "map" and (mode not in _REDUCE or out_dtype not in (np.dtype(np.float64), np.dtype(np.int64))):
        return None
    dtypes = [np.dtype(d) for d in leaf_dtypes]
    if any(d not in _OK_LEAF for d in dtypes) or (mode != "map" and not dtypes):  # a reduction needs an array
        return None
    consts: list = []
    expr = _gen(prog, dtypes, consts, [False])
    if expr is None or any(isinstance(c, int) and not _I64.min <= c <= _I64.max for c in consts):
        return None
    expr = to_cuda(expr)
    key = (expr, mode, out_dtype.str, tuple(d.str for d in dtypes), tuple(type(c).__name__ for c in consts))
    params = [f"{d.name} x{i}" for i, d in enumerate(dtypes)]
    params += [f"{'float64' if isinstance(c, float) else 'int64'} c{i}" for i, c in enumerate(consts)]
    name = f"dagmpi_fused_{mode}_{_digest(key)}"
    out = f"{out_dtype.name} out"
    if mode == "map":
        return Source(key, name, ", ".join(params), out, f"out = {expr}", "", "", "", consts)
    code = out_dtype.str[1:]
    identity = "0" if mode == "sum" else _INF[code][mode == "max"]
    return Source(key, name, ", ".join(params), out, expr, _REDUCE[mode], identity, _CTYPE[code], consts)


def _digest(key: tuple) -> str:
    return hashlib.blake2b(repr(key).encode(), digest_size=6).hexdigest()


_cache: dict[tuple, Optional[Any]] = {}
_lock = threading.Lock()


def _compile(src: Source) -> Any:
    import cupy

    if not src.reduce_expr:
        return cupy.ElementwiseKernel(src.in_params, src.out_params, src.expr, src.name, preamble=PREAMBLE)
    return cupy.ReductionKernel(src.in_params, src.out_params, src.expr, src.reduce_expr, "out = a",
                                src.identity, src.name, reduce_type=src.reduce_type, preamble=PREAMBLE)


def kernel(prog: tuple, mode: str, out_dtype: Any, leaves: Sequence[Any],
           shape: tuple[int, ...]) -> Optional[tuple[Any, list, Source]]:
    """A CuPy kernel for ``prog`` over the CuPy arrays ``leaves``, with the arrays and its
    source, or ``None`` where the caller must do it another way."""
    import cupy

    for x in leaves:
        if not (isinstance(x, cupy.ndarray) and x.shape == tuple(shape) and x.flags.c_contiguous):
            return None
    src = source(prog, mode, out_dtype, [x.dtype for x in leaves])
    if src is None:
        return None
    with _lock:
        fn = _cache.get(src.key, False)
        if fn is False:
            fn = _cache[src.key] = _compile(src)
    if fn is None:
        return None
    return fn, list(leaves), src


def _call(src: Source, fn: Any, *args: Any) -> Optional[Any]:
    """``fn(*args)``; ``None`` (remembered) if NVRTC refuses the kernel, which CuPy compiles
    at its first call."""
    from cupy.cuda.compiler import CompileException

    try:
        return fn(*args)
    except CompileException:
        with _lock:
            _cache[src.key] = None
        return None


def run_map(prog: tuple, out_dtype: Any, leaves: Sequence[Any], shape: tuple[int, ...]) -> Optional[Any]:
    """The block ``prog`` computes (a CuPy array), in one kernel, or ``None``."""
    import cupy

    out_dtype = np.dtype(out_dtype)
    k = kernel(prog, "map", out_dtype, leaves, shape)
    if k is None:
        return None
    fn, arrays, src = k
    out = cupy.empty(shape, out_dtype)
    return None if _call(src, fn, *arrays, *src.consts, out) is None else out


def run_reduce(prog: tuple, mode: str, out_dtype: Any, leaves: Sequence[Any],
               shape: tuple[int, ...]) -> Optional[Any]:
    """``sum``/``min``/``max`` of the values ``prog`` computes over the block, in one kernel
    without storing them, or ``None``.  The result is a 0-d CuPy array of ``out_dtype``
    (on the device, like CuPy's own reductions)."""
    out_dtype = np.dtype(out_dtype)
    if int(np.prod(shape)) == 0:
        return None
    k = kernel(prog, mode, out_dtype, leaves, shape)
    if k is None:
        return None
    fn, arrays, src = k
    return _call(src, fn, *arrays, *src.consts)
