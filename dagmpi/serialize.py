"""All pickling in dagmpi happens here.

* Functions are cloudpickled once per spawning process and cached
  (:class:`FunctionCache`); receivers cache them by id, so a function crosses
  each link once.
* Arguments and results use pickle protocol 5 with out-of-band buffers: the
  memory of a contiguous numpy array is never copied into the pickle stream, it
  travels as its own raw buffer (an MPI message of its own over MPI, a plain
  reference in-process).
* ``Task`` objects inside the arguments, at any depth (lists, tuples, dicts,
  attributes of user objects), are written as *persistent ids*: they become the
  task's dependencies, and on the worker they are replaced by the values of
  those tasks.
* Code pickled by value (the user's own functions and classes) keeps its real
  file name, which cloudpickle replaces with ``"<dynamic-code>"``, and a
  pickled function carries the source lines of its code, which fill
  ``linecache`` on a rank that cannot read the file: a remote traceback shows
  the user's file, line and source text (:func:`_reduce_code`,
  :class:`_FunctionPickler`).
"""

from __future__ import annotations

import io
import itertools
import linecache
import os
import pickle
import sys
import threading
import types
from collections import ChainMap
from typing import Any, Callable, Optional, Union

import cloudpickle

from .errors import SerializationError
from .task import Launch, Point, Task

PROTOCOL = 5

Buffers = Union[list, tuple]  # pickle.PickleBuffer objects (any buffer-protocol object on load)


#: cloudpickle's reducer of code objects, which :func:`_reduce_code` wraps (None: a
#: cloudpickle that reduces code another way; file names are then as it leaves them)
_CLOUD_CODE_REDUCE = cloudpickle.Pickler.dispatch_table.get(types.CodeType)


def _reduce_code(code: types.CodeType, source: Optional[tuple[int, list[str]]] = None) -> Any:
    """Reduce ``code`` as cloudpickle does, and give it its real file name back.

    cloudpickle writes ``"<dynamic-code>"`` as the file name of code it pickles by
    value, so a traceback on another rank would name no file and show no source.
    The code is rebuilt as cloudpickle builds it, then renamed
    (:func:`_rebuild_code`), whatever position the name has among the
    constructor's arguments.  Nested code objects (inner functions, lambdas,
    comprehensions) are in ``co_consts``, and come through here too.
    """
    rv = _CLOUD_CODE_REDUCE(code)
    if not (isinstance(rv, tuple) and len(rv) == 2):  # not (constructor, args): leave it
        return rv
    return _rebuild_code, (rv[0], rv[1], code.co_filename, source)


class _Pickler(cloudpickle.Pickler):
    """A cloudpickler whose code objects keep their real ``co_filename``."""

    if _CLOUD_CODE_REDUCE is not None:
        dispatch_table = ChainMap({types.CodeType: _reduce_code}, *cloudpickle.Pickler.dispatch_table.maps)


class _FunctionPickler(_Pickler):
    """:class:`_Pickler` whose code objects also carry the source lines they span
    (functions are pickled once each, by :class:`FunctionCache`), unless an
    enclosing code object of the same pickle carries them already; the receiver
    puts them in ``linecache`` when it cannot read the file (:func:`_fill_linecache`)."""

    def __init__(self, file: io.BytesIO) -> None:
        if _CLOUD_CODE_REDUCE is not None:
            # an instance attribute, to bind self (the C pickler reads it in __init__)
            self.dispatch_table = ChainMap({types.CodeType: self._reduce_code},
                                           *cloudpickle.Pickler.dispatch_table.maps)
        super().__init__(file, protocol=PROTOCOL)
        self._spans: dict[str, list[tuple[int, int]]] = {}  # file -> line ranges already shipped

    def _reduce_code(self, code: types.CodeType) -> Any:
        return _reduce_code(code, self._source_of(code))

    def _source_of(self, code: types.CodeType) -> Optional[tuple[int, list[str]]]:
        """``(first line number, lines)`` of the source ``code`` spans, or None
        (no source here, or already shipped with an enclosing code object)."""
        filename = code.co_filename
        first = code.co_firstlineno
        last = max((line for _, _, line in code.co_lines() if line is not None), default=first)
        spans = self._spans.setdefault(filename, [])
        if any(a <= first and last <= b for a, b in spans):
            return None
        lines = linecache.getlines(filename)
        if len(lines) < first:  # (none: "<stdin>", "<string>", a file gone)
            return None
        spans.append((first, last))
        return first, lines[first - 1:last]


