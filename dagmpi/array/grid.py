"""Block arithmetic of distributed arrays: pure functions, no runtime, no I/O.

A block layout ("chunks", as dask.array calls it) is one tuple of block sizes per
axis: ``((4, 4, 2), (5, 5))`` is a 10 x 10 array in a 3 x 2 grid of blocks whose
last row of blocks has 2 rows.  Everything here works on those tuples.
"""

from __future__ import annotations

import itertools
import math
import operator
from typing import Any, Iterator, Optional, Sequence

import numpy as np

Chunks = tuple[tuple[int, ...], ...]

#: Default block size in bytes when ``blocks="auto"`` (per block; dask.array uses 128 MiB,
#: a task runtime with ~30 us per task can afford smaller blocks and more parallelism).
AUTO_BLOCK_BYTES = 32 << 20


def normalize_shape(shape: Any) -> tuple[int, ...]:
    """``5`` or ``(5, 3)`` -> a tuple of non-negative ints, or a clear error."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        out = tuple(operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(f"an array shape must be an integer or a tuple of integers, got {shape!r}") from None
    bad = [n for n in out if n < 0]
    if bad:
        raise ValueError(f"negative dimensions are not allowed: shape {out}")
    return out


def normalize_chunks(blocks: Any, shape: tuple[int, ...], itemsize: int = 8, nworkers: int = 1) -> Chunks:
    """Turn ``blocks=`` into chunks for ``shape``.

    ``blocks`` is an int (the same block length on every axis), a tuple with one
    entry per axis (an int, ``-1``/``None`` for the whole axis, or an explicit tuple
    of block sizes), ``"auto"``/``None`` (blocks of about ``AUTO_BLOCK_BYTES``, at
    least two per worker where the array is big enough) or chunks already.
    """
    ndim = len(shape)
    if blocks is None or (isinstance(blocks, str) and blocks == "auto"):
        return auto_chunks(shape, itemsize, nworkers)
    if isinstance(blocks, str):
        raise ValueError(f"blocks must be an int, a tuple or 'auto', got {blocks!r}")
    if isinstance(blocks, (int, np.integer)) and not isinstance(blocks, bool):
        blocks = (int(blocks),) * ndim
    blocks = tuple(blocks)
    if len(blocks) != ndim:
        raise ValueError(f"blocks {blocks} has {len(blocks)} entries but the array has {ndim} "
                         f"dimensions (shape {shape}); give one block length per axis")
    out = []
    for ax, (b, n) in enumerate(zip(blocks, shape)):
        if b is None or (isinstance(b, (int, np.integer)) and b == -1):
            out.append((n,) if n else (0,))
        elif isinstance(b, (tuple, list)):
            sizes = tuple(operator.index(x) for x in b)
            if sum(sizes) != n or any(x < 0 for x in sizes):
                raise ValueError(f"block sizes {sizes} on axis {ax} do not add up to its length {n}")
            out.append(sizes if sizes else (0,))
        else:
            try:
                b = operator.index(b)
            except TypeError:
                raise TypeError(f"block length on axis {ax} must be an integer, got {b!r}") from None
            if b <= 0:
                raise ValueError(f"block lengths must be positive, got {b} on axis {ax} (blocks={blocks})")
            out.append(regular(n, b))
    return tuple(out)


def regular(n: int, b: int) -> tuple[int, ...]:
    """Blocks of length ``b`` covering ``n`` (the last one may be shorter)."""
    if n == 0:
        return (0,)
    full, rest = divmod(n, b)
    return (b,) * full + ((rest,) if rest else ())


def auto_chunks(shape: tuple[int, ...], itemsize: int, nworkers: int = 1,
                target: int = AUTO_BLOCK_BYTES) -> Chunks:
    """Near-square blocks of at most ``target`` bytes, and at least ``2 * nworkers``
    blocks when the array has that many elements' worth of ``target / 64``."""
    ndim = len(shape)
    if ndim == 0:
        return ()
    total = math.prod(shape) * itemsize
    want_blocks = max(1, math.ceil(total / target))
    if total >= 2 * nworkers * (target // 64):
        want_blocks = max(want_blocks, 2 * nworkers)
    # split the longest axes first until there are enough blocks
    lens = list(shape)
    counts = [1] * ndim
    while math.prod(counts) < want_blocks:
        ax = max(range(ndim), key=lambda a: lens[a] / counts[a] if lens[a] > counts[a] else -1)
        if lens[ax] <= counts[ax]:
            break
        counts[ax] += 1
    return tuple(regular(n, max(1, math.ceil(n / c))) for n, c in zip(shape, counts))


def offsets(sizes: Sequence[int]) -> tuple[int, ...]:
    """Start of each block along an axis, plus the end: ``(4, 4, 2) -> (0, 4, 8, 10)``."""
    return tuple(itertools.accumulate(sizes, initial=0))


def nblocks(chunks: Chunks) -> tuple[int, ...]:
    return tuple(len(c) for c in chunks)


def block_indices(chunks: Chunks) -> Iterator[tuple[int, ...]]:
    """Every block index in row-major order."""
    return itertools.product(*(range(len(c)) for c in chunks))


def block_shape(chunks: Chunks, idx: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(c[i] for c, i in zip(chunks, idx))


def block_slices(chunks: Chunks, idx: tuple[int, ...]) -> tuple[slice, ...]:
    """Where block ``idx`` sits in the whole array."""
    out = []
    for c, i in zip(chunks, idx):
        start = sum(c[:i])
        out.append(slice(start, start + c[i]))
    return tuple(out)


def nominal_blocks(chunks: Chunks) -> tuple[int, ...]:
    """The block shape a user thinks in: the largest block length on each axis."""
    return tuple(max(c) if c else 0 for c in chunks)


# ------------------------------------------------------------------ placement

def process_grid(nworkers: int, grid: tuple[int, ...]) -> tuple[int, int]:
    """A ``pr x pc`` grid of the workers for a 2-D block-cyclic layout of ``grid``
    blocks: the factorisation of ``nworkers`` whose busiest worker holds the fewest
    blocks, the squarest among equals (ScaLAPACK's rule of thumb)."""
    g0 = grid[0] if grid else 1
    g1 = grid[1] if len(grid) > 1 else 1
    best: Optional[tuple[int, float, int, int]] = None
    for pr in range(1, nworkers + 1):
        if nworkers % pr:
            continue
        pc = nworkers // pr
        rows = [len(range(r, g0, pr)) for r in range(min(pr, g0))]
        cols = [len(range(c, g1, pc)) for c in range(min(pc, g1))]
        busiest = (max(rows) if rows else 0) * (max(cols) if cols else 0)
        cand = (busiest, abs(math.log(pr / pc)), pr, pc)
        if best is None or cand[:2] < best[:2]:
            best = cand
    assert best is not None
    return best[2], best[3]


def owners(grid: tuple[int, ...], workers: Sequence[int]) -> np.ndarray:
    """Owner rank of every block of a ``grid`` of blocks, 2-D block-cyclic on the
    first two axes (further axes follow the second's pattern, flattened); when the
    2-D grid cannot use every worker (fewer block rows/columns than its sides) or
    loads one worker over 10% above the fair share (a prime worker count on a
    grid it does not divide), blocks go round-robin in row-major order instead."""
    workers = list(workers)
    w = len(workers)
    count = math.prod(grid)
    out = np.empty(grid, dtype=np.int64)
    if count == 0:
        return out
    if len(grid) <= 1:
        flat = np.array([workers[i % w] for i in range(count)], dtype=np.int64)
        return flat.reshape(grid)
    g0, rest = grid[0], math.prod(grid[1:])
    pr, pc = process_grid(w, (g0, rest))
    used_2d = min(pr, g0) * min(pc, rest)
    busiest = len(range(0, g0, pr)) * len(range(0, rest, pc))
    if used_2d < min(w, count) or busiest > 1.1 * math.ceil(count / w):
        flat = np.array([workers[i % w] for i in range(count)], dtype=np.int64)
        return flat.reshape(grid)
    i = np.arange(g0)[:, None] % pr
    j = np.arange(rest)[None, :] % pc
    return np.asarray(workers, dtype=np.int64)[i * pc + j].reshape(grid)


# ------------------------------------------------------------------ slicing

def normalize_index(index: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """A basic-indexing key as a tuple with one entry per axis (ints, slices) plus
    ``None`` entries for new axes; ``Ellipsis`` expanded; out-of-range ints refused."""
    if not isinstance(index, tuple):
        index = (index,)
    for k in index:
        if isinstance(k, (list, np.ndarray)) or (hasattr(k, "shape") and hasattr(k, "dtype")
                                                 and not np.isscalar(k) and getattr(k, "ndim", 0) > 0):
            raise IndexError("only basic indexing (integers, slices, ..., None) is supported on a DArray; "
                             "for a boolean mask use da.where(mask, A, fill), for a gather fetch the rows "
                             "with A.to_numpy()[idx]")
    n_ell = sum(1 for k in index if k is Ellipsis)
    if n_ell > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = sum(1 for k in index if k is not None and k is not Ellipsis)
    if real > len(shape):
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, "
                         f"but {real} were indexed")
    out: list[Any] = []
    for k in index:
        if k is Ellipsis:
            out.extend([slice(None)] * (len(shape) - real))
        else:
            out.append(k)
    out.extend([slice(None)] * (len(shape) - sum(1 for k in out if k is not None)))
    ax = 0
    for pos, k in enumerate(out):
        if k is None:
            continue
        n = shape[ax]
        if isinstance(k, slice):
            pass
        else:
            try:
                i = operator.index(k)
            except TypeError:
                raise IndexError(f"only integers, slices (':'), ellipsis ('...') and None are valid "
                                 f"indices, got {k!r}") from None
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {ax} with size {n}")
            out[pos] = i + n if i < 0 else i
        ax += 1
    return tuple(out)


def slice_axis(sizes: Sequence[int], key: slice) -> list[tuple[int, slice, int]]:
    """For ``key`` applied to an axis made of blocks ``sizes``: the pieces of the
    result in order, each ``(input block, slice within it, length)``."""
    n = sum(sizes)
    start, stop, step = key.indices(n)
    idx = np.arange(start, stop, step)
    if idx.size == 0:
        return []
    offs = np.asarray(offsets(sizes))
    blk = np.searchsorted(offs, idx, side="right") - 1
    cuts = np.flatnonzero(np.diff(blk)) + 1
    pieces = []
    for part_idx, part_blk in zip(np.split(idx, cuts), np.split(blk, cuts)):
        b = int(part_blk[0])
        local = part_idx - offs[b]
        first, last = int(local[0]), int(local[-1])
        end: Optional[int] = last + (1 if step > 0 else -1)
        if end is not None and end < 0:
            end = None
        pieces.append((b, slice(first, end, step), len(part_idx)))
    return pieces


def locate(sizes: Sequence[int], i: int) -> tuple[int, int]:
    """Block and offset within it of position ``i`` along an axis."""
    offs = offsets(sizes)
    b = int(np.searchsorted(np.asarray(offs), i, side="right") - 1)
    b = min(b, len(sizes) - 1)
    while b > 0 and sizes[b] == 0:
        b -= 1
    return b, i - offs[b]


def box_pieces(chunks: Chunks, box: tuple[slice, ...]) -> list[tuple[tuple[int, ...], tuple[slice, ...],
                                                                     tuple[slice, ...]]]:
    """The blocks that a box (unit-step slices, one per axis) overlaps, each as
    ``(block index, slice within the block, slice within the box)``."""
    per_axis = []
    for sizes, s in zip(chunks, box):
        offs = offsets(sizes)
        lo, hi = s.start, s.stop
        items = []
        for b, size in enumerate(sizes):
            a0, a1 = offs[b], offs[b] + size
            x0, x1 = max(lo, a0), min(hi, a1)
            if x0 < x1:
                items.append((b, slice(x0 - a0, x1 - a0), slice(x0 - lo, x1 - lo)))
        if not items and hi == lo:
            items = []
        per_axis.append(items)
    out = []
    for combo in itertools.product(*per_axis):
        out.append((tuple(c[0] for c in combo), tuple(c[1] for c in combo), tuple(c[2] for c in combo)))
    return out


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's broadcasting of shapes, with an error that names them all."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError("operands could not be broadcast together with shapes "
                         + " ".join(str(tuple(s)) for s in shapes)) from None
