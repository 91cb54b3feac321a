"""The distributed array: blocks that are tasks' values on the worker ranks.

A :class:`DArray` is either *concrete* (one Task per block) or *pending*: a
fused elementwise program over concrete arrays, numpy arrays and scalars that
becomes one task per block when something needs its blocks (a reduction,
slicing, ``to_numpy``...).  So ``(A * 2 + 1) ** 2`` is one task and one pass
per block, and ``((A * 2 + 1) ** 2).sum()`` never stores the squared blocks.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from .. import api
from ..options import Options, scope
from ..task import Task
from . import blockops as ops
from . import launched
from . import grid as g

#: A pending array is materialised once its fused program has this many operations,
#: so that a long loop of elementwise updates keeps a bounded program and history.
MAX_FUSED_OPS = 16


def _workers() -> list[int]:
    return api.workers()


def _opts(name: str, near: Optional[Task] = None, prefer: Optional[int] = None, gpu: bool = False,
          priority: int = 0) -> Options:
    # move=False: a block is used where it is, in the memory it is in (a GPU
    # array's blocks stay CuPy arrays on their GPUs from operation to operation)
    if near is not None:
        where = scope(near=near, gpu=gpu)
    elif prefer is not None:
        where = scope(prefer=int(prefer), gpu=gpu)
    else:
        where = scope(gpu=True) if gpu else None
    return Options(name=name, priority=priority, scope=where, move=False)


_HAS_GPUS: dict = {}


def _job_has_gpus() -> bool:
    """Does any worker rank of this job have a GPU?  (Asked once per job.)"""
    client = api.context.current_client()
    key = id(client)
    if key not in _HAS_GPUS:
        _HAS_GPUS.clear()
        _HAS_GPUS[key] = any(p.get("gpus") for p in api.processors())
    return _HAS_GPUS[key]


def _gpu_workers() -> list[int]:
    """The worker ranks with a GPU (for ``device="gpu"`` arrays)."""
    ranks = [p["rank"] for p in api.processors() if p.get("gpus")]
    if not ranks:
        raise ValueError("device='gpu': no worker rank has a GPU (CuPy sees none; DAGMPI_GPUS, or "
                         "DAGMPI_GPU_SIM=1 for a simulated one); use device='cpu'")
    return ranks


def _device(device: str) -> bool:
    """Is ``device`` the GPU?  (Checks the spelling.)"""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu' or 'gpu', not {device!r}")
    return device == "gpu"


def _dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{dtype!r} is not a numpy dtype: {exc}") from None


class DArray:
    """An n-dimensional array whose blocks live on the worker ranks.

    ``shape``, ``dtype``, ``chunks`` (block sizes per axis), ``blocks`` (the
    block shape; edge blocks may be smaller), ``nblocks`` (the block grid).
    Operations follow numpy; results are new DArrays whose blocks are computed
    where their inputs are.  ``to_numpy()`` / ``np.asarray(A)`` /
    ``dagmpi.fetch(A)`` bring the whole array to the caller.
    """

    __array_priority__ = 20
    __hash__ = None  # type: ignore[assignment]  # == is elementwise

    def __init__(self, chunks: g.Chunks, dtype: Any, tasks: Optional[np.ndarray] = None,
                 owners: Optional[np.ndarray] = None, program: Optional[tuple] = None,
                 leaves: Optional[list] = None, name: str = "array") -> None:
        self._chunks = tuple(tuple(int(x) for x in c) for c in chunks)
        self._dtype = np.dtype(dtype)
        self._tasks = tasks
        self._owners = owners
        self._program = program
        self._leaves = leaves
        self._name = name
        self._device: Optional[str] = None
        #: the launch whose point ``k`` is block ``k`` (C order), when one made it (see
        #: :mod:`dagmpi.array.launched`): the next operations may then be launches too
        self._launch: Any = None

    # ------------------------------------------------------------ description

    @property
    def device(self) -> str:
        """``"gpu"`` when the blocks are in GPU memory (CuPy arrays), else ``"cpu"``:
        known for arrays made with ``device=`` and elementwise results of them, and
        in jobs without GPUs; else asked of its first block's rank once (which
        waits until that block is computed)."""
        if self._device is None and not _job_has_gpus():
            self._device = "cpu"
        if self._device is None:
            self._materialize()
            t = self._tasks.flat[0] if self._tasks is not None and self._tasks.size else None
            self._device = "cpu" if t is None else api.fetch(api.spawn(
                ops.device_of, t, options=Options(name="device_of", scope=scope(near=t), move=False)))
        return self._device

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(sum(c) for c in self._chunks)

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._chunks)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self._dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self._dtype.itemsize

    @property
    def chunks(self) -> g.Chunks:
        """Block sizes along each axis, e.g. ``((4, 4, 2), (5, 5))``."""
        return self._chunks

    @property
    def blocks(self) -> tuple[int, ...]:
        """The block shape (the largest block along each axis)."""
        return g.nominal_blocks(self._chunks)

    @property
    def nblocks(self) -> tuple[int, ...]:
        """The number of blocks along each axis."""
        return g.nblocks(self._chunks)

    @property
    def tasks(self) -> np.ndarray:
        """The Task of every block (an object array of shape ``nblocks``)."""
        self._materialize()
        assert self._tasks is not None
        return self._tasks

    def owners(self) -> np.ndarray:
        """The rank each block was placed on (the block-cyclic plan of the array it
        derives from; ``-1`` where not planned)."""
        if self._owners is not None:
            return self._owners
        return np.full(self.nblocks, -1, dtype=np.int64)

    def __repr__(self) -> str:
        where = ""
        own = self._owners
        if own is not None and own.size:
            ranks = sorted(set(int(r) for r in own.ravel() if r >= 0))
            if ranks:
                where = f", on ranks {_ranges(ranks)}"
        state = "" if self._tasks is not None else f", pending ({ops.count_ops(self._program)} fused ops)"
        return (f"DArray<shape={self.shape}, dtype={self._dtype}, blocks={self.blocks}, "
                f"grid={self.nblocks}{where}{state}>")

    def __len__(self) -> int:
        if not self.ndim:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        if not self.ndim:
            raise TypeError("iteration over a 0-d array")
        for i in range(self.shape[0]):
            yield self[i]

    # ------------------------------------------------------------ materialising

    def _materialize(self) -> None:
        if self._tasks is not None:
            return
        prog, leaves = self._program, self._leaves
        assert prog is not None and leaves is not None
        dtype = self._dtype.str if self._dtype.fields is None else self._dtype
        name = self._name
        if leaves and all(isinstance(x, DArray) and x._launch is not None and x._chunks == self._chunks
                          for x in leaves) and launched.enabled():
            # one launch: point k reads block k of every leaf (where the first one is)
            first = leaves[0]._launch
            self._set_launch(launched.launch(launched.fused_point, self._chunks, (prog, self._chunks, dtype),
                                             first.layout, [(x._launch, launched.SAME) for x in leaves], name))
            self._program = self._leaves = None
            return
        out = np.empty(self.nblocks, dtype=object)
        for idx in g.block_indices(self._chunks):
            args, near = _leaf_blocks(leaves, idx, self._chunks)
            out[idx] = api.spawn(ops.fused, prog, g.block_shape(self._chunks, idx), dtype, *args,
                                 options=_opts(name, near=near))
        self._tasks = out
        self._program = self._leaves = None

    def __getstate__(self) -> dict:
        # pickled (an argument of a task, or inside a value): its blocks travel as task
        # handles; the launch does not (a copy's next operations are one task per block)
        state = dict(self.__dict__)
        state["_launch"] = None
        return state

    def _set_launch(self, launch: Any) -> None:
        """This array's blocks are the points of ``launch``, in C order."""
        self._launch = launch
        self._tasks = launched.points(launch, self.nblocks)
        self._owners = np.asarray([launch.layout.rank_of(k) for k in range(launch.n)],
                                  dtype=np.int64).reshape(self.nblocks)

    def _pending(self) -> tuple[tuple, list]:
        """This array as a program over leaves (for fusing into a larger program)."""
        if self._tasks is None:
            assert self._program is not None and self._leaves is not None
            return self._program, self._leaves
        return ("leaf", 0), [self]

    def compute(self) -> "DArray":
        """Start computing this array's blocks now (pending work is otherwise started
        when needed); returns self."""
        self._materialize()
        return self

    persist = compute

    def to_numpy(self, timeout: Optional[float] = None) -> np.ndarray:
        """The whole array on the caller, as a numpy array."""
        tasks = self.tasks
        flat = list(tasks.ravel())
        values = api.fetch(flat, timeout) if flat else []
        if self.ndim == 0:
            return np.asarray(values[0])
        out = np.empty(self.shape, self._dtype)
        for idx, v in zip(g.block_indices(self._chunks), values):
            out[g.block_slices(self._chunks, idx)] = v
        return out

    def __dagmpi_fetch__(self, timeout: Optional[float] = None) -> Any:
        value = self.to_numpy(timeout)
        return value[()] if value.ndim == 0 else value

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        out = self.to_numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    def _scalar(self) -> Any:
        if self.size != 1:
            raise TypeError(f"only arrays of size 1 can be converted to Python scalars (shape {self.shape})")
        return self.to_numpy().reshape(())[()]

    def __float__(self) -> float:
        return float(self._scalar())

    def __int__(self) -> int:
        return int(self._scalar())

    def __complex__(self) -> complex:
        return complex(self._scalar())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        return bool(self._scalar())

    def __index__(self) -> int:
        if not np.issubdtype(self._dtype, np.integer):
            raise TypeError("only integer arrays can be used as an index")
        return operator.index(self._scalar())

    # ------------------------------------------------------------ elementwise

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if kwargs.get("out") is not None:
            raise TypeError(f"{ufunc.__name__}(..., out=) is not supported on DArrays: DArrays are "
                            f"immutable values; assign the result instead")
        if method == "__call__" and ufunc is np.matmul:
            from .linalg import matmul

            return matmul(*inputs)
        if method == "__call__":
            if ufunc.nout != 1:
                return tuple(elementwise(_Nth(ufunc, i), inputs, kwargs) for i in range(ufunc.nout))
            return elementwise(ufunc, inputs, kwargs)
        if method == "reduce" and len(inputs) == 1 and ufunc in _UFUNC_REDUCTIONS:
            axis = kwargs.pop("axis", 0)
            keepdims = kwargs.pop("keepdims", False)
            kwargs.pop("out", None)
            return reduction(inputs[0], _UFUNC_REDUCTIONS[ufunc], axis=axis, keepdims=keepdims, **kwargs)
        return NotImplemented

    def __array_function__(self, func: Callable, types: Iterable[type], args: tuple, kwargs: dict) -> Any:
        impl = _ARRAY_FUNCTIONS.get(func)
        if impl is None:
            return NotImplemented
        return impl(*args, **kwargs)

    def _binary(self, other: Any, ufunc: np.ufunc, reflect: bool = False) -> Any:
        if not _is_operand(other):
            return NotImplemented
        return elementwise(ufunc, (other, self) if reflect else (self, other), {})

    def __add__(self, o: Any) -> Any: return self._binary(o, np.add)
    def __radd__(self, o: Any) -> Any: return self._binary(o, np.add, True)
    def __sub__(self, o: Any) -> Any: return self._binary(o, np.subtract)
    def __rsub__(self, o: Any) -> Any: return self._binary(o, np.subtract, True)
    def __mul__(self, o: Any) -> Any: return self._binary(o, np.multiply)
    def __rmul__(self, o: Any) -> Any: return self._binary(o, np.multiply, True)
    def __truediv__(self, o: Any) -> Any: return self._binary(o, np.true_divide)
    def __rtruediv__(self, o: Any) -> Any: return self._binary(o, np.true_divide, True)
    def __floordiv__(self, o: Any) -> Any: return self._binary(o, np.floor_divide)
    def __rfloordiv__(self, o: Any) -> Any: return self._binary(o, np.floor_divide, True)
    def __mod__(self, o: Any) -> Any: return self._binary(o, np.remainder)
    def __rmod__(self, o: Any) -> Any: return self._binary(o, np.remainder, True)
    def __pow__(self, o: Any) -> Any: return self._binary(o, np.power)
    def __rpow__(self, o: Any) -> Any: return self._binary(o, np.power, True)
    def __and__(self, o: Any) -> Any: return self._binary(o, np.bitwise_and)
    def __rand__(self, o: Any) -> Any: return self._binary(o, np.bitwise_and, True)
    def __or__(self, o: Any) -> Any: return self._binary(o, np.bitwise_or)
    def __ror__(self, o: Any) -> Any: return self._binary(o, np.bitwise_or, True)
    def __xor__(self, o: Any) -> Any: return self._binary(o, np.bitwise_xor)
    def __rxor__(self, o: Any) -> Any: return self._binary(o, np.bitwise_xor, True)
    def __lt__(self, o: Any) -> Any: return self._binary(o, np.less)
    def __le__(self, o: Any) -> Any: return self._binary(o, np.less_equal)
    def __gt__(self, o: Any) -> Any: return self._binary(o, np.greater)
    def __ge__(self, o: Any) -> Any: return self._binary(o, np.greater_equal)
    def __eq__(self, o: Any) -> Any: return self._binary(o, np.equal)  # type: ignore[override]
    def __ne__(self, o: Any) -> Any: return self._binary(o, np.not_equal)  # type: ignore[override]
    def __neg__(self) -> "DArray": return elementwise(np.negative, (self,), {})
    def __pos__(self) -> "DArray": return elementwise(np.positive, (self,), {})
    def __abs__(self) -> "DArray": return elementwise(np.absolute, (self,), {})
    def __invert__(self) -> "DArray": return elementwise(np.invert, (self,), {})

    def __matmul__(self, o: Any) -> "DArray":
        from .linalg import matmul

        return matmul(self, o) if _is_operand(o) else NotImplemented

    def __rmatmul__(self, o: Any) -> "DArray":
        from .linalg import matmul

        return matmul(o, self) if _is_operand(o) else NotImplemented

    def to_device(self, device: str) -> "DArray":
        """The array with its blocks in GPU memory (``"gpu"``: on the ranks with a
        GPU, as CuPy arrays) or in host memory (``"cpu"``: numpy arrays, where they are)."""
        gpu = _device(device)
        if self._device == device:
            return self
        self._materialize()
        src = self._tasks
        owners = _plan(self._chunks, gpu) if gpu else self._owners
        out = np.empty(src.shape, dtype=object)
        for idx in np.ndindex(*src.shape):
            # (move=True: the block arrives in the memory of the task's processor)
            where = scope(prefer=int(owners[idx]), gpu=True) if gpu else scope(near=src[idx])
            out[idx] = api.spawn(ops.copy, src[idx], options=Options(name=f"to_{device}", scope=where))
        arr = DArray(self._chunks, self._dtype, out, owners, name=f"to_{device}")
        arr._device = device
        return arr

    def astype(self, dtype: Any, copy: bool = True) -> "DArray":
        """The array converted to ``dtype`` (fused with the operations around it)."""
        dtype = _dtype(dtype)
        if dtype == self._dtype and not copy:
            return self
        prog, leaves = self._pending()
        return _pending_array(("astype", dtype, prog), leaves, self._chunks, dtype, self._owners, "astype")

    # ------------------------------------------------------------ reductions

    def sum(self, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "sum", axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "prod", axis=axis, dtype=dtype, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "min", axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "max", axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "mean", axis=axis, dtype=dtype, keepdims=keepdims)

    def var(self, axis: Any = None, dtype: Any = None, ddof: float = 0, keepdims: bool = False) -> "DArray":
        return reduction(self, "var", axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof)

    def std(self, axis: Any = None, dtype: Any = None, ddof: float = 0, keepdims: bool = False) -> "DArray":
        return reduction(self, "std", axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof)

    def argmin(self, axis: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "argmin", axis=axis, keepdims=keepdims)

    def argmax(self, axis: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "argmax", axis=axis, keepdims=keepdims)

    def any(self, axis: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "any", axis=axis, keepdims=keepdims)

    def all(self, axis: Any = None, keepdims: bool = False) -> "DArray":
        return reduction(self, "all", axis=axis, keepdims=keepdims)

    # ------------------------------------------------------------ shape

    @property
    def T(self) -> "DArray":
        return self.transpose()

    def transpose(self, *axes: Any) -> "DArray":
        """The array with its axes permuted (reversed by default), block by block."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = tuple(axes[0]) if axes[0] is not None else ()
        perm = tuple(range(self.ndim))[::-1] if not axes else tuple(_axis(a, self.ndim) for a in axes)
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"axes {axes} do not match an array of {self.ndim} dimensions")
        if perm == tuple(range(self.ndim)):
            return self
        src = self.tasks
        out = np.empty(tuple(src.shape[p] for p in perm), dtype=object)
        for idx in np.ndindex(*out.shape):
            old = tuple(idx[perm.index(a)] for a in range(self.ndim))
            out[idx] = api.spawn(ops.transpose, src[old], perm, options=_opts("transpose", near=src[old]))
        owners = None if self._owners is None else np.transpose(self._owners, perm)
        return DArray(tuple(self._chunks[p] for p in perm), self._dtype, out, owners, name="transpose")

    def reshape(self, *shape: Any, blocks: Any = None) -> "DArray":
        """The array with a new shape (row-major order, as numpy).  The result's
        blocks span its trailing axes whole and split the first; each is assembled
        from the input rows that hold its elements."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return reshape(self, shape, blocks=blocks)

    def ravel(self) -> "DArray":
        return reshape(self, (self.size,))

    flatten = ravel

    def rechunk(self, blocks: Any) -> "DArray":
        """The same values in other blocks; each new block is assembled from the
        pieces of the old blocks it overlaps (each piece cut where it lives)."""
        return rechunk(self, g.normalize_chunks(blocks, self.shape, self.itemsize, len(_workers())))

    def map_blocks(self, fn: Callable, *args: Any, dtype: Any = None, **kwargs: Any) -> "DArray":
        return map_blocks(fn, self, *args, dtype=dtype, **kwargs)

    # ------------------------------------------------------------ indexing

    def __getitem__(self, key: Any) -> Any:
        return getitem(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        setitem(self, key, value)


def _ranges(ranks: Sequence[int]) -> str:
    out, start = [], None
    for i, r in enumerate(ranks):
        if start is None:
            start = r
        if i + 1 == len(ranks) or ranks[i + 1] != r + 1:
            out.append(str(start) if start == r else f"{start}-{r}")
            start = None
    return ",".join(out)


def _axis(a: Any, ndim: int) -> int:
    try:
        a = operator.index(a)
    except TypeError:
        raise TypeError(f"axis must be None or an integer, got {a!r}") from None
    if not -ndim <= a < max(ndim, 1):
        raise np.exceptions.AxisError(a, ndim) if hasattr(np, "exceptions") else ValueError(
            f"axis {a} is out of bounds for an array of dimension {ndim}")
    return a % ndim if ndim else 0


class _Nth:
    """Output ``i`` of a ufunc with several outputs, as a one-output callable."""

    def __init__(self, ufunc: np.ufunc, i: int) -> None:
        self.ufunc, self.i = ufunc, i
        self.__name__ = f"{ufunc.__name__}[{i}]"
        self.nin = ufunc.nin

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.ufunc(*args, **kwargs)[self.i]


def _is_operand(x: Any) -> bool:
    return isinstance(x, (DArray, np.ndarray, numbers.Number, np.generic, bool))


# ------------------------------------------------------------------ elementwise

def _pending_array(prog: tuple, leaves: list, chunks: g.Chunks, dtype: Any, owners: Optional[np.ndarray],
                   name: str) -> DArray:
    out = DArray(chunks, dtype, None, owners, prog, leaves, name)
    if ops.count_ops(prog) >= MAX_FUSED_OPS:
        out._materialize()
    return out


def _leaf_blocks(leaves: list, idx: tuple[int, ...], chunks: g.Chunks) -> tuple[list, Optional[Task]]:
    """The inputs of block ``idx`` of a fused program: each leaf's block (a Task), or
    its piece (numpy arrays, broadcast), or the scalar; and the Task to run near."""
    nd = len(chunks)
    args: list[Any] = []
    near: Optional[Task] = None
    best = -1
    for leaf in leaves:
        if isinstance(leaf, DArray):
            off = nd - leaf.ndim
            lidx = tuple(0 if leaf.shape[a] == 1 and chunks[a + off] != (1,) else idx[a + off]
                         for a in range(leaf.ndim))
            t = leaf.tasks[lidx]
            args.append(t)
            size = math.prod(g.block_shape(leaf.chunks, lidx)) * leaf.itemsize
            if size > best:
                near, best = t, size
        else:  # a numpy array: its piece for this block travels with the task
            arr = leaf
            off = nd - arr.ndim
            key = []
            for a in range(arr.ndim):
                if arr.shape[a] == 1:
                    key.append(slice(None))
                else:
                    start = sum(chunks[a + off][:idx[a + off]])
                    key.append(slice(start, start + chunks[a + off][idx[a + off]]))
            args.append(np.ascontiguousarray(arr[tuple(key)]))
    return args, near


def _result_dtype(fn: Any, samples: list) -> np.dtype:
    try:
        with np.errstate(all="ignore"):
            out = fn(*samples)
    except TypeError as exc:
        kinds = ", ".join(str(s.dtype) if hasattr(s, "dtype") else type(s).__name__ for s in samples)
        raise TypeError(f"{getattr(fn, '__name__', fn)} cannot be applied to ({kinds}): {exc}") from None
    return np.asarray(out).dtype


def _sample(x: Any) -> Any:
    if isinstance(x, DArray):
        return np.zeros(1, x.dtype)
    if isinstance(x, np.ndarray):
        return np.zeros(1, x.dtype)
    return x


def _align(operands: Sequence[Any], what: str) -> tuple[g.Chunks, list[Any], Optional[np.ndarray]]:
    """The result's chunks and the operands made to fit them: numpy's broadcasting of
    the shapes, DArrays rechunked where their blocks differ from the result's."""
    shapes = [tuple(x.shape) for x in operands if isinstance(x, (DArray, np.ndarray))]
    shape = g.broadcast_shapes(*shapes) if shapes else ()
    nd = len(shape)
    chunks: list[Optional[tuple[int, ...]]] = [None] * nd
    owners = None
    for x in operands:
        if isinstance(x, DArray):
            off = nd - x.ndim
            for a in range(x.ndim):
                if chunks[a + off] is None and x.shape[a] == shape[a + off] and (shape[a + off] != 1 or x.ndim == nd):
                    chunks[a + off] = x.chunks[a]
            if owners is None and x.ndim == nd and x._owners is not None:
                owners = x._owners
    full = tuple(c if c is not None else (shape[a],) for a, c in enumerate(chunks))
    out = []
    for x in operands:
        if isinstance(x, DArray):
            off = nd - x.ndim
            want = tuple(full[a + off] if x.shape[a] != 1 or shape[a + off] == 1 else (1,)
                         for a in range(x.ndim))
            if want != x.chunks:
                x = rechunk(x, want)
        elif isinstance(x, np.ndarray) and x.ndim == 0:
            x = x[()]
        out.append(x)
    if owners is not None and owners.shape != g.nblocks(full):
        owners = None
    return full, out, owners


def elementwise(fn: Any, inputs: Sequence[Any], kwargs: dict) -> DArray:
    """``fn`` (a ufunc, or any elementwise function of numpy arrays) over DArrays,
    numpy arrays and scalars, with numpy's broadcasting: a pending array whose
    program is fused with its inputs' pending programs."""
    inputs = [np.asarray(x) if isinstance(x, (list, tuple)) else x for x in inputs]
    bad = [type(x).__name__ for x in inputs if not _is_operand(x)]
    if bad:
        raise TypeError(f"{getattr(fn, '__name__', fn)}: unsupported operand type(s) {', '.join(bad)} with a DArray")
    if isinstance(fn, np.ufunc) or isinstance(fn, _Nth):
        if kwargs.get("where", True) is not True:
            raise TypeError(f"{fn.__name__}(..., where=) is not supported on DArrays; use da.where")
        kwargs = {k: v for k, v in kwargs.items() if k != "where"}
        dtype_kw = kwargs.get("dtype")
        dtype = _result_dtype(lambda *s: fn(*s, **kwargs), [_sample(x) for x in inputs])
        if dtype_kw is not None:
            dtype = np.dtype(dtype_kw)
    else:
        dtype = _result_dtype(fn, [_sample(x) for x in inputs])
    chunks, operands, owners = _align(inputs, getattr(fn, "__name__", "elementwise"))
    leaves: list = []
    children = []
    for x in operands:
        if isinstance(x, DArray):
            prog, sub = x._pending()
            children.append(_shift(prog, len(leaves)))
            leaves.extend(sub)
        elif isinstance(x, np.ndarray):
            children.append(("leaf", len(leaves)))
            leaves.append(x)
        else:
            children.append(("const", x))
    if fn is np.where:
        prog = ("where", *children)
    else:
        prog = ("ufunc", fn, tuple(sorted(kwargs.items())), *children)
    leaves, prog = _dedup(leaves, prog)
    name = getattr(fn, "__name__", "elementwise")
    out = _pending_array(prog, leaves, chunks, dtype, owners, name)
    known = {x._device for x in operands if isinstance(x, DArray)}
    if len(known) == 1:  # (the blocks stay where the operands' are)
        out._device = known.pop()
    return out


def _shift(prog: tuple, by: int) -> tuple:
    if not by:
        return prog
    kind = prog[0]
    if kind == "leaf":
        return ("leaf", prog[1] + by)
    if kind == "const":
        return prog
    if kind in ("ufunc", "call"):
        return prog[:3] + tuple(_shift(c, by) for c in prog[3:])
    if kind == "astype":
        return (kind, prog[1], _shift(prog[2], by))
    return (kind, *(_shift(c, by) for c in prog[1:]))


def _dedup(leaves: list, prog: tuple) -> tuple[list, tuple]:
    """One leaf per distinct input (``A * A`` reads A's block once)."""
    keep: list = []
    remap: dict[int, int] = {}
    for i, leaf in enumerate(leaves):
        for j, k in enumerate(keep):
            if k is leaf:
                remap[i] = j
                break
        else:
            remap[i] = len(keep)
            keep.append(leaf)

    def walk(p: tuple) -> tuple:
        kind = p[0]
        if kind == "leaf":
            return ("leaf", remap[p[1]])
        if kind == "const":
            return p
        if kind in ("ufunc", "call"):
            return p[:3] + tuple(walk(c) for c in p[3:])
        if kind == "astype":
            return (kind, p[1], walk(p[2]))
        return (kind, *(walk(c) for c in p[1:]))

    return keep, walk(prog)


def where(condition: Any, x: Any = None, y: Any = None) -> DArray:
    """``numpy.where(condition, x, y)`` block by block (fused)."""
    if x is None or y is None:
        raise TypeError("da.where needs condition, x and y (the one-argument form, nonzero indices, "
                        "is not a blockwise operation; use np.nonzero(A.to_numpy()))")
    return elementwise(np.where, (condition, x, y), {})


def map_blocks(fn: Callable, *args: Any, dtype: Any = None, name: Optional[str] = None, **kwargs: Any) -> DArray:
    """``fn`` applied to every block of the DArray arguments (aligned as in elementwise
    operations; other arguments are passed as they are).  ``fn`` must return a
    block of the same shape.  ``dtype``: the result's (else found by calling ``fn``
    on tiny blocks)."""
    if not callable(fn):
        raise TypeError(f"map_blocks needs a function as its first argument, got {type(fn).__name__}")
    arrays = [a for a in args if isinstance(a, DArray)]
    if not arrays:
        raise TypeError("map_blocks needs at least one DArray argument")
    if dtype is None:
        samples = [np.zeros((1,) * a.ndim, a.dtype) if isinstance(a, DArray) else a for a in args]
        try:
            dtype = np.asarray(fn(*samples, **kwargs)).dtype
        except Exception as exc:
            raise TypeError(f"map_blocks could not find the result dtype by calling "
                            f"{getattr(fn, '__name__', fn)} on a tiny block ({type(exc).__name__}: {exc}); "
                            f"pass dtype=") from None
    dtype = _dtype(dtype)
    chunks, operands, owners = _align([a for a in args if isinstance(a, DArray)], "map_blocks")
    it = iter(operands)
    leaves: list = []
    children = []
    for a in args:
        if isinstance(a, DArray):
            x = next(it)
            prog, sub = x._pending()
            children.append(_shift(prog, len(leaves)))
            leaves.extend(sub)
        else:
            children.append(("const", a))
    prog = ("call", fn, tuple(sorted(kwargs.items())), *children)
    leaves, prog = _dedup(leaves, prog)
    out = DArray(chunks, dtype, None, owners, prog, leaves, name or getattr(fn, "__name__", "map_blocks"))
    return out


# ------------------------------------------------------------------ reductions

_UFUNC_REDUCTIONS = {np.add: "sum", np.multiply: "prod", np.minimum: "min", np.maximum: "max",
                     np.logical_or: "any", np.logical_and: "all"}

#: Partial results combined per tree node.
FAN_IN = 8


def reduction(a: DArray, kind: str, axis: Any = None, dtype: Any = None, keepdims: bool = False,
              ddof: float = 0, out: Any = None) -> DArray:
    """A reduction (``sum``, ``prod``, ``min``, ``max``, ``mean``, ``var``, ``std``,
    ``argmin``, ``argmax``, ``any``, ``all``) over all elements or one axis: one
    partial per block computed where the block is (fused with a pending program),
    combined in a tree of ``FAN_IN``; the result is a DArray (0-d for
    ``axis=None``)."""
    if out is not None:
        raise TypeError(f"{kind}(..., out=) is not supported on DArrays")
    if not isinstance(a, DArray):
        a = from_numpy(np.asarray(a))
    if isinstance(axis, (tuple, list)):
        if len(axis) == 1:
            axis = axis[0]
        elif sorted(_axis(x, a.ndim) for x in axis) == list(range(a.ndim)) and kind not in ("argmin", "argmax"):
            axis = None
        else:
            raise TypeError(f"{kind}: axis must be None or one integer on a DArray, got {axis!r}")
    ax = None if axis is None else _axis(axis, a.ndim)
    if a.ndim == 0:
        ax = None
    sample = np.zeros((1,) * max(a.ndim, 1), a.dtype)
    with np.errstate(all="ignore"):
        if kind in ("sum", "prod"):
            res_dtype = getattr(np, kind)(sample, dtype=dtype).dtype
            info: tuple = (res_dtype, res_dtype)
        elif kind == "mean":
            res_dtype = np.mean(sample, dtype=dtype).dtype
            acc = np.dtype(dtype) if dtype is not None else (np.dtype(np.float64) if not np.issubdtype(
                a.dtype, np.inexact) else a.dtype)
            info = (acc, res_dtype)
        elif kind in ("var", "std"):
            res_dtype = getattr(np, kind)(sample, dtype=dtype).dtype
            acc = np.dtype(dtype) if dtype is not None else (np.dtype(np.float64) if not np.issubdtype(
                a.dtype, np.inexact) else a.dtype)
            info = (acc, res_dtype)
        elif kind in ("min", "max", "any", "all"):
            res_dtype = getattr(np, kind)(sample).dtype
            info = (res_dtype,)
        elif kind in ("argmin", "argmax"):
            res_dtype = np.dtype(np.intp)
            info = (None, res_dtype)
        else:
            raise ValueError(f"unknown reduction {kind!r}")
    if a.size == 0 and kind in ("min", "max", "argmin", "argmax") and (ax is None or a.shape[ax] == 0):
        raise ValueError(f"zero-size array to reduction operation {kind} which has no identity")
    prog, leaves = a._pending()
    direct = a._tasks is not None
    chunks = a.chunks
    reduced = tuple(range(a.ndim)) if ax is None else (ax,)
    if a.ndim and all(isinstance(x, DArray) and x._launch is not None and x._chunks == chunks for x in leaves) \
            and launched.enabled():
        return _launched_reduction(a, kind, ax, info, res_dtype, keepdims, ddof, None if direct else prog, leaves)
    groups: dict[tuple[int, ...], list] = {}
    sdtype = a.dtype.str if a.dtype.fields is None else a.dtype
    for idx in g.block_indices(chunks):
        bshape = g.block_shape(chunks, idx)
        if kind in ("argmin", "argmax"):
            binfo = (tuple(sum(c[:i]) for c, i in zip(chunks, idx)), a.shape)
        else:
            binfo = info
        if direct:
            t = a._tasks[idx]
            part = api.spawn(ops.partial, kind, ax, binfo, None, bshape, sdtype, t,
                             options=_opts(f"{kind}-partial", near=t))
        else:
            args, near = _leaf_blocks(leaves, idx, chunks)
            part = api.spawn(ops.partial, kind, ax, binfo, prog, bshape, sdtype, *args,
                             options=_opts(f"{kind}-partial", near=near))
        key = tuple(0 if d in reduced else i for d, i in enumerate(idx))
        groups.setdefault(key, []).append(part)
    keep = (bool(keepdims), reduced)
    out_chunks = tuple((1,) if d in reduced else c for d, c in enumerate(chunks))
    out_grid = g.nblocks(out_chunks)
    tasks = np.empty(out_grid, dtype=object)
    for key, parts in groups.items():
        while len(parts) > FAN_IN:
            parts = [api.spawn(ops.combine, kind, False, info, keep, ddof, *parts[i:i + FAN_IN],
                               options=_opts(f"{kind}-combine", near=parts[i]))
                     for i in range(0, len(parts), FAN_IN)]
        tasks[key] = api.spawn(ops.combine, kind, True, info, keep, ddof, *parts,
                               options=_opts(f"{kind}", near=parts[0]))
    owners = None
    if a._owners is not None and a._owners.shape == a.nblocks:
        owners = a._owners[tuple(slice(0, 1) if d in reduced else slice(None) for d in range(a.ndim))]
    if not keepdims:
        out_chunks = tuple(c for d, c in enumerate(out_chunks) if d not in reduced)
        tasks = tasks.reshape(g.nblocks(out_chunks))
        if owners is not None:
            owners = owners.reshape(g.nblocks(out_chunks))
    return DArray(out_chunks, res_dtype, tasks, owners, name=kind)


def _launched_reduction(a: DArray, kind: str, ax: Optional[int], info: tuple, res_dtype: Any, keepdims: bool,
                        ddof: float, prog: Optional[tuple], leaves: list) -> DArray:
    """:func:`reduction` of launched blocks as two launches: every block's partial where
    the block is, then every block of the result from the partials of its blocks (all
    of them for ``axis=None``, else those along the axis)."""
    chunks = a.chunks
    grid = g.nblocks(chunks)
    sdtype = a.dtype.str if a.dtype.fields is None else a.dtype
    first = leaves[0]._launch
    shape = a.shape if kind in ("argmin", "argmax") else None
    parts = launched.launch(launched.partial_point, chunks, (kind, ax, info, prog, chunks, sdtype, shape),
                            first.layout, [(x._launch, launched.SAME) for x in leaves], f"{kind}-partial")
    reduced = tuple(range(a.ndim)) if ax is None else (ax,)
    out_chunks = tuple((1,) if d in reduced else c for d, c in enumerate(chunks))
    out_grid = g.nblocks(out_chunks)
    if ax is None:
        proj = launched.Projection("all")
    else:
        offsets = tuple(tuple(j if d == ax else 0 for d in range(a.ndim)) for j in range(grid[ax]))
        proj = launched.Projection("grid", (out_grid, offsets, (False,) * a.ndim, grid))
    # each block of the result where the first of its blocks is
    owners = np.asarray([first.layout.rank_of(int(np.ravel_multi_index(idx, grid)))
                         for idx in np.ndindex(*out_grid)], dtype=np.int64).reshape(out_grid)
    keep = (bool(keepdims), reduced)
    if not keepdims:
        out_chunks = tuple(c for d, c in enumerate(out_chunks) if d not in reduced)
    out = DArray(out_chunks, res_dtype, None, None, name=kind)
    out._set_launch(launched.launch(launched.combine_point, out_chunks, (kind, info, keep, ddof),
                                    launched.layout_of(owners), [(parts, proj)], kind))
    return out


# ------------------------------------------------------------------ creation

def _plan(chunks: g.Chunks, gpu: bool = False) -> np.ndarray:
    return g.owners(g.nblocks(chunks), _gpu_workers() if gpu else _workers())


def _create(shape: Any, blocks: Any, dtype: Any, make: Callable[[tuple[int, ...], tuple[int, ...]], tuple],
            name: str, device: str = "cpu", launch: bool = True) -> DArray:
    """A new array: ``make(idx, block shape)`` gives ``(function, *args)`` of each
    block's task, which runs on the block's planned owner.  ``device="gpu"``: the
    owners are the ranks with a GPU, and each block is put in its GPU's memory.
    ``launch``: one launch of all blocks may run ``make`` on the workers (not when
    its arguments carry the data: ``from_numpy``)."""
    gpu = _device(device)
    shape = g.normalize_shape(shape)
    dtype = _dtype(dtype)
    chunks = g.normalize_chunks(blocks, shape, dtype.itemsize, len(_gpu_workers() if gpu else _workers()))
    owners = _plan(chunks, gpu)
    if launch and len(chunks) and launched.enabled(gpu):
        out = DArray(chunks, dtype, None, owners, name=name)
        out._set_launch(launched.launch(launched.create_point, chunks, (chunks, make), launched.layout_of(owners),
                                        name=name))
        out._device = device
        return out
    tasks = np.empty(g.nblocks(chunks), dtype=object)
    for idx in g.block_indices(chunks):
        fn, *args = make(idx, g.block_shape(chunks, idx))
        if gpu:
            fn, args = ops.on_gpu, [fn, *args]
        tasks[idx] = api.spawn(fn, *args, options=_opts(name, prefer=owners[idx], gpu=gpu))
    out = DArray(chunks, dtype, tasks, owners, name=name)
    out._device = device
    return out


def full(shape: Any, fill_value: Any, blocks: Any = "auto", dtype: Any = None, device: str = "cpu") -> DArray:
    """An array of ``shape`` filled with ``fill_value``; ``device="gpu"``: its
    blocks are CuPy arrays on the GPU ranks (so are the results of operations on it)."""
    dtype = np.asarray(fill_value).dtype if dtype is None else _dtype(dtype)
    return _create(shape, blocks, dtype, lambda idx, bs: (ops.full, bs, fill_value, dtype.str), "full", device)


def zeros(shape: Any, blocks: Any = "auto", dtype: Any = float, device: str = "cpu") -> DArray:
    """An array of zeros (``device``: see :func:`full`)."""
    return full(shape, 0, blocks, _dtype(dtype), device)


def ones(shape: Any, blocks: Any = "auto", dtype: Any = float, device: str = "cpu") -> DArray:
    """An array of ones (``device``: see :func:`full`)."""
    return full(shape, 1, blocks, _dtype(dtype), device)


def empty(shape: Any, blocks: Any = "auto", dtype: Any = float, device: str = "cpu") -> DArray:
    """An uninitialised array (each block is ``numpy.empty``; ``device``: see :func:`full`)."""
    dtype = _dtype(dtype)
    return _create(shape, blocks, dtype, lambda idx, bs: (ops.empty, bs, dtype.str), "empty", device)


def zeros_like(a: Any, dtype: Any = None, blocks: Any = None, device: str = "cpu") -> DArray:
    return full(a.shape, 0, blocks or getattr(a, "chunks", "auto"), dtype or a.dtype, device)


def ones_like(a: Any, dtype: Any = None, blocks: Any = None, device: str = "cpu") -> DArray:
    return full(a.shape, 1, blocks or getattr(a, "chunks", "auto"), dtype or a.dtype, device)


def full_like(a: Any, fill_value: Any, dtype: Any = None, blocks: Any = None, device: str = "cpu") -> DArray:
    return full(a.shape, fill_value, blocks or getattr(a, "chunks", "auto"), dtype or a.dtype, device)


def empty_like(a: Any, dtype: Any = None, blocks: Any = None, device: str = "cpu") -> DArray:
    return empty(a.shape, blocks or getattr(a, "chunks", "auto"), dtype or a.dtype, device)


def arange(start: Any, stop: Any = None, step: Any = 1, blocks: Any = "auto", dtype: Any = None) -> DArray:
    """``numpy.arange`` as a 1-D DArray."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ValueError("arange: step must not be zero")
    n = max(0, math.ceil((stop - start) / step))
    dtype = np.arange(start, start + step, step).dtype if dtype is None else _dtype(dtype)
    chunks = g.normalize_chunks(blocks, (n,), dtype.itemsize, len(_workers()))
    offs = g.offsets(chunks[0])

    def make(idx: tuple[int, ...], bs: tuple[int, ...]) -> tuple:
        return (ops.arange, start + step * offs[idx[0]], step, bs[0], dtype.str)

    return _create((n,), chunks, dtype, make, "arange")


def eye(N: int, M: Optional[int] = None, k: int = 0, blocks: Any = "auto", dtype: Any = float) -> DArray:
    """A 2-D array with ones on the ``k``-th diagonal."""
    M = N if M is None else M
    dtype = _dtype(dtype)
    chunks = g.normalize_chunks(blocks, (N, M), dtype.itemsize, len(_workers()))
    o0, o1 = g.offsets(chunks[0]), g.offsets(chunks[1])
    return _create((N, M), chunks, dtype,
                   lambda idx, bs: (ops.eye, bs, o0[idx[0]], o1[idx[1]], k, dtype.str), "eye")


def from_numpy(x: Any, blocks: Any = "auto", device: str = "cpu") -> DArray:
    """A DArray holding a copy of ``x``: each block goes from the caller to its
    owner (``device="gpu"``: to the memory of its GPU, see :func:`full`)."""
    x = np.asarray(x)
    gpu = _device(device)
    chunks = g.normalize_chunks(blocks, x.shape, x.dtype.itemsize, len(_gpu_workers() if gpu else _workers()))

    def make(idx: tuple[int, ...], bs: tuple[int, ...]) -> tuple:
        return (ops.copy, np.ascontiguousarray(x[g.block_slices(chunks, idx)]))

    if x.ndim == 0:
        owners = _plan((), gpu)
        fn, args = (ops.on_gpu, (ops.copy, x.copy())) if gpu else (ops.copy, (x.copy(),))
        t = api.spawn(fn, *args, options=_opts("from_numpy", prefer=owners[()], gpu=gpu))
        tasks = np.empty((), dtype=object)
        tasks[()] = t
        out = DArray((), x.dtype, tasks, owners, name="from_numpy")
        out._device = device
        return out
    return _create(x.shape, chunks, x.dtype, make, "from_numpy", device, launch=False)


def asarray(x: Any, blocks: Any = "auto", device: str = "cpu") -> DArray:
    """``x`` if it is a DArray, else :func:`from_numpy`."""
    return x if isinstance(x, DArray) else from_numpy(x, blocks, device)


def fromfunction(fn: Callable, shape: Any, blocks: Any = "auto", dtype: Any = float, device: str = "cpu",
                 **kwargs: Any) -> DArray:
    """``numpy.fromfunction``: ``fn`` gets the coordinate arrays of each block
    (global coordinates) and returns its values (``device``: see :func:`full`)."""
    shape = g.normalize_shape(shape)
    dtype = _dtype(dtype)
    chunks = g.normalize_chunks(blocks, shape, dtype.itemsize,
                                len(_gpu_workers() if _device(device) else _workers()))
    try:
        sample = np.asarray(fn(*(np.zeros((1,) * len(shape), dtype) for _ in shape), **kwargs))
    except Exception as exc:
        raise TypeError(f"fromfunction: calling {getattr(fn, '__name__', fn)} on sample coordinates "
                        f"failed ({type(exc).__name__}: {exc})") from None

    def make(idx: tuple[int, ...], bs: tuple[int, ...]) -> tuple:
        offs = tuple(sum(c[:i]) for c, i in zip(chunks, idx))
        return (ops.fromfunction, fn, bs, offs, dtype.str, kwargs)

    return _create(shape, chunks, sample.dtype, make, "fromfunction", device)


# ------------------------------------------------------------------ blocks and pieces

def _piece(a: DArray, idx: tuple[int, ...], key: tuple) -> Task:
    """The part ``key`` of block ``idx``, cut where the block lives (the whole block
    when ``key`` covers it)."""
    t = a.tasks[idx]
    bshape = g.block_shape(a.chunks, idx)
    if all(isinstance(k, slice) and k.indices(n) == (0, n, 1) for k, n in zip(key, bshape)) and len(key) == len(bshape):
        return t
    return api.spawn(ops.cut, t, key, options=_opts("cut", near=t))


def _box(a: DArray, box: tuple[slice, ...]) -> Task:
    """One task whose value is ``a[box]`` (unit-step slices), assembled from the pieces
    of the blocks it overlaps (each cut where it lives)."""
    pieces = g.box_pieces(a.chunks, box)
    if len(pieces) == 1:
        idx, inner, _ = pieces[0]
        return _piece(a, idx, inner)
    shape = tuple(s.stop - s.start for s in box)
    tasks, where = [], []
    biggest, best = None, -1
    for idx, inner, dest in pieces:
        t = _piece(a, idx, inner)
        tasks.append(t)
        where.append(dest)
        size = math.prod(s.stop - s.start for s in inner)
        if size > best:
            biggest, best = a.tasks[idx], size
    return api.spawn(ops.assemble, shape, a.dtype.str, tuple(where), *tasks, options=_opts("assemble", near=biggest))


def rechunk(a: DArray, chunks: g.Chunks) -> DArray:
    """``a`` with blocks ``chunks``."""
    chunks = tuple(tuple(c) for c in chunks)
    if len(chunks) != a.ndim or any(sum(c) != n for c, n in zip(chunks, a.shape)):
        raise ValueError(f"chunks {chunks} do not fit an array of shape {a.shape}")
    if chunks == a.chunks:
        return a
    tasks = np.empty(g.nblocks(chunks), dtype=object)
    for idx in g.block_indices(chunks):
        tasks[idx] = _box(a, g.block_slices(chunks, idx))
    return DArray(chunks, a.dtype, tasks, None, name="rechunk")


def getitem(a: DArray, key: Any) -> Any:
    """Basic indexing: integers, slices (any step), ``...`` and ``None``.  All-integer
    keys give the element; otherwise a DArray of pieces cut where the blocks are."""
    if isinstance(key, DArray) or isinstance(key, np.ndarray) and key.dtype == bool:
        raise IndexError("boolean-mask indexing is not supported on a DArray (its result's shape is "
                         "data-dependent); use da.where(mask, A, fill) or A.to_numpy()[mask]")
    norm = g.normalize_index(key, a.shape)
    real = [k for k in norm if k is not None]
    if len(real) == a.ndim and all(isinstance(k, int) for k in real) and None not in norm:
        if a.ndim == 0:
            return a.to_numpy()[()]
        where = [g.locate(c, i) for c, i in zip(a.chunks, real)]
        t = a.tasks[tuple(b for b, _ in where)]
        return api.fetch(api.spawn(ops.scalar_at, t, tuple(o for _, o in where), options=_opts("getitem", near=t)))
    # per input axis: list of (block, local key, length) pieces; ints drop the axis
    per_axis: list = []
    out_chunks: list = []
    ax = 0
    plan: list = []  # for each output axis: ("new",) or ("axis", input axis)
    for k in norm:
        if k is None:
            plan.append(("new",))
            out_chunks.append((1,))
            continue
        sizes = a.chunks[ax]
        if isinstance(k, int):
            b, off = g.locate(sizes, k)
            per_axis.append([(b, off, None)])
        else:
            pieces = g.slice_axis(sizes, k)
            per_axis.append(pieces)
            plan.append(("axis", ax))
            out_chunks.append(tuple(p[2] for p in pieces) if pieces else (0,))
        ax += 1
    out_shape = tuple(sum(c) for c in out_chunks)
    if any(n == 0 for n in out_shape):
        return full(out_shape, 0, tuple(out_chunks), a.dtype)
    if all(isinstance(k, slice) and k == slice(None) for k in norm) and a._tasks is not None:
        return a
    src = a.tasks
    out_grid = tuple(len(c) for c in out_chunks)
    tasks = np.empty(out_grid, dtype=object)
    slice_axes = [i for i, p in enumerate(per_axis) if p and p[0][2] is not None]
    import itertools
    for combo in itertools.product(*(range(len(p)) for p in per_axis)):
        pieces = [per_axis[i][j] for i, j in enumerate(combo)]
        idx = tuple(p[0] for p in pieces)
        local = tuple(p[1] for p in pieces)
        # insert new axes
        sel: list = []
        it = iter(local)
        for k in norm:
            sel.append(None if k is None else next(it))
        sel_t = tuple(sel)
        t = src[idx]
        bshape = g.block_shape(a.chunks, idx)
        whole = None not in sel_t and all(isinstance(s, slice) and s.indices(n) == (0, n, 1)
                                          for s, n in zip(sel_t, bshape))
        out_idx_axes = [combo[i] for i in slice_axes]
        oidx = []
        it2 = iter(out_idx_axes)
        for p in plan:
            oidx.append(0 if p[0] == "new" else next(it2))
        tasks[tuple(oidx)] = t if whole else api.spawn(ops.cut, t, sel_t, options=_opts("getitem", near=t))
    return DArray(tuple(out_chunks), a.dtype, tasks, None, name="getitem")


def setitem(a: DArray, key: Any, value: Any) -> None:
    """``a[key] = value`` for basic keys: the blocks it touches get new versions
    (copies with the piece written, made where they live); arrays that share the old
    blocks keep them."""
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not _is_operand(value):
        raise TypeError(f"cannot assign a {type(value).__name__} to a DArray region")
    norm = [k for k in g.normalize_index(key, a.shape) if k is not None]
    region_shape = []
    per_axis = []
    for ax, k in enumerate(norm):
        sizes = a.chunks[ax]
        if isinstance(k, int):
            b, off = g.locate(sizes, k)
            per_axis.append([(b, off, None, 0)])
        else:
            pieces = g.slice_axis(sizes, k)
            pos = 0
            items = []
            for b, loc, n in pieces:
                items.append((b, loc, n, pos))
                pos += n
            per_axis.append(items)
            region_shape.append(pos)
    region_shape_t = tuple(region_shape)
    vshape = tuple(getattr(value, "shape", ()))
    try:
        np.broadcast_shapes(vshape, region_shape_t)
        if len(vshape) > len(region_shape_t) and any(n != 1 for n in vshape[:len(vshape) - len(region_shape_t)]):
            raise ValueError
    except ValueError:
        raise ValueError(f"could not broadcast input array from shape {vshape} into shape {region_shape_t}") from None
    if any(n == 0 for n in region_shape_t):
        return
    if isinstance(value, np.ndarray):
        value = np.broadcast_to(value.astype(a.dtype, copy=False), region_shape_t)
    elif isinstance(value, DArray):
        if value.shape != region_shape_t:
            value = broadcast_to(value.reshape(vshape[len(vshape) - len(region_shape_t):])
                                 if len(vshape) > len(region_shape_t) else value, region_shape_t)
        value = value.astype(a.dtype, copy=False)
    src = a.tasks.copy()
    import itertools
    for combo in itertools.product(*per_axis):
        idx = tuple(c[0] for c in combo)
        local = tuple(c[1] for c in combo)
        vkey = tuple(slice(c[3], c[3] + c[2]) for c in combo if c[2] is not None)
        t = src[idx]
        if isinstance(value, DArray):
            box = tuple(slice(s.start, s.stop) for s in vkey)
            piece: Any = _box(value, box) if value.ndim else value.tasks[()]
        elif isinstance(value, np.ndarray):
            piece = np.ascontiguousarray(value[vkey]) if value.ndim else value[()]
        else:
            piece = value
        src[idx] = api.spawn(ops.assign, t, local, piece, options=_opts("setitem", near=t))
    a._tasks = src
    a._launch = None  # (its blocks are no longer all the points of one launch)


def reshape(a: DArray, shape: Any, blocks: Any = None) -> DArray:
    """``a`` reshaped in row-major order (see :meth:`DArray.reshape`)."""
    shape = list(shape if not isinstance(shape, (int, np.integer)) else (shape,))
    if shape.count(-1) > 1:
        raise ValueError("can only specify one unknown dimension")
    if -1 in shape:
        known = math.prod(n for n in shape if n != -1)
        if known == 0 or a.size % known:
            raise ValueError(f"cannot reshape array of size {a.size} into shape {tuple(shape)}")
        shape[shape.index(-1)] = a.size // known
    out_shape = g.normalize_shape(tuple(shape))
    if math.prod(out_shape) != a.size:
        raise ValueError(f"cannot reshape array of size {a.size} into shape {out_shape}")
    if out_shape == a.shape:
        return a
    if not out_shape or a.ndim == 0:
        return from_numpy(a.to_numpy().reshape(out_shape))
    trail = math.prod(out_shape[1:])
    in_trail = math.prod(a.shape[1:]) if a.ndim > 1 else 1
    if blocks is None:
        per_block = max(1, math.prod(a.blocks) // max(1, trail))
        out_chunks = (g.regular(out_shape[0], per_block),) + tuple((n,) for n in out_shape[1:])
    else:
        out_chunks = g.normalize_chunks(blocks, out_shape, a.itemsize, len(_workers()))
        if any(len(c) != 1 for c in out_chunks[1:]):
            raise ValueError("reshape(blocks=...): the result's blocks must span its trailing axes whole")
    tasks = np.empty(g.nblocks(out_chunks), dtype=object)
    offs = g.offsets(out_chunks[0])
    for i, rows in enumerate(out_chunks[0]):
        e0, e1 = offs[i] * trail, (offs[i] + rows) * trail
        r0, r1 = e0 // in_trail, -(-e1 // in_trail)
        box = (slice(r0, r1),) + tuple(slice(0, n) for n in a.shape[1:])
        piece = _box(a, box)
        bshape = (rows,) + tuple(out_shape[1:])
        tasks[(i,) + (0,) * (len(out_shape) - 1)] = api.spawn(
            ops.reshape_rows, bshape, e0 - r0 * in_trail, e1 - r0 * in_trail, piece,
            options=_opts("reshape", near=piece))
    return DArray(out_chunks, a.dtype, tasks, None, name="reshape")


def broadcast_to(x: Any, shape: Any) -> DArray:
    """``x`` broadcast to ``shape`` (numpy's rules), block by block."""
    x = asarray(x)
    shape = g.normalize_shape(shape)
    if g.broadcast_shapes(x.shape, shape) != shape or x.ndim > len(shape):
        raise ValueError(f"cannot broadcast an array of shape {x.shape} to shape {shape}")
    if x.shape == shape:
        return x
    nd, off = len(shape), len(shape) - x.ndim
    kept = math.prod(x.blocks[a - off] for a in range(off, nd) if x.shape[a - off] == shape[a]) * x.itemsize
    per = max(1, g.AUTO_BLOCK_BYTES // max(1, kept))
    chunks = tuple(x.chunks[a - off] if a >= off and x.shape[a - off] == shape[a] else g.regular(shape[a], per)
                   for a in range(nd))
    prog, leaves = x._pending()
    return _pending_array(("astype", x.dtype, prog), leaves, chunks, x.dtype, None, "broadcast_to")


def concatenate(arrays: Sequence[Any], axis: int = 0) -> DArray:
    """Join arrays along an existing axis: the result's blocks are the inputs'
    blocks (nothing moves)."""
    arrays = [asarray(x) for x in arrays]
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    nd = arrays[0].ndim
    if nd == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    if any(x.ndim != nd for x in arrays):
        raise ValueError("all the input arrays must have the same number of dimensions, got "
                         + ", ".join(str(x.shape) for x in arrays))
    axis = _axis(axis, nd)
    for x in arrays[1:]:
        for d in range(nd):
            if d != axis and x.shape[d] != arrays[0].shape[d]:
                raise ValueError(f"all the input array dimensions except for the concatenation axis must "
                                 f"match exactly, but along dimension {d} the arrays have shapes "
                                 + " and ".join(str(y.shape) for y in arrays))
    dtype = np.result_type(*(x.dtype for x in arrays))
    first = arrays[0]
    parts = []
    for x in arrays:
        if x.dtype != dtype:
            x = x.astype(dtype)
        want = tuple(x.chunks[d] if d == axis else first.chunks[d] for d in range(nd))
        if want != x.chunks:
            x = rechunk(x, want)
        parts.append(x)
    nonempty = [x for x in parts if x.shape[axis]]
    parts = nonempty or parts[:1]
    tasks = np.concatenate([x.tasks for x in parts], axis=axis)
    chunks = tuple(sum((x.chunks[d] for x in parts), ()) if d == axis else first.chunks[d] for d in range(nd))
    owners = None
    if all(x._owners is not None and x._owners.shape == x.nblocks for x in parts):
        owners = np.concatenate([x._owners for x in parts], axis=axis)
        if owners.shape != tasks.shape:
            owners = None
    return DArray(chunks, dtype, tasks, owners, name="concatenate")


def stack(arrays: Sequence[Any], axis: int = 0) -> DArray:
    """Join arrays of one shape along a new axis."""
    arrays = [asarray(x) for x in arrays]
    if not arrays:
        raise ValueError("need at least one array to stack")
    if any(x.shape != arrays[0].shape for x in arrays):
        raise ValueError("all input arrays must have the same shape, got " + ", ".join(str(x.shape) for x in arrays))
    nd = arrays[0].ndim + 1
    axis = _axis(axis, nd)
    first = arrays[0]
    expanded = []
    for x in arrays:
        if x.chunks != first.chunks:
            x = rechunk(x, first.chunks)
        src = x.tasks
        tasks = np.empty(src.shape, dtype=object)
        for idx in np.ndindex(*src.shape):
            tasks[idx] = api.spawn(ops.expand, src[idx], axis, options=_opts("stack", near=src[idx]))
        tasks = np.expand_dims(tasks, axis)
        chunks = first.chunks[:axis] + ((1,),) + first.chunks[axis:]
        owners = None if x._owners is None else np.expand_dims(x._owners, axis)
        expanded.append(DArray(chunks, x.dtype, tasks, owners, name="stack"))
    return concatenate(expanded, axis=axis)


# ------------------------------------------------------------------ numpy functions

def _np_reduction(kind: str) -> Callable:
    def impl(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False,
             ddof: float = 0, **kw: Any) -> Any:
        if kw.get("where", True) is not True or kw.get("initial") is not None:
            raise TypeError(f"np.{kind}(..., where=/initial=) is not supported on DArrays")
        return reduction(asarray(a), kind, axis=axis, dtype=dtype, keepdims=keepdims, ddof=ddof, out=out)
    return impl


def _np_arg(kind: str) -> Callable:
    def impl(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        return reduction(asarray(a), kind, axis=axis, keepdims=keepdims, out=out)
    return impl


def _np_minmax(kind: str) -> Callable:
    def impl(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False, **kw: Any) -> Any:
        if kw.get("where", True) is not True or kw.get("initial") is not None:
            raise TypeError(f"np.{kind}(..., where=/initial=) is not supported on DArrays")
        return reduction(asarray(a), kind, axis=axis, keepdims=keepdims, out=out)
    return impl


_ARRAY_FUNCTIONS: dict[Callable, Callable] = {
    np.sum: _np_reduction("sum"), np.prod: _np_reduction("prod"), np.mean: _np_reduction("mean"),
    np.var: _np_reduction("var"), np.std: _np_reduction("std"),
    np.min: _np_minmax("min"), np.max: _np_minmax("max"), np.amin: _np_minmax("min"),
    np.amax: _np_minmax("max"), np.any: _np_minmax("any"), np.all: _np_minmax("all"),
    np.argmin: _np_arg("argmin"), np.argmax: _np_arg("argmax"),
    np.where: where, np.concatenate: concatenate, np.stack: stack,
    np.transpose: lambda a, axes=None: asarray(a).transpose(axes),
    np.reshape: lambda a, shape=None, order="C", **kw: reshape(asarray(a), kw.get("newshape", shape)),
    np.ravel: lambda a, order="C": asarray(a).ravel(),
    np.shape: lambda a: a.shape, np.ndim: lambda a: a.ndim, np.size: lambda a, axis=None: (
        a.size if axis is None else a.shape[axis]),
    np.zeros_like: lambda a, dtype=None, **kw: zeros_like(a, dtype),
    np.ones_like: lambda a, dtype=None, **kw: ones_like(a, dtype),
    np.full_like: lambda a, fill_value, dtype=None, **kw: full_like(a, fill_value, dtype),
    np.empty_like: lambda a, dtype=None, **kw: empty_like(a, dtype),
    np.broadcast_to: lambda a, shape, subok=False: broadcast_to(a, shape),
    np.matmul: lambda a, b, **kw: __import__("dagmpi.array.linalg", fromlist=["matmul"]).matmul(a, b),
    np.dot: lambda a, b, out=None: __import__("dagmpi.array.linalg", fromlist=["matmul"]).matmul(a, b),
}