def _rebuild_code(make: Callable, args: tuple, filename: str,
                  source: Optional[tuple[int, list[str]]]) -> types.CodeType:
    """Unpickle a code object reduced by :func:`_reduce_code`."""
    code = make(*args)
    if source is not None:
        _fill_linecache(filename, *source)
    return code.replace(co_filename=filename) if code.co_filename != filename else code


_FILLED: set[str] = set()  # files whose linecache entry this module made
_FILL_LOCK = threading.Lock()


def _fill_linecache(filename: str, first: int, lines: list[str]) -> None:
    """Put ``lines`` (from line ``first`` on) of ``filename`` in ``linecache``,
    unless this process can read the file, or linecache was given its lines by
    another (a notebook cell, a module loader).  The entry's mtime is None, so
    ``linecache.checkcache`` keeps it; the lines of other functions of the same
    file are added to it as they arrive, and the lines between are blank."""
    with _FILL_LOCK:
        entry = linecache.cache.get(filename)
        ours = filename in _FILLED and entry is not None and len(entry) == 4 and entry[1] is None
        if not ours:
            if entry is not None and len(entry) == 4 and entry[1] is None:
                return  # registered here by another (a notebook cell, a module loader)
            try:
                if os.path.isfile(filename) and os.access(filename, os.R_OK):
                    return  # linecache reads the file itself
            except (OSError, ValueError):
                pass
        have = list(entry[2]) if ours else []
        end = first - 1 + len(lines)
        if len(have) < end:
            have.extend(["\n"] * (end - len(have)))
        have[first - 1:end] = lines
        linecache.cache[filename] = (sum(map(len, have)), None, have, filename)
        _FILLED.add(filename)


class _ArgPickler(_Pickler):
    """Cloudpickler that records ``Task`` arguments as dependencies."""

    def __init__(self, file: io.BytesIO, buffers: list) -> None:
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self.deps: dict[int, None] = {}  # ordered set of task ids
        self._task_type = Task

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is self._task_type or type(obj) is Point:
            self.deps[obj.id] = None
            return obj.id
        if type(obj) is Launch:  # the list of its points' values
            return _launch_points(obj, self.deps)
        if FUTURE_TYPES and type(obj) in FUTURE_TYPES:  # a dagmpi.Executor future: its task
            tid = obj.task.id
            self.deps[tid] = None
            return tid
        return None


class _ArgUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, buffers: Any, inputs: dict[int, Any]) -> None:
        super().__init__(file, buffers=buffers)
        self._inputs = inputs

    def persistent_load(self, pid: Any) -> Any:
        try:
            if type(pid) is tuple:  # a Launch: the values of its points
                return [self._inputs[i] for i in pid]
            return self._inputs[pid]
        except KeyError as exc:
            raise SerializationError(f"argument refers to task {exc.args[0]:#x}, whose value was not "
                                     "delivered") from None


_SIMPLE = frozenset((int, float, str, bytes, bool, type(None), complex))
#: Future types whose ``.task`` is a dependency like a ``Task`` argument (set by
#: :mod:`dagmpi.executor` when it is imported).
FUTURE_TYPES: tuple = ()
#: Arrays up to this many bytes are pickled inside the message, not out of band.
INBAND_MAX = 4096


