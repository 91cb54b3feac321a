"""HDF5 checkpoint files: each rank writes its own, visible only once complete.

Layout of one file (readable with h5py or ``h5dump``)::

    /                    attrs: format="dagmpi-checkpoint", version, rank, created
    /entries/<key>       a dataset: the value itself for a numpy (or CuPy) array,
                         else the pickled bytes (uint8); attrs: name, kind, type,
                         nbytes, time
    /index/{key,name,kind,nbytes,time}
                         one row per entry, written when the file is completed,
                         so a restart indexes 100k entries without 100k reads

A rank appends entries to ``<dir>/rank<r>-<pid>-<n>.h5.tmp``; every
``roll_seconds`` or ``roll_entries`` (and on close) the file is flushed,
fsync'ed (h5py's flush alone does not reach the disk), closed and atomically
renamed to ``.h5``.  Only ``.h5`` files are ever read, so a file cut off by a
kill is never trusted; a ``.tmp`` left behind is reported and ignored.
"""

from __future__ import annotations

import glob
import logging
import os
import pickle
import queue
import threading
import time
from typing import Any, Optional

import cloudpickle
import h5py
import numpy as np

from .base import FORMAT, VERSION, CheckpointError, Index, Location

log = logging.getLogger(__name__)


def _to_host(value: Any) -> Any:
    """CuPy arrays are saved as host arrays (restored as numpy)."""
    mod = type(value).__module__ or ""
    if mod.startswith("cupy") and hasattr(value, "get"):
        return value.get()
    return value


