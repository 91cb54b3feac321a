"""Stencils: ``A.map_overlap(fn, depth, boundary=)`` with dask.array's conventions.

Every block's task receives its own block plus only the halo slices of its
neighbours, assembles the padded block, fills the outer edges by ``boundary``
and calls ``fn`` on it.  Each block's slices are cut by one ``halos`` task on
its own rank (a tuple of every slice any neighbour needs), so a step is two
tasks per block, not one per piece, and the bytes that move per step are
O(halo), never a whole block (a neighbour reads the whole tuple: up to 2 x ndim
faces and the corners, where it needs its own face).  ``fn`` returns the block
without its halo (or the padded block, which is then trimmed).

A star stencil may carry a faster form as its ``dagmpi_faces`` attribute (the Numba
kernels ``heat5_step`` and ``laplacian`` of ``dagmpi.kernels.cpu.stencil`` and
``grayscott.step`` do).  When the depth is 0 or 1 on every axis (1 on at least one)
and no axis of depth 1 has ``boundary="none"``, each block's task then calls
``fn.dagmpi_faces(block, lo, hi, lo, hi, ..., **kwargs)``: the block and the
one-element faces of its neighbours (or of the boundary rule), low then high, for
each axis of depth 1 in order, without the padded copy of the block, and it
returns the block's result.  The corner halos are then not cut or sent: a function with this
form must not read the corners of its padded block (on GPU blocks ``fn`` itself
is called, with zeros there).

``boundary``: ``"periodic"`` (wrap around), ``"reflect"`` (mirror including the
edge element, numpy's ``"symmetric"``), ``"nearest"`` (repeat the edge), a
number (that constant) or ``"none"`` (no padding at the array's edges: ``fn``
then gets a smaller block there).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Callable

import numpy as np

from .. import api
from . import blockops as ops
from . import core
from .blockops import _gpu_of
from .launched import enabled as launched_enabled
from . import grid as g

_PAD_MODE = {"reflect": "symmetric", "nearest": "edge"}


def _depths(depth: Any, ndim: int) -> tuple[int, ...]:
    if isinstance(depth, dict):
        out = [0] * ndim
        for a, d in depth.items():
            out[core._axis(a, ndim)] = d
    elif isinstance(depth, (tuple, list)):
        if len(depth) != ndim:
            raise ValueError(f"depth {tuple(depth)} needs one entry per axis of a {ndim}-D array")
        out = list(depth)
    else:
        out = [depth] * ndim
    try:
        out = [int(d) for d in out]
    except (TypeError, ValueError):
        raise TypeError(f"depth must be an int, a tuple of ints or a dict axis -> int, got {depth!r}") from None
    if any(d < 0 for d in out):
        raise ValueError(f"depth must be >= 0, got {depth!r}")
    return tuple(out)


def _boundaries(boundary: Any, ndim: int) -> tuple[Any, ...]:
    if isinstance(boundary, dict):
        out: list[Any] = ["none"] * ndim
        for a, b in boundary.items():
            out[core._axis(a, ndim)] = b
    elif isinstance(boundary, (tuple, list)):
        if len(boundary) != ndim:
            raise ValueError(f"boundary {tuple(boundary)} needs one entry per axis")
        out = list(boundary)
    else:
        out = [boundary] * ndim
    for b in out:
        if isinstance(b, str):
            if b not in ("periodic", "reflect", "nearest", "none"):
                raise ValueError(f"boundary must be 'periodic', 'reflect', 'nearest', 'none' or a number, got {b!r}")
        elif not isinstance(b, (int, float, complex, np.number)) or isinstance(b, bool):
            raise TypeError(f"boundary must be a mode name or a number, got {b!r}")
    return tuple(out)


def halos(block: np.ndarray, keys: tuple) -> tuple:
    """Task: the halo slices ``keys`` of one block (copies: only they travel), in order."""
    return tuple(block[k].copy() for k in keys)  # (a GPU block's halos stay on the GPU)


def apply(fn: Callable, faces_fn: Any, block_shape: tuple[int, ...], padded_shape: tuple[int, ...], dtype: Any,
          where: tuple, sources: tuple, pads: tuple, trim: tuple, kwargs: dict, *inputs: Any) -> np.ndarray:
    """Task: assemble the padded block from its pieces, pad the array's outer edges by
    the boundary rule, call ``fn`` and trim what it returns to the block.  ``sources[i]``
    says where piece ``i`` is: ``(input, None)`` a whole block, ``(input, k)`` item ``k``
    of a neighbour's :func:`halos`.  ``faces_fn``: ``fn.dagmpi_faces`` or None, looked
    up by the driver (a Numba dispatcher is rebuilt from its code on the worker,
    without its attributes); with it the corner pieces are absent."""
    pieces = [inputs[j] if k is None else inputs[j][k] for j, k in sources]
    gpu = _gpu_of(pieces)
    if faces_fn is not None and gpu is None:
        out = faces_fn(*_faces(block_shape, dtype, where, pads, trim, pieces), **kwargs)
        if getattr(out, "shape", None) != tuple(block_shape):
            raise ValueError(f"the faces form of the map_overlap function {getattr(fn, '__name__', fn)!r} returned "
                             f"shape {getattr(out, 'shape', None)}; expected the block {tuple(block_shape)}")
        return out
    xp = np
    if gpu is not None:  # GPU blocks: assembled, padded and computed on the GPU
        xp = gpu.xp
        pieces = [gpu.to_device(p) for p in pieces]
    inner_shape = tuple(s - p[0] - p[1] for s, (p, _) in zip(padded_shape, pads))
    if len(pieces) == 1 and where[0] == tuple(slice(0, n) for n in inner_shape):
        x = pieces[0]
    else:
        if faces_fn is None:
            x = xp.empty(inner_shape, dtype) if gpu is None else gpu.empty(inner_shape, dtype)
        else:  # (no corner pieces: zeros there)
            x = xp.zeros(inner_shape, dtype) if gpu is None else gpu.to_device(np.zeros(inner_shape, dtype))
        for dest, piece in zip(where, pieces):
            x[dest] = piece
    if any(p != (0, 0) for p, _ in pads):
        for a, ((lo, hi), mode) in enumerate(pads):
            if lo == hi == 0:
                continue
            width = [(0, 0)] * x.ndim
            width[a] = (lo, hi)
            if isinstance(mode, str):
                x = xp.pad(x, width, mode=_PAD_MODE[mode])
            else:
                x = xp.pad(x, width, mode="constant", constant_values=mode)
    if gpu is not None:
        x = gpu.to_device(x)
    out = fn(x, **kwargs)
    out = xp.asarray(out) if gpu is None else gpu.to_device(xp.asarray(out))
    if out.shape == tuple(block_shape):
        return out
    if out.shape == x.shape:
        out = xp.ascontiguousarray(out[tuple(slice(lo, s - hi) for (lo, hi), s in zip(trim, x.shape))])
        return out if gpu is None else gpu.to_device(out)
    raise ValueError(f"the map_overlap function {getattr(fn, '__name__', fn)!r} returned shape {out.shape}; "
                     f"expected the block {tuple(block_shape)} or the padded block {x.shape}")


def _sides(dest: tuple, pads: tuple, trim: tuple) -> list[int]:
    """Per axis, where a piece placed at ``dest`` in the halo-extended block lies: 0 low
    halo, 1 the block itself, 2 high halo."""
    # the low halo's length: the trimmed depth that no boundary padding provides
    lo_len = [t_lo - lo for ((lo, _), _), (t_lo, _) in zip(pads, trim)]
    return [0 if d.start < lo_len[a] else 1 if d.start == lo_len[a] else 2 for a, d in enumerate(dest)]


def _faces(block_shape: tuple, dtype: Any, where: tuple, pads: tuple, trim: tuple, pieces: list) -> list:
    """``[block, lo, hi, ...]`` (the faces of each axis of depth 1) for a
    ``dagmpi_faces`` kernel, each as ``dtype`` as the padded block would be: each face
    the neighbour's piece that touches the block across it, or made by the boundary
    rule where the block is at the array's edge (``pads``)."""
    nd = len(block_shape)
    center, found = None, {}
    for dest, piece in zip(where, pieces):
        side = _sides(dest, pads, trim)
        piece = np.asarray(piece, dtype)
        off = [a for a in range(nd) if side[a] != 1]
        if not off:
            center = piece
        elif len(off) == 1:
            found[(off[0], side[off[0]])] = piece
    out = [center]
    for a in range(nd):
        if trim[a] == (0, 0):
            continue  # depth 0 on this axis
        (lo, hi), mode = pads[a]
        for s, pad in ((0, lo), (2, hi)):
            if not pad:
                out.append(found[(a, s)])
                continue
            edge = [slice(None)] * nd
            edge[a] = slice(0, 1) if s == 0 else slice(block_shape[a] - 1, block_shape[a])
            if isinstance(mode, str):  # "nearest", and "reflect" at depth 1, repeat the edge
                out.append(np.ascontiguousarray(center[tuple(edge)]))
            else:
                out.append(np.full(center[tuple(edge)].shape, mode, dtype=center.dtype))
    return out


