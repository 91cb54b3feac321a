"""Data dependencies: tasks say how they use mutable data, dagmpi derives the order.

    with dagmpi.datadeps():
        dagmpi.spawn(potrf, InOut(A[:b, :b]))
        dagmpi.spawn(trsm, In(A[:b, :b]), InOut(A[b:, :b]))     # waits for potrf
        dagmpi.spawn(scale, InOut(D, block=(0, 1)))             # a DArray block, on its rank
    # here A holds the results (in place) and D's block (0, 1) is the new one, still distributed

This is Dagger.jl's ``spawn_datadeps`` and PyCOMPSs' ``IN``/``OUT``/``INOUT``.
Inside ``with dagmpi.datadeps():`` each :func:`dagmpi.spawn` argument wrapped in
:class:`In` (the task reads it), :class:`Out` (writes it) or :class:`InOut`
(reads and writes it) is *tracked data*: a numpy array or view, or one block of a
:class:`dagmpi.array.DArray` (``InOut(A, block=(i, j))``).  The task receives a
numpy array with the current content and mutates it in place; dagmpi orders the
tasks as the program order of the spawns says (read after write, write after
write, write after read), runs independent ones at the same time, and moves
each datum to where it is used next (it is a task value: the consumer pulls it
from the rank that produced it).  Leaving the region waits for its tasks, copies
the final content of every written numpy datum into the user's memory
(``np.copyto`` through the user's own views, in place), and makes each written
DArray block's task the final version's, so the blocks stay on the workers.

State (one :class:`Region` per ``with``, per thread; only the thread that opened
it mutates it, except ``_live`` and ``_failed``, which the end callbacks of the
region's tasks update from the rank's communication thread):

* A **piece** (:class:`_Piece`) is one tracked datum: a numpy view identified by
  its memory owner (the end of its ``.base`` chain), data address, shape,
  strides and dtype (two view objects of the same geometry are one piece), or
  one DArray block ``(array, block index)``.
* A piece's **version** is the task whose value holds its current content:
  ``(task, index, writes)``: ``index`` -1 means the value is the array itself
  (an upload of the driver's data, an assembly, a DArray block, a projection),
  else the value is the tuple ``(return value, written...)`` that the task
  wrapper (:class:`_Call`) returns and the datum is item ``index``; ``writes``
  is how many data that task wrote.  A tuple holding one datum is passed to
  consumers as it is (the wrapper picks the item; the function's return value
  travels along); with several, a projection task (:func:`_pick`, placed near
  the producer) gives the one datum once, and replaces the version.
  ``valid``: the write sequence number up to which the version is current;
  ``last_write``: the sequence number of the piece's latest write (-1: none).
* **Aliasing.**  Two numpy pieces alias when their memory can overlap: same
  owner, overlapping byte intervals, and, when both are boxes in the index space
  of the same root array (views by basic slicing, steps included, of an array
  whose strides nest like a C- or Fortran-ordered one), overlapping boxes on
  every axis (a step that makes two ranges interleave without meeting counts as
  disjoint: ``A[::2]`` and ``A[1::2]``).  Otherwise (reshaped or broadcast
  views, field views, other dtypes' item sizes) overlapping byte intervals are
  aliases: conservative, never wrong.  So the tiles ``A[i*b:(i+1)*b, j*b:(j+1)*b]``
  of one matrix are independent, although the byte intervals of a block row's
  tiles overlap.  Each piece keeps the list of its aliases (``neighbors``),
  made once when it is first seen, so an access costs O(aliases).
* **Current content.**  A piece whose aliases were not written since its
  version was made uses that version.  Otherwise an *assembly* task
  (:func:`_assemble`) makes it: the piece's version (or the driver's data)
  overlaid with the latest version of each alias written since, in write order,
  through ``np.ndarray`` views with each piece's geometry into one scratch byte
  buffer (correct for any strides and dtypes); it becomes the piece's version.
  A piece's latest version contains every earlier write to its memory (each
  write task got the piece's current content), so the latest version of each
  alias suffices, and the final state is every written piece's latest version
  applied in the order of their latest writes (that is the copy-back at exit).
* **Ordering.**  Read after write and write after write are data edges: a task
  takes the current version as an argument.  Write after read: the writer does
  not wait for the readers; if the version it gets was read (``shared``), or is
  not the region's own (a DArray block others may share), or the task may be
  retried, the wrapper copies it before the function mutates it (renaming, as
  PyCOMPSs and StarPU remove WAR hazards), so readers keep an intact version.
  Otherwise the function mutates the previous version's array in place, which
  only the previous writer's tuple still refers to.  ``In`` data reach the
  function as read-only views (a write raises ``ValueError``).
* The driver's data of a piece is uploaded once, by a task (:func:`_upload`)
  that copies it, when the piece is first used with no written alias, so it is
  not pickled into every consumer's message and the user's memory is never
  written before the region ends.
* ``spawn`` inside a region returns a handle whose value is the function's
  return value: the task itself when it writes nothing, else a projection of
  item 0 of its tuple (placed near it).  A return value that shares memory
  with a written datum is returned as a copy, so later writers cannot change
  what that handle holds.
* Top-level numpy arguments that are not wrapped but share memory with data
  tracked in the region are read as ``In`` (the task sees the current content,
  not the driver's stale memory).  A DArray passed unwrapped is a plain
  argument: its blocks are replaced only at exit.
* ``_live`` holds the region's tasks until they end (an end callback removes
  them, so versions nobody needs any more are freed on their ranks) and
  ``_failed`` the ones that failed.  At exit the region waits for the rest; if
  any task failed it raises the first failure in spawn order that is not an
  :class:`~dagmpi.errors.UpstreamError` (with its original type, as
  :func:`dagmpi.fetch` raises it) and copies nothing back: the user's arrays
  and DArrays keep their values from before the region.  An exception in the
  body of the ``with`` leaves without waiting or copying.

Regions do not nest on one thread; each thread (the driver's, or a task's on a
worker) may open its own.  Within a region the user's tracked arrays are not
updated until it ends: read results through tasks, or after the block.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from typing import Any, Callable, Optional

import numpy as np

from . import api
from .errors import SerializationError, UpstreamError
from .options import DEFAULT_OPTIONS, Options, scope
from .runtime import context
from .task import ERRORED, Task

__all__ = ["In", "Out", "InOut", "Region", "datadeps"]

READ, WRITE = 1, 2

_OUTSIDE = ("dagmpi.In/Out/InOut can only be used inside a `with dagmpi.datadeps():` region, as direct "
            "arguments of dagmpi.spawn (not inside a list, dict or object): "
            "`with dagmpi.datadeps(): dagmpi.spawn(f, dagmpi.InOut(a))`")


# ----------------------------------------------------------------- the markers


def _darray_type() -> Optional[type]:
    """:class:`dagmpi.array.DArray`, if that module was imported (else no DArray
    exists); looked up, not imported: the array layer sits beside this one."""
    mod = sys.modules.get("dagmpi.array.core")
    return None if mod is None else mod.DArray


class Access:
    """How a task uses one datum (base of :class:`In`, :class:`Out`, :class:`InOut`)."""

    __slots__ = ("obj", "block")
    #: READ and/or WRITE
    mode = 0

    def __init__(self, obj: Any, block: Any = None) -> None:
        kind = type(self).__name__
        if isinstance(obj, np.ndarray):
            if block is not None:
                raise TypeError(f"{kind}(..., block=) names a block of a dagmpi.array.DArray; "
                                "a numpy array is tracked as it is (pass a view for a part of it)")
            if obj.dtype.hasobject:
                raise TypeError(f"{kind}: dagmpi.datadeps tracks numpy arrays of plain dtypes, "
                                f"not {obj.dtype} (an array of Python objects)")
            if self.mode & WRITE and not obj.flags.writeable:
                raise ValueError(f"{kind}: the array is read-only, so the task's writes could not be "
                                 "copied back into it")
        else:
            darray = _darray_type()
            if darray is None or not isinstance(obj, darray):
                raise TypeError(f"{kind}: dagmpi.datadeps tracks numpy arrays (and views) and blocks of a "
                                f"dagmpi.array.DArray, not {type(obj).__name__}")
            if block is None:
                raise TypeError(f"{kind}: name the block of the DArray the task uses: "
                                f"{kind}(A, block=(i, j)) (its grid is {obj.nblocks})")
            block = _block_index(block, obj.nblocks, kind)
        self.obj = obj
        self.block = block

    def __reduce_ex__(self, protocol: Any) -> Any:
        err = TypeError(_OUTSIDE)
        err.dagmpi_datadeps = True  # type: ignore[attr-defined]  # (api.spawn raises it as it is)
        raise err

    def __repr__(self) -> str:
        o = self.obj
        what = f"ndarray{o.shape}" if isinstance(o, np.ndarray) else f"{type(o).__name__}, block={self.block}"
        return f"dagmpi.{type(self).__name__}({what})"


class In(Access):
    """The task reads this datum (a numpy array or view; ``block=`` for a DArray block).

    The function receives the current content as a read-only array."""

    __slots__ = ()
    mode = READ


class Out(Access):
    """The task writes this datum (it should not read it).

    The function still receives the current content (a write of part of it keeps
    the rest), as a writable array it mutates in place."""

    __slots__ = ()
    mode = WRITE


class InOut(Access):
    """The task reads and writes this datum, in place."""

    __slots__ = ()
    mode = READ | WRITE


_ACCESS_TYPES = (In, Out, InOut)


def _block_index(block: Any, nblocks: tuple, kind: str) -> tuple:
    idx = (block,) if isinstance(block, (int, np.integer)) else block
    try:
        idx = tuple(int(i) for i in idx)
    except (TypeError, ValueError):
        raise TypeError(f"{kind}: block= takes a tuple of block indices, got {block!r}") from None
    if len(idx) != len(nblocks):
        raise IndexError(f"{kind}: block {block!r} has {len(idx)} indices, the DArray's block grid "
                         f"{nblocks} has {len(nblocks)} axes")
    out = []
    for i, n in zip(idx, nblocks):
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"{kind}: block {block!r} is outside the DArray's block grid {nblocks}")
        out.append(j)
    return tuple(out)


# ------------------------------------------------------- tasks run on workers


class _Call:
    """Task: the user's function on its data (one instance per function, so the
    function cache pickles it once).

    ``inputs``: per distinct datum ``(value, index, write, copy)``: the datum is
    ``value`` (index -1) or ``value[index]``; a written one is copied first when
    ``copy``.  ``places``: ``(position or keyword, datum, read_only)`` for each
    argument to fill.  Returns the function's return value when it writes
    nothing, else ``(return value, written data...)``.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, inputs: tuple, places: tuple, args: tuple, kwargs: dict) -> Any:
        data = []
        written = []
        for value, index, write, copy in inputs:
            a = value if index < 0 else value[index]
            if write:
                if copy or not a.flags.writeable:
                    a = a.copy()
                written.append(a)
            data.append(a)
        args = list(args)
        kwargs = dict(kwargs)
        for where, k, read_only in places:
            a = data[k]
            if read_only:
                a = a.view()
                a.flags.writeable = False
            if type(where) is int:
                args[where] = a
            else:
                kwargs[where] = a
        ret = self.fn(*args, **kwargs)
        if not written:
            return ret
        if isinstance(ret, np.ndarray) and any(np.may_share_memory(ret, a) for a in written):
            ret = ret.copy()  # the handle's value must not change with later writes
        return (ret, *written)

    def __repr__(self) -> str:
        return f"<datadeps call of {getattr(self.fn, '__qualname__', self.fn)!r}>"


