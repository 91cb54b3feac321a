"""HDF5 checkpoint files: each rank writes its own, visible only once complete.

Layout of one file (readable with h5py or ``h5dump``)::

    /                    attrs: format="dagmpi-checkpoint", version, rank, created
    /entries/<key>       a numpy (or CuPy, copied to host) array result, as a native
                         dataset; attrs: name, type
    /blob                every other result, pickled, back to back (uint8)
    /index/{key,name,kind,nbytes,time,offset,length,crc32}
                         one row per entry ("array" or "pickle"; offset/length into
                         /blob; crc32 of the entry's bytes), written when the file is
                         completed, so a restart indexes 100k entries with one read
                         per column

Every saved value carries a CRC-32 of its bytes, checked on every read (a
mismatch is a :class:`CheckpointError`, never a wrong value); array datasets and
the numeric index columns also have HDF5's ``fletcher32`` filter, so HDF5 itself
refuses a damaged chunk (``/blob`` has not: one bad byte would refuse every value
of its chunk, where each value's CRC loses only that one).  A restart scans with ``verify=True``:
damaged entries are left out (their tasks run again) and named once.

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
import zlib
from typing import Any, Callable, Optional

import cloudpickle
import h5py
import numpy as np

from .base import FORMAT, VERSION, CheckpointError, Index, Location

log = logging.getLogger(__name__)


def _crc(data: Any) -> int:
    """CRC-32 of bytes or of an array's bytes (C order)."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return zlib.crc32(data)


def _checked(data: Any, n: int) -> dict:
    """Dataset options: HDF5's fletcher32 checksum where it applies (chunked, non-empty)."""
    return {"fletcher32": True} if n > 0 and np.ndim(data) >= 1 else {}


def _to_host(value: Any) -> Any:
    """CuPy arrays are saved as host arrays (restored as numpy)."""
    mod = type(value).__module__ or ""
    if mod.startswith("cupy") and hasattr(value, "get"):
        return value.get()
    return value


