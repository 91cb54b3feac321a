"""The GPU array library of this rank: CuPy, or a simulated GPU.  An edge module:
CuPy is imported here (lazily), nowhere in the runtime.

:func:`get` returns the active :class:`Backend` or ``None`` (no GPU).  It is
CuPy where CuPy sees a usable GPU.  ``DAGMPI_GPU_SIM=1`` selects the *simulated*
GPU instead: device arrays are :class:`SimArray` (a numpy subclass living in host
memory) and every GPU code path of dagmpi runs on the CPU -- staged transfers,
memory-space conversions, GPU placement, GPU kernels written with ``numba.cuda``
under ``NUMBA_ENABLE_CUDASIM=1`` -- the way CI and laptops test GPU programs.

Activating a backend registers its device array type with :mod:`copyreg` and
gives :mod:`dagmpi.serialize` its hooks, so a device array in a task's value
travels as a :class:`~dagmpi.serialize.DeviceBuffer` (its bytes stay on the
GPU until a transfer moves them).
"""

from __future__ import annotations

import copyreg
import os
import threading
from typing import Any, Optional

import numpy as np

from .. import serialize


class SimArray(np.ndarray):
    """An array in the simulated GPU's memory (host memory, marked as device)."""

    def get(self) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get()`` returns."""
        return np.array(self, copy=True).view(np.ndarray)


class Backend:
    """What dagmpi needs from a GPU array library (one device per rank)."""

    name = "none"
    #: The array module of device arrays (``cupy``; ``numpy`` for the simulated GPU).
    xp: Any = np
    device_type: type = SimArray

    def __init__(self, device: int = 0) -> None:
        self.device = device

    # -- arrays
    def is_device(self, x: Any) -> bool:
        """Is ``x`` an array in this backend's GPU memory?"""
        return isinstance(x, self.device_type)

    def to_device(self, x: Any) -> Any:
        """``x`` (a host array) copied to the GPU; device arrays are returned as they are."""
        raise NotImplementedError

    def to_host(self, x: Any) -> np.ndarray:
        """``x`` copied to a host numpy array (host arrays are returned as they are)."""
        raise NotImplementedError

    def empty(self, shape: Any, dtype: Any) -> Any:
        raise NotImplementedError

    def flat_bytes(self, x: Any) -> Any:
        """The bytes of device array ``x`` as a flat ``uint8`` device array (C order; a copy if it is not contiguous)."""
        raise NotImplementedError

    def rebuild(self, data: Any, shape: tuple, dtype: str, order: str) -> Any:
        """The device array of ``shape``/``dtype`` over the flat device bytes ``data``."""
        return data.view(np.dtype(dtype)).reshape(shape, order=order)

    def synchronize(self) -> None:
        """Wait for the work queued on this rank's GPU (before MPI reads its memory)."""

    # -- staging
    def pinned(self, nbytes: int) -> np.ndarray:
        """A page-locked host buffer of ``nbytes`` (``uint8``); freed memory is reused."""
        raise NotImplementedError

    def copy_to_host(self, dst: np.ndarray, src: Any) -> None:
        """Copy flat device bytes ``src`` into host bytes ``dst`` (queued on the stream)."""
        raise NotImplementedError

    def copy_to_device(self, dst: Any, src: np.ndarray) -> None:
        """Copy host bytes ``src`` into flat device bytes ``dst`` (queued on the stream)."""
        raise NotImplementedError

    def memory(self) -> tuple[int, int]:
        """``(free, total)`` bytes of this rank's GPU."""
        raise NotImplementedError

    def use(self) -> None:
        """Make this rank's GPU the calling thread's current device."""


class SimBackend(Backend):
    """The simulated GPU (``DAGMPI_GPU_SIM=1``): device memory is host memory."""

    name = "sim"
    xp = np
    device_type = SimArray

    def __init__(self, device: int = 0, total: Optional[int] = None) -> None:
        super().__init__(device)
        self.total = total if total is not None else int(float(os.environ.get("DAGMPI_GPU_SIM_MEMORY", 16 << 30)))

    def to_device(self, x: Any) -> Any:
        if isinstance(x, SimArray):
            return x
        return np.array(x, copy=True).view(SimArray)

    def to_host(self, x: Any) -> np.ndarray:
        return x.get() if isinstance(x, SimArray) else x

    def empty(self, shape: Any, dtype: Any) -> Any:
        return np.empty(shape, dtype).view(SimArray)

    def flat_bytes(self, x: Any) -> Any:
        return np.ascontiguousarray(x).view(np.ndarray).reshape(-1).view(np.uint8).view(SimArray)

    def rebuild(self, data: Any, shape: tuple, dtype: str, order: str) -> Any:
        return data.view(np.ndarray).view(np.dtype(dtype)).reshape(shape, order=order).view(SimArray)

    def pinned(self, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, np.uint8)

    def copy_to_host(self, dst: np.ndarray, src: Any) -> None:
        dst[...] = src.view(np.ndarray)

    def copy_to_device(self, dst: Any, src: np.ndarray) -> None:
        dst.view(np.ndarray)[...] = src

    def memory(self) -> tuple[int, int]:
        return self.total, self.total