def dump_args(args: tuple, kwargs: dict) -> tuple[bytes, Buffers, tuple[int, ...]]:
    """Pickle ``(args, kwargs)``; return ``(payload, buffers, dependency ids)``.

    Raises :class:`SerializationError` naming the argument that cannot be pickled.
    """
    if _SIMPLE.issuperset(map(type, args)) and (not kwargs or _SIMPLE.issuperset(map(type, kwargs.values()))):
        return pickle.dumps((args, kwargs), PROTOCOL), (), ()  # (a tuple: no container for the GC)
    holes = _holes(args, kwargs)
    if holes is not None:
        return holes
    if _plain(args, 0) and _plain(kwargs, 0):
        # plain data and Tasks only: the C pickler is several times cheaper than
        # cloudpickle's, and nothing here needs pickling by value
        return _dump_plain((args, kwargs))
    f = io.BytesIO()
    buffers: list = []  # filled by out-of-band pickling; () when it stays empty
    p = _ArgPickler(f, buffers)
    try:
        p.dump((args, kwargs))
    except Exception as exc:
        raise _which_argument(args, kwargs, exc) from exc
    return f.getvalue(), buffers or (), tuple(p.deps)


class _FastArgPickler(pickle.Pickler):
    """The C pickler, recording ``Task`` arguments like :class:`_ArgPickler`."""

    def __init__(self, file: io.BytesIO, buffers: list) -> None:
        super().__init__(file, protocol=PROTOCOL, buffer_callback=buffers.append)
        self.deps: dict[int, None] = {}

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is Task or type(obj) is Point:
            self.deps[obj.id] = None
            return obj.id
        if type(obj) is Launch:  # the list of its points' values
            return _launch_points(obj, self.deps)
        return None


def _launch_points(launch: Any, deps: dict) -> tuple:
    """A ``Launch`` among the arguments: every point is an input, and the argument is
    the list of their values, in point order."""
    ids = tuple(range(launch.base, launch.base + launch.n))
    for i in ids:
        deps[i] = None
    return ids


#: First byte of a payload in the "holes" form (a pickle always starts with 0x80).
_HOLES = 0x48  # b"H"


def _holes(args: tuple, kwargs: dict) -> Optional[tuple[bytes, Buffers, tuple[int, ...]]]:
    """Simple values and Tasks, Tasks only at the top level (``f(t1, t2, n=3)``, the
    usual dependent task): pickle the arguments with ``None`` for each Task and a
    list of holes ``(position or keyword, task id)``, plainly (no per-object
    callback while pickling, nor while unpickling on the worker).  ``None`` when
    an argument is neither (one pass over them: this runs for every spawn)."""
    holes: list = []
    if not _find_tasks(enumerate(args), holes):
        return None
    n = len(holes)
    if kwargs and not _find_tasks(kwargs.items(), holes):
        return None
    if n:
        lst = list(args)
        for i, _ in holes[:n]:
            lst[i] = None
        args = tuple(lst)
    if len(holes) > n:
        kwargs = dict(kwargs)
        for k, _ in holes[n:]:
            kwargs[k] = None
    payload = b"H" + pickle.dumps((args, kwargs, holes), PROTOCOL)
    deps = tuple(tid for _, tid in holes)
    if len(deps) > 1 and len(set(deps)) < len(deps):  # (a Task passed twice: one input)
        deps = tuple(dict.fromkeys(deps))
    return payload, (), deps


def _find_tasks(items: Any, holes: list) -> bool:
    """Add ``(key, task id)`` to ``holes`` for each Task among ``(key, value)`` pairs;
    False if a value is neither a simple value nor a Task."""
    simple, task_type = _SIMPLE, Task
    for k, v in items:
        t = type(v)
        if t in simple:
            continue
        if t is not task_type:
            return False
        holes.append((k, v.id))
    return True


class _ThreadPickler(threading.local):
    """One :class:`_FastArgPickler` per thread, used again for every spawn: making
    a pickler costs more than pickling a few small arguments."""

    pickler: Optional[_FastArgPickler] = None
    file: Any = None
    buffers: Any = None


_THREAD_PICKLER = _ThreadPickler()