class _FileBuilder:
    """Builds one checkpoint file under a ``.tmp`` name; :meth:`finish` makes it
    complete (index table, flush, fsync, atomic rename).  Arrays become datasets
    of their own; other values are pickled into one ``/blob`` per file (one
    dataset per small value would cost ~1 ms each in HDF5)."""

    def __init__(self, final: str, rank: int) -> None:
        self.final = final
        self.tmp = final + ".tmp"
        self.f = h5py.File(self.tmp, "w", locking=False)
        self.f.attrs["format"] = FORMAT
        self.f.attrs["version"] = VERSION
        self.f.attrs["rank"] = rank
        self.f.attrs["created"] = time.time()
        self.entries = self.f.create_group("entries")
        self.blob = bytearray()
        self.rows: list[tuple] = []  # key, name, kind, nbytes, time, offset, length, crc32
        self.keys: set[str] = set()
        self.nbytes = 0

    def add_array(self, key: str, name: str, value: np.ndarray, when: float, typ: str) -> None:
        ds = self.entries.create_dataset(key, data=value, **_checked(value, value.size))
        ds.attrs["name"] = name
        ds.attrs["type"] = typ
        crc = _crc(value)
        ds.attrs["crc32"] = crc
        self._row(key, name, "array", value.nbytes, when, -1, 0, crc)

    def add_pickled(self, key: str, name: str, data: bytes, when: float) -> None:
        off = len(self.blob)
        self.blob += data
        self._row(key, name, "pickle", len(data), when, off, len(data), zlib.crc32(data))

    def _row(self, key: str, name: str, kind: str, nbytes: int, when: float, off: int, length: int,
             crc: int) -> None:
        self.rows.append((key, name, kind, nbytes, when, off, length, crc))
        self.keys.add(key)
        self.nbytes += nbytes

    def finish(self) -> None:
        f, rows = self.f, self.rows
        blob = np.frombuffer(bytes(self.blob), dtype=np.uint8)
        # no fletcher32 here: it would refuse a whole chunk of values for one bad byte,
        # where each value's own CRC loses only that value
        f.create_dataset("blob", data=blob)
        g = f.create_group("index")
        text = h5py.string_dtype()
        g.create_dataset("key", data=np.array([r[0] for r in rows], dtype=object), dtype=text)
        g.create_dataset("name", data=np.array([r[1] for r in rows], dtype=object), dtype=text)
        g.create_dataset("kind", data=np.array([r[2] for r in rows], dtype=object), dtype=text)
        ck = _checked(rows, len(rows))
        g.create_dataset("nbytes", data=np.array([r[3] for r in rows], dtype=np.int64), **ck)
        g.create_dataset("time", data=np.array([r[4] for r in rows], dtype=np.float64), **ck)
        g.create_dataset("offset", data=np.array([r[5] for r in rows], dtype=np.int64), **ck)
        g.create_dataset("length", data=np.array([r[6] for r in rows], dtype=np.int64), **ck)
        g.create_dataset("crc32", data=np.array([r[7] for r in rows], dtype=np.int64), **ck)
        f.flush()
        os.fsync(f.id.get_vfd_handle())  # h5py's flush alone does not reach the disk
        f.close()
        os.rename(self.tmp, self.final)
        dfd = os.open(os.path.dirname(self.final) or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class Writer:
    """Saves results of one rank.  ``add`` is cheap (a queue); a thread writes.

    HDF5 writes happen on one background thread (h5py is not re-entrant), so
    the rank's loop never waits on the disk.  :meth:`close` drains the queue
    and makes every written entry durable.
    """

    def __init__(self, directory: str, rank: int, roll_seconds: float = 2.0,
                 roll_entries: int = 20000, roll_bytes: int = 1 << 30) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.rank = rank
        self.roll_seconds = roll_seconds
        self.roll_entries = roll_entries
        self.roll_bytes = roll_bytes
        self.written = 0
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._file: Optional[_FileBuilder] = None
        self._n_files = 0
        self._opened = 0.0
        self._error: Optional[BaseException] = None
        #: Called on the writer thread after each file is complete and in place:
        #: ``on_commit(path, entries, nbytes, started, ended)`` (times: ``time.time()``).
        self.on_commit: Optional[Callable[[str, int, int, float, float], None]] = None
        self._thread = threading.Thread(target=self._run, name=f"rank{rank}-ckpt", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ any thread

    def add(self, key: str, name: str, value: Any) -> None:
        """Queue ``value`` to be saved under ``key``."""
        if self._error is not None:
            raise CheckpointError(f"checkpoint writer of rank {self.rank} failed: {self._error}")
        self._q.put(("add", key, name, value))

    def flush(self, timeout: Optional[float] = None) -> None:
        """Make everything queued so far durable (complete the current file)."""
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
                    f = self._file
                    if f is not None and (len(f.rows) >= self.roll_entries or f.nbytes >= self.roll_bytes
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

    def _write(self, key: str, name: str, value: Any) -> None:
        f = self._file
        if f is None:
            self._n_files += 1
            base = f"rank{self.rank}-{os.getpid()}-{int(time.time() * 1000)}-{self._n_files}.h5"
            f = self._file = _FileBuilder(os.path.join(self.directory, base), self.rank)
            self._opened = time.monotonic()
        if key in f.keys:
            return
        value = _to_host(value)
        now = time.time()
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            f.add_array(key, name, value, now, f"{type(value).__module__}.{type(value).__qualname__}")
        else:
            f.add_pickled(key, name, cloudpickle.dumps(value, protocol=5), now)
        self.written += 1

    def _roll(self) -> None:
        f = self._file
        if f is not None:
            self._file = None
            started = time.time()
            f.finish()
            if self.on_commit is not None:
                self.on_commit(f.final, len(f.rows), f.nbytes, started, time.time())


def scan(directory: str, verify: bool = False) -> Index:
    """Index every complete entry under ``directory`` (any number of ranks wrote it).

    Files that are cut off (``.tmp``), corrupt or not dagmpi checkpoints are
    reported in ``Index.warnings`` and skipped; nothing is ever deleted.  A file
    from a newer, incompatible format version raises :class:`CheckpointError`.
    ``verify``: read every entry and check its checksum; damaged entries are left
    out (``Index.damaged``) with one warning per file, so their tasks run again.
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
                locs = _entries_of(f, path)
                if verify:
                    bad = _damaged(f, locs)
                    if bad:
                        idx.damaged[path] = sorted(bad)
                        idx.warnings.append(
                            f"{path}: {len(bad)} of {len(locs)} saved values are damaged (checksum "
                            f"mismatch); their tasks run again; python -m dagmpi ckpt gc "
                            f"{directory} removes them")
                        locs = [loc for loc in locs if loc.key not in bad]
                for loc in locs:
                    old = idx.entries.get(loc.key)
                    if old is None or loc.time > old.time:
                        idx.entries[loc.key] = loc
                idx.files.append(path)
        except CheckpointError:
            raise
        except Exception as exc:  # truncated, corrupt, unreadable
            idx.unreadable.append(path)
            idx.warnings.append(f"{path}: cannot be read ({exc}); ignored (python -m dagmpi ckpt gc "
                                f"{directory} removes it)")
    return idx


def _damaged(f: "h5py.File", locs: list[Location]) -> set[str]:
    """Keys of the entries of the open file ``f`` whose bytes do not match their checksum
    (or cannot be read: HDF5's fletcher32 filter refuses a damaged chunk)."""
    bad: set[str] = set()
    pickled = [loc for loc in locs if loc.offset >= 0]
    blob: Optional[np.ndarray] = None
    if pickled:
        try:
            blob = f["blob"][()]
        except Exception:  # noqa: BLE001 - a damaged chunk: check entry by entry
            blob = None
    for loc in pickled:
        if loc.crc < 0:
            continue
        try:
            raw = blob[loc.offset:loc.offset + loc.length] if blob is not None else \
                f["blob"][loc.offset:loc.offset + loc.length]
            ok = len(raw) == loc.length and _crc(raw) == loc.crc
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            bad.add(loc.key)
    for loc in locs:
        if loc.offset >= 0 or loc.crc < 0:
            continue
        try:
            ok = _crc(np.asarray(f["entries"][loc.key][()])) == loc.crc
        except Exception:  # noqa: BLE001
            ok = False
        if not ok:
            bad.add(loc.key)
    return bad


def _entries_of(f: "h5py.File", path: str) -> list[Location]:
    if "index" in f:  # one read per column
        g = f["index"]
        keys = g["key"].asstr()[()]
        names = g["name"].asstr()[()]
        kinds = g["kind"].asstr()[()]
        sizes = g["nbytes"][()]
        times = g["time"][()]
        offs = g["offset"][()]
        lens = g["length"][()]
        crcs = g["crc32"][()] if "crc32" in g else [-1] * len(keys)
        return [Location(path, str(k), str(n), int(b), str(c), float(t), int(o), int(ln), int(cr))
                for k, n, c, b, t, o, ln, cr in zip(keys, names, kinds, sizes, times, offs, lens, crcs)]
    out = []
    for key, ds in f["entries"].items():
        a = ds.attrs
        out.append(Location(path, key, str(a.get("name", "")), int(a.get("nbytes", 0)),
                            str(a.get("kind", "")), float(a.get("time", 0.0)), crc=int(a.get("crc32", -1))))
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
                if loc.offset >= 0:
                    raw = f["blob"][loc.offset:loc.offset + loc.length].tobytes()
                    kind = "pickle"
                else:
                    ds = f["entries"][loc.key]
                    kind = ds.attrs.get("kind", loc.kind)
                    raw = ds[()]
            except Exception as exc:
                raise CheckpointError(f"{loc.path}: cannot read entry {loc.key}: {exc}") from exc
        if loc.crc >= 0 and _crc(raw if isinstance(raw, (bytes, np.ndarray)) else np.asarray(raw)) != loc.crc:
            raise CheckpointError(f"{loc.path}: entry {loc.key} ({loc.name}) is damaged (its checksum "
                                  f"does not match); python -m dagmpi ckpt gc removes it")
        if kind == "array":
            return np.asarray(raw) if np.ndim(raw) == 0 else raw
        return pickle.loads(raw if isinstance(raw, bytes) else raw.tobytes())

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()


MANIFEST_GLOB = "used-*.keys"


def write_manifest(directory: str, keys: set[str]) -> str:
    """Record the keys a completed run used (``ckpt gc`` keeps those); atomic."""
    now = time.time_ns()
    stamp = time.strftime('%Y%m%dT%H%M%S', time.localtime(now / 1e9)) + f".{now % 10**9:09d}"
    path = os.path.join(directory, f"used-{stamp}-{os.getpid()}.keys")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(sorted(keys)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)
    return path


def gc(directory: str, dry_run: bool = False) -> dict[str, Any]:
    """Remove what a rerun would not use: entries the newest completed run did not
    use, damaged entries (checksum mismatch), files that cannot be read, files cut
    off by a kill (``.tmp``), and the manifests of older runs.

    Files with only removable entries are deleted; files with some are rewritten
    (kept entries copied to a new complete file, then the old one removed).
    Without a manifest (no run has completed yet) entries are kept, but damaged
    entries and unreadable or cut-off files are still removed.  Run it while no
    job writes to ``directory``.
    """
    manifests = sorted(glob.glob(os.path.join(directory, MANIFEST_GLOB)), key=os.path.getmtime)
    keep: Optional[set[str]] = None
    if manifests:
        with open(manifests[-1]) as fh:
            keep = {line.strip() for line in fh if line.strip()}
    idx = scan(directory, verify=True)
    report: dict[str, Any] = {"manifest": manifests[-1] if manifests else None, "kept": 0, "removed": 0,
                              "damaged": sum(map(len, idx.damaged.values())), "files_deleted": [],
                              "files_rewritten": [], "manifests_deleted": manifests[:-1], "bytes_freed": 0,
                              "warnings": idx.warnings}
    if not manifests:
        report["warnings"] = idx.warnings + [f"{directory}: no completed run recorded which entries it uses "
                                             f"({MANIFEST_GLOB}); only damaged, unreadable and cut-off "
                                             f"files were considered"]
    junk = idx.unreadable + sorted(glob.glob(os.path.join(directory, "*.h5.tmp")))
    for path in junk:
        report["bytes_freed"] += os.path.getsize(path)
        report["files_deleted"].append(path)
        if not dry_run:
            os.remove(path)
    for path in idx.files:
        with h5py.File(path, "r", locking=False) as f:
            present = _entries_of(f, path)
        bad = set(idx.damaged.get(path, ()))
        used = [loc for loc in present if loc.key not in bad and idx.entries.get(loc.key) == loc
                and (keep is None or loc.key in keep)]
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
    if not dry_run:
        for m in manifests[:-1]:
            os.remove(m)
    return report


def _rewrite(path: str, keep: list[Location]) -> None:
    with h5py.File(path, "r", locking=False) as src:
        b = _FileBuilder(path[: -len(".h5")] + "-gc.h5", int(src.attrs.get("rank", -1)))
        for loc in keep:
            if loc.offset >= 0:
                b.add_pickled(loc.key, loc.name, src["blob"][loc.offset:loc.offset + loc.length].tobytes(),
                              loc.time)
            else:
                ds = src["entries"][loc.key]
                b.add_array(loc.key, loc.name, ds[()], loc.time, str(ds.attrs.get("type", "")))
        b.finish()
    os.remove(path)
