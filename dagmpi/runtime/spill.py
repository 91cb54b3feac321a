"""A worker's task values: in memory up to a limit, the coldest beyond it on local disk.

:class:`Store` is the worker's ``store`` (task id -> entry).  An entry is, under
MPI (``serialized``), the triple ``(value, payload, buffers)`` that the worker
made when the task returned (the value and its protocol-5 pickle, whose
out-of-band buffers share the memory of the value's numpy arrays); in-process
it is the value itself.

State, all owned by the thread that drives the worker's loop (the store is
never touched from executor threads, so it takes no locks):

``_fast``
    entries in memory, least recently used first (an ``OrderedDict``: the
    oldest is taken in O(1) when spilling, a read moves a key to the end).
``_weights``
    the bytes of each entry in ``_fast`` or ``_held``; ``memory_bytes`` is
    their sum (what the store holds in memory, as tracked: no syscalls).
``_held``
    entries that could not be spilled (an in-process value that does not
    pickle, a full disk): they stay in memory and are not tried again.
``_disk``
    key -> bytes of its file, for every spilled entry; a spilled entry that
    was read back is in ``_fast`` *and* keeps its file, so spilling it again
    writes nothing.

Policy: after every insertion, while ``memory_bytes`` exceeds ``limit``, the
least recently used entry is written to its own file (zict's ``File``, one
file per key, in a per-rank folder made on the first spill) and dropped from
memory; an entry bigger than the whole limit goes straight to disk.  A read
of a spilled entry loads it back (the triple is rebuilt, arrays sharing the
file's bytes) and keeps it in memory if it fits.  ``over_limit`` is true only
while spilling could not bring the store under its limit (``_held``): the
worker then starts no new task while one runs (see ``JobRunner._start_jobs``).

With no memory pressure an operation is a Python method call over one or two
dict operations (no syscall, no size probe of the process): see the timings
in docs/design.md.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import os
import pickle
import shutil
import socket
import struct
import tempfile
from typing import Any, Mapping, Optional

import zict

from .. import serialize
from ..config import parse_memory_limit
from ..gpu import devices

log = logging.getLogger(__name__)

#: ``memory_limit="auto"``: this fraction of the rank's share of the node's memory
#: (the rest is for the interpreter, running tasks' temporaries and MPI buffers).
AUTO_FRACTION = 0.8

_MISSING = object()
_HOST = socket.gethostname()
_PREFIX = "dagmpi-spill-"


def resolve_limit(text: str, environ: Optional[Mapping[str, str]] = None) -> int:
    """Bytes of the ``memory_limit`` setting for this rank (0: no limit).

    ``"auto"`` is :data:`AUTO_FRACTION` of the rank's share of the node's
    memory: physical memory (or the cgroup's limit, when lower, as under a
    Slurm ``--mem`` job) divided by the ranks on the node.
    """
    n = parse_memory_limit(text)
    if n is not None:
        return n
    share = devices.memory_bytes(environ)
    cgroup = _cgroup_limit()
    if share and cgroup:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 0
        if 0 < cgroup < total:
            share = share * cgroup // total
    return int(share * AUTO_FRACTION)


def _cgroup_limit() -> int:
    """The memory limit of this process's cgroup (v2, else v1), 0 when none is set."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
        return 0  # "max": no limit
    return 0


def _weigh_triple(entry: tuple) -> int:
    """Bytes of ``(value, payload, buffers)``: the buffers are the value's own memory
    (numpy arrays), so the value is counted only when it has none."""
    value, payload, buffers = entry
    if buffers:  # (GPU bytes count against the GPU, not this rank's host memory)
        return len(payload) + serialize.buffers_nbytes(buffers) - serialize.device_nbytes(buffers)
    return len(payload) + serialize.sizeof(value)


def _raw(buf: Any) -> memoryview:
    """A flat byte view of an out-of-band buffer (C- or Fortran-contiguous)."""
    if isinstance(buf, pickle.PickleBuffer):
        return buf.raw()
    return memoryview(buf).cast("B")


