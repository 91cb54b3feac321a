"""Distributed arrays on dagmpi: ``import dagmpi.array as da``.

    A = da.random.default_rng(0).random((8192, 8192), blocks=(2048, 2048))
    B = (A * 2 + 1) ** 2          # pending: one fused task per block
    total = B.sum()               # a 0-d DArray; partial sums combine near the data
    dagmpi.fetch(total)           # the value, on the driver

A :class:`DArray`'s blocks are task values that live on the worker ranks,
placed 2-D block-cyclically; operations run where the blocks are, and only
``to_numpy()`` / ``np.asarray`` / ``dagmpi.fetch`` bring data to the caller.
"""

from . import linalg, random
from .core import (DArray, arange, asarray, broadcast_to, concatenate, elementwise, empty, empty_like, eye,
                   from_numpy, fromfunction, full, full_like, map_blocks, ones, ones_like, rechunk, reduction,
                   reshape, stack, where, zeros, zeros_like)
from .linalg import matmul
from .hdf5 import from_hdf5, to_hdf5
from .overlap import map_overlap, map_overlap_loop
from .saving import checkpoint, checkpointed, restore


def _reducer(kind: str):  # type: ignore[no-untyped-def]
    def fn(a, axis=None, keepdims=False, **kw):  # type: ignore[no-untyped-def]
        return reduction(asarray(a), kind, axis=axis, keepdims=keepdims, **kw)
    fn.__name__ = kind
    fn.__doc__ = f"``numpy.{kind}`` of a DArray (see :meth:`DArray.{kind}`)."
    return fn


sum = _reducer("sum")  # noqa: A001
prod = _reducer("prod")
min = _reducer("min")  # noqa: A001
max = _reducer("max")  # noqa: A001
mean = _reducer("mean")
var = _reducer("var")
std = _reducer("std")
argmin = _reducer("argmin")
argmax = _reducer("argmax")
any = _reducer("any")  # noqa: A001
all = _reducer("all")  # noqa: A001

__all__ = ["DArray", "all", "any", "arange", "argmax", "argmin", "asarray", "broadcast_to", "checkpoint", "checkpointed", "concatenate",
           "elementwise", "empty", "empty_like", "eye", "from_hdf5", "from_numpy", "fromfunction", "full",
           "full_like", "linalg", "map_blocks", "map_overlap", "map_overlap_loop", "matmul", "max", "mean", "min", "ones", "ones_like", "prod", "random",
           "rechunk", "reshape", "restore", "stack", "std", "sum", "to_hdf5", "var", "where", "zeros", "zeros_like"]