def _whole(key: tuple, shape: tuple[int, ...]) -> bool:
    return all(k.indices(n) == (0, n, 1) for k, n in zip(key, shape))


def _hashable(key: tuple) -> tuple:
    return tuple((k.start, k.stop) for k in key)


def _plan_block(chunks: Any, idx: tuple[int, ...], depths: tuple, bounds: tuple) -> tuple:
    """Where block ``idx``'s padded input comes from: ``(pieces, where, pads, trim, inner)``:
    the pieces as ``(neighbour block, slice key)`` in layout order, where each goes in the
    inner (halo-extended) block, the boundary padding and trimming per axis, the inner shape."""
    per_axis, pads, trim = [], [], []
    for ax in range(len(idx)):
        sizes, i, d, b = chunks[ax], idx[ax], depths[ax], bounds[ax]
        nb = len(sizes)
        segs = []
        lo_pad = hi_pad = 0
        if d:
            if i > 0:
                segs.append((i - 1, slice(sizes[i - 1] - d, sizes[i - 1])))
            elif b == "periodic":
                segs.append((nb - 1, slice(sizes[nb - 1] - d, sizes[nb - 1])))
            elif b != "none":
                lo_pad = d
        segs.append((i, slice(0, sizes[i])))
        if d:
            if i < nb - 1:
                segs.append((i + 1, slice(0, d)))
            elif b == "periodic":
                segs.append((0, slice(0, d)))
            elif b != "none":
                hi_pad = d
        per_axis.append(segs)
        pads.append(((lo_pad, hi_pad), b))
        has_lo = d and (i > 0 or b != "none")
        has_hi = d and (i < nb - 1 or b != "none")
        trim.append((d if has_lo else 0, d if has_hi else 0))
    pieces = [(tuple(c[0] for c in combo), tuple(c[1] for c in combo)) for combo in itertools.product(*per_axis)]
    dests_per_axis = []
    for segs in per_axis:
        pos, ds = 0, []
        for _, sl in segs:
            n = sl.stop - sl.start
            ds.append(slice(pos, pos + n))
            pos += n
        dests_per_axis.append(ds)
    where = tuple(tuple(c) for c in itertools.product(*dests_per_axis))
    inner = tuple(sum(sl.stop - sl.start for _, sl in segs) for segs in per_axis)
    return pieces, where, tuple(pads), tuple(trim), inner