def _upload(x: np.ndarray) -> np.ndarray:
    """Task: the driver's data of a piece, as the region's own contiguous copy."""
    return np.array(x, copy=True)


def _pick(value: tuple, index: int) -> Any:
    """Task: one item of a task wrapper's tuple."""
    return value[index]


def _bounds(geom: tuple) -> tuple[int, int]:
    """Byte interval ``[lo, hi)`` of a view's geometry ``(address, shape, strides, dtype)``."""
    ptr, shape, strides, dtype = geom
    if 0 in shape:
        return ptr, ptr
    lo = hi = ptr
    for n, s in zip(shape, strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + np.dtype(dtype).itemsize


def _assemble(geom: tuple, base: tuple, writes: list) -> np.ndarray:
    """Task: the content of the view ``geom``: ``base`` (its older content, a
    ``(value, index)`` reference) overlaid with each later write ``(geometry,
    value, index)`` of an overlapping view, in order; through views with each
    geometry into one scratch buffer that spans them all."""
    geoms = [geom] + [w[0] for w in writes]
    spans = [_bounds(g) for g in geoms]
    lo = min(s[0] for s in spans)
    buf = np.empty(max(s[1] for s in spans) - lo, np.uint8)

    def at(g: tuple) -> np.ndarray:
        ptr, shape, strides, dtype = g
        return np.ndarray(shape, dtype, buffer=buf, offset=ptr - lo, strides=strides)

    def deref(value: Any, index: int) -> np.ndarray:
        return value if index < 0 else value[index]

    out = at(geom)
    out[...] = deref(*base)
    for g, value, index in writes:
        at(g)[...] = deref(value, index)
    return np.array(out, copy=True)


# --------------------------------------------------------------- geometry


def _owner(a: np.ndarray) -> tuple[Any, np.ndarray]:
    """``(owner of the memory, last ndarray of the base chain)``."""
    root = a
    while True:
        b = root.base
        if b is None:
            return root, root
        if not isinstance(b, np.ndarray):
            return b, root
        root = b


def _box(v: np.ndarray, root: np.ndarray) -> Optional[tuple]:
    """The view ``v`` as a box in ``root``'s index space: per root axis
    ``(first, last, step)`` of the indices it covers; ``None`` when it is not one
    (see the module docstring)."""
    if v.dtype.itemsize != root.dtype.itemsize:
        return None
    shape, strides = root.shape, root.strides
    axes = sorted((k for k in range(root.ndim) if shape[k] > 1), key=lambda k: -strides[k])
    for i, k in enumerate(axes):  # nested layout (C, Fortran, transposes): positions decompose uniquely
        inner = strides[axes[i + 1]] * shape[axes[i + 1]] if i + 1 < len(axes) else root.dtype.itemsize
        if strides[k] < inner:
            return None
    off = v.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    if off < 0:
        return None
    start = [0] * root.ndim
    for k in axes:
        start[k], off = divmod(off, strides[k])
        if start[k] >= shape[k]:
            return None
    if off:
        return None
    box = [(i, i, 1) for i in start]
    used = set()
    for n, s in zip(v.shape, v.strides):
        if n == 1:
            continue
        for k in axes:  # the largest stride that divides s and keeps the range inside the axis
            if s % strides[k] == 0:
                m = s // strides[k]
                last = start[k] + m * (n - 1)
                if 0 <= last < shape[k] and m != 0:
                    break
        else:
            return None
        if k in used:
            return None
        used.add(k)
        box[k] = (min(start[k], last), max(start[k], last), abs(m))
    return tuple(box)


class _Piece:
    """One tracked datum and its version (see the module docstring)."""

    __slots__ = ("key", "view", "geom", "lo", "hi", "root", "box", "neighbors", "darray", "block",
                 "version", "valid", "last_write", "shared")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.view: Optional[np.ndarray] = None   # the user's view (copy-back target)
        self.geom: Optional[tuple] = None        # (address, shape, strides, dtype)
        self.lo = self.hi = 0                    # byte interval
        self.root = 0                            # id of the root array of box
        self.box: Optional[tuple] = None
        self.neighbors: list[_Piece] = []        # pieces that may share memory with this one
        self.darray: Any = None                  # a DArray block: the array ...
        self.block: tuple = ()                   # ... and the block index
        self.version: Optional[tuple] = None     # (task, index, writes of that task)
        self.valid = -1
        self.last_write = -1
        self.shared = False                      # the version was handed to readers (or is not ours)


def _overlap(p: _Piece, q: _Piece) -> bool:
    if p.lo >= q.hi or q.lo >= p.hi:
        return False
    if p.box is not None and q.box is not None and p.root == q.root:
        for (a0, a1, sa), (b0, b1, sb) in zip(p.box, q.box):
            if a1 < b0 or b1 < a0 or (a0 - b0) % math.gcd(sa, sb):
                return False
    return True


# ----------------------------------------------------------------- the region


_CALLS: dict[Any, _Call] = {}  # function -> its wrapper (bounded, like serialize.FunctionCache)
_NAMED: dict[Any, Options] = {}  # function -> Options(name=its name), for options left at the default


def _call_for(fn: Callable) -> _Call:
    try:
        c = _CALLS.get(fn)
    except TypeError:  # unhashable callable
        return _Call(fn)
    if c is None:
        if len(_CALLS) >= 4096:
            _CALLS.clear()
            _NAMED.clear()
        c = _CALLS[fn] = _Call(fn)
    return c


def _name_of(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _options_for(fn: Callable, options: Options) -> Options:
    """The wrapper task's options: the caller's, named after the function."""
    if options.name is not None:
        return options
    if options is DEFAULT_OPTIONS:
        try:
            o = _NAMED.get(fn)
            if o is None:
                o = _NAMED[fn] = Options(name=_name_of(fn))
            return o
        except TypeError:
            pass
    return replace(options, name=_name_of(fn))


class Region:
    """A ``with dagmpi.datadeps():`` region (see the module docstring)."""

    def __init__(self) -> None:
        self._client: Any = None
        self._entered = False
        self._open = False  # between __enter__ and __exit__
        self._pieces: dict[Any, _Piece] = {}
        self._groups: dict[int, list[_Piece]] = {}  # id(memory owner) -> its numpy pieces
        self._keep: list[Any] = []                 # the owners (their ids stay theirs)
        self._seq = 0                              # write sequence number
        self._n = 0                                # spawn sequence number
        self._live: dict[int, tuple[int, Task]] = {}
        self._failed: list[tuple[int, Task]] = []

    # ---------------------------------------------------------- the with block

    def __enter__(self) -> "Region":
        if self._entered:
            raise RuntimeError("a dagmpi.datadeps() region is used once; open a new one")
        if api._REGION.current is not None:
            raise RuntimeError("dagmpi.datadeps() regions do not nest: this thread has one open")
        self._client = context.current_client()
        self._entered = self._open = True
        api._REGION.current = self
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        api._REGION.current = None
        self._open = False
        try:
            if et is None:
                self._finish()
        finally:
            self._pieces, self._groups, self._keep = {}, {}, []
            self._live, self._failed = {}, []

    # ------------------------------------------------------------------ spawn

    def spawn(self, fn: Callable, args: tuple, kwargs: dict, options: Options) -> Task:
        """``dagmpi.spawn`` inside the region (called by it)."""
        accesses = []
        for i, a in enumerate(args):
            t = type(a)
            if t in _ACCESS_TYPES:
                accesses.append((i, a))
            elif t is np.ndarray and self._groups and id(_owner(a)[0]) in self._groups:
                accesses.append((i, In(a)))
        for k, a in kwargs.items():
            t = type(a)
            if t in _ACCESS_TYPES:
                accesses.append((k, a))
            elif t is np.ndarray and self._groups and id(_owner(a)[0]) in self._groups:
                accesses.append((k, In(a)))
        client = self._client
        if not accesses:
            return self._track(self._spawn(fn, args, kwargs, options))
        slots: dict[Any, int] = {}
        pieces: list[_Piece] = []
        modes: list[int] = []
        places = []
        for where, acc in accesses:
            p = self._piece(acc)
            k = slots.get(p.key)
            if k is None:
                k = slots[p.key] = len(pieces)
                pieces.append(p)
                modes.append(0)
            modes[k] |= acc.mode
            places.append((where, k, acc.mode == READ))
        refs = [self._current(p) for p in pieces]  # (may spawn uploads, assemblies, projections)
        retried = bool(options.retries if options.retries is not None else client.default_retries)
        inputs = []
        for p, m, ref in zip(pieces, modes, refs):
            w = bool(m & WRITE)
            inputs.append((ref[0], ref[1], w, w and (p.shared or retried)))
        for p, m in zip(pieces, modes):
            if not m & WRITE:
                p.shared = True
        new_args = list(args)
        new_kwargs = dict(kwargs)
        for where, _, _ in places:
            if type(where) is int:
                new_args[where] = None
            else:
                new_kwargs[where] = None
        t = self._spawn(_call_for(fn), (tuple(inputs), tuple(places), tuple(new_args), new_kwargs), {},
                        _options_for(fn, options))
        self._track(t)
        nw = sum(1 for m in modes if m & WRITE)
        if not nw:
            return t
        j = 0
        for p, m in zip(pieces, modes):
            if m & WRITE:
                j += 1
                self._seq += 1
                p.version = (t, j, nw)
                p.valid = p.last_write = self._seq
                p.shared = False
        return self._track(self._spawn(_pick, (t, 0), {},
                                       Options(name=f"{t.name}.result", scope=scope(near=t))))

    def _spawn(self, fn: Callable, args: tuple, kwargs: dict, options: Options) -> Task:
        try:
            return self._client.spawn(fn, args, kwargs, options)
        except SerializationError as exc:  # a marker nested in an argument: say so
            if getattr(exc.__cause__, "dagmpi_datadeps", False):
                raise exc.__cause__.with_traceback(None) from None
            raise

    def _track(self, t: Task) -> Task:
        self._n += 1
        self._live[t.id] = (self._n, t)
        self._client.on_end(t, self._ended)
        return t

    def _ended(self, t: Task) -> None:
        """End callback (the communication thread): forget the task, note a failure."""
        entry = self._live.pop(t.id, None)
        if entry is not None and t._state == ERRORED:
            self._failed.append(entry)

    # ----------------------------------------------------------------- pieces

    def _piece(self, acc: Access) -> _Piece:
        """The piece ``acc`` names; registered (with its aliases) when new."""
        obj = acc.obj
        if acc.block is not None:
            key = ("block", id(obj), acc.block)
            p = self._pieces.get(key)
            if p is None:
                p = self._pieces[key] = _Piece(key)
                p.darray, p.block = obj, acc.block
                p.version = (obj.tasks[acc.block], -1, 0)
                p.shared = True  # the DArray's block value may be shared with other arrays
                self._keep.append(obj)
            return p
        owner, root = _owner(obj)
        ptr = obj.__array_interface__["data"][0]
        key = (id(owner), ptr, obj.shape, obj.strides, obj.dtype)
        p = self._pieces.get(key)
        if p is not None:
            return p
        p = self._pieces[key] = _Piece(key)
        p.view = obj
        p.geom = (ptr, obj.shape, obj.strides, obj.dtype)
        p.lo, p.hi = _bounds(p.geom)
        p.root = id(root)
        p.box = _box(obj, root) if obj.size else None
        group = self._groups.get(id(owner))
        if group is None:
            group = self._groups[id(owner)] = []
            self._keep.append(owner)
        for q in group:
            if _overlap(p, q):
                p.neighbors.append(q)
                q.neighbors.append(p)
        group.append(p)
        return p

    def _current(self, p: _Piece) -> tuple[Any, int]:
        """A ``(task or array, index)`` reference to the current content of ``p``."""
        later = [q for q in p.neighbors if q.last_write > p.valid]
        if not later:
            if p.version is None:  # first use: upload the driver's data
                up = self._track(self._spawn(_upload, (p.view,), {}, Options(name="datadeps.upload")))
                p.version, p.valid, p.shared = (up, -1, 0), self._seq, False
            return self._ref(p)
        later.sort(key=lambda q: q.last_write)
        base = self._ref(p) if p.version is not None else (p.view, -1)
        writes = []
        for q in later:
            r = self._ref(q)
            writes.append((q.geom, r[0], r[1]))
            q.shared = True
        t = self._track(self._spawn(_assemble, (p.geom, base, writes), {}, Options(name="datadeps.assemble")))
        p.version, p.valid, p.shared = (t, -1, 0), self._seq, False
        return t, -1

    def _ref(self, p: _Piece, bare: bool = False) -> tuple[Any, int]:
        """``(task, index)`` of ``p``'s version; projected to its own task first when
        its producer wrote several data (or when ``bare``: the array itself)."""
        t, index, writes = p.version  # type: ignore[misc]
        if index >= 0 and (writes > 1 or bare):
            proj = self._spawn(_pick, (t, index), {}, Options(name="datadeps.pick", scope=scope(near=t)))
            if self._open:
                self._track(proj)
            p.version = (proj, -1, 0)
            return proj, -1
        return t, index

    # -------------------------------------------------------------------- exit

    def _finish(self) -> None:
        """Wait for the region's tasks; raise the first failure, or update the data."""
        entries = list(self._live.values())
        if entries:
            self._client.wait([t for _, t in entries], None, api.ALL_COMPLETED)
        failed = {t.id: (n, t) for n, t in list(self._failed)}
        for n, t in entries:
            if t._state == ERRORED:
                failed.setdefault(t.id, (n, t))
        if failed:
            ordered = [t for _, t in sorted(failed.values(), key=lambda e: e[0])]
            first = next((t for t in ordered if not isinstance(t.exception(), UpstreamError)), ordered[0])
            api.fetch(first)  # raises the task's own exception, as dagmpi.fetch does
            raise AssertionError("unreachable: a failed task fetched")  # pragma: no cover
        written = sorted((p for p in self._pieces.values() if p.last_write >= 0), key=lambda p: p.last_write)
        arrays = [p for p in written if p.darray is None]
        if arrays:
            tasks = list({p.version[0].id: p.version[0] for p in arrays}.values())
            values = dict(zip((t.id for t in tasks), self._client.fetch_many(tasks)))
            for p in arrays:
                t, index, _ = p.version
                v = values[t.id]
                np.copyto(p.view, v if index < 0 else v[index])
        blocks: dict[int, tuple[Any, np.ndarray]] = {}
        for p in written:
            if p.darray is not None:
                a = p.darray
                if id(a) not in blocks:
                    blocks[id(a)] = (a, a.tasks.copy())  # arrays sharing the old grid keep it
                blocks[id(a)][1][p.block] = self._ref(p, bare=True)[0]
        for a, grid in blocks.values():
            a._tasks = grid
            a._launch = None  # (its blocks are no longer all the points of one launch)


def datadeps() -> Region:
    """Open a data-dependency region: ``with dagmpi.datadeps(): dagmpi.spawn(f, In(a), InOut(b))``.

    Inside it, :func:`dagmpi.spawn` orders the tasks by the data their
    :class:`In`/:class:`Out`/:class:`InOut` arguments declare (see
    :mod:`dagmpi.datadeps`).  Leaving it waits for its tasks, raises the first
    task failure (its original type), else writes the final content of every
    written numpy array or view into the user's memory in place and replaces
    each written DArray block by its final version, which stays on its rank.
    """
    return Region()