def _dump_plain(obj: Any) -> tuple[bytes, Buffers, tuple[int, ...]]:
    """``dump_args`` of plain data and Tasks (see :func:`_plain`: no user code runs
    while it pickles, so the thread's pickler cannot be re-entered)."""
    st = _THREAD_PICKLER
    p = st.pickler
    if p is None:
        st.file, st.buffers = io.BytesIO(), []
        p = st.pickler = _FastArgPickler(st.file, st.buffers)
    f, bufs = st.file, st.buffers
    try:
        p.dump(obj)
        return f.getvalue(), (list(bufs) if bufs else ()), tuple(p.deps)
    finally:
        f.seek(0)
        f.truncate()
        p.clear_memo()
        p.deps.clear()
        bufs.clear()


_PLAIN_LEAVES = _SIMPLE


def _plain(obj: Any, depth: int) -> bool:
    """Only simple values, Tasks and numpy arrays, in lists/tuples/dicts (not too deep or long)?"""
    t = type(obj)
    if t in _PLAIN_LEAVES or t is Task or t is Point or t is Launch:
        return True
    if t is slice:  # block keys of the array layer
        return type(obj.start) in _SIMPLE and type(obj.stop) in _SIMPLE and type(obj.step) in _SIMPLE
    if depth > 3:
        return False
    if t is tuple or t is list:
        return len(obj) <= 64 and all(_plain(x, depth + 1) for x in obj)
    if t is dict:
        return len(obj) <= 64 and all(type(k) in _SIMPLE and _plain(v, depth + 1) for k, v in obj.items())
    if t.__module__ == "numpy" and t.__name__ == "ndarray":
        return obj.dtype.hasobject is False
    return False


def _which_argument(args: tuple, kwargs: dict, exc: Exception) -> SerializationError:
    items = [(f"argument {i} ({type(a).__name__})", a) for i, a in enumerate(args)]
    items += [(f"keyword argument {k!r} ({type(v).__name__})", v) for k, v in kwargs.items()]
    for label, value in items:
        try:
            _ArgPickler(io.BytesIO(), []).dump(value)
        except Exception as inner:
            return SerializationError(
                f"{label} cannot be pickled, so it cannot be sent to another rank: {inner}. "
                "Pass something picklable (create the object inside the task instead).")
    return SerializationError(f"the arguments cannot be pickled: {exc}")


def portable(buffers: Any) -> Any:
    """Received out-of-band buffers, fit to be sent on again.  A buffer that was
    read-only where it was pickled arrives as a read-only ``memoryview`` (pickle's
    READONLY_BUFFER), which pickle refuses to send; a zero-copy numpy view of it
    travels (and arrives as one again).  Used where a received task spec leaves
    again: a task given back to rank 0, and rank 0 dispatching one it received."""
    if not buffers or not any(type(b) is memoryview for b in buffers):
        return buffers
    import numpy as np

    return [np.frombuffer(b, dtype=np.uint8) if type(b) is memoryview else b for b in buffers]


def load_args(payload: Any, buffers: Any, inputs: dict[int, Any]) -> tuple[tuple, dict]:
    """Inverse of :func:`dump_args`; ``inputs`` maps dependency ids to values."""
    if payload[0] == _HOLES:
        args, kwargs, holes = pickle.loads(memoryview(payload)[1:])
        if holes:
            args = list(args)
            for where, tid in holes:
                try:
                    value = inputs[tid]
                except KeyError:
                    raise SerializationError(
                        f"argument refers to task {tid:#x}, whose value was not delivered") from None
                if type(where) is int:
                    args[where] = value
                else:
                    kwargs[where] = value
            args = tuple(args)
        return args, kwargs
    if not inputs:  # no Task arguments: the stream holds no persistent ids
        try:
            return pickle.loads(payload, buffers=buffers)
        except pickle.UnpicklingError:
            pass  # it does, and an input is missing: say which, below
    return _ArgUnpickler(io.BytesIO(payload), buffers, inputs).load()