@functools.lru_cache(maxsize=4096)
def _plan_of(chunks: Any, idx: tuple[int, ...], depths: tuple, bounds: tuple, faces: bool) -> tuple:
    """:func:`_plan_block`, without the corner pieces in the faces form (cached: a time
    loop plans the same blocks at every step)."""
    plan = _plan_block(chunks, idx, depths, bounds)
    if faces:
        keep = [k for k, dest in enumerate(plan[1]) if sum(s != 1 for s in _sides(dest, plan[2], plan[3])) <= 1]
        plan = ([plan[0][k] for k in keep], tuple(plan[1][k] for k in keep)) + plan[2:]
    return plan


def _offsets(depths: tuple, faces: bool) -> tuple:
    """The offsets of the neighbour blocks a block reads, on the axes of non-zero depth:
    its faces' neighbours in the faces form, else every one (corners too)."""
    axes = [a for a, d in enumerate(depths) if d]
    nd = len(depths)
    out = []
    if faces:
        for a in axes:
            for o in (-1, 1):
                off = [0] * nd
                off[a] = o
                out.append(tuple(off))
        return tuple(out)
    for combo in itertools.product((-1, 0, 1), repeat=len(axes)):
        if any(combo):
            off = [0] * nd
            for a, o in zip(axes, combo):
                off[a] = o
            out.append(tuple(off))
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def _halo_keys(chunks: Any, nidx: tuple[int, ...], depths: tuple, bounds: tuple, faces: bool) -> tuple:
    """``(keys, position of each)``: the slices of block ``nidx`` that its neighbours
    read (every piece of it in their plans but a block's own), in a fixed order that
    the halos point and the points reading it compute alike."""
    grid = g.nblocks(chunks)
    cands = set()
    for off in _offsets(depths, faces):
        c = []
        for a, (x, o, s) in enumerate(zip(nidx, off, grid)):
            y = x - o
            if not 0 <= y < s:
                if bounds[a] != "periodic":
                    break
                y %= s
            c.append(y)
        else:
            cands.add(tuple(c))
    keys: dict = {}
    for c in sorted(cands):
        segs, where, pads, trim, _ = _plan_of(chunks, c, depths, bounds, faces)
        for (pidx, key), dest in zip(segs, where):
            if pidx == nidx and any(s != 1 for s in _sides(dest, pads, trim)):
                keys.setdefault(_hashable(key), key)
    return tuple(keys.values()), {h: k for k, h in enumerate(keys)}


