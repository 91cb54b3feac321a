"""What the tasks of the array layer run on the workers: plain functions of numpy
blocks, importable by reference (a task ships the function's name, not its code).

A fused elementwise program is a small tree of tuples:

    ("leaf", i)                    the i-th input block (or numpy piece)
    ("const", value)               a scalar
    ("ufunc", ufunc, kwargs, *children)
    ("astype", dtype, child)
    ("where", cond, x, y)
    ("call", fn, kwargs, *children)    map_blocks: the function sees whole blocks

Programs without a ``call`` node are evaluated in strips of about
``STRIP_BYTES`` of output, so that a chain like ``(A * 2 + 1) ** 2`` makes one
pass over the block in memory (each strip's temporaries stay in cache) instead
of one pass per operation.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any, Optional, Sequence

import numpy as np

#: Output bytes evaluated per strip: small enough that a strip's temporaries stay in L2.
STRIP_BYTES = 256 << 10

#: Compile fused programs with Numba (``dagmpi.kernels.cpu.fused``) where their result
#: is sure to match numpy's; ``DAGMPI_ARRAY_NUMBA=0`` keeps numpy everywhere.
NUMBA = os.environ.get("DAGMPI_ARRAY_NUMBA", "1") not in ("0", "false", "no", "off")


def _compiled() -> Any:
    from dagmpi.kernels.cpu import fused as compiled

    return compiled


# ------------------------------------------------------------------ fused elementwise

def strippable(prog: tuple) -> bool:
    kind = prog[0]
    if kind in ("leaf", "const"):
        return True
    if kind == "call":
        return False
    children = prog[3:] if kind == "ufunc" else (prog[2:] if kind == "astype" else prog[1:])
    return all(strippable(c) for c in children)


def count_ops(prog: tuple) -> int:
    kind = prog[0]
    if kind in ("leaf", "const"):
        return 0
    children = prog[3:] if kind in ("ufunc", "call") else (prog[2:] if kind == "astype" else prog[1:])
    return 1 + sum(count_ops(c) for c in children)


def evaluate(prog: tuple, leaves: Sequence[Any]) -> Any:
    kind = prog[0]
    if kind == "leaf":
        return leaves[prog[1]]
    if kind == "const":
        return prog[1]
    if kind == "ufunc":
        return prog[1](*(evaluate(c, leaves) for c in prog[3:]), **dict(prog[2]))
    if kind == "astype":
        x = evaluate(prog[2], leaves)
        return (x if hasattr(x, "astype") else np.asarray(x)).astype(prog[1])
    if kind == "where":
        return np.where(*(evaluate(c, leaves) for c in prog[1:]))
    if kind == "call":
        return prog[1](*(evaluate(c, leaves) for c in prog[3:]), **dict(prog[2]))
    raise ValueError(f"unknown node {kind!r} in a fused program")


def _strips(shape: tuple[int, ...], itemsize: int) -> Optional[list[tuple[int, int]]]:
    if len(shape) == 0 or shape[0] <= 1:
        return None
    row = math.prod(shape[1:]) * itemsize
    rows = max(1, STRIP_BYTES // max(1, row))
    if rows >= shape[0]:
        return None
    return [(r, min(r + rows, shape[0])) for r in range(0, shape[0], rows)]


def _strip_leaves(leaves: Sequence[Any], ndim: int, r0: int, r1: int) -> list[Any]:
    out = []
    for x in leaves:
        if isinstance(x, np.ndarray) and x.ndim == ndim and x.shape[0] != 1:
            out.append(x[r0:r1])
        else:
            out.append(x)
    return out


def fused(prog: tuple, shape: tuple[int, ...], dtype: Any, *leaves: Any) -> np.ndarray:
    """One output block of a fused elementwise program."""
    dtype = np.dtype(dtype)
    gpu = _gpu_of(leaves)
    if gpu is not None:  # GPU blocks: the program runs on the GPU (CuPy's ufuncs), whole
        xp = gpu.xp
        out = xp.asarray(evaluate(prog, [gpu.to_device(x) if isinstance(x, np.ndarray) else x for x in leaves]))
        if out.shape != tuple(shape):
            out = xp.broadcast_to(out, shape)
        if out.dtype != dtype:
            out = out.astype(dtype)
        return gpu.to_device(xp.ascontiguousarray(out))
    flat = strippable(prog)
    if flat and NUMBA:
        out = _compiled().run_map(prog, dtype, leaves, tuple(shape))
        if out is not None:
            return out
    strips = _strips(shape, dtype.itemsize) if flat else None
    if strips is None:
        out = np.asarray(evaluate(prog, leaves))
        if out.shape != tuple(shape):
            if prog[0] == "call":
                raise ValueError(f"the map_blocks function {getattr(prog[1], '__name__', prog[1])!r} "
                                 f"returned a block of shape {out.shape}, expected {tuple(shape)}: "
                                 f"map_blocks keeps the shape of the blocks")
            out = np.broadcast_to(out, shape)
        if out.dtype != dtype:
            out = out.astype(dtype)
        return np.asarray(out, order="C") if out.ndim else out.copy()
    out = np.empty(shape, dtype)
    for r0, r1 in strips:
        out[r0:r1] = evaluate(prog, _strip_leaves(leaves, len(shape), r0, r1))
    return out


# ------------------------------------------------------------------ reductions
#
# A partial result is a tuple of arrays with the reduced axes kept (length 1):
#   sum/prod/min/max/any/all: (value,)
#   mean: (sum, count)          var/std: (count, mean, M2)
#   argmin/argmax: (value, global index)

_COMBINE = {"sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum,
            "any": np.logical_or, "all": np.logical_and}
_NUMPY = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max, "any": np.any, "all": np.all}


def partial(kind: str, axis: Optional[int], info: tuple, prog: Optional[tuple], shape: tuple[int, ...],
            dtype: Any, *leaves: Any) -> tuple:
    """The partial reduction of one block (of a fused program's output when ``prog``
    is given, computed strip by strip where that is possible; else of ``leaves[0]``)."""
    if prog is None:
        block = leaves[0]
    elif _gpu_of(leaves) is not None:
        block = fused(prog, shape, dtype, *leaves)  # on the GPU, whole (no strips, no Numba)
    else:
        if NUMBA and axis is None and kind in ("sum", "min", "max") and strippable(prog) and \
                (kind != "sum" or np.dtype(info[0]) == np.dtype(dtype)):
            value = _compiled().run_reduce(prog, kind, dtype, leaves, tuple(shape))
            if value is not None:
                return (np.asarray(value).reshape((1,) * len(shape)),)
        if axis is None and kind in _COMBINE and strippable(prog):
            strips = _strips(shape, np.dtype(dtype).itemsize)
            if strips is not None:
                acc = None
                for r0, r1 in strips:
                    part = _NUMPY[kind](np.asarray(evaluate(prog, _strip_leaves(leaves, len(shape), r0, r1)),
                                                   dtype=dtype), dtype=info[0] if kind in ("sum", "prod") else None)
                    acc = part if acc is None else _COMBINE[kind](acc, part)
                return (np.asarray(acc).reshape((1,) * len(shape)),)
        block = fused(prog, shape, dtype, *leaves)
    axes = None if axis is None else (axis,)
    if kind in ("sum", "prod"):
        return (_NUMPY[kind](block, axis=axes, keepdims=True, dtype=info[0]),)
    if kind in ("min", "max", "any", "all"):
        if block.size == 0 and kind in ("min", "max"):
            raise ValueError(f"zero-size array to reduction operation {kind}imum which has no identity")
        return (_NUMPY[kind](block, axis=axes, keepdims=True),)
    if kind == "mean":
        acc = info[0]
        n = block.size if axis is None else block.shape[axis]
        return (np.sum(block, axis=axes, keepdims=True, dtype=acc), n)
    if kind in ("var", "std"):
        acc = info[0]
        n = block.size if axis is None else block.shape[axis]
        if n == 0:
            kshape = tuple(1 if (axis is None or a == axis) else s for a, s in enumerate(block.shape))
            z = np.zeros(kshape, acc)
            return (0, z, z)
        mean = np.mean(block, axis=axes, keepdims=True, dtype=acc)
        dev = block.astype(acc, copy=False) - mean
        if np.iscomplexobj(dev):
            m2 = np.sum((dev * dev.conj()).real, axis=axes, keepdims=True)
        else:
            m2 = np.sum(dev * dev, axis=axes, keepdims=True)
        return (n, mean, m2)
    if kind in ("argmin", "argmax"):
        offsets, full_shape = info
        if block.size == 0:
            raise ValueError(f"attempt to get {kind} of an empty sequence")
        fn = np.argmin if kind == "argmin" else np.argmax
        if axis is None:
            flat = int(fn(block))
            local = np.unravel_index(flat, block.shape)
            glob = tuple(int(l) + o for l, o in zip(local, offsets))
            idx = np.ravel_multi_index(glob, full_shape) if full_shape else 0
            val = block[local]
            keep = (1,) * block.ndim
            return (np.asarray(val).reshape(keep), np.asarray(idx, dtype=np.intp).reshape(keep))
        arg = fn(block, axis=axis, keepdims=True)
        val = np.take_along_axis(block, arg, axis=axis)
        return (val, arg.astype(np.intp) + offsets[axis])
    raise ValueError(f"unknown reduction {kind!r}")


def combine(kind: str, final: bool, info: tuple, keep: tuple, ddof: float, *parts: tuple) -> Any:
    """Combine partials (one tree node); with ``final``, turn the result into the
    reduction's value, dropping the reduced axes unless ``keep``."""
    if kind in _COMBINE:
        with np.errstate(all="ignore"):
            out: tuple = (functools.reduce(_COMBINE[kind], (p[0] for p in parts)),)
    elif kind == "mean":
        out = (functools.reduce(np.add, (p[0] for p in parts)), sum(p[1] for p in parts))
    elif kind in ("var", "std"):
        n, mean, m2 = parts[0]
        for nb, mb, m2b in parts[1:]:
            if nb == 0:
                continue
            if n == 0:
                n, mean, m2 = nb, mb, m2b
                continue
            tot = n + nb
            delta = mb - mean
            mean = mean + delta * (nb / tot)
            if np.iscomplexobj(delta):
                m2 = m2 + m2b + (delta * delta.conj()).real * (n * nb / tot)
            else:
                m2 = m2 + m2b + delta * delta * (n * nb / tot)
            n = tot
        out = (n, mean, m2)
    elif kind in ("argmin", "argmax"):
        val, idx = parts[0]
        for vb, ib in parts[1:]:
            with np.errstate(invalid="ignore"):
                better = (vb < val) if kind == "argmin" else (vb > val)
                nan_a, nan_b = _isnan(val), _isnan(vb)
                tie = (vb == val) & (ib < idx)
                take = ((better | tie) & ~nan_a) | (nan_b & ~nan_a) | (nan_a & nan_b & (ib < idx))
            val = np.where(take, vb, val)
            idx = np.where(take, ib, idx)
        out = (val, idx)
    else:
        raise ValueError(f"unknown reduction {kind!r}")
    if not final:
        return out
    res_dtype = info[-1]
    with np.errstate(all="ignore"):
        if kind in _COMBINE:
            value = out[0]
        elif kind == "mean":
            value = out[0] / out[1] if out[1] else out[0] * np.nan
        elif kind in ("var", "std"):
            n, _, m2 = out
            value = m2 / max(n - ddof, 0) if n - ddof > 0 else m2 * np.nan
            if kind == "std":
                value = np.sqrt(value)
        else:
            value = out[1]
    value = (value if hasattr(value, "astype") else np.asarray(value)).astype(res_dtype, copy=False)
    if not keep[0]:
        squeeze = keep[1]
        value = value.reshape(tuple(s for a, s in enumerate(value.shape) if a not in squeeze))
    return value