def dump_value(value: Any) -> tuple[bytes, Buffers]:
    """Pickle a task result with out-of-band buffers."""
    buffers: list = []
    t = type(value)
    if t in _SIMPLE:  # the C pickler: several times cheaper than cloudpickle's
        return pickle.dumps(value, PROTOCOL), buffers
    if t.__name__ == "ndarray" and t.__module__ == "numpy" and not value.dtype.hasobject:
        # the C pickler too; a small array travels inside the message (one MPI
        # message instead of two: a stencil's halo or a Task Bench output)
        if value.nbytes <= INBAND_MAX:
            return pickle.dumps(value, PROTOCOL), buffers
        return pickle.dumps(value, PROTOCOL, buffer_callback=buffers.append), buffers
    try:
        with io.BytesIO() as f:
            if device_hooks is None:
                _Pickler(f, protocol=PROTOCOL, buffer_callback=buffers.append).dump(value)
            else:  # GPU arrays leave their bytes on the device (DeviceBuffers after the host ones)
                dev: list = []
                with device_sink(dev):
                    _Pickler(f, protocol=PROTOCOL, buffer_callback=buffers.append).dump(value)
                buffers.extend(dev)
            data = f.getvalue()
    except Exception as exc:
        raise SerializationError(
            f"a value of type {type(value).__name__} cannot be pickled to move it to another rank: {exc}"
        ) from exc
    return data, buffers


def load_value(payload: Any, buffers: Any) -> Any:
    """Inverse of :func:`dump_value`."""
    if buffers and any(type(b) is DeviceBuffer for b in buffers):
        host = [b for b in buffers if type(b) is not DeviceBuffer]
        with device_source([b for b in buffers if type(b) is DeviceBuffer]):
            return pickle.loads(payload, buffers=host)
    return pickle.loads(payload, buffers=buffers)


# ------------------------------------------------------------- device arrays
#
# A GPU array in a value travels as a DeviceBuffer: its bytes, outside the
# pickle stream like a numpy array's, but in GPU memory.  dagmpi.gpu registers
# the device array types (copyreg) and the ``device_hooks`` that rebuild them;
# this module never imports a GPU library.  While a collector is active
# (:func:`device_sink`: dump_value, the MPI transport), a DeviceBuffer pickles
# as a slot number and is collected (it moves GPU to GPU, or staged); with none
# (spill files, checkpoints, other picklers) it pickles as a host copy.

class DeviceBuffer:
    """The bytes of one GPU array (a flat ``uint8`` array on its device), or of
    one that was moved to a rank without a GPU (then a host ``numpy`` array)."""

    __slots__ = ("data", "nbytes")

    def __init__(self, data: Any) -> None:
        self.data = data
        self.nbytes = int(data.nbytes)

    @property
    def on_device(self) -> bool:
        return device_hooks is not None and device_hooks.is_device(self.data)

    def host(self) -> Any:
        """The bytes as a host numpy array (a copy from the device if on one)."""
        return device_hooks.to_host(self.data) if self.on_device else self.data

    def __reduce_ex__(self, protocol: int) -> Any:
        sink = getattr(_DEV, "sink", None)
        if sink is not None:
            sink.append(self)
            return _device_slot, (len(sink) - 1,)
        return DeviceBuffer._from_host, (self.host(),)  # (a numpy array: any pickle protocol)

    @staticmethod
    def _from_host(data: Any) -> "DeviceBuffer":
        import numpy as np

        return DeviceBuffer(np.frombuffer(data, dtype=np.uint8))


#: Set by :mod:`dagmpi.gpu.backend` when a GPU backend is active in this process:
#: ``is_device(x)``, ``to_host(x)`` and ``rebuild(data, shape, dtype, order)``.
device_hooks: Any = None
_DEV = threading.local()


class _DeviceScope:
    __slots__ = ("attr", "value", "old")

    def __init__(self, attr: str, value: Any) -> None:
        self.attr, self.value = attr, value

    def __enter__(self) -> Any:
        self.old = getattr(_DEV, self.attr, None)
        setattr(_DEV, self.attr, self.value)
        return self.value

    def __exit__(self, *exc: Any) -> None:
        setattr(_DEV, self.attr, self.old)