class CupyBackend(Backend):
    """CuPy on this rank's GPU: copies on one non-blocking stream, pinned
    staging memory from CuPy's pinned memory pool (reused across transfers)."""

    name = "cupy"

    def __init__(self, device: int = 0) -> None:
        super().__init__(device)
        import cupy

        self.cp = cupy
        self.xp = cupy
        self.device_type = cupy.ndarray
        self._streams = threading.local()

    def use(self) -> None:
        self.cp.cuda.Device(self.device).use()

    def _stream(self) -> Any:
        s = getattr(self._streams, "s", None)
        if s is None:
            self.use()
            s = self._streams.s = self.cp.cuda.Stream(non_blocking=True)
        return s

    def to_device(self, x: Any) -> Any:
        if isinstance(x, self.cp.ndarray):
            return x
        self.use()
        return self.cp.asarray(x)

    def to_host(self, x: Any) -> np.ndarray:
        return x.get() if isinstance(x, self.cp.ndarray) else x

    def empty(self, shape: Any, dtype: Any) -> Any:
        self.use()
        return self.cp.empty(shape, dtype)

    def flat_bytes(self, x: Any) -> Any:
        return self.cp.ascontiguousarray(x).reshape(-1).view(self.cp.uint8)

    def synchronize(self) -> None:
        self.cp.cuda.Device(self.device).synchronize()  # every stream of the device

    def pinned(self, nbytes: int) -> np.ndarray:
        mem = self.cp.cuda.alloc_pinned_memory(max(1, nbytes))
        return np.frombuffer(mem, np.uint8, nbytes)

    def copy_to_host(self, dst: np.ndarray, src: Any) -> None:
        s = self._stream()
        src.get(stream=s, out=dst)
        s.synchronize()  # (CuPy < 13 returns before the copy has landed)

    def copy_to_device(self, dst: Any, src: np.ndarray) -> None:
        dst.set(src, stream=self._stream())

    def memory(self) -> tuple[int, int]:
        self.use()
        free, total = self.cp.cuda.runtime.memGetInfo()
        return int(free), int(total)


_ACTIVE: Optional[Backend] = None
_LOCK = threading.Lock()


_WORLD_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")


def sim_enabled(environ: Any = None) -> bool:
    """Is the simulated GPU selected for this process?  ``DAGMPI_GPU_SIM=1``: on
    every worker rank; ``DAGMPI_GPU_SIM=2,3``: on those world ranks only (a job
    with GPU and CPU-only ranks)."""
    env = os.environ if environ is None else environ
    v = env.get("DAGMPI_GPU_SIM", "").strip().lower()
    if v in ("", "0", "false", "no", "off"):
        return False
    if v in ("1", "true", "yes", "on", "all"):
        return True
    try:
        ranks = {int(x) for x in v.split(",") if x.strip()}
    except ValueError:
        raise ValueError(f"DAGMPI_GPU_SIM must be 1 (every worker rank) or a comma-separated list of "
                         f"ranks, not {env['DAGMPI_GPU_SIM']!r}") from None
    me = next((env[k] for k in _WORLD_RANK_VARS if env.get(k, "").isdigit()), None)
    return me is not None and int(me) in ranks


def place(args: tuple, kwargs: dict, b: Backend, on_gpu: bool) -> tuple[tuple, dict]:
    """A task's arguments in the memory of the processor it runs on: arrays
    (at the top level and inside lists, tuples and dicts) copied to the GPU for a
    GPU task, to host memory for a CPU task; everything else as it is."""
    def conv(x: Any) -> Any:
        t = type(x)
        if t is list or t is tuple:
            return t(conv(v) for v in x)
        if t is dict:
            return {k: conv(v) for k, v in x.items()}
        if on_gpu:  # (numeric numpy arrays only: no strings, records, dates or masks on a GPU)
            return b.to_device(x) if t is np.ndarray and x.dtype.kind in "biufc?" else x
        return b.to_host(x) if b.is_device(x) else x
    return tuple(conv(a) for a in args), {k: conv(v) for k, v in kwargs.items()} if kwargs else kwargs


def get() -> Optional[Backend]:
    """The active backend of this process, or ``None`` (no GPU in use here)."""
    return _ACTIVE


def activate(device: int = 0) -> Backend:
    """Start the backend for GPU ``device`` of this rank (once per process):
    the simulated GPU under ``DAGMPI_GPU_SIM=1``, else CuPy."""
    global _ACTIVE
    with _LOCK:
        if _ACTIVE is not None:
            return _ACTIVE
        b: Backend = SimBackend(device) if sim_enabled() else CupyBackend(device)
        b.use()  # (the comm thread receives into this device's memory)
        copyreg.pickle(b.device_type, _reducer(b))
        serialize.device_hooks = _Hooks(b)
        _ACTIVE = b
        return b


def _reducer(b: Backend) -> Any:
    def reduce_device_array(a: Any) -> Any:
        order = "F" if (a.flags.f_contiguous and not a.flags.c_contiguous) else "C"
        flat = b.flat_bytes(a.T if order == "F" else a)
        return serialize.rebuild_device_array, (serialize.DeviceBuffer(flat), tuple(a.shape), a.dtype.str, order)
    return reduce_device_array


class _Hooks:
    """What :mod:`dagmpi.serialize` calls on device bytes (it imports no GPU library)."""

    def __init__(self, b: Backend) -> None:
        self.b = b

    def is_device(self, x: Any) -> bool:
        return self.b.is_device(x)

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(self.b.to_host(x)).view(np.ndarray)

    def rebuild(self, data: Any, shape: tuple, dtype: str, order: str) -> Any:
        return self.b.rebuild(data, shape, dtype, order)


def _reset_for_tests() -> None:
    """Forget the active backend (tests that switch between backends in one process)."""
    global _ACTIVE
    with _LOCK:
        if _ACTIVE is not None:
            copyreg.dispatch_table.pop(_ACTIVE.device_type, None)
        _ACTIVE = None
        serialize.device_hooks = None