def halos_point(i: int, chunks: Any, depths: tuple, bounds: tuple, faces: bool, block: Any) -> tuple:
    """Point: the halo slices of block ``i`` that its neighbours read (:func:`_halo_keys`)."""
    from .launched import block_index

    return halos(block, _halo_keys(chunks, block_index(i, g.nblocks(chunks)), depths, bounds, faces)[0])


@functools.lru_cache(maxsize=4096)
def _point_plan(chunks: Any, i: int, depths: tuple, bounds: tuple, faces: bool, proj: Any) -> tuple:
    """What :func:`overlap_point` passes :func:`apply` for block ``i``, but its inputs:
    ``(block shape, padded shape, where, sources, pads, trim, order)``, ``order`` giving
    the position among the halo sets (in ``proj``'s order) of each neighbour it reads,
    after its own block (input 0).  Cached: a time loop calls it for the same blocks at
    every step (~20 µs of Python each time otherwise)."""
    from .launched import block_index

    grid = g.nblocks(chunks)
    idx = block_index(i, grid)
    segs, where, pads, trim, inner = _plan_of(chunks, idx, depths, bounds, faces)
    position = {j: k for k, j in enumerate(proj.points(i, math.prod(grid)))}
    order, slot, sources = [], {}, []
    for (nidx, key), dest in zip(segs, where):
        if all(s == 1 for s in _sides(dest, pads, trim)):
            sources.append((0, None))
            continue
        j = int(np.ravel_multi_index(nidx, grid))
        if j not in slot:
            slot[j] = 1 + len(order)
            order.append(position[j])
        sources.append((slot[j], _halo_keys(chunks, nidx, depths, bounds, faces)[1][_hashable(key)]))
    padded = tuple(n + p[0][0] + p[0][1] for n, p in zip(inner, pads))
    return g.block_shape(chunks, idx), padded, where, tuple(sources), pads, trim, tuple(order)


def overlap_point(fn: Callable, faces_fn: Any, i: int, chunks: Any, depths: tuple, bounds: tuple, dtype: Any,
                  kwargs: dict, proj: Any, block: Any, *halo_sets: Any) -> Any:
    """Point: block ``i`` of a ``map_overlap`` step, from its own block and the halos of
    the neighbours ``proj`` gives it (in that order), through :func:`apply`."""
    bshape, padded, where, sources, pads, trim, order = _point_plan(chunks, i, depths, bounds,
                                                                    faces_fn is not None, proj)
    return apply(fn, faces_fn, bshape, padded, dtype, where, sources, pads, trim, kwargs, block,
                 *[halo_sets[k] for k in order])


def _halos_share(chunks: Any, depths: tuple, bounds: tuple, faces: bool, i: int, block: Any) -> tuple:
    """A ``map_overlap_loop``'s share of block ``i``: the halo slices its neighbours read."""
    return halos_point(i, chunks, depths, bounds, faces, block)