class Writer:
    """Saves results of one rank.  ``add`` is cheap (a queue); a thread writes.

    HDF5 writes happen on one background thread (h5py is not re-entrant), so
    the rank's loop never waits on the disk.  :meth:`close` drains the queue
    and makes every written entry durable.
    """

    def __init__(self, directory: str, rank: int, roll_seconds: float = 2.0,
                 roll_entries: int = 2000, roll_bytes: int = 1 << 30) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.rank = rank
        self.roll_seconds = roll_seconds
        self.roll_entries = roll_entries
        self.roll_bytes = roll_bytes
        self.written = 0
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._file: Optional[h5py.File] = None
        self._tmp = ""
        self._n_files = 0
        self._entries = 0
        self._bytes = 0
        self._opened = 0.0
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=f"rank{rank}-ckpt", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ any thread

    def add(self, key: str, name: str, value: Any) -> None:
        """Queue ``value`` to be saved under ``key``."""
        if self._error is not None:
            raise CheckpointError(f"checkpoint writer of rank {self.rank} failed: {self._error}")
        self._q.put(("add", key, name, value))

    def flush(self, timeout: Optional[float] = None) -> None:
        """Make everything queued so far durable (close and rename the current file)."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        self._q.put(("roll", done))
        if not done.wait(timeout):
            raise CheckpointError(f"checkpoint flush of rank {self.rank} did not finish in {timeout} s")
        if self._error is not None:
            raise CheckpointError(f"checkpoint writer of rank {self.rank} failed: {self._error}")

    def close(self, timeout: Optional[float] = None) -> None:
        self.flush(timeout)
        self._q.put(None)
        self._thread.join(timeout)

    # -------------------------------------------------------- writer thread

    def _run(self) -> None:
        while True:
            try:
                item = self._q.get(timeout=self.roll_seconds / 2)
            except queue.Empty:
                item = ("tick",)
            try:
                if item is None:
                    self._roll()
                    return
                kind = item[0]
                if kind == "add":
                    self._write(item[1], item[2], item[3])
                    if (self._entries >= self.roll_entries or self._bytes >= self.roll_bytes
                            or time.monotonic() - self._opened >= self.roll_seconds):
                        self._roll()
                elif kind == "roll":
                    self._roll()
                    item[1].set()
                elif self._file is not None and time.monotonic() - self._opened >= self.roll_seconds:
                    self._roll()
            except BaseException as exc:  # noqa: BLE001 - reported to the next add/flush
                log.error("rank %d: writing the checkpoint failed: %r", self.rank, exc)
                self._error = exc
                if item is not None and item[0] == "roll":
                    item[1].set()

    def _open(self) -> h5py.File:
        self._n_files += 1
        base = f"rank{self.rank}-{os.getpid()}-{int(time.time() * 1000)}-{self._n_files}.h5"
        self._tmp = os.path.join(self.directory, base + ".tmp")
        f = h5py.File(self._tmp, "w", locking=False)
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["rank"] = self.rank
        f.attrs["created"] = time.time()
        f.create_group("entries")
        self._file, self._entries, self._bytes, self._opened = f, 0, 0, time.monotonic()
        self._rows: list[tuple] = []
        return f

    def _write(self, key: str, name: str, value: Any) -> None:
        f = self._file or self._open()
        grp = f["entries"]
        if key in grp:
            return
        value = _to_host(value)
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            ds = grp.create_dataset(key, data=value)
            ds.attrs["kind"] = "array"
            nbytes = value.nbytes
        else:
            data = cloudpickle.dumps(value, protocol=5)
            ds = grp.create_dataset(key, data=np.frombuffer(data, dtype=np.uint8))
            ds.attrs["kind"] = "pickle"
            nbytes = len(data)
        ds.attrs["name"] = name
        ds.attrs["type"] = f"{type(value).__module__}.{type(value).__qualname__}"
        ds.attrs["nbytes"] = nbytes
        ds.attrs["time"] = time.time()
        self._entries += 1
        self._bytes += nbytes
        self.written += 1
        self._rows.append((key, name, ds.attrs["kind"], nbytes, ds.attrs["time"]))

    def _roll(self) -> None:
        f = self._file
        if f is None:
            return
        self._file = None
        rows = self._rows
        g = f.create_group("index")
        text = h5py.string_dtype()
        g.create_dataset("key", data=np.array([r[0] for r in rows], dtype=object), dtype=text)
        g.create_dataset("name", data=np.array([r[1] for r in rows], dtype=object), dtype=text)
        g.create_dataset("kind", data=np.array([r[2] for r in rows], dtype=object), dtype=text)
        g.create_dataset("nbytes", data=np.array([r[3] for r in rows], dtype=np.int64))
        g.create_dataset("time", data=np.array([r[4] for r in rows], dtype=np.float64))
        f.flush()
        os.fsync(f.id.get_vfd_handle())
        f.close()
        final = self._tmp[: -len(".tmp")]
        os.rename(self._tmp, final)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def scan(directory: str) -> Index:
    """Index every complete entry under ``directory`` (any number of ranks wrote it).

    Files that are cut off (``.tmp``), corrupt or not dagmpi checkpoints are
    reported in ``Index.warnings`` and skipped; nothing is ever deleted.  A file
    from a newer, incompatible format version raises :class:`CheckpointError`.
    """
    idx = Index(os.path.abspath(directory))
    if not os.path.isdir(directory):
        return idx
    for tmp in sorted(glob.glob(os.path.join(directory, "*.h5.tmp"))):
        idx.warnings.append(f"{tmp}: incomplete (the run was cut off while writing it); ignored")
    for path in sorted(glob.glob(os.path.join(directory, "*.h5"))):
        try:
            with h5py.File(path, "r", locking=False) as f:
                fmt = f.attrs.get("format")
                if isinstance(fmt, bytes):
                    fmt = fmt.decode()
                if fmt != FORMAT:
                    idx.warnings.append(f"{path}: not a dagmpi checkpoint file (no format={FORMAT!r} "
                                        "attribute); ignored, not deleted")
                    continue
                version = int(f.attrs.get("version", -1))
                if version != VERSION:
                    raise CheckpointError(
                        f"{path}: written by checkpoint format version {version}, this dagmpi reads "
                        f"version {VERSION}; use a matching dagmpi or move the directory aside "
                        "(nothing was deleted)")
                for loc in _entries_of(f, path):
                    old = idx.entries.get(loc.key)
                    if old is None or loc.time > old.time:
                        idx.entries[loc.key] = loc
                idx.files.append(path)
        except CheckpointError:
            raise
        except Exception as exc:  # truncated, corrupt, unreadable
            idx.warnings.append(f"{path}: cannot be read ({exc}); ignored, not deleted")
    return idx


def _entries_of(f: "h5py.File", path: str) -> list[Location]:
    if "index" in f:  # one read per column
        g = f["index"]
        keys = g["key"].asstr()[()]
        names = g["name"].asstr()[()]
        kinds = g["kind"].asstr()[()]
        sizes = g["nbytes"][()]
        times = g["time"][()]
        return [Location(path, str(k), str(n), int(b), str(c), float(t))
                for k, n, c, b, t in zip(keys, names, kinds, sizes, times)]
    out = []
    for key, ds in f["entries"].items():
        a = ds.attrs
        out.append(Location(path, key, str(a.get("name", "")), int(a.get("nbytes", 0)),
                            str(a.get("kind", "")), float(a.get("time", 0.0))))
    return out


class Reader:
    """Loads saved values; keeps files open for reuse (read-only)."""

    def __init__(self) -> None:
        self._files: dict[str, h5py.File] = {}
        self._lock = threading.Lock()

    def load(self, loc: Location) -> Any:
        with self._lock:
            f = self._files.get(loc.path)
            if f is None:
                try:
                    f = self._files[loc.path] = h5py.File(loc.path, "r", locking=False)
                except Exception as exc:
                    raise CheckpointError(f"cannot open checkpoint file {loc.path}: {exc}") from exc
            try:
                ds = f["entries"][loc.key]
                kind = ds.attrs.get("kind", "")
                data = ds[()]
            except Exception as exc:
                raise CheckpointError(f"{loc.path}: cannot read entry {loc.key}: {exc}") from exc
        if kind == "array":
            return np.asarray(data) if np.ndim(data) == 0 else data
        return pickle.loads(data.tobytes())

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()


MANIFEST_GLOB = "used-*.keys"


def write_manifest(directory: str, keys: set[str]) -> str:
    """Record the keys a completed run used (``ckpt gc`` keeps those); atomic."""
    path = os.path.join(directory, f"used-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.keys")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(sorted(keys)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)
    return path


def gc(directory: str, dry_run: bool = False) -> dict[str, Any]:
    """Remove the entries that the newest completed run did not use.

    Files with only unused entries are deleted; files with some are rewritten
    (kept entries copied to a new complete file, then the old one removed).
    Without a manifest (no run has completed yet) nothing is touched.
    """
    manifests = sorted(glob.glob(os.path.join(directory, MANIFEST_GLOB)), key=os.path.getmtime)
    if not manifests:
        raise CheckpointError(f"{directory}: no completed run recorded which entries it uses "
                              f"({MANIFEST_GLOB}); nothing removed")
    with open(manifests[-1]) as fh:
        keep = {line.strip() for line in fh if line.strip()}
    idx = scan(directory)
    report: dict[str, Any] = {"manifest": manifests[-1], "kept": 0, "removed": 0, "files_deleted": [],
                              "files_rewritten": [], "bytes_freed": 0, "warnings": idx.warnings}
    by_file: dict[str, list[Location]] = {}
    for loc in idx.entries.values():
        by_file.setdefault(loc.path, []).append(loc)
    for path in idx.files:
        with h5py.File(path, "r", locking=False) as f:
            present = _entries_of(f, path)
        used = [loc for loc in present if loc.key in keep and idx.entries.get(loc.key) == loc]
        dropped = len(present) - len(used)
        report["kept"] += len(used)
        report["removed"] += dropped
        if not dropped:
            continue
        report["bytes_freed"] += sum(l.nbytes for l in present if l not in used)
        if dry_run:
            (report["files_rewritten"] if used else report["files_deleted"]).append(path)
            continue
        if used:
            _rewrite(path, used)
            report["files_rewritten"].append(path)
        else:
            os.remove(path)
            report["files_deleted"].append(path)
    return report


def _rewrite(path: str, keep: list[Location]) -> None:
    new = path[: -len(".h5")] + "-gc.h5"
    tmp = new + ".tmp"
    with h5py.File(path, "r", locking=False) as src, h5py.File(tmp, "w", locking=False) as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        ent = dst.create_group("entries")
        for loc in keep:
            src.copy(src["entries"][loc.key], ent, name=loc.key)
        g = dst.create_group("index")
        text = h5py.string_dtype()
        g.create_dataset("key", data=np.array([l.key for l in keep], dtype=object), dtype=text)
        g.create_dataset("name", data=np.array([l.name for l in keep], dtype=object), dtype=text)
        g.create_dataset("kind", data=np.array([l.kind for l in keep], dtype=object), dtype=text)
        g.create_dataset("nbytes", data=np.array([l.nbytes for l in keep], dtype=np.int64))
        g.create_dataset("time", data=np.array([l.time for l in keep], dtype=np.float64))
        dst.flush()
        os.fsync(dst.id.get_vfd_handle())
    os.rename(tmp, new)
    os.remove(path)