def _isnan(x: Any) -> Any:
    try:
        return np.isnan(x)
    except TypeError:
        return np.zeros(np.shape(x), dtype=bool)


# ------------------------------------------------------------------ blocks

class Bound:
    """``func`` with the user's function ``fn`` (and any ``extra`` objects) bound as
    its first arguments, as a task function.  Equal (and hashing equal) for the same
    objects, so the runtime pickles it once and sends it to each worker once, instead
    of pickling ``fn`` (a Numba dispatcher costs ~300 us) into every task of a time
    loop.  ``__wrapped__`` makes checkpoint keys follow ``fn``'s code."""

    __slots__ = ("func", "fn", "extra", "__wrapped__", "__name__", "__qualname__")

    def __init__(self, func: Any, fn: Any, *extra: Any) -> None:
        self.func, self.fn, self.extra, self.__wrapped__ = func, fn, extra, fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(self.fn, *self.extra, *args, **kwargs)

    def __eq__(self, other: Any) -> bool:
        return type(other) is Bound and other.func is self.func and other.fn is self.fn and \
            len(other.extra) == len(self.extra) and all(a is b for a, b in zip(other.extra, self.extra))

    def __hash__(self) -> int:
        return hash((id(self.func), id(self.fn), *map(id, self.extra)))

    def __reduce__(self) -> tuple:
        return (Bound, (self.func, self.fn, *self.extra))