def device_sink(into: list) -> _DeviceScope:
    """While active, DeviceBuffers being pickled are appended to ``into`` (slots)."""
    return _DeviceScope("sink", into)


def device_source(buffers: list) -> _DeviceScope:
    """While active, the slots being unpickled are the DeviceBuffers of ``buffers``."""
    return _DeviceScope("source", buffers)


def _device_slot(k: int) -> DeviceBuffer:
    source = getattr(_DEV, "source", None)
    if source is None or k >= len(source):
        raise SerializationError("a GPU buffer of this value did not arrive with it")
    return source[k]


def rebuild_device_array(buf: DeviceBuffer, shape: tuple, dtype: str, order: str) -> Any:
    """A device array from its bytes: on this rank's GPU when they are on one,
    else (a rank without a GPU, or a host copy) a numpy array."""
    if buf.on_device:
        return device_hooks.rebuild(buf.data, shape, dtype, order)
    import numpy as np

    return np.frombuffer(buf.data, dtype=np.dtype(dtype)).reshape(shape, order=order)


def buffers_nbytes(buffers: Any) -> int:
    """Bytes of the out-of-band buffers of a value, host and device."""
    return sum(b.nbytes if type(b) is DeviceBuffer else memoryview(b).nbytes for b in buffers)


def device_nbytes(buffers: Any) -> int:
    """Bytes of a value's buffers held in GPU memory."""
    return sum(b.nbytes for b in buffers if type(b) is DeviceBuffer and b.on_device) if buffers else 0


def dump_function(fn: Callable) -> bytes:
    """Cloudpickle a callable, with a clear error when it cannot be.  Code pickled
    by value keeps its file name and carries its source lines (:class:`_FunctionPickler`)."""
    try:
        with io.BytesIO() as f:
            _FunctionPickler(f).dump(fn)
            return f.getvalue()
    except Exception as exc:
        name = getattr(fn, "__qualname__", type(fn).__name__)
        raise SerializationError(
            f"the function {name!r} cannot be pickled, so it cannot run on another rank: {exc}"
        ) from exc


def load_function(data: bytes) -> Callable:
    return pickle.loads(data)


class FunctionCache:
    """Assigns ids to functions and pickles each one once.

    Ids are ``(rank, n)`` so ids made on different ranks never collide.  At
    most ``maxsize`` functions are remembered; an evicted function simply gets
    a new id (and is sent again) when used again.
    """

    def __init__(self, rank: int, maxsize: int = 4096) -> None:
        self.rank = rank
        self.maxsize = maxsize
        self._ids: dict[Any, tuple[tuple[int, int], bytes]] = {}
        self._count = itertools.count()
        self._lock = threading.Lock()

    def get(self, fn: Callable) -> tuple[tuple[int, int], bytes]:
        """``(fn_id, pickled bytes)`` of ``fn``, pickling it on first use."""
        try:
            hit = self._ids.get(fn)
        except TypeError:  # unhashable callable: never cached
            return (self.rank, next(self._count)), dump_function(fn)
        if hit is not None:
            return hit
        data = dump_function(fn)
        with self._lock:
            hit = self._ids.get(fn)
            if hit is None:
                if len(self._ids) >= self.maxsize:
                    self._ids.pop(next(iter(self._ids)))
                hit = self._ids[fn] = ((self.rank, next(self._count)), data)
        return hit


def sizeof(value: Any) -> int:
    """A cheap estimate of the bytes a value occupies (for placement decisions)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return len(value)
    if isinstance(value, (list, tuple)) and value:
        head = value[:64]
        return sys.getsizeof(value) + sum(sizeof(v) for v in head) * len(value) // len(head)
    if isinstance(value, dict) and value:
        return sys.getsizeof(value) + sum(sizeof(v) for v in itertools.islice(value.values(), 64))
    try:
        return sys.getsizeof(value)
    except TypeError:
        return 64
