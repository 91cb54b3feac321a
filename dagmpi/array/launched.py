"""The array layer's launches (#17): an operation over every block of an array runs as
one launch of point tasks (:func:`dagmpi.spawn_many`), point ``k`` computing block ``k``
of the grid in C order on the rank the array's layout gives it (owner computes).  Rank 0
then handles the operation once, not once per block, and a point reads its inputs from
the ranks that computed them (the same block of each input array, or its neighbours'
halos for a stencil) without a step through rank 0.

Used by creation (``zeros``, ``fromfunction``, ``random``, ``from_hdf5``...), fused
elementwise programs and ``map_blocks``, reductions, ``map_overlap``, and
``da.checkpoint``/``da.restore``, when ``array_launches`` is on (the default) and the
inputs are themselves launched CPU arrays of the same block grid (under ULFM too: the
points a dead rank held are computed again from the launches' lineage); anything else
takes the one-task-per-block path, whose blocks any operation can read (a launched
array's blocks are :class:`dagmpi.Point` handles, usable as tasks).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .. import api
from ..core.launches import Layout, Projection
from . import blockops as ops
from . import grid as g


def enabled(gpu: bool = False) -> bool:
    """Do array operations issue launches here (``array_launches``, CPU blocks)?"""
    client = api.context.current_client()
    return not gpu and bool(getattr(client, "array_launches", False))


def block_index(i: int, grid: tuple[int, ...]) -> tuple[int, ...]:
    """Block ``i`` of a grid of blocks, in C order, as its index tuple."""
    out = []
    for s in reversed(grid):
        i, r = divmod(i, s)
        out.append(r)
    return tuple(reversed(out))


def layout_of(owners: np.ndarray) -> Layout:
    """The launch layout of an array whose block ``k`` (C order) is on ``owners.flat[k]``."""
    return Layout.of_table(owners.ravel().tolist())


def launch(fn: Callable, chunks: g.Chunks, args: tuple, layout: Layout, reads: Sequence = (),
           name: str = "array") -> Any:
    """One launch over the blocks of ``chunks``: point ``k`` runs ``fn(k, *args, *inputs)``."""
    return api.spawn_many(fn, math.prod(g.nblocks(chunks)), *args, layout=layout, reads=list(reads), name=name)


def points(launched: Any, grid: tuple[int, ...]) -> np.ndarray:
    """The blocks of a launch as an object array of its :class:`dagmpi.Point` handles."""
    out = np.empty(grid, dtype=object)
    flat = out.reshape(-1)
    for k in range(launched.n):
        flat[k] = launched[k]
    return out


SAME = Projection("same")


# ------------------------------------------------------------------ point functions

def create_point(i: int, chunks: g.Chunks, make: Callable) -> Any:
    """Point: block ``i`` of a new array, ``make(index, block shape)`` giving its task."""
    idx = block_index(i, g.nblocks(chunks))
    fn, *args = make(idx, g.block_shape(chunks, idx))
    return fn(*args)


def fused_point(i: int, prog: tuple, chunks: g.Chunks, dtype: Any, *leaves: Any) -> Any:
    """Point: block ``i`` of a fused elementwise program (``ops.fused``) over the same
    block of each leaf array."""
    return ops.fused(prog, g.block_shape(chunks, block_index(i, g.nblocks(chunks))), dtype, *leaves)


def partial_point(i: int, kind: str, ax: Any, info: tuple, prog: Any, chunks: g.Chunks, dtype: Any,
                  shape: Any, *leaves: Any) -> Any:
    """Point: the partial reduction of block ``i`` (``ops.partial``; ``shape``: the
    array's, for ``argmin``/``argmax``, whose partials need the block's offsets)."""
    idx = block_index(i, g.nblocks(chunks))
    if shape is not None:
        info = (tuple(sum(c[:k]) for c, k in zip(chunks, idx)), shape)
    return ops.partial(kind, ax, info, prog, g.block_shape(chunks, idx), dtype, *leaves)


def combine_point(i: int, kind: str, info: tuple, keep: tuple, ddof: float, *parts: Any) -> Any:
    """Point: block ``i`` of a reduction's result, from the partials of its blocks."""
    return ops.combine(kind, True, info, keep, ddof, *parts)