def _launched_steps(a: core.DArray, fn: Callable, faces_fn: Any, depths: tuple, bounds: tuple, dtype: Any,
                    kwargs: dict, steps: int = 1) -> core.DArray:
    """``map_overlap`` steps of a launched array: every block's halos (a launch), then
    every block from its own and its neighbours' halos (grid projection): one launch
    for one step; for more, one loop (:func:`dagmpi.spawn_loop`, carry form) whose
    points keep their block from step to step and push only its halos to the ranks of
    its neighbours, so rank 0 handles two launches in all."""
    from . import launched

    src = a._launch
    faces = faces_fn is not None
    chunks = a.chunks
    grid = g.nblocks(chunks)
    wrap = tuple(d > 0 and isinstance(b, str) and b == "periodic" for d, b in zip(depths, bounds))
    proj = launched.Projection("grid", (grid, _offsets(depths, faces), wrap))
    args = (chunks, depths, bounds, faces)
    hal = launched.launch(halos_point, chunks, args, src.layout, [(src, launched.SAME)], name="halos")
    point = ops.Bound(overlap_point, fn, faces_fn)
    pargs = (chunks, depths, bounds, a.dtype.str, kwargs, proj)
    reads = [(src, launched.SAME), (hal, proj)]
    name = getattr(fn, "__name__", "map_overlap")
    if steps == 1:
        step = launched.launch(point, chunks, pargs, src.layout, reads, name=name)
    else:
        step = api.spawn_loop(point, math.prod(grid), steps, *pargs, layout=src.layout, reads=reads,
                              step_reads=proj, share=functools.partial(_halos_share, *args), name=name)
    out = core.DArray(chunks, dtype, None, a._owners, name="map_overlap")
    out._set_launch(step)
    out._device = a._device
    return out


def _lineage() -> bool:
    """Does this job keep lineage (ULFM: a rank may die and the job go on)?"""
    client = api.context.current_client()
    return bool(getattr(getattr(client, "transport", None), "fault_tolerant", False))


def _checked(a: Any, fn: Callable, depth: Any, boundary: Any, what: str) -> tuple:
    """``map_overlap``'s checks: the array, its depths and boundaries per axis, and the
    faces form of ``fn`` when it may be used (else None)."""
    a = core.asarray(a)
    if not callable(fn):
        raise TypeError(f"{what} needs a function, got {type(fn).__name__}")
    nd = a.ndim
    depths = _depths(depth, nd)
    bounds = _boundaries(boundary, nd)
    for ax, (d, sizes) in enumerate(zip(depths, a.chunks)):
        small = min(sizes)
        if d > small and len(sizes) > 1 or (d > small and bounds[ax] == "periodic"):
            raise ValueError(f"{what}: depth {d} on axis {ax} is larger than its smallest block "
                             f"({small}); use larger blocks (A.rechunk) or a smaller depth")
    # the faces form (no padded copy, no corners): depth 0 or 1 on every axis, and no
    # axis of depth 1 without padding (there the edge blocks get a smaller block)
    faces_fn = getattr(fn, "dagmpi_faces", None)
    if not callable(faces_fn) or any(d > 1 for d in depths) or not any(depths) or \
            any(d and isinstance(b, str) and b == "none" for d, b in zip(depths, bounds)):
        faces_fn = None
    return a, depths, bounds, faces_fn