def cut(block: np.ndarray, key: tuple) -> np.ndarray:
    """A piece of a block (a copy: only the piece travels; a GPU block's stays on the GPU)."""
    piece = block[key]
    return piece.copy() if hasattr(piece, "copy") else np.array(piece, copy=True)


def assemble(shape: tuple[int, ...], dtype: Any, where: tuple, *pieces: np.ndarray) -> np.ndarray:
    gpu = _gpu_of(pieces)
    if gpu is not None:  # a block of GPU pieces is made on the GPU
        out = gpu.empty(shape, dtype)
        for dest, piece in zip(where, pieces):
            out[dest] = gpu.to_device(piece)
        return out
    out = np.empty(shape, dtype)
    for dest, piece in zip(where, pieces):
        out[dest] = piece
    return out


def assign(block: np.ndarray, key: tuple, value: Any) -> np.ndarray:
    """A new version of ``block`` with ``block[key] = value`` (the old one is kept
    for whoever still reads it)."""
    out = block.copy()
    gpu = _gpu_of((block,))
    out[key] = gpu.to_device(value) if gpu is not None and isinstance(value, np.ndarray) else value
    return out


def transpose(block: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(block, axes))


def expand(block: np.ndarray, axis: int) -> np.ndarray:
    return np.expand_dims(block, axis)


