"""Rank 0: the driver (the user's script) and the loop that runs the scheduler.

The user's thread spawns and fetches through :class:`Driver` (a
:class:`~dagmpi.client.Client`).  One background thread, the *runtime loop*,
owns the transport: it turns messages from workers and from the user's
thread into scheduler events, calls :meth:`Scheduler.handle` once per batch,
and sends the resulting instructions, batched per destination rank.

Shutdown is explicit: :meth:`Driver.shutdown` waits until every submitted
task has ended, sends :class:`~dagmpi.runtime.messages.Stop` to every worker and waits for
each :class:`~dagmpi.runtime.messages.Bye`.  An exception inside the loop (a bug, never a user error) is
logged and aborts the whole job, so no rank is left waiting forever.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

from .. import serialize
from ..core import events as ev
from ..core.launches import TREE_FANOUT
from . import messages as msg
from .client import Client
from .tracing import Collector
from ..errors import DagmpiError
from ..core.scheduler import Scheduler
from ..transport.base import Transport

log = logging.getLogger(__name__)


#: Seconds without a step by the spawning thread that drives the loop before
#: the runtime thread takes it back.
CLAIM_IDLE = 10e-3
#: A thread waiting to lead the loop looks at what it waits for this often.
LEAD_RECHECK = 10e-3


class Driver(Client):
    """Rank 0's client and runtime loop."""

    auto_watch = True
    #: Queued submissions at which a spawning thread drives the loop itself.
    drive_every = 128

    def __init__(self, transport: Transport, worker_ranks: Any, prefetch: int = 2,
                 poll_timeout: float = 0.05) -> None:
        super().__init__(transport.rank, worker_ranks, transport.serializes)
        self.transport = transport
        #: The job goes on when a worker rank dies (ULFM): keep lineage to recompute.
        self.fault_tolerant = bool(getattr(transport, "fault_tolerant", False))
        self.scheduler = Scheduler(prefetch=prefetch, lineage=self.fault_tolerant)
        self.scheduler.make_point_spec = msg.point_spec
        self.scheduler.make_restore_spec = msg.restore_spec
        self.failures: list[dict] = []  # one record per dead rank: when, what was redone
        self.fn_table: dict[tuple[int, int], bytes] = {}
        self.fn_sent: dict[int, set] = {r: set() for r in self.worker_ranks}
        self.hosts: dict[int, str] = {}
        self.slots: dict[int, int] = {}
        self.offers: dict[int, dict] = {}  # rank -> resources it offers
        #: Completed checkpoint entries found at start (``None``: checkpointing off).
        self.ckpt_index: Any = None
        self.ckpt_dir = ""
        self.used_keys: set[str] = set()  # every task key of this run (for ``ckpt gc``)
        #: Seconds running tasks may go on after a preemption signal.
        self.grace = 10.0
        self._signal = 0  # set by a signal handler (SIGTERM/SIGUSR1): preempt
        self._preempt_deadline = 0.0
        self._flushed: dict[int, int] = {}
        #: Called when a preempted run has saved its checkpoint: ends the job.
        self.on_preempted: Callable[[int], None] = lambda code: transport.abort(code)
        self._poll_timeout = poll_timeout
        self._frees: dict[int, list] = {}
        self._stop_requested = False
        #: Seconds the driver waits at the end of the script for unfinished tasks
        #: before it says which ones it waits for (then again every minute).
        self.shutdown_notice = 5.0
        self._stop_time = 0.0
        self._notice_at = 0.0
        self._stop_sent = False
        self._byes: set[int] = set()
        #: rank -> the numbers its store sent with ``Bye`` (memory limit, spilled, read back).
        self.worker_stats: dict[int, dict] = {}
        #: Tracing (``trace=``): gathers the records; ``None`` while tracing is off.
        self.tracer: Optional[Collector] = None
        #: When the runtime started (``time.time()``): time zero of a trace, the wall time.
        self.started = time.time()
        self._stopped = threading.Event()
        self._joined = threading.Event()
        self._fatal: Optional[BaseException] = None
        self._on_fatal: Callable[[], None] = lambda: transport.abort(1)
        self._thread = threading.Thread(target=self._main, name="dagmpi-runtime", daemon=True)
        # Leadership of the loop: the runtime thread drives it, except while
        # a user thread waits in fetch/wait: that thread drives it itself (no
        # thread wake-up per message) and the runtime thread stands aside.
        self._lead = threading.Condition(threading.Lock())
        self._leader = False
        self._want_lead = 0
        # A thread spawning many tasks drives the loop itself every
        # ``drive_every`` submissions (see :meth:`_spawned`): one thread doing
        # both halves is much cheaper than two threads taking turns with the GIL
        # (every MPI call lets the other one in, for up to a switch interval).
        self._claim: Optional[int] = None  # ident of the thread that claimed the loop
        self._claim_step = 0.0  # when it last drove a step
        self._finished = False

    def start(self) -> "Driver":
        self._thread.start()
        return self

    def wakeup(self) -> None:
        self.transport.wakeup()

    # -------------------------------------------------------------- loop

    def _main(self) -> None:
        lead = self._lead
        try:
            while not self._finished:
                with lead:
                    while self._want_lead or self._leader:
                        if self._claim is not None:
                            # a spawning thread drives; take the loop back once it stops
                            lead.wait(CLAIM_IDLE)
                            if self._claim is not None and not self._leader and \
                                    time.monotonic() - self._claim_step >= CLAIM_IDLE:
                                self._claim = None
                                self._want_lead -= 1
                        else:
                            lead.wait()
                    self._leader = True
                try:
                    self._step(self._poll_timeout, spin=False)
                finally:
                    self._give_lead()
        except BaseException as exc:  # noqa: BLE001
            self._die(exc)
        finally:
            self._stopped.set()

    def _die(self, exc: BaseException) -> None:
        self._fatal = exc
        self._finished = True
        msg = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        sys.stderr.write(f"dagmpi: rank 0: the runtime loop failed; aborting the job\n{msg}")
        sys.stderr.flush()
        self._fail_all(DagmpiError(f"the dagmpi runtime failed: {exc!r}"))
        self._on_fatal()

    def _spawned(self) -> None:
        """After a spawn on a user thread: with ``drive_every`` submissions queued,
        this thread runs a turn of the loop itself (see ``_claim``).  It never
        waits for the loop: whoever leads it at the moment sends the queue."""
        if len(self._outq) < self.drive_every or self._finished:
            return
        me = threading.get_ident()
        lead = self._lead
        with lead:
            if self._claim is None:
                self._claim = me
                self._claim_step = time.monotonic()
                self._want_lead += 1
                self.wakeup()  # the runtime thread leaves its poll and then stands aside
            elif self._claim != me:
                return  # another thread drives: it, or the runtime thread, sends these
            if self._leader:
                # someone leads now (the runtime thread finishing its turn, or a thread
                # waiting in fetch, maybe for long): it sends these; never wait here
                return
            self._leader = True
        try:
            self._user_step(0, spin=False)
        finally:
            self._claim_step = time.monotonic()
            self._give_lead()

    def _user_step(self, timeout: float, spin: bool) -> None:
        """A turn of the loop on a user thread that leads it; a failure ends the job."""
        try:
            self._step(timeout, spin)
        except KeyboardInterrupt:  # Ctrl-C in the script's thread: the script ends the job
            raise
        except BaseException as exc:  # noqa: BLE001
            self._die(exc)
            raise

    def _give_lead(self) -> None:
        with self._lead:
            self._leader = False
            self._lead.notify_all()

    def _wait_until(self, predicate: Callable[[], bool], timeout: Optional[float], key: Any = None) -> bool:
        if predicate():
            return True
        if threading.current_thread() is self._thread or self._finished:
            return super()._wait_until(predicate, timeout, key)
        lead = self._lead
        deadline = None if timeout is None else time.monotonic() + timeout
        with lead:
            self._want_lead += 1
        try:
            self.wakeup()  # the runtime thread leaves its poll and stands aside
            with lead:
                while self._leader:
                    # another thread leads (maybe waiting in fetch for long): what this
                    # one waits for may end meanwhile, driven by that thread
                    if predicate():
                        return True
                    lead.wait(LEAD_RECHECK)
                self._leader = True
            try:
                while not predicate():
                    if self._finished:
                        break
                    wait = self._poll_timeout
                    if deadline is not None:
                        wait = min(wait, deadline - time.monotonic())
                        if wait <= 0:
                            return predicate()
                    self._user_step(wait, spin=True)
            finally:
                self._give_lead()
        finally:
            with lead:
                self._want_lead -= 1
                lead.notify_all()
        if predicate():
            return True
        return super()._wait_until(predicate, None if deadline is None else max(0.0, deadline - time.monotonic()),
                                   key)

    def joined(self, timeout: Optional[float] = 60.0) -> dict[int, dict]:
        """Wait until every worker has said hello; return rank -> what it offers."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._heard_from_all(self.offers) or self._finished, timeout)
        if not ok:
            missing = sorted(set(self.worker_ranks) - set(self.offers))
            raise TimeoutError(f"worker rank(s) {missing} did not report within {timeout} s")
        return dict(self.offers)

    def resize_workers(self, slots: int, resources: str, timeout: float = 60.0) -> None:
        """Give every worker rank new ``slots``/``resources`` (before any task was spawned)
        and wait for their new offers.

        The first hellos are awaited before the old offers are dropped: a first hello still in
        flight would otherwise be taken for the answer to the resize."""
        self.joined(timeout)
        with self._cond:
            for r in self.worker_ranks - self.dead:
                self.offers.pop(r, None)
                self.slots.pop(r, None)
        self._outq.append(msg.Resize(slots, resources))
        self.wakeup()
        self.joined(timeout)

    def processors(self) -> list[dict[str, Any]]:
        """One entry per worker rank: host, CPU slots, GPU ids, memory and other resources."""
        offers = self._live_offers()
        return [{"rank": r, "host": self.hosts[r], "pid": offers[r].get("pid"), "cpu_slots": self.slots[r],
                 "gpus": list(offers[r].get("gpu_ids", ())),
                 "memory": int(offers[r].get("memory", 0)),
                 "resources": {k: v for k, v in offers[r].items() if k not in ("gpu_ids", "pid")}}
                for r in sorted(offers)]

    def _live_offers(self) -> dict[int, dict]:
        return {r: o for r, o in self.joined().items() if r not in self.dead}

    def _heard_from_all(self, ranks: Any) -> bool:
        """Every worker rank is in ``ranks`` or dead."""
        return self.worker_ranks <= set(ranks) | self.dead

    @property
    def n_restored(self) -> int:
        """Tasks (and points of launches) of this run completed from the checkpoint."""
        return self.scheduler.n_restored + self.n_points_restored

    holds_index = True

    def _saved(self, key: str) -> Any:
        index = self.ckpt_index
        return None if index is None else index.get(key)

    def _check_placeable(self, ranks: Optional[frozenset], needs: Optional[dict]) -> None:
        from ..core.placement import unplaceable

        why = unplaceable(self._live_offers(), ranks, needs)
        if why is not None:
            raise ValueError(f"impossible scope: {why}")

    def note_signal(self, signum: int) -> None:
        """Signal handler side (main thread): ask the loop to preempt the run."""
        if not self._signal:
            self._signal = signum
        self.transport.wakeup_from_signal()

    def _preempt_step(self) -> None:
        """Preemption: stop dispatching, let workers finish running tasks within
        ``grace`` seconds and make their checkpoints durable, then end the job
        with :data:`~dagmpi.checkpoint.base.EXIT_PREEMPTED`."""
        import signal as _signal

        from ..checkpoint.base import EXIT_PREEMPTED

        now = time.monotonic()
        name = _signal.Signals(self._signal).name
        if not self._preempt_deadline:
            dead = self._dead_local_workers()
            if dead:
                # Without ULFM the launcher ends the job when a rank dies, with SIGTERM to the
                # others: that is not a preemption, and nothing more can be saved.
                sys.stderr.write(f"dagmpi: {dead}; without ULFM the MPI library ends the whole job "
                                 f"({name} to every rank){self._resume_hint()}\n")
                sys.stderr.flush()
                self._finished = True
                self.on_preempted(1)
                return
            self._preempt_deadline = now + self.grace
            log.warning("preempted by %s: no new tasks; running tasks get %.0f s", name, self.grace)
            for r in self.worker_ranks - self.dead:
                self._send(r, msg.Preempt(self.grace))
            self._flush()
            return
        if not self._heard_from_all(self._flushed) and now < self._preempt_deadline + 30:
            return
        saved = sum(self._flushed.values())
        if self.ckpt_dir:
            what = (f"{saved} result(s) saved in {self.ckpt_dir}; exiting with status {EXIT_PREEMPTED} "
                    f"(resumable: run the same command again)")
        else:
            what = (f"checkpointing is off, so nothing was saved and a rerun starts from the "
                    f"beginning (set DAGMPI_CHECKPOINT=<folder> to make runs resumable); exiting "
                    f"with status {EXIT_PREEMPTED}")
        sys.stderr.write(f"dagmpi: preempted by {name}: {what}\n")
        if self.tracer is not None:  # a preempted run still leaves its trace
            self.tracer.instant("preempted", self.rank, signal=name, saved=saved)
            self.write_trace(preempted=True)
        sys.stderr.flush()
        sys.stdout.flush()
        self._finished = True
        self.on_preempted(EXIT_PREEMPTED)

    def _dead_local_workers(self) -> str:
        """Worker ranks on this host whose process is gone (or a zombie), as words; "" if none.

        Ranks on other hosts cannot be checked from here."""
        import os
        import socket

        host = socket.gethostname()
        gone = []
        for r in sorted(self.worker_ranks - self.dead):
            pid = self.offers.get(r, {}).get("pid")
            if pid is None or self.hosts.get(r) != host:
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    alive = f.read().rsplit(")", 1)[1].split()[0] != "Z"
            except OSError:
                try:
                    os.kill(pid, 0)
                    alive = True
                except ProcessLookupError:
                    alive = False
                except OSError:
                    alive = True
            if not alive:
                gone.append(f"rank {r} (pid {pid} on {host})")
        if not gone:
            return ""
        return f"worker {', '.join(gone)} died" if len(gone) == 1 else \
            f"worker ranks {', '.join(gone)} died"

    def _resume_hint(self) -> str:
        if self.ckpt_dir:
            return f"; results saved in {self.ckpt_dir} are restored when you run the same command again"
        return "; checkpointing is off, so a rerun starts from the beginning"

    def _waiting_notice(self, now: float) -> None:
        """The script ended but tasks it spawned still run: say which, now and then."""
        if now < self._notice_at:
            return
        first = self._notice_at == self._stop_time + self.shutdown_notice
        self._notice_at = now + (60.0 if not first else 30.0)
        active = self.scheduler.describe_active(limit=5)
        n = self.scheduler.n_active
        listed = "; ".join(active)
        more = f"; and {n - len(active)} more" if n > len(active) else ""
        sys.stderr.write(f"dagmpi: the script has ended; waiting {now - self._stop_time:.0f} s so far for "
                         f"{n} task(s) it spawned that have not finished: {listed}{more} (the job ends "
                         f"when they do; use a task timeout= for calls that may never return, or "
                         f"stop the job with SIGTERM/Ctrl-C)\n")
        sys.stderr.flush()

    def _step(self, timeout: float, spin: bool) -> None:
        """One turn of the loop: receive, schedule, send."""
        tr, sched = self.transport, self.scheduler
        if self._signal:
            msgs = tr.poll(min(timeout, 0.05), False)
            for src, batch in msgs:
                for m in batch:
                    if type(m) is msg.Flushed:
                        self._flushed[src] = m.saved
                    elif type(m) is msg.RankDead:
                        self._rank_died(src, [])
                    elif type(m) is msg.TraceBatch and self.tracer is not None:  # (sent before Flushed)
                        self.tracer.add_batch(m.runs, m.instants)
            self._preempt_step()
            return
        msgs = tr.poll(0 if self._outq else timeout, spin)
        events: list = []
        self._drain_local(events)
        for src, batch in msgs:
            self._on_batch(src, batch, events)
        if events:
            self._execute(sched.handle_many(events))
        if self._stop_requested and not self._stop_sent:
            if not self._outq and sched.n_active == 0 and self._heard_from_all(self.slots):
                for r in self.worker_ranks - self.dead:
                    self._send(r, msg.Stop())
                self._stop_sent = True
            else:
                self._waiting_notice(time.monotonic())
        self._flush()
        if self._stop_sent and self._heard_from_all(self._byes):
            tr.flush()
            self._finished = True

    def _flush(self) -> None:
        if self._frees:
            for dest, ids in self._frees.items():
                self._send(dest, msg.Free(ids))
            self._frees = {}
        if self._out:
            out, self._out = self._out, {}
            dead = self.dead
            for dest, batch in out.items():
                if dest not in dead:
                    self.transport.send(dest, batch)

    # ------------------------------------------------- from the user thread

    def _drain_local(self, events: list) -> None:
        outq = self._outq
        while outq:
            m = outq.popleft()
            kind = type(m)
            if kind is msg.Submit:
                events.append(self._submitted(self.rank, m))
            elif kind is msg.LaunchSubmit:
                events.append(self._launch_submitted(self.rank, m))
            elif kind is msg.Release:
                events.append(ev.HandleReleased(m.task_id))
            elif kind is msg.FnCode:  # a function's bytes, queued before its first task
                self.fn_table[m.fn_id] = m.code
            elif kind is msg.Restored:  # spawned here, found in the checkpoint (Client._spawn_restored)
                self.used_keys.add(m.key)
                if self.tracer is not None:
                    self.tracer.instant("restored", self.rank, task_id=m.task_id, name=m.name, key=m.key)
                events.append(ev.TaskSubmitted(m.task_id, m.name, (), None, self.rank, restored=m.where))
            elif kind is msg.Acquire:
                events.append(ev.HandleAcquired(m.task_id))
            elif kind is msg.Watch:
                events.append(ev.WatchRequested(m.task_id, self.rank))
            elif kind is msg.Pull:
                self._request_value(m.owner, m.task_id, m.req_id)
            elif kind is msg.TraceOn:
                for r in self.offers:
                    self._send(r, m)
            elif kind is msg.ConfigureAll:
                if self.ckpt_dir:
                    for r in self.offers:
                        self._send(r, msg.Configure(self.ckpt_dir, self.checkpoint_all))
            elif kind is msg.Resize:
                for r in self.worker_ranks - self.dead:
                    self._send(r, m)
            elif kind is msg.Stop:
                self._stop_requested = True
                self._stop_time = time.monotonic()
                self._notice_at = self._stop_time + self.shutdown_notice
            else:
                raise RuntimeError(f"rank 0: unknown local message {m!r}")

    def _submitted(self, src: int, m: msg.Submit) -> ev.TaskSubmitted:
        ckpt, payload, buffers, name, fn_id, policy = m.ckpt, m.payload, m.buffers, m.name, m.fn_id, m.policy
        restored = save = None
        if ckpt is not None:
            key, marked = ckpt
            self.used_keys.add(key)
            restored = self._saved(key)
            if restored is not None:
                payload = buffers = None  # never runs
                if self.tracer is not None:
                    self.tracer.instant("restored", src, task_id=m.task_id, name=name, key=key)
            elif marked:
                save = key
        if self.tracer is not None:
            self.tracer.submitted(m.task_id)
        needs = m.needs
        if src != self.rank and buffers:  # (received from a worker's spawn: may leave again)
            buffers = serialize.portable(buffers)
        spec = msg.TaskSpec(name, fn_id, payload, buffers, needs, policy, save)
        return ev.TaskSubmitted(m.task_id, name, m.deps, spec, src, m.priority, m.ranks, m.watch, needs,
                                m.near, policy[0] if policy else 0, fn_id, restored)

    def _launch_submitted(self, src: int, m: msg.LaunchSubmit) -> ev.LaunchSubmitted:
        restored = m.restored
        if m.lookup:  # (from a worker: the points a checkpoint holds are found here)
            restored = {i: where for i, k in enumerate(m.lookup) if (where := self._saved(k)) is not None} or None
            if restored and m.loop and len(restored) < m.n:
                restored = None  # (a loop's points need each other's earlier steps: all read back, or none)
            if restored:
                self.n_points_restored += len(restored)
        if m.save:  # (the points' keys this run saves or reads back: kept by ``ckpt gc``)
            self.used_keys.update(m.save)
        if restored:
            self.used_keys.update(loc.key for loc in restored.values())
        buffers = serialize.portable(m.buffers) if src != self.rank and m.buffers else m.buffers
        spec = msg.TaskSpec(m.name, m.fn_id, m.payload, buffers, None, m.policy, (m.save, restored), None, m.loop)
        return ev.LaunchSubmitted(m.launch_id, m.base, m.n, m.name, spec, m.layout, m.reads, src, m.watch,
                                  m.loop is not None)

    # --------------------------------------------------- from other ranks

    def _on_batch(self, src: int, batch: list, events: list) -> None:
        for m in batch:
            kind = type(m)
            if kind is msg.Finished:
                events.append(ev.TaskFinished(m.task_id, src, m.nbytes, m.seconds, m.device_nbytes))
            elif kind is msg.Submit:
                events.append(self._submitted(src, m))
            elif kind is msg.LaunchReport:
                events.append(ev.LaunchDone(m.launch_id, src, m.count, m.nbytes, m.seconds, m.errors, m.epoch))
            elif kind is msg.LaunchSubmit:
                events.append(self._launch_submitted(src, m))
            elif kind is msg.FnCode:  # a function a task on ``src`` spawns, sent before that spawn
                self.fn_table[m.fn_id] = m.code
            elif kind is msg.Release:
                events.append(ev.HandleReleased(m.task_id))
            elif kind is msg.Failed:
                events.append(ev.TaskFailed(m.task_id, src, m.error, m.retryable, m.stuck))
                if self.tracer is not None:
                    e = m.error
                    self.tracer.instant("failure", src, task_id=m.task_id, name=e.task_name,
                                        error=e.summary()[:200], attempt=e.attempt,
                                        retryable=bool(m.retryable), stuck=bool(m.stuck))
            elif kind is msg.TraceBatch:
                if self.tracer is not None:
                    self.tracer.add_batch(m.runs, m.instants)
            elif kind is msg.Started:
                events.append(ev.TaskStarted(m.task_id, src))
            elif kind is msg.LateReturn:
                events.append(ev.StuckReturned(src))
            elif kind is msg.Blocked:
                events.append(ev.TaskBlocked(m.task_id))
            elif kind is msg.Unblocked:
                events.append(ev.TaskUnblocked(m.task_id))
            elif kind is msg.Acquire:
                events.append(ev.HandleAcquired(m.task_id))
            elif kind is msg.Watch:
                events.append(ev.WatchRequested(m.task_id, src))
            elif kind is msg.Value:
                self._pulled(m.req_id, m.ok, m.payload, m.buffers)
            elif kind is msg.Returned:
                events.append(ev.TasksReturned(src, tuple(m.returned), tuple(m.kept)))
            elif kind is msg.Hello:
                with self._cond:
                    self.slots[src], self.hosts[src], self.offers[src] = m.slots, m.host, m.offers
                    self._cond.notify_all()
                events.append(ev.WorkerJoined(src, m.slots, m.offers, rejoin=src in self.scheduler.workers))
                if self.ckpt_dir:
                    self._send(src, msg.Configure(self.ckpt_dir, self.checkpoint_all))
                if self.tracer is not None:
                    self._send(src, msg.TraceOn(self.tracer.trace.start))
            elif kind is msg.Bye:
                self._byes.add(src)
                if m.stats:
                    self.worker_stats[src] = m.stats
            elif kind is msg.RankDead:
                self._rank_died(src, events)
            elif kind is msg.PreemptRequest:  # a worker got SIGTERM/SIGUSR1 (srun signals every rank)
                if not self._signal:
                    self._signal = m.signum
            else:
                raise RuntimeError(f"rank 0: unknown message {m!r} from rank {src}")

    def _rank_died(self, rank: int, events: list) -> None:
        """The transport saw ``rank`` die (ULFM): reschedule and recompute, tell the survivors."""
        if rank not in self.worker_ranks or rank in self.dead:
            return
        self.dead.add(rank)
        sched = self.scheduler
        detected = time.time()
        before = (sched.n_rescheduled, sched.n_recomputed, sched.n_reloaded)
        # now, before any later message is handled
        sched_out = sched.handle(ev.WorkerLost(rank, self._saved_results(rank)))
        rec = {"rank": rank, "host": self.hosts.get(rank, "?"), "detected": detected,
               "rescheduled": sched.n_rescheduled - before[0], "recomputed": sched.n_recomputed - before[1],
               "reloaded": sched.n_reloaded - before[2]}
        self.failures.append(rec)
        if self.tracer is not None:
            self.tracer.instant("rank-death", rank, **{k: v for k, v in rec.items() if k != "rank"})
        log.warning("worker rank %d (%s) died; %d task(s) rescheduled, %d lost value(s) being "
                    "recomputed, %d read back from the checkpoint; %d worker rank(s) left", rank,
                    rec["host"], rec["rescheduled"], rec["recomputed"], rec["reloaded"],
                    len(self.worker_ranks) - len(self.dead))
        for r in self.worker_ranks - self.dead:
            self._send(r, msg.PeerLost(rank))
        self._execute(sched_out)
        self._lost_rank(rank)

    def _saved_results(self, rank: int) -> Optional[dict]:
        """Task id -> checkpoint location, for the values lost with ``rank`` (or freed
        earlier) that a checkpoint file of this run holds (a fresh scan: the dead
        rank's files that were complete when it died)."""
        if not self.ckpt_dir:
            return None
        from ..checkpoint.hdf5 import scan
        from ..core.states import TaskState

        sched = self.scheduler
        wanted = {}
        for t in sched.tasks.values():
            if t.state is TaskState.FINISHED and (t.owner == rank or t.gone) and t.spec is not None \
                    and t.spec.save is not None:
                wanted[t.spec.save] = t.id
        # the points of launches kept for their lineage that were saved, or read back from
        # the checkpoint when they were launched (and not saved again): a point computed
        # again after this death reads them back instead of computing its cone further
        found = {}
        for rec in (*sched.launches.values(), *sched._lineage_launches.values()):
            keys, restored = rec.spec.save if rec.spec is not None and rec.spec.save else (None, None)
            if keys:
                for i, key in enumerate(keys):
                    wanted.setdefault(key, rec.base + i)
            if restored:
                for i, where in restored.items():
                    found[rec.base + i] = where
        if wanted:
            try:
                index = scan(self.ckpt_dir)
            except Exception as exc:  # noqa: BLE001 - recomputing is the fallback
                log.warning("checkpoint %s could not be scanned after rank %d died: %r", self.ckpt_dir, rank, exc)
                index = {}
            for key, tid in wanted.items():
                where = index.get(key)
                if where is not None:
                    found[tid] = where
        return found or None

    # --------------------------------------------------- instructions

    def _execute(self, instructions: list) -> None:
        me = self.rank
        send = self._send
        ends: list = []  # Deliver to this rank: handed to the client at once, at the end
        for ins in instructions:
            t = type(ins)
            if t is ev.Execute:
                spec = ins.spec
                fn_id = spec.fn_id
                rank = ins.rank
                sent = self.fn_sent[rank]
                if fn_id not in sent and fn_id != msg.RESTORED_FN:  # (every worker has that one)
                    sent.add(fn_id)
                    send(rank, msg.FnCode(fn_id, self.fn_table[fn_id]))
                point = spec.point
                if point is not None:  # (a launch's point run on its own: pinned there or not)
                    point = (point[0], point[1], ins.pinned)
                send(rank, msg.Exec(ins.task_id, spec.name, fn_id, spec.payload, spec.buffers, ins.inputs,
                                    spec.needs, spec.policy, ins.attempt, spec.save, ins.suspect, point))
            elif t is ev.Deliver:
                if ins.rank == me:
                    ends.append((ins.task_id, ins.owner, ins.error))
                else:
                    send(ins.rank, msg.Ended(ins.task_id, ins.owner, ins.error))
            elif t is ev.Release:
                if type(ins.rank) is not int:  # a value in a checkpoint file: nothing to free
                    continue
                box = self._frees.get(ins.rank)
                if box is None:
                    self._frees[ins.rank] = [ins.task_id]
                else:
                    box.append(ins.task_id)
            elif t is ev.Steal:
                send(ins.rank, msg.GiveBack(ins.task_ids))
            elif t is ev.ExecuteLaunch:
                # straight to each rank, or (more ranks than a tree node has children)
                # to the root of the launch's ReportTree, which passes it on down
                spec = ins.spec
                fn_id = spec.fn_id
                # (straight when ranks may die: each rank reports its own points, which
                # rank 0 then knows to compute again)
                tree = len(ins.ranks) > TREE_FANOUT and not self.fault_tolerant
                for rank in ins.ranks[:1] if tree else ins.ranks:
                    sent = self.fn_sent[rank]
                    if fn_id not in sent:
                        sent.add(fn_id)
                        send(rank, msg.FnCode(fn_id, self.fn_table[fn_id]))
                    send(rank, msg.LaunchExec(ins.launch_id, ins.base, spec.name, fn_id, spec.payload, spec.buffers,
                                              ins.layout, ins.reads, spec.policy, *spec.save, tree,
                                              None if spec.loop is None else (*spec.loop, ins.epoch)))
            elif t is ev.ReleaseLaunch:
                ranks = ins.ranks
                if len(ranks) > TREE_FANOUT and not self.fault_tolerant:
                    send(ranks[0], msg.FreeLaunch(ins.launch_id))  # (down the tree)
                else:  # (after a death, the tree may be cut: to each live rank)
                    for rank in ranks:
                        if rank not in self.dead:
                            send(rank, msg.FreeLaunch(ins.launch_id, False))
            elif t is ev.MoveLaunch:  # (ULFM: points of a dead rank computed again elsewhere)
                for rank in self.worker_ranks - self.dead:
                    send(rank, msg.LaunchMoved(ins.launch_id, ins.base, ins.layout))
        if ends:
            self._deliver_many(ends)

    # ---------------------------------------------------------- shutdown

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Wait for every task to end, stop the workers, stop the loop."""
        if self.closed:
            return
        self.closed = True
        self._outq.append(msg.Stop())
        self.wakeup()
        if not self._stopped.wait(timeout):
            raise TimeoutError(f"dagmpi shutdown did not complete within {timeout} s")
        if self._fatal is not None:
            raise DagmpiError("the dagmpi runtime failed") from self._fatal
        self._report_spills()
        if self.tracer is not None:
            self.write_trace()
        log.info("%s", self.run_summary())
        if self.ckpt_dir and self.used_keys:
            from ..checkpoint.hdf5 import write_manifest

            write_manifest(self.ckpt_dir, self.used_keys)

    def start_tracing(self, path: str) -> None:
        """Record a trace of the run, written to ``path`` at shut-down (any thread)."""
        if self.tracer is None:
            self.tracer = Collector(path, self.started)
            self._outq.append(msg.TraceOn(self.started))  # to the workers that said hello
            self.wakeup()

    def write_trace(self, preempted: bool = False) -> Optional[str]:
        """Write the trace gathered so far (tracing on); its path, or None."""
        if self.tracer is None:
            return None
        ranks = {0: {"host": self.hosts.get(0) or _hostname(), "slots": 0, "gpus": [], "role": "driver"}}
        for r in sorted(self.offers):
            ranks[r] = {"host": self.hosts.get(r, "?"), "slots": self.slots.get(r, 1),
                        "gpus": list(self.offers[r].get("gpu_ids", [])), "dead": r in self.dead}
        try:
            return self.tracer.write(ranks, {"nranks": len(self.worker_ranks) + 1, "preempted": preempted,
                                             "tasks_submitted": self.scheduler.n_submitted})
        except OSError as exc:
            log.error("dagmpi: could not write the trace to %s: %s", self.tracer.path, exc)
            return None

    def run_summary(self) -> str:
        """One line: what the run did (the end-of-run INFO line)."""
        s = self.scheduler
        moved = sum(st.get("bytes_in", 0) for st in self.worker_stats.values())
        spilled = sum(st.get("spilled_bytes", 0) for st in self.worker_stats.values())
        points = s.n_points_done - self.n_points_restored
        tasks = s.n_finished - s.n_restored - s.n_point_records_done  # (points made records: counted once)
        ran = f"{tasks} tasks" + (f" and {points} points of launches" if points else "")
        return (f"run summary: {ran} run, {self.n_restored} restored from the "
                f"checkpoint, {s.n_retried} retried, {s.n_failed} failed; {_size(moved)} moved between "
                f"ranks, {_size(spilled)} spilled; wall time {time.time() - self.started:.2f} s")

    def _report_spills(self) -> None:
        """At shutdown: say how much the workers spilled (a performance concern)."""
        spilled = {r: st for r, st in sorted(self.worker_stats.items()) if st.get("spilled")}
        if not spilled:
            return
        count = sum(st["spilled"] for st in spilled.values())
        mib = sum(st["spilled_bytes"] for st in spilled.values()) / (1 << 20)
        read = sum(st.get("read", 0) for st in spilled.values())
        lo, hi = (f"{x / (1 << 20):.1f}" for x in (min(st["limit"] for st in spilled.values()),
                                                   max(st["limit"] for st in spilled.values())))
        log.warning("dagmpi: %d values (%.1f MiB) spilled to disk on %s %s, read back %d times; "
                    "memory_limit=%s MiB per worker (DAGMPI_MEMORY_LIMIT; more memory per rank "
                    "avoids it)", count, mib, "rank" if len(spilled) == 1 else "ranks",
                    ",".join(map(str, spilled)), read, lo if lo == hi else f"{lo}-{hi}")


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
