"""The worker: runs tasks, keeps their results, serves them to other ranks.

One communication loop per worker rank (the main thread of a worker process
under MPI, a thread in-process) owns the transport.  A task of a function
known to be short runs inline on that loop (no thread hand-off); others run
on executor threads.  At most ``slots`` run at a time, plus any blocked in a
nested ``fetch`` (those have given their slot back to the scheduler, so nested
graphs cannot deadlock; an inline task that blocks drives the loop itself).

Messages a worker sends and handles: see :mod:`dagmpi.runtime.messages`.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Optional

from .. import serialize
from . import messages as msg
from .client import _CURRENT, Client
from ..checkpoint.base import Location
from ..core.launches import ReportTree, expand
from ..core.loops import OWN, LoopState
from .jobs import Executor as _Executor
from .jobs import SCHEDULER
from .jobs import Job as _Job
from .running import JobRunner
from .spill import Store
from ..trace.records import FROM_CHECKPOINT as _FROM_CHECKPOINT
from ..trace.records import Input as _Input
from ..trace.records import Instant as _Instant
from ..trace.records import TaskRun as _TaskRun
from ..transport.base import Transport

#: Most bytes of pulled arrays a worker keeps for reuse (and at most 1/8 of memory_limit).
PULL_CACHE_MAX = 512 << 20
#: Tracing: a worker sends its records to rank 0 whenever this many have gathered.
TRACE_BATCH = 4096

log = logging.getLogger(__name__)




class Worker(JobRunner, Client):
    """A worker rank: serves tasks until rank 0 says stop."""

    def __init__(self, transport: Transport, worker_ranks: Any, slots: int = 1,
                 resources: Optional[dict] = None, gpus: Optional[list[int]] = None,
                 memory_limit: int = 0, spill_dir: str = "") -> None:
        super().__init__(transport.rank, worker_ranks, transport.serializes)
        self.transport = transport
        self.slots = slots
        self.host = socket.gethostname()
        #: id -> value (in-process) or (value, payload, buffers); past ``memory_limit``
        #: bytes (0: none) the coldest go to ``spill_dir`` (see :mod:`.spill`).
        self.store = Store(memory_limit, spill_dir, serialized=transport.serializes, rank=self.rank)
        self.fn_cache: dict[tuple[int, int], Callable] = {msg.RESTORED_FN: _restored}
        self._waiting: dict[int, _Job] = {}  # req_id -> job waiting for that input
        self._input_reqs: dict[int, tuple[_Job, int, int]] = {}  # req id -> (job, input, owner)
        self._local_waits: dict[int, list[_Job]] = {}  # task id -> jobs here that wait for it
        #: task id -> ``[(rank, req id)]``: consumers on other ranks that ran ahead
        #: and asked (:class:`~.messages.Await`) for a value this rank has not computed yet
        self._awaits: dict[int, list[tuple[int, int]]] = {}
        #: Launches (dagmpi.core.launches): launch id -> (base, layout) until freed; per
        #: launch not reported yet: [points left, bytes, seconds, errors]; point -> launch
        self._launch_of: dict[int, tuple] = {}
        self._launch_left: dict[int, list] = {}
        #: the code of each function as it came (FnCode), to pass on down launch trees,
        #: and the functions passed on to each rank
        self._fn_bytes: dict = {}
        self._fn_passed: dict[int, set] = {}
        self._freed_launches: dict[int, None] = {}  # freed before their LaunchExec came
        self._point_launch: dict[int, int] = {}
        #: Loops running here (``dagmpi.spawn_loop``): launch id -> LoopState, until this
        #: rank's points all reached the last step; values pushed for a loop whose
        #: LaunchExec has not come yet wait in ``_early_pushes``
        self._loops: dict[int, LoopState] = {}
        self._early_pushes: dict[int, list] = {}
        #: loop's launch id -> the run of it this rank has (0, one more per restart after a death)
        self._loop_epoch: dict[int, int] = {}
        #: Arrays pulled from other ranks, kept (read-only, least recently used out
        #: first) for other tasks here that read them: a tiled matmul's panel tile or
        #: a Cholesky panel is pulled once per rank, not once per task.
        self._pull_cache: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._pull_cache_bytes = 0
        self.pull_cache_limit = min(PULL_CACHE_MAX, memory_limit // 8) if memory_limit else PULL_CACHE_MAX
        self._writer: Any = None  # checkpoint writer, made on first save
        self._signal = 0
        self._signal_sent = False
        self._preempt_until = 0.0
        self._flushed = False
        self.ckpt_dir = ""
        #: Seconds between checkpoint files (``checkpoint_interval``).
        self.checkpoint_interval = 2.0
        self._timed: dict[int, tuple[float, _Job]] = {}  # running jobs with a timeout: deadline
        #: Timed-out calls still running whose slots were given to replacements (see
        #: ``JobRunner._check_timeouts``), and the most of them this rank allows.
        self._abandoned = 0
        self.max_abandoned = 16
        self._retry_types: dict[bytes, Any] = {}
        self._failed_here: dict[int, None] = {}  # recent failures here (bounded, oldest dropped)
        #: Tasks this rank gave back to rank 0 (stolen, or their input died), until
        #: assigned here again: a task that ran ahead behind one of them goes back too.
        #: (value: True for a launch's lost point computed again, pinned here: it comes back)
        self._given_back: dict[int, bool] = {}
        self._runq: collections.deque[_Job] = collections.deque()
        self._running = 0
        self._done: collections.deque = collections.deque()  # results from executor threads
        self._executor = _Executor(self._run_jobs, f"rank{self.rank}")
        self._jobs_lock = threading.Lock()  # guards _running against executor threads
        self._oldest_result = 0.0
        self._threads_busy = 0  # executor threads running user code
        self._nested = 0  # depth of inline tasks waiting in fetch on the comm thread
        self._comm_thread: Optional[threading.Thread] = None
        self._loop_lock = threading.Lock()  # held by whichever thread drives the loop
        self._inline_job: Optional[_Job] = None
        self._inline_t0 = 0.0
        self._inline_count = 0
        self._helping = False  # the monitor drives the loop
        self._monitor_error: Optional[BaseException] = None  # what killed the monitor thread
        #: An inline task running longer than this hands the loop to the monitor thread.
        self.takeover_after = 5e-3
        #: An inline task expected to run longer than this hands the loop to the
        #: monitor thread as it starts: requests for values, new tasks and steals
        #: are answered meanwhile, not after it (``_help_now`` wakes the monitor).
        self.help_after = 6e-4
        self._help_now = threading.Event()
        self._poll_timeout = 0.05
        self._fn_time: dict[Any, float] = {}  # fn id -> recent mean duration here
        #: Functions whose mean duration here is below this run inline on the comm thread.
        self.inline_max = 1e-3
        #: ... and below this while no send of this rank is in flight (see JobRunner._inlinable);
        #: longer ones hand the loop to the monitor thread anyway (``takeover_after``).
        self.inline_idle_max = 5e-3
        #: ... and, for a launch's points, below this: a point's neighbours wait for its
        #: value, which an executor thread hands back through a wake-up of this loop
        #: (Task Bench stencil_1d on 2 workers, 5.6 ms points: efficiency 0.72-0.77 on
        #: executor threads, 0.89-0.92 inline; the monitor serves the loop meanwhile).
        self.inline_point_max = 1.0
        #: Longest a finished result waits on this rank before it is reported.
        self.flush_after = 2e-4
        #: While this rank holds more work than its slots (queued, or waiting for
        #: inputs), reports that only say "finished" wait up to this long and go to
        #: rank 0 together: consumers that ran ahead get their inputs from the
        #: producers directly, and rank 0 wakes per batch, not per task.
        self.report_after = 1e-3
        #: ... and reports that only say "a launch's points here are done" up to this
        #: long: their readers get the values worker to worker, so rank 0 needs them
        #: only to free the launches they read and to answer the script, which waits
        #: for the last launch (sent at once: nothing is queued behind it).  On a node
        #: with more ranks than cores, each time rank 0 wakes it takes a core from a
        #: rank computing a point that its neighbours then wait for (Task Bench
        #: stencil_1d, 2 workers, 0.36 ms points: 1 ms -> 10 ms cut the step ~15%).
        self.launch_report_after = 1e-2
        self._held_since = 0.0
        self._hold_for = self.report_after  # (of the batch held now)
        self._held_seen = 0  # messages of the held batch looked at
        self._stopping = False
        self.tasks_run = 0
        self.points_retried = 0
        self.bytes_in = 0  # bytes of task inputs received from other ranks
        #: Tracing (``trace=``): the runs and instants recorded here and not yet sent
        #: to rank 0; ``None`` while tracing is off (then nothing is recorded).
        self.trace_runs: Optional[list] = None
        self.trace_instants: list = []
        #: ``time.time() - time.perf_counter()``: a run's wall times without a clock call.
        self._wall = _wall_offset()
        self._tracks: dict[int, int] = {}  # thread ident -> track number (tracing)
        self._asked: dict[int, float] = {}  # input request id -> when it was sent (tracing)
        #: This rank's GPU array library (:mod:`dagmpi.gpu.backend`), started when it has a GPU.
        self._gpu: Any = None
        self.offers: dict[str, Any] = {}
        self._set_processors(slots, list(gpus or []), resources or {})

    def wakeup(self) -> None:
        self.transport.wakeup()

    # ------------------------------------------------------------- loop

    def run(self, poll_timeout: float = 0.05) -> None:
        """Serve until a stop message; then reply ``bye`` and return."""
        tr = self.transport
        _CURRENT.client = self
        self._send(SCHEDULER, msg.Hello(self.slots, self.host, self.offers))
        self._flush()
        self._comm_thread = threading.current_thread()
        self._poll_timeout = poll_timeout
        threading.Thread(target=self._monitor, name=f"rank{self.rank}-monitor", daemon=True).start()
        lock = self._loop_lock
        while not self._stopping:
            with lock:
                self._step(poll_timeout)
            if self._monitor_error is not None:  # the monitor failed while it drove the loop
                raise RuntimeError(f"rank {self.rank}: the loop failed on the monitor thread") \
                    from self._monitor_error
        self._executor.stop()
        self.close_checkpoint()
        self.closed = True
        self._send_trace()
        self._send(SCHEDULER, msg.Bye({**self.store.stats(), "bytes_in": self.bytes_in, "tasks_run": self.tasks_run}))
        self._flush()
        tr.flush()
        self.store.close()  # spilled values go with the worker

    def note_signal(self, signum: int) -> None:
        """Signal handler side: tell rank 0 (it coordinates the preemption)."""
        self._signal = signum
        self.transport.wakeup_from_signal()

    def _preempt_check(self) -> None:
        if self._signal and not self._signal_sent:
            self._signal_sent = True
            self._send(SCHEDULER, msg.PreemptRequest(self._signal))
        if self._preempt_until and not self._flushed:
            self._drain_local()  # results of tasks that just ended go to the checkpoint first
            if self._running == 0 or time.monotonic() >= self._preempt_until:
                self._flushed = True
                try:
                    saved = self.close_checkpoint()
                except Exception as exc:  # noqa: BLE001 - reported, the job still ends
                    log.error("rank %d: could not flush the checkpoint: %r", self.rank, exc)
                    saved = 0
                self._send_trace()
                self._send(SCHEDULER, msg.Flushed(saved))

    def _step(self, timeout: float) -> None:
        """One turn of the loop: receive, start jobs, report, send."""
        if self._signal or self._preempt_until:
            self._preempt_check()
            timeout = min(timeout, 0.05)
        # Spin only while no other thread runs user code (it needs the GIL).
        startable = self._runq and self._running < self.slots
        if self._held_since:  # reports held back (see _hold_reports): send them in time
            timeout = min(timeout, max(0.0, self._held_since + self._hold_for - time.perf_counter()))
        msgs = self.transport.poll(0 if (self._outq or self._done or startable) else timeout,
                                   self._threads_busy == 0 and self._inline_job is None)
        self._drain_local()
        for src, batch in msgs:
            for m in batch:
                self._on_message(src, m)
        self._drain_local()
        # Run what is runnable, including tasks that ran ahead and whose inputs
        # were just computed here, for up to ~1 ms before reporting the batch.
        until = time.perf_counter() + 1e-3
        while True:
            self._start_jobs(until)
            self._drain_local()
            if not (self._runq and self._running < self.slots) or time.perf_counter() > until:
                break
            if len(self._out) > 1 or SCHEDULER not in self._out:
                self._flush_peers()  # values other ranks wait for leave now, not in ~1 ms
        self._flush()

    def _wait_until(self, predicate: Callable[[], bool], timeout: Optional[float], key: Any = None) -> bool:
        """A task running inline on the comm thread waits by driving the loop
        itself (nested); jobs that arrive meanwhile go to executor threads."""
        if threading.current_thread() is not self._comm_thread:
            return super()._wait_until(predicate, timeout, key)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._nested += 1
        try:
            while not predicate():
                if self._stopping:
                    raise RuntimeError("the worker is stopping")
                wait = self._poll_timeout
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        return False
                with self._loop_lock:
                    self._step(wait)
            return True
        finally:
            self._nested -= 1

    def _monitor(self) -> None:
        """Run :meth:`_watch_inline`; an error there (it drives the loop at times) is
        handed to the comm thread, which ends the job with it: never a silent hang."""
        try:
            self._watch_inline()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the comm thread
            self._monitor_error = exc
            self.transport.wakeup()

    def _watch_inline(self) -> None:
        """Keep the rank responsive while a task runs inline for too long.

        Inline tasks are those that were short so far, but a call can always
        take longer.  This thread looks every few milliseconds; when the same
        inline task has run for ``takeover_after`` seconds, it drives the loop
        (serving data requests, steals and new tasks, which go to executor
        threads) until that task returns.  It sleeps longer while no inline
        tasks run, so an idle rank stays quiet.
        """
        last = -1
        lock = self._loop_lock
        next_deadline = float("inf")  # of the running jobs with a timeout, as last seen
        while not self._stopping:
            busy = self._inline_count != last
            last = self._inline_count
            nap = self.takeover_after / 2 if busy else 0.05
            if self._timed:  # a timed job may have started since: look again soon
                nap = min(nap, max(1e-3, next_deadline - time.perf_counter()), 0.01)
            now = self._help_now.wait(nap)
            if now:
                self._help_now.clear()
            if self._timed:
                next_deadline = self._check_timeouts()
            job = self._inline_job
            if job is None or not now and time.perf_counter() - self._inline_t0 < self.takeover_after:
                continue
            self._helping = True
            try:
                while self._inline_job is job and not self._stopping:
                    with lock:
                        if self._inline_job is not job:
                            break
                        self._step(1e-3)
            finally:
                self._helping = False

    def _flush(self) -> None:
        if self._out:
            out, self._out = self._out, {}
            if SCHEDULER in out and self.report_after > 0 and self._hold_reports(out[SCHEDULER]):
                self._out[SCHEDULER] = out.pop(SCHEDULER)
            self._send_batches(out)

    def _send_batches(self, out: dict) -> None:
        """Send each destination its batch (taken out of ``_out``)."""
        for dest, batch in out.items():
            if dest == self.rank:  # a message to ourselves (a local get)
                for m in batch:
                    self._on_message(self.rank, m)
            else:
                self.transport.send(dest, batch)

    def _hold_reports(self, batch: list) -> bool:
        """May this batch for rank 0 wait (see ``report_after``)?"""
        now = time.perf_counter()
        if not self._held_since:
            self._held_since = now
            self._held_seen = 0
            self._hold_for = self.launch_report_after
        launch_only = self._hold_for != self.report_after
        for i in range(self._held_seen, len(batch)):  # (those held before were looked at then)
            kind = type(batch[i])
            if kind is not msg.LaunchReport:
                if kind is not msg.Finished:  # (reports rank 0 may get a little later, batched)
                    self._held_since = 0.0
                    return False
                launch_only = False
        self._held_seen = len(batch)
        if not launch_only:
            self._hold_for = self.report_after
        if self._stopping or now - self._held_since >= self._hold_for or \
                len(batch) > (512 if launch_only else 64) or \
                len(self._runq) + self._running + len(self._input_reqs) <= self.slots:
            self._held_since = 0.0
            return False
        return True

    def _flush_peers(self) -> None:
        """Send what waits for ranks other than rank 0 (values consumers wait for);
        rank 0's reports stay batched."""
        out = self._out
        self._send_batches({d: out.pop(d) for d in [d for d in out if d != SCHEDULER]})

    # ------------------------------------------ from this rank's threads

    def _drain_local(self) -> None:
        outq, done = self._outq, self._done
        # Completions and the messages of the task that produced them stay in
        # order: a task's spawns reach rank 0 before its Finished.
        while outq or done:
            while outq:
                m = outq.popleft()
                kind = type(m)
                if kind is msg.Pull:
                    self._request_value(m.owner, m.task_id, m.req_id)
                elif kind is msg.Blocked:
                    with self._jobs_lock:
                        self._running -= 1
                    self._send(SCHEDULER, m)
                elif kind is msg.Unblocked:
                    with self._jobs_lock:
                        self._running += 1
                    self._send(SCHEDULER, m)
                else:
                    self._send(SCHEDULER, m)
            if done:
                self._finish(done.popleft())

    def _finish(self, item: tuple) -> None:
        kind, job, a, b = item
        if kind == "timeout":  # the monitor gave up on it; the call goes on
            if job.loop is not None:
                st, t = job.loop
                if self._loop_epoch.get(st.id) != st.epoch:
                    return  # (a run of a loop that a death restarted, or that was freed)
                if t < st.steps - 1:
                    self._loop_step_done(st, t, job.call[0], False, a)
                    return
                self._point_ended(job.id, a)  # (its last step: its own error, not a step 0's)
            self._note_failed(job.id)
            self._drop_waiters(self._local_waits.pop(job.id, None))
            self._send(SCHEDULER, msg.Failed(job.id, a, b, not job.replaced))
            return
        if kind == "late":  # a call already reported as timed out returned; drop its result
            if not job.replaced:  # it held its slot: rank 0 may give this rank work again
                self._send(SCHEDULER, msg.LateReturn())
            return
        self.tasks_run += 1
        if job.loop is not None and self._loop_epoch.get(job.loop[0].id) != job.loop[0].epoch:
            return  # (a run of a loop that a death restarted, or that failed and was freed)
        if kind != "fin" and job.call is not None:
            if kind == "err" and b and job.failed is None and job.attempt <= job.policy[0]:
                # a point is retried where it is (its inputs kept): its layout says where it
                # runs (a lost point computed again too: the points waiting for it wait on)
                job.attempt += 1
                self.points_retried += 1
                self._runq.append(job)
                return
        if job.loop is not None:
            st, t = job.loop
            if t < st.steps - 1:  # a step before the last: its value goes on to the next step
                if kind == "fin":
                    old = self._fn_time.get(job.fn_id)
                    self._fn_time[job.fn_id] = b[1] if old is None else 0.8 * old + 0.2 * b[1]
                self._loop_step_done(st, t, job.call[0], kind == "fin", a)
                return
        if kind != "fin" and job.call is not None:
            if job.point is not None:
                self._point_ended(job.id, a)  # (before _note_failed below: this is the real error)
        waiters = self._local_waits.pop(job.id, None)
        if kind == "fin":
            if waiters:
                value = a[0] if self.serializes else a
                for w in waiters:
                    w.inputs[job.id] = value
                    if w.trace_in is not None:
                        w.trace_in.append(_Input(job.id, self.rank, 0, 0.0, 0.0))
                    w.missing -= 1
                    if w.missing == 0:
                        self._runq.append(w)
        else:
            self._note_failed(job.id)
            self._drop_waiters(waiters)
        if kind == "fin":
            old = self._fn_time.get(job.fn_id)
            self._fn_time[job.fn_id] = b[1] if old is None else 0.8 * old + 0.2 * b[1]
            if job.point is not None and self._point_launch.get(job.id) not in self._launch_of:
                self._point_launch.pop(job.id, None)  # (its launch failed and was freed while it ran)
                if self._awaits:
                    self._refuse_awaits(job.id, None, "its launch was freed")
                return
            self.store[job.id] = a
            aw = self._awaits.pop(job.id, None)
            if aw:
                for dest, rid in aw:
                    self._serve(dest, job.id, rid)
            if job.save is not None:
                self._checkpoint_writer().add(job.save, job.name, a[0] if self.serializes else a)
            if job.point is not None:
                self._point_ended(job.id, None, b[0], b[1])
            else:
                self._send(SCHEDULER, msg.Finished(job.id, *b))  # (nbytes, seconds[, GPU bytes])
        elif job.point is None:
            self._send(SCHEDULER, msg.Failed(job.id, a, b, False))
        if self.trace_runs is not None and len(self.trace_runs) >= TRACE_BATCH:
            self._send_trace()

    # ------------------------------------------------------------ tracing

    def _trace_on(self, start: float) -> None:
        """Record every task run from now on (rank 0 asked: ``trace=``)."""
        if self.trace_runs is None:
            self.trace_runs = []
            self._wall = _wall_offset()  # (again: the wall clock may have been adjusted since)
            if self._writer is not None:
                self._writer.on_commit = self._checkpoint_written

    def _send_trace(self) -> None:
        """Send rank 0 the trace records gathered so far (tracing on)."""
        if self.trace_runs is None or not (self.trace_runs or self.trace_instants):
            return
        runs, self.trace_runs = self.trace_runs, []
        instants, self.trace_instants = self.trace_instants, []
        self._send(SCHEDULER, msg.TraceBatch(runs, instants))

    def _checkpoint_written(self, path: str, entries: int, nbytes: int, started: float, ended: float) -> None:
        """The checkpoint writer finished a file (on its own thread: a list append)."""
        self.trace_instants.append(_Instant("checkpoint-write", self.rank, ended, {
            "file": os.path.basename(path), "entries": entries, "bytes": nbytes,
            "seconds": round(ended - started, 6)}))

    def _trace_run(self, job: _Job, t0: float, t1: float, nbytes: int, ok: bool) -> None:
        """Record one run of ``job`` (from ``perf_counter`` times; any thread)."""
        ident = threading.get_ident()
        track = self._tracks.get(ident)
        if track is None:  # the comm thread is track 0, executor threads 1, 2, ... as they first run
            track = 0 if threading.current_thread() is self._comm_thread else \
                1 + sum(1 for t in self._tracks.values() if t > 0)
            self._tracks[ident] = track
        inputs = tuple(job.trace_in or ())
        loop = job.loop  # (each step of a loop traced under its own id)
        tid = job.id if loop is None else loop[0].trace_id(loop[1], job.call[0])
        self.trace_runs.append(_TaskRun(tid, job.name, self.rank, track, self._wall + t0, self._wall + t1,
                                        sum(i.nbytes for i in inputs), nbytes, job.attempt - 1, ok, inputs))

    # ----------------------------------------------------- from other ranks

    def _on_message(self, src: int, m: tuple) -> None:
        kind = type(m)
        if kind is msg.Exec:
            self._on_exec(m)
        elif kind is msg.LaunchExec:
            self._on_launch(m)
        elif kind is msg.FreeLaunch:
            self._free_launch(m.launch_id, m.forward)
        elif kind is msg.LaunchMoved:
            self._launch_moved(m)
        elif kind is msg.LoopValue:
            self._loop_value(m)
        elif kind is msg.LaunchReport:  # a child's subtree of a launch tree is done
            self._subtree_done(m)
        elif kind is msg.FnCode:
            self.fn_cache[m.fn_id] = m.code  # unpickled lazily, on an executor thread
            self._fn_bytes[m.fn_id] = m.code
        elif kind is msg.Get:
            self._serve(src, m.task_id, m.req_id)
        elif kind is msg.Await:
            self._on_await(src, m.task_id, m.req_id)
        elif kind is msg.Value:
            self._on_value(m.req_id, m.ok, m.payload, m.buffers)
        elif kind is msg.Free:
            discard = self.store.discard  # (a spilled value is not read back to be dropped)
            for tid in m.task_ids:
                discard(tid)
            if self._awaits:  # (stale requests of consumers that went elsewhere)
                for tid in m.task_ids:
                    self._refuse_awaits(tid, None, "it was freed")
        elif kind is msg.Ended:
            self._deliver(m.task_id, m.owner, m.error)
        elif kind is msg.GiveBack:
            self._give_back(m.task_ids)
        elif kind is msg.Configure:
            self.ckpt_dir = m.directory
            self.checkpointing = bool(self.ckpt_dir)
            self.checkpoint_all = m.save_all
        elif kind is msg.PeerLost:
            self._on_lost(m.rank)
        elif kind is msg.RankDead:  # seen by the transport (ULFM); rank 0 says what to do
            if src == SCHEDULER:
                sys.stderr.write(f"dagmpi: rank {self.rank}: rank 0 (the driver) died; ending the job\n")
                sys.stderr.flush()
                self.transport.abort(1)
            self.dead.add(src)
        elif kind is msg.Abort:  # rank 0 ends the job (ULFM, where MPI_Abort would not)
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind is msg.Preempt:
            self._preempt_until = time.monotonic() + m.grace
        elif kind is msg.Resize:
            self._resize(m.slots, m.resources)
        elif kind is msg.TraceOn:
            self._trace_on(m.start)
        elif kind is msg.Stop:
            self._stopping = True
        else:
            raise RuntimeError(f"rank {self.rank}: unknown message {m!r} from rank {src}")

    def _resize(self, slots: int, resources: str) -> None:
        """New slots and resources (the script's ``init()``, before any task): say hello again."""
        from ..gpu import devices

        res, gpus = devices.offers(slots, resources)
        with self._jobs_lock:
            self.slots = slots
        self._set_processors(slots, list(gpus), res)
        self._send(SCHEDULER, msg.Hello(self.slots, self.host, self.offers))

    def _set_processors(self, slots: int, gpus: list[int], resources: dict) -> None:
        """What this rank offers the scheduler (see ``Options.resources``); with a
        GPU, start its backend: GPU values then stay in its memory, and its size
        is offered as ``gpu_memory``."""
        self.gpus = gpus
        extra: dict[str, Any] = {}
        if gpus:
            from ..gpu import backend, devices

            self._gpu = backend.activate(gpus[0])
            if hasattr(self.transport, "gpu"):
                self.transport.gpu = self._gpu
            # (ranks that share one GPU offer a share of its memory each)
            extra["gpu_memory"] = float(self._gpu.memory()[1]) / devices.gpu_sharers()
        self.offers = {"cpu": slots, "gpu": len(gpus), "gpu_ids": gpus, **extra, **resources, "pid": os.getpid()}

    def _checkpoint_writer(self) -> Any:
        if self._writer is None:
            from ..checkpoint.hdf5 import Writer

            self._writer = Writer(self.ckpt_dir, self.rank, roll_seconds=self.checkpoint_interval)
            if self.trace_runs is not None:
                self._writer.on_commit = self._checkpoint_written
        return self._writer

    def close_checkpoint(self, timeout: Optional[float] = None) -> int:
        """Make every saved result durable; return how many this rank saved."""
        if self._writer is None:
            return 0
        self._writer.close(timeout)
        return self._writer.written

    def _not_run(self, job: _Job) -> None:
        """``job``, waiting for its inputs, will not run: one of them failed."""
        if job.loop is not None:  # a loop's step 0 (its id is its last step's too: not _note_failed)
            st = job.loop[0]
            if self._loops.get(st.id) is st:  # (its failure goes on to the next step; once: ended0)
                self._loop_step_done(st, 0, job.call[0], False, f"point {job.call[0]} of loop {st.spec[0]!r} "
                                     "not run: one of its inputs failed")
            return
        self._note_failed(job.id)

    def _note_failed(self, task_id: int) -> None:
        if self._point_launch and task_id in self._point_launch:  # a point whose input failed
            self._point_ended(task_id, f"point {task_id:#x} not run: one of its inputs failed")
        failed = self._failed_here
        failed[task_id] = None
        if len(failed) > 100_000:
            del failed[next(iter(failed))]
        if self._awaits:
            self._refuse_awaits(task_id, msg.FAILED, "it failed")

    def _on_await(self, src: int, tid: int, rid: int) -> None:
        """A consumer that ran ahead on ``src`` wants ``tid``'s value: send it now if
        it exists, say why not if it never will here, else when the task ends."""
        if tid in self.store:
            self._serve(src, tid, rid)
        elif tid in self._failed_here:
            self._send(src, msg.Value(rid, False, f"input task {tid:#x} failed on rank {self.rank}", msg.FAILED))
        elif tid in self._given_back and not self._given_back[tid]:
            self._send(src, msg.Value(rid, False, f"input task {tid:#x} left rank {self.rank}", msg.MOVED))
        else:  # queued or running here (or its Exec is still on its way)
            self._awaits.setdefault(tid, []).append((src, rid))

    def _refuse_awaits(self, tid: int, why: Optional[str], words: str) -> None:
        """Answer the consumers waiting for ``tid`` that it will not come from here."""
        aw = self._awaits.pop(tid, None)
        if aw:
            text = f"rank {self.rank} will not compute input task {tid:#x}: {words}"
            for dest, rid in aw:
                self._send(dest, msg.Value(rid, False, text, why))

    def _drop_waiters(self, waiters: Optional[list]) -> None:
        """Jobs that ran ahead and wait for an input that failed here will never
        run (rank 0 fails them on the same news); drop them and their own waiters."""
        while waiters:
            w = waiters.pop()
            self._not_run(w)
            if w.loop is None:
                waiters.extend(self._local_waits.pop(w.id, ()))
            else:  # (a loop's step 0 shares its id with the last step: those are not its readers;
                self._forget_jobs([w])  # and it will not run when its other inputs come)

    def _give_back(self, task_ids: Any) -> None:
        """Rank 0 wants these queued tasks for an idle rank: return those not started."""
        wanted = set(task_ids)
        with self._jobs_lock:
            keep = collections.deque(j for j in self._runq if j.id not in wanted)
            taken = [j for j in self._runq if j.id in wanted]
            self._runq.clear()
            self._runq.extend(keep)
        returned = [self._spec_of(j) for j in taken]
        given = {j.id for j in taken}
        self._send(SCHEDULER, msg.Returned(returned, [t for t in task_ids if t not in given]))

    def _on_lost(self, rank: int) -> None:
        """Rank 0 says ``rank`` died: give back the queued tasks that were still
        fetching an input from it (and those that ran ahead here behind them);
        rank 0 has the inputs computed again and places them anew."""
        self._lost_rank(rank)
        if self._awaits:
            for tid in list(self._awaits):
                left = [a for a in self._awaits[tid] if a[0] != rank]
                if left:
                    self._awaits[tid] = left
                else:
                    del self._awaits[tid]
        # (a launch's point keeps waiting: rank 0 computes its input again and says
        # where, LaunchMoved; other tasks go back to rank 0)
        hit = {rid: job for rid, (job, _, owner) in self._input_reqs.items() if owner == rank and job.point is None}
        if not hit:
            return
        n = self._return_waiting(hit.values())
        log.info("rank %d: rank %d died; giving back %d task(s) that needed its data", self.rank, rank, n)

    def _return_waiting(self, waiting: Any) -> int:
        """Give back to rank 0 jobs that wait for inputs they will not get from where
        they asked, with the jobs that ran ahead here behind them; their count."""
        jobs = {id(j): j for j in waiting}
        stack = list(jobs.values())
        while stack:
            j = stack.pop()
            if j.pinned or j.loop is not None:
                continue  # (it comes back here: what waits for it here waits on; a loop's step 0:
                # what waits for its id waits for the last step)
            for w in self._local_waits.pop(j.id, ()):
                if id(w) not in jobs:
                    jobs[id(w)] = w
                    stack.append(w)
        self._forget_jobs(jobs.values())
        for j in jobs.values():  # a launch's points are not given back: they fail (rank 0 fails the launch)
            if j.point is not None:
                self._not_run(j)
        returned = [self._spec_of(j) for j in jobs.values() if j.point is None]
        if returned:
            self._send(SCHEDULER, msg.Returned(returned, []))
        return len(returned)

    def _spec_of(self, job: _Job) -> tuple[int, msg.TaskSpec]:
        """``(id, spec)`` of a job given back to rank 0 (remembered in ``_given_back``)."""
        given = self._given_back
        pinned = given[job.id] = job.pinned
        if len(given) > 100_000:
            del given[next(iter(given))]
        if self._awaits and not pinned:
            # (a launch's lost point computed again is pinned here: it comes back, and
            # the points on other ranks waiting for it keep waiting)
            self._refuse_awaits(job.id, msg.MOVED, "it was given back to rank 0")
        return job.id, msg.TaskSpec(job.name, job.fn_id, job.payload, serialize.portable(job.buffers), job.needs,
                                    job.policy, job.save, job.call)

    def _serve(self, dest: int, tid: int, rid: int) -> None:
        entry = self.store.get(tid, _MISSING)
        if entry is _MISSING:
            if tid in self._point_launch and tid not in self._failed_here:
                # a point of a launch here that has not ended: computed again after a rank
                # died (a loop running again from the start): answered when it ends
                self._awaits.setdefault(tid, []).append((dest, rid))
                return
            self._send(dest, msg.Value(rid, False,
                              f"rank {self.rank} does not hold the value of task {tid:#x} "
                              "(it was freed or never computed here)", None))
        elif self.serializes:
            self._send(dest, msg.Value(rid, True, entry[1], entry[2]))
        else:
            self._send(dest, msg.Value(rid, True, entry, None))

    def _on_value(self, rid: int, ok: bool, payload: Any, buffers: Any) -> None:
        hit = self._input_reqs.pop(rid, None)
        if hit is None:  # a nested fetch by user code on this rank
            self._pulled(rid, ok, payload, buffers)
            return
        job, dep, src = hit
        nb = (len(payload) + serialize.buffers_nbytes(buffers or ())) if ok and self.serializes else 0
        self.bytes_in += nb
        if job.trace_in is not None:
            job.trace_in.append(_Input(dep, src, nb, self._asked.pop(rid, 0.0), time.time()))
        if not ok and buffers is not None:  # an Await refused: that input failed, or moved
            if buffers == msg.FAILED:  # rank 0 fails this job too (upstream failure)
                self._forget_jobs([job])
                self._not_run(job)
                if job.loop is None:  # (a loop's step 0: the waiters of its id wait for its last step)
                    self._drop_waiters(self._local_waits.pop(job.id, None))
            else:
                self._return_waiting([job])
            return
        if not ok:
            job.failed = f"could not get the value of input task {dep:#x}: {payload}"
        elif self.serializes:
            try:
                job.inputs[dep] = value = serialize.load_value(payload, buffers)
            except Exception as exc:
                job.failed = f"could not unpickle the value of input task {dep:#x}: {exc!r}"
            else:
                self._cache_pulled(dep, value)
        else:
            job.inputs[dep] = payload
        job.missing -= 1
        if job.missing == 0:
            self._runq.append(job)

    def _cache_pulled(self, dep: int, value: Any) -> None:
        """Keep a pulled numpy array for later tasks here (made read-only: a task that
        writes into an input must copy it, as dagmpi's own kernels do)."""
        nbytes = getattr(value, "nbytes", 0)
        t = type(value)
        if t.__name__ != "ndarray" or t.__module__ != "numpy" or not nbytes or nbytes > self.pull_cache_limit // 4 \
                or dep in self._pull_cache:
            return
        value.flags.writeable = False
        cache = self._pull_cache
        cache[dep] = value
        self._pull_cache_bytes += nbytes
        while self._pull_cache_bytes > self.pull_cache_limit and cache:
            _, old = cache.popitem(last=False)
            self._pull_cache_bytes -= old.nbytes

    # ------------------------------------------------------------ launches

    def _on_launch(self, m: msg.LaunchExec) -> None:
        """This rank's points of a launch: ordinary jobs, their inputs found from the
        layouts (local ones handed over, remote ones awaited from their owners);
        reported to rank 0 once, when the last of them is done."""
        lid = m.launch_id
        if self._freed_launches and self._freed_launches.pop(lid, 0) is None:
            return  # freed already (it failed while it came down its tree)
        if m.loop is not None and m.loop[3] and lid in self._loop_epoch:
            self._loop_reset(lid)  # (a rank died: the loop runs again from the start)
        jobs = expand(m.base, m.layout, self.rank, m.reads)
        children: Any = ()
        parent = SCHEDULER
        if m.tree:  # pass it on down the tree; report for the subtree, to the parent
            tree = ReportTree(m.layout.touched())
            children = tree.children(self.rank)
            up = tree.parent(self.rank)
            parent = SCHEDULER if up is None else up
            for c in children:
                passed = self._fn_passed.setdefault(c, set())
                if m.fn_id not in passed and m.fn_id in self._fn_bytes:
                    passed.add(m.fn_id)
                    self._send(c, msg.FnCode(m.fn_id, self._fn_bytes[m.fn_id]))
                self._send(c, m)
        self._launch_of[lid] = (m.base, m.layout, children)
        # points left, bytes, seconds, errors, points counted, children left, where to report
        self._launch_left[lid] = [len(jobs), 0, 0.0, [], len(jobs), len(children), parent]
        me = self.rank
        save, restored = m.save, m.restored
        loop = None
        if m.loop is not None and jobs and not (restored and len(restored) == m.layout.n):
            # (a loop read back whole from a checkpoint runs no step: its points are read back)
            steps, projs, share, epoch = m.loop
            loop = self._loops[lid] = LoopState(lid, m.base, m.layout, me, steps, projs,
                                                (m.name, m.fn_id, m.payload, m.buffers, m.policy, save), epoch,
                                                share)  # (the share function: unpickled where it runs)
            save = restored = None  # (those are the last step's)
        if m.loop is not None:
            self._loop_epoch[lid] = m.loop[3]
        for tid, inputs in jobs:
            self._point_launch[tid] = lid
            i = tid - m.base
            where = restored.get(i) if restored else None
            if where is not None:  # in the checkpoint: read back here (as a restored input), not run
                ex = msg.Exec(tid, m.name, msg.RESTORED_FN, msg.NO_ARGS, (), ((tid, where),), None, None, 1, None, False)
                self._on_exec(ex, (i, (tid,)))
                continue
            # (an input named twice, e.g. both neighbours of a block on a periodic axis of
            # two blocks, is fetched once and passed twice)
            ex = msg.Exec(tid, m.name, m.fn_id, m.payload, m.buffers,
                          tuple({d: (d, o if o == me else ~o) for d, o in inputs}.values()), None, m.policy, 1,
                          save[i] if save else None, False)
            self._on_exec(ex, (i, tuple(d for d, _ in inputs)), loop)
        if loop is not None:
            self._loop_started(loop)

    def _point_ended(self, tid: int, error: Any, nbytes: int = 0, seconds: float = 0.0) -> None:
        """A point ended (``error``: its failure); the rank's report when it was the last."""
        lid = self._point_launch.pop(tid, None)
        st = None if lid is None else self._launch_left.get(lid)
        if st is None:
            return  # (not a point, or its launch failed and was freed while it ran)
        st[0] -= 1
        st[1] += nbytes
        st[2] += seconds
        if error is not None:
            st[3].append((tid, error))
        if st[0] <= 0 and st[5] <= 0 and lid not in self._loops:  # (a loop: when all its steps ended here)
            self._report_launch(lid, st)

    def _report_launch(self, lid: int, st: list) -> None:
        """This rank's points of a launch, and those of its subtree, are all done."""
        del self._launch_left[lid]
        self._send(st[6], msg.LaunchReport(lid, st[4], st[1], st[2], tuple(st[3]), self._loop_epoch.get(lid, 0)))

    def _subtree_done(self, m: msg.LaunchReport) -> None:
        """A child in a launch's tree reports its subtree."""
        st = self._launch_left.get(m.launch_id)
        if st is None:
            return  # (this launch was failed and freed meanwhile)
        st[5] -= 1
        st[4] += m.count
        st[1] += m.nbytes
        st[2] += m.seconds
        if m.errors:
            st[3].extend(m.errors)
        if st[0] <= 0 and st[5] <= 0 and m.launch_id not in self._loops:
            self._report_launch(m.launch_id, st)

    def _launch_moved(self, m: msg.LaunchMoved) -> None:
        """Points of a launch moved (their rank died; ULFM): this rank frees those it
        gets with the launch, and the points here that wait for one ask its new rank."""
        lid, base, layout = m.launch_id, m.base, m.layout
        entry = self._launch_of.get(lid)
        if entry is not None:
            self._launch_of[lid] = (base, layout, entry[2])
        elif self.rank in layout.touched():
            self._launch_of[lid] = (base, layout, ())
        end = base + layout.n
        moved = [(rid, job, dep, layout.rank_of(dep - base)) for rid, (job, dep, owner) in self._input_reqs.items()
                 if base <= dep < end and owner != layout.rank_of(dep - base)]
        for rid, job, dep, owner in moved:
            del self._input_reqs[rid]
            self._asked.pop(rid, None)
            if owner != self.rank:
                rid = next(self._req_ids)
                self._input_reqs[rid] = (job, dep, owner)
                if job.trace_in is not None:
                    self._asked[rid] = time.time()
                self._send(owner, msg.Await(dep, rid))
                continue
            entry = self.store.get(dep, _MISSING)  # (computed again here)
            if entry is _MISSING:
                self._local_waits.setdefault(dep, []).append(job)
                continue
            job.inputs[dep] = entry[0] if self.serializes else entry
            job.missing -= 1
            if job.missing == 0:
                self._runq.append(job)

    # ---------------------------------------------------------------- loops

    def _loop_started(self, st: LoopState) -> None:
        """A loop's step 0 is queued here: take the values pushed before it came, and
        start the points of later steps that read nothing (they wait for no one)."""
        early = self._early_pushes.pop(st.id, None) if self._early_pushes else None
        for m in early or ():
            if m.epoch >= st.epoch:  # (a later run's waits for that run's LaunchExec again)
                self._loop_value(m)
        k = len(st.projections)
        for first in range(1, min(k, st.steps - 1) + 1):
            empty = st.empty(first)
            for t in range(first, st.steps, k) if empty else ():
                for j in empty:
                    self._loop_start(st, t, j, {}, None)

    def _loop_reset(self, lid: int) -> None:
        """A loop runs again from the start (a rank died while it ran): drop what this
        rank has of its last run -- its state, its jobs waiting or queued (those running
        end unheard: ``_finish`` checks the run), its values -- but not the requests of
        other ranks for its last step's values: the new run answers them."""
        self._loops.pop(lid, None)
        self._launch_left.pop(lid, None)
        entry = self._launch_of.pop(lid, None)
        pl = self._point_launch
        waiting = self._waiting_points(lid)
        if waiting:
            self._forget_jobs(waiting)
        with self._jobs_lock:
            keep = [j for j in self._runq if not (j.loop is not None and j.loop[0].id == lid)]
            if len(keep) < len(self._runq):
                self._runq.clear()
                self._runq.extend(keep)
        if entry is not None:
            base, layout = entry[0], entry[1]
            discard = self.store.discard
            for i in layout.points_of(self.rank):
                pl.pop(base + i, None)
                discard(base + i)
                self._failed_here.pop(base + i, None)  # (a failure of the last run: it may not recur)

    def _loop_value(self, m: msg.LoopValue) -> None:
        """A value of a loop's step, pushed by the rank that computed it."""
        lid = m.launch_id
        st = self._loops.get(lid)
        if st is None or m.epoch != st.epoch:
            if m.epoch > self._loop_epoch.get(lid, -1) and lid not in self._freed_launches:
                self._early_pushes.setdefault(lid, []).append(m)  # (its LaunchExec comes later)
            return  # (else a push of a run a death cut short, or of a loop done here)
        value, error = None, None
        if not m.ok:
            error = m.payload
        elif not self.serializes:
            value = m.payload
        else:
            try:
                value = serialize.load_value(m.payload, m.buffers)
            except Exception as exc:  # noqa: BLE001 - the points reading it fail with this
                error = (f"could not unpickle the value of point {m.index} of loop {st.spec[0]!r} "
                         f"(step {m.step}): {exc!r}")
            else:
                if type(value).__name__ == "ndarray" and type(value).__module__ == "numpy":
                    value.flags.writeable = False  # (shared by the points here that read it)
        t1 = m.step + 1
        i = m.index
        if self.trace_runs is not None:
            if st.pushed is None:
                st.pushed = {}
            nb = (len(m.payload) + serialize.buffers_nbytes(m.buffers or ())) if m.ok and self.serializes else 0
            st.pushed[(m.step, i)] = (nb, time.time())
        for j in st.links(t1)[0].get(i, ()):
            got = st.arrive(t1, j, i, value, error)
            if got is not None:
                self._loop_start(st, t1, j, got[1], got[2])

    def _loop_step_done(self, st: LoopState, t: int, i: int, ok: bool, result: Any) -> None:
        """Point ``i`` of step ``t`` (not the last) of a loop ended here (``ok``:
        ``result`` as a job's, else the error): its value goes to the ranks and points
        that read it at the next step."""
        if self._loops.get(st.id) is not st:
            return  # (the loop failed, and was freed, meanwhile)
        if t == 0:
            if i in st.ended0:
                return  # (a step-0 point whose inputs failed twice, or that ran after one failed)
            st.ended0.add(i)
        local, remote = st.readers(t, i)
        report = self._launch_left.get(st.id)
        if not ok and report is not None and not report[3]:
            # (the rank's report names the loop's first error, even one whose cone ends
            # before the last step: a failed point fails its loop, as it fails a launch)
            report[3].append((st.base + i, result))
        own = None
        if ok:
            if st.share is not None:  # (the carry form: its own value, and its share)
                own, result = result
            if self.serializes:
                value, payload, buffers = result
            else:
                value = payload = result
                buffers = None
            error = None
        else:
            value, payload, buffers, error = None, result, None, result
        if remote:
            lid = st.id
            for dest in remote:
                self._send(dest, msg.LoopValue(lid, t, i, ok, payload, buffers, st.epoch))
        t1 = t + 1
        if st.share is not None:  # (its own next step reads its value here)
            got = st.arrive(t1, i, OWN, own, error)
            if got is not None:
                self._loop_start(st, t1, i, got[1], got[2])
        for j in local:
            got = st.arrive(t1, j, i, value, error)
            if got is not None:
                self._loop_start(st, t1, j, got[1], got[2])
        if st.one_done():
            self._loop_ended(st.id)

    def _loop_ended(self, lid: int) -> None:
        """Every point of the loop here ended its steps before the last and started the
        last: drop its state; report the loop if its last step's points have ended too
        (a point's last step may end before another's earlier steps: the report waits,
        so that it names an error of any step)."""
        self._loops.pop(lid, None)
        st = self._launch_left.get(lid)
        if st is not None and st[0] <= 0 and st[5] <= 0:
            self._report_launch(lid, st)

    def _loop_start(self, st: LoopState, t: int, j: int, inputs: dict, error: Any) -> None:
        """Point ``j`` of step ``t >= 1`` has its inputs: queue its job (``error``: one
        of them failed; so does it, without running)."""
        last = t == st.steps - 1
        tid = st.base + j
        if last and st.one_done():
            self._loop_ended(st.id)  # (nothing more comes for it here)
        if error is not None:
            if last:  # (as a point that ran and failed: see _finish)
                self._point_ended(tid, error)
                self._note_failed(tid)
                self._drop_waiters(self._local_waits.pop(tid, None))
            else:
                self._loop_step_done(st, t, j, False, error)
            return
        name, fn_id, payload, buffers, policy, save = st.spec
        job = _Job(msg.Exec(tid, name, fn_id, payload, buffers, (), None, policy, 1,
                            save[j] if last and save else None, False))
        job.point = job.call = (j, st.call(t, j))
        job.inputs = inputs
        job.loop = (st, t)
        if self.trace_runs is not None:
            # (a value pushed here: its bytes on the first point that reads it, with its
            # arrival; no request, so no ask time)
            pushed = st.pushed or {}
            job.trace_in = trace_in = []
            for d, r, i in st.trace_inputs(t, j):
                nbytes, arrived = pushed.pop((t - 1, i), (0, 0.0))
                trace_in.append(_Input(d, r, nbytes, 0.0, arrived))
        self._runq.append(job)

    def _waiting_points(self, lid: int) -> list:
        """The jobs of launch ``lid``'s points here that wait for inputs (each once)."""
        pl = self._point_launch
        waiting = {id(j): j for j, _, _ in self._input_reqs.values() if pl.get(j.id) == lid}
        for ws in self._local_waits.values():
            waiting.update((id(j), j) for j in ws if pl.get(j.id) == lid)
        return list(waiting.values())

    def _free_launch(self, lid: int, forward: bool = True) -> None:
        """Rank 0 says nothing needs this launch's values any more."""
        if self._launch_left.pop(lid, None) is not None:  # (it failed, or a child died)
            # its points still waiting for inputs never run (e.g. for a point that was on
            # a rank that died and could not be computed again)
            waiting = self._waiting_points(lid)
            if waiting:
                self._forget_jobs(waiting)
                for j in waiting:
                    self._point_launch.pop(j.id, None)
        if self._loops:
            self._loops.pop(lid, None)  # (its jobs still queued run, and their values are dropped)
        if self._early_pushes:
            self._early_pushes.pop(lid, None)
        if self._loop_epoch and self._loop_epoch.pop(lid, None) is not None:
            # a loop: pushes still on their way are dropped, and its points leave the tables
            self._freed_launches[lid] = None
            entry = self._launch_of.get(lid)
            if entry is not None:
                for i in entry[1].points_of(self.rank):
                    self._point_launch.pop(entry[0] + i, None)
        entry = self._launch_of.pop(lid, None)
        if entry is None:  # (freed before its LaunchExec came down a tree: drop that when it comes)
            self._freed_launches[lid] = None
            if len(self._freed_launches) > 10_000:
                del self._freed_launches[next(iter(self._freed_launches))]
            return
        base, layout, children = entry
        if forward:
            for c in children:
                self._send(c, msg.FreeLaunch(lid))
        discard = self.store.discard
        for i in layout.points_of(self.rank):
            discard(base + i)
            if self._awaits:
                self._refuse_awaits(base + i, None, "it was freed")

    def _on_exec(self, m: msg.Exec, point: Any = None, loop: Optional[LoopState] = None) -> None:
        job = _Job(m)
        if point is not None:
            job.point = job.call = point
            if loop is not None:
                job.loop = (loop, 0)
        given = self._given_back
        if given:
            given.pop(job.id, None)
        values: dict[int, Any] = {}
        store = self.store
        tracing = self.trace_runs is not None
        if tracing:
            job.trace_in = trace_in = []
        for dep, owner in job.inputs:
            entry = store.get(dep, _MISSING) if owner == self.rank else _MISSING
            if entry is not _MISSING:
                values[dep] = entry[0] if self.serializes else entry
                if tracing:
                    trace_in.append(_Input(dep, self.rank, 0, 0.0, 0.0))
            elif isinstance(owner, Location):  # restored: read it from the checkpoint here
                asked = time.time()
                try:
                    values[dep] = self._checkpoint_reader().load(owner)
                except Exception as exc:  # noqa: BLE001 - the task fails with this
                    job.failed = f"could not read the checkpointed value of input {dep:#x}: {exc}"
                if tracing:
                    trace_in.append(_Input(dep, _FROM_CHECKPOINT, getattr(owner, "nbytes", 0), asked, time.time()))
            elif owner == self.rank:
                # rank 0 ran this task ahead: its input is being computed here
                if dep in self._failed_here:
                    if job.missing:
                        self._forget_jobs([job])
                    self._not_run(job)
                    return  # that input failed: rank 0 has failed this task too
                if dep in given and not (given[dep] and job.point is not None):
                    # ... but this rank gave that input back (the two messages
                    # crossed): give this one back too; rank 0 places it again
                    # (a launch's point waits for a pinned input: that comes back here)
                    if job.missing:
                        self._forget_jobs([job])
                    self._send(SCHEDULER, msg.Returned([self._spec_of(job)], []))
                    return
                self._local_waits.setdefault(dep, []).append(job)
                job.missing += 1
            elif dep in self._pull_cache:
                self._pull_cache.move_to_end(dep)
                values[dep] = self._pull_cache[dep]
                if tracing:  # (pulled earlier for another task here: nothing moves now)
                    trace_in.append(_Input(dep, owner if owner >= 0 else ~owner, 0, 0.0, 0.0))
            else:
                # ``owner < 0``: it ran ahead of an input being computed on rank
                # ``~owner``: ask now, and that rank sends the value the moment it exists
                src = ~owner if owner < 0 else owner
                rid = next(self._req_ids)
                self._input_reqs[rid] = (job, dep, src)
                if tracing:
                    self._asked[rid] = time.time()
                job.missing += 1
                self._send(src, msg.Await(dep, rid) if owner < 0 else msg.Get(dep, rid))
        job.inputs = values
        if job.missing == 0:
            self._runq.append(job)

    def _forget_jobs(self, jobs: Any) -> None:
        """Forget jobs waiting for inputs (given back): the input requests they sent
        (answers are then ignored) and their places in local waits."""
        gone = {id(j) for j in jobs}
        self._input_reqs = {rid: v for rid, v in self._input_reqs.items() if id(v[0]) not in gone}
        for dep in list(self._local_waits):
            left = [w for w in self._local_waits[dep] if id(w) not in gone]
            if left:
                self._local_waits[dep] = left
            else:
                del self._local_waits[dep]

_MISSING = object()


def _restored(index: int, value: Any) -> Any:
    """A point read back from the checkpoint (``msg.RESTORED_FN``): its value is its one input."""
    return value


def _wall_offset() -> float:
    """``time.time() - time.perf_counter()``, from the tightest of a few bracketed reads:
    a thread preempted between the two clock calls (a loaded node) would otherwise put
    every traced run of this rank off by the length of that pause."""
    best = (float("inf"), 0.0)
    for _ in range(5):
        a = time.perf_counter()
        w = time.time()
        b = time.perf_counter()
        if b - a < best[0]:
            best = (b - a, w - (a + b) / 2)
    return best[1]