def reshape_rows(out_shape: tuple[int, ...], start: int, stop: int, rows: np.ndarray) -> np.ndarray:
    flat = np.ravel(rows)
    return np.ascontiguousarray(flat[start:stop]).reshape(out_shape)


def full(shape: tuple[int, ...], value: Any, dtype: Any) -> np.ndarray:
    return np.full(shape, value, dtype=dtype)


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return np.empty(shape, dtype=dtype)


def arange(start: Any, step: Any, n: int, dtype: Any) -> np.ndarray:
    return (start + step * np.arange(n)).astype(dtype) if n else np.empty(0, dtype)


def eye(shape: tuple[int, int], row0: int, col0: int, k: int, dtype: Any) -> np.ndarray:
    out = np.zeros(shape, dtype)
    r = np.arange(shape[0]) + row0
    c = r + k - col0
    ok = (c >= 0) & (c < shape[1])
    out[np.arange(shape[0])[ok], c[ok]] = 1
    return out


def copy(x: np.ndarray) -> np.ndarray:
    return x


def on_gpu(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` (a block made on the host) put in this rank's GPU memory."""
    from dagmpi.gpu import backend

    return backend.get().to_device(fn(*args))


def device_of(x: Any) -> str:
    """``"gpu"`` if ``x`` is in this rank's GPU memory, else ``"cpu"``."""
    return "cpu" if _gpu_of((x,)) is None else "gpu"


def _gpu_of(leaves: Sequence[Any]) -> Any:
    """This rank's GPU backend when a leaf is a GPU array, else ``None``."""
    from dagmpi.gpu import backend

    b = backend.get()
    if b is not None and any(b.is_device(x) for x in leaves):
        return b
    return None


def fromfunction(fn: Any, shape: tuple[int, ...], offs: tuple[int, ...], dtype: Any, kwargs: dict) -> Any:
    coords = [np.arange(n, dtype=dtype).reshape((1,) * a + (n,) + (1,) * (len(shape) - a - 1)) + o
              for a, (n, o) in enumerate(zip(shape, offs))]
    coords = np.broadcast_arrays(*coords)
    out = np.asarray(fn(*coords, **kwargs))
    if out.shape != tuple(shape):
        out = np.broadcast_to(out, shape).copy()
    return out


def random(method: str, entropy: int, idx: tuple[int, ...], shape: tuple[int, ...], args: tuple,
           kwargs: dict) -> np.ndarray:
    """A block of random numbers: its own stream, from the seed and the block index,
    so the values do not depend on which rank (or how many) made them."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=idx))
    return np.asarray(getattr(rng, method)(*args, size=shape, **kwargs))


def scalar_at(block: np.ndarray, key: tuple) -> Any:
    return block[key]