def map_overlap_loop(a: Any, fn: Callable, steps: int, depth: Any = 1, boundary: Any = "none",
                     dtype: Any = None, **kwargs: Any) -> core.DArray:
    """``steps`` steps of :func:`map_overlap` (a time loop: each step's result is the
    next step's input), the same values as::

        for _ in range(steps):
            a = a.map_overlap(fn, depth, boundary, **kwargs)

    On a launched CPU array (the default) the steps run as one loop on the workers
    (:func:`dagmpi.spawn_loop`'s carry form): each block stays on its rank from step to
    step and only its halos travel, pushed to its neighbours' ranks as soon as they
    exist, with no step through rank 0.  Rank 0 handles two launches for the whole loop
    (the first halos, the loop), so a step costs what the workers spend on it.  Only the
    last step's blocks are kept.  ``dtype``: as :func:`map_overlap`'s, for the first step
    (then a ``map_overlap`` of its own; the loop keeps that dtype).

    Elsewhere (GPU blocks, one task per block) it is that Python loop, and so it is
    under ULFM: there each step's launches are kept for their lineage, so that the
    blocks a dead rank held are computed again from them (or read back from a
    checkpoint) whenever the rank dies.  A loop's points cannot be computed again one by
    one, so a launch that had read a loop released since (a ``da.checkpoint`` of its
    result, the next step's halos) could not be computed again after a death.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"map_overlap_loop needs a number of steps >= 0, got {steps!r}")
    a, depths, bounds, faces_fn = _checked(a, fn, depth, boundary, "map_overlap_loop")
    a.tasks  # (a lazy array is computed now: a launched one then runs as a loop)
    if steps and dtype is not None and np.dtype(dtype) != a.dtype:
        a = map_overlap(a, fn, depth, boundary, dtype, **kwargs)  # (the others keep its dtype)
        steps -= 1
    if steps > 1 and a._launch is not None and a._device != "gpu" and launched_enabled() and not _lineage():
        return _launched_steps(a, fn, faces_fn, depths, bounds, a.dtype, kwargs, steps)
    for _ in range(steps):
        a = map_overlap(a, fn, depth, boundary, **kwargs)
    return a


def map_overlap(a: Any, fn: Callable, depth: Any = 1, boundary: Any = "none", dtype: Any = None,
                **kwargs: Any) -> core.DArray:
    """``fn`` over every block padded with ``depth`` elements of its neighbours per
    axis (see the module docstring).  ``dtype``: the result's (default: ``a``'s)."""
    a, depths, bounds, faces_fn = _checked(a, fn, depth, boundary, "map_overlap")
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    src = a.tasks
    out = np.empty(a.nblocks, dtype=object)
    if a._launch is not None and a._device != "gpu" and launched_enabled():
        return _launched_steps(a, fn, faces_fn, depths, bounds, dtype, kwargs)
    task_fn = ops.Bound(apply, fn, faces_fn)
    # pass 1: per block, its pieces (neighbour block, slice key) in layout order; per
    # neighbour block, the halo slices all its consumers need (one halos task each)
    plans = {}
    wanted: dict[tuple, dict] = {}
    for idx in g.block_indices(a.chunks):
        # (in the faces form the corner pieces are not needed)
        plans[idx] = plan = _plan_of(a.chunks, idx, depths, bounds, faces_fn is not None)
        for nidx, key in plan[0]:
            if not _whole(key, g.block_shape(a.chunks, nidx)):
                wanted.setdefault(nidx, {}).setdefault(_hashable(key), key)
    halo_tasks = {}
    halo_index = {}
    for nidx, keys in wanted.items():
        # (first among the ready tasks of its rank: the neighbours' next step waits for it)
        halo_tasks[nidx] = api.spawn(halos, src[nidx], tuple(keys.values()),
                                     options=core._opts("halos", near=src[nidx], priority=1))
        halo_index[nidx] = {h: k for k, h in enumerate(keys)}
    # pass 2: one task per block, fed by its own block and its neighbours' halos
    for idx in g.block_indices(a.chunks):
        segs, where, pads, trim, inner = plans[idx]
        inputs, slot, sources = [], {}, []
        for nidx, key in segs:
            whole = _whole(key, g.block_shape(a.chunks, nidx))
            tid = (nidx, whole)
            if tid not in slot:
                slot[tid] = len(inputs)
                inputs.append(src[nidx] if whole else halo_tasks[nidx])
            sources.append((slot[tid], None if whole else halo_index[nidx][_hashable(key)]))
        padded = tuple(n + p[0][0] + p[0][1] for n, p in zip(inner, pads))
        bshape = g.block_shape(a.chunks, idx)
        out[idx] = api.spawn(task_fn, bshape, padded, a.dtype.str, where, tuple(sources), pads, trim,
                             kwargs, *inputs, options=core._opts(getattr(fn, "__name__", "map_overlap"),
                                                                 near=src[idx]))
    return core.DArray(a.chunks, dtype, out, a._owners, name="map_overlap")


def _method(self: core.DArray, fn: Callable, depth: Any = 1, boundary: Any = "none", dtype: Any = None,
            **kwargs: Any) -> core.DArray:
    """See :func:`dagmpi.array.map_overlap`."""
    return map_overlap(self, fn, depth, boundary, dtype, **kwargs)


core.DArray.map_overlap = _method  # type: ignore[attr-defined]


def _loop_method(self: core.DArray, fn: Callable, steps: int, depth: Any = 1, boundary: Any = "none",
                 dtype: Any = None, **kwargs: Any) -> core.DArray:
    """See :func:`dagmpi.array.map_overlap_loop`."""
    return map_overlap_loop(self, fn, steps, depth, boundary, dtype, **kwargs)


core.DArray.map_overlap_loop = _loop_method  # type: ignore[attr-defined]