class Store:
    """Task values of one worker rank, spilled to ``directory`` past ``limit`` bytes.

    ``limit`` 0: no limit (nothing is ever written).  ``directory`` "": the system's
    temporary folder (``$TMPDIR``).  See the module docstring for the state and policy.
    """

    def __init__(self, limit: int = 0, directory: str = "", serialized: bool = True, rank: int = 0) -> None:
        self.limit = int(limit)
        self._cap = self.limit if self.limit > 0 else math.inf
        self.serialized = serialized
        self.rank = rank
        self.base = os.path.abspath(directory or tempfile.gettempdir())
        self._weigh = _weigh_triple if serialized else serialize.sizeof
        self._fast: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._weights: dict[Any, int] = {}
        self._held: dict[Any, Any] = {}
        self._disk: dict[Any, int] = {}
        self._files: Optional[zict.File] = None  # made on the first spill
        #: The per-rank folder of spilled values ("" until the first spill; removed by close).
        self.folder = ""
        #: Bytes of the entries in memory (``_fast`` and ``_held``).
        self.memory_bytes = 0
        #: Spilling could not bring ``memory_bytes`` under ``limit``.
        self.over_limit = False
        self.spilled = 0  # entries written to disk, and their bytes (files), since the start
        self.spilled_bytes = 0
        self.read = 0  # entries read back from disk, and their bytes
        self.read_bytes = 0
        self.disk_bytes = 0  # bytes in files now, and the most there ever were
        self.peak_disk_bytes = 0
        self._warned = False
        if self.limit > 0:
            _check_folder(self.base)

    # ------------------------------------------------------------ mapping

    def __setitem__(self, key: Any, entry: Any) -> None:
        if key in self._weights or key in self._disk:
            self.discard(key)
        w = self._weigh(entry)
        if w > self._cap:  # bigger than the whole limit by itself: straight to disk
            if not self._write(key, entry):
                self._hold(key, entry, w)
            return
        self._fast[key] = entry
        self._weights[key] = w
        self.memory_bytes += w
        if self.memory_bytes > self._cap:
            self._spill()

    def get(self, key: Any, default: Any = None) -> Any:
        fast = self._fast
        entry = fast.get(key, _MISSING)
        if entry is not _MISSING:
            fast.move_to_end(key)  # most recently used
            return entry
        entry = self._held.get(key, _MISSING)
        if entry is not _MISSING:
            return entry
        if key in self._disk:
            return self._read(key)
        return default

    def __getitem__(self, key: Any) -> Any:
        entry = self.get(key, _MISSING)
        if entry is _MISSING:
            raise KeyError(key)
        return entry

    def __contains__(self, key: Any) -> bool:
        return key in self._fast or key in self._held or key in self._disk

    def __len__(self) -> int:
        fast = self._fast
        return len(fast) + len(self._held) + sum(1 for k in self._disk if k not in fast)

    def pop(self, key: Any, default: Any = None) -> Any:
        """Remove ``key`` and return its entry (read back from disk if it was spilled)."""
        if key in self._fast or key in self._held:
            entry = self.get(key)
        elif key in self._disk:
            entry = self._load(key)  # not cached: it goes at once (and evicts nothing)
        else:
            return default
        self.discard(key)
        return entry

    def discard(self, key: Any) -> bool:
        """Remove ``key`` (from memory and disk) without reading it; True if it was here."""
        found = False
        w = self._weights.pop(key, None)
        if w is not None:
            found = True
            self.memory_bytes -= w
            if self._fast.pop(key, _MISSING) is _MISSING:
                del self._held[key]
            if self.over_limit:
                self.over_limit = self.memory_bytes > self._cap
        if self._disk and key in self._disk:
            found = True
            self._unlink(key)
        return found

    # ------------------------------------------------------------ disk

    def _spill(self) -> None:
        """Write least recently used entries to disk until the store fits its limit."""
        fast, weights, disk = self._fast, self._weights, self._disk
        while self.memory_bytes > self._cap and fast:
            key, entry = fast.popitem(last=False)
            w = weights.pop(key)
            self.memory_bytes -= w
            if key not in disk and not self._write(key, entry):
                self._hold(key, entry, w)
        self.over_limit = self.memory_bytes > self._cap

    def _hold(self, key: Any, entry: Any, w: int) -> None:
        """Keep in memory an entry that could not be spilled (never tried again)."""
        self._held[key] = entry
        self._weights[key] = w
        self.memory_bytes += w
        self.over_limit = self.memory_bytes > self._cap

    def _write(self, key: Any, entry: Any) -> bool:
        """One file per entry: a header of lengths, the pickle, its out-of-band buffers."""
        try:
            if self.serialized:
                _, payload, buffers = entry
            else:
                payload, buffers = serialize.dump_value(entry)
            if any(type(b) is serialize.DeviceBuffer for b in buffers):
                return False  # a GPU value: its bytes are in GPU memory, not this rank's
            raws = [_raw(b) for b in buffers]
            header = struct.pack(f"<{len(raws) + 2}Q", len(raws), len(payload), *(r.nbytes for r in raws))
            files = self._files if self._files is not None else self._open()
            files[str(key)] = [header, payload, *raws]
        except Exception as exc:  # noqa: BLE001 - the entry stays in memory instead
            if not self._warned:
                self._warned = True
                log.warning("rank %d: could not spill a value to %s (%r); it stays in memory "
                            "(memory_limit %d bytes)", self.rank, self.folder or self.base, exc, self.limit)
            return False
        size = len(header) + len(payload) + sum(r.nbytes for r in raws)
        self._disk[key] = size
        self.spilled += 1
        self.spilled_bytes += size
        self.disk_bytes += size
        if self.disk_bytes > self.peak_disk_bytes:
            self.peak_disk_bytes = self.disk_bytes
        return True

    def _read(self, key: Any) -> Any:
        """Load a spilled entry; keep it in memory (and its file) if it fits."""
        entry = self._load(key)
        w = self._weigh(entry)
        if w <= self._cap:
            self._fast[key] = entry
            self._weights[key] = w
            self.memory_bytes += w
            if self.memory_bytes > self._cap:
                self._spill()  # (its file stays: spilling it again writes nothing)
        return entry

    def _load(self, key: Any) -> Any:
        """A spilled entry, rebuilt from its file (its arrays share the file's bytes)."""
        data = memoryview(self._files[str(key)])  # type: ignore[index]
        (n,) = struct.unpack_from("<Q", data, 0)
        lengths = struct.unpack_from(f"<{n + 1}Q", data, 8)
        at = 8 * (n + 2)
        payload = bytes(data[at:at + lengths[0]])
        at += lengths[0]
        buffers = []
        for size in lengths[1:]:
            buffers.append(pickle.PickleBuffer(data[at:at + size]))  # arrays share the file's bytes
            at += size
        value = serialize.load_value(payload, buffers)
        self.read += 1
        self.read_bytes += self._disk[key]
        return (value, payload, buffers) if self.serialized else value

    def _unlink(self, key: Any) -> None:
        size = self._disk.pop(key)
        self.disk_bytes -= size
        try:
            del self._files[str(key)]  # type: ignore[union-attr]
        except (KeyError, OSError):
            pass

    def _open(self) -> zict.File:
        """Make this rank's spill folder (first spill), removing folders that dead
        processes of this host left behind (a rank killed before it could clean up)."""
        os.makedirs(self.base, exist_ok=True)
        _sweep(self.base)
        self.folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{_HOST}-{os.getpid()}-r{self.rank}-", dir=self.base)
        self._files = zict.File(self.folder)
        atexit.register(self.close)
        return self._files

    def close(self) -> None:
        """Remove the spill folder and every spilled value (the worker is done)."""
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            atexit.unregister(self.close)
            self.folder = ""
        self._files = None
        self._disk.clear()
        self.disk_bytes = 0

    # ------------------------------------------------------------ stats

    def stats(self) -> dict[str, int]:
        """Numbers for the run's summary (sent to rank 0 with ``Bye``)."""
        return {"limit": self.limit, "memory_bytes": self.memory_bytes, "spilled": self.spilled,
                "spilled_bytes": self.spilled_bytes, "read": self.read, "read_bytes": self.read_bytes,
                "disk_bytes": self.disk_bytes, "peak_disk_bytes": self.peak_disk_bytes,
                "held": len(self._held)}


def _check_folder(base: str) -> None:
    """The spill folder exists (or can be made) and this user can write there."""
    what = f"the spill folder {base!r} (spill_dir= / DAGMPI_SPILL_DIR)"
    if os.path.exists(base) and not os.path.isdir(base):
        raise ValueError(f"{what} is a file, not a folder: give a folder on local disk")
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} cannot be created: {exc.strerror or exc}; give a folder you can "
                         f"write to, or DAGMPI_MEMORY_LIMIT=0 to never spill") from None
    if not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{what} is not writable by this user; give a folder you can write to, "
                         f"or DAGMPI_MEMORY_LIMIT=0 to never spill")


def _sweep(base: str) -> None:
    """Remove spill folders of this host whose process is gone."""
    mine = f"{_PREFIX}{_HOST}-"
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(mine):
            continue
        pid_text = name[len(mine):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except OSError:  # alive (another user's) or unknowable: leave it
            pass
