"""The scheduler: a pure state machine that turns events into instructions.

It performs no I/O and imports neither MPI nor threads.  The runtime loop on
rank 0 (``dagmpi/runtime/driver.py``) feeds it :mod:`dagmpi.core.events` through
:meth:`Scheduler.handle` and carries out the :class:`~dagmpi.core.events.Execute`,
:class:`~dagmpi.core.events.Release` and :class:`~dagmpi.core.events.Deliver`
instructions it returns.  Unit tests drive it the same way, with no MPI.

State (all of it owned and mutated by this class only)
------------------------------------------------------
``tasks``
    ``task_id -> TaskRecord`` (:mod:`dagmpi.core.records`) for every task that is not final, or that is final
    but still referenced.  A task record holds:

    * ``state``: a :class:`~dagmpi.core.states.TaskState`; changed only through
      :meth:`Scheduler._set_state`, which checks the transition table.
    * ``deps`` (ids it consumes) and ``waiting`` (how many of them are not
      finished yet); ``dependents``: ids of the tasks that consume it.
    * ``refs``: live handles (a ``Task`` object on some rank, the spawner's
      counted at submission); ``consumers``: dependents not yet final.  A
      finished value is released on its owner when both reach zero, and the
      record is forgotten.
    * ``owner``/``nbytes``: where the value lives and how large it is.
    * ``worker``/``blocked``: where an assigned task runs, and whether it waits
      in a nested ``fetch`` (then it does not count against the worker's slots).
    * ``watchers``: ranks that get a ``Deliver`` when the task ends.

``workers``
    ``rank -> WorkerRecord``: slots, ``capacity`` (slots plus a short prefetch
    queue) and ``load`` (assigned, not blocked tasks).

``ready``
    A :class:`~dagmpi.core.ready.ReadyQueue` of READY task ids, ordered by
    priority, started work before new roots (first what frees an input, then
    the shallowest depth); ties run first in, first out.

Policy (order, placement, queue depth, running ahead, stealing) lives in
:mod:`dagmpi.core.placement`, and recovery from a dead rank in
:mod:`dagmpi.core.recovery`: mixins of :class:`Scheduler` that work on the
same records.

Failures: a task that fails makes every task that (transitively) consumes it
fail with :class:`~dagmpi.core.failures.UpstreamFailure`; unrelated tasks carry on.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from .events import (
    Deliver,
    Execute,
    HandleAcquired,
    HandleReleased,
    Instruction,
    LaunchDone,
    LaunchSubmitted,
    Release,
    TaskBlocked,
    TaskFailed,
    TaskFinished,
    TaskSubmitted,
    TaskUnblocked,
    StuckReturned,
    TasksReturned,
    WatchRequested,
    WorkerJoined,
    WorkerLost,
    TaskStarted,
)
from .launches import Launches
from .failures import ImpossibleScope, RankLost, UnknownDependency, UpstreamFailure, root_error
from .placement import Placement, unplaceable
from .ready import ReadyQueue
from .records import TaskRecord, WorkerRecord
from .recovery import Recovery

__all__ = ["Scheduler", "UpstreamFailure", "ImpossibleScope", "UnknownDependency", "RankLost",
           "unplaceable"]
from .states import FIRST_FINAL, LEGAL_MOVES, TaskState, check_transition

# Module-level aliases: looking an enum member up on its class is slow on the hot path.
_WAITING, _READY, _ASSIGNED = TaskState.WAITING, TaskState.READY, TaskState.ASSIGNED
_FINISHED, _ERRORED = TaskState.FINISHED, TaskState.ERRORED

_GONE = object()

#: Assumed network bandwidth (bytes/s) until one is measured.
DEFAULT_BANDWIDTH = 2.0e9
#: Assumed task duration (s) until durations are observed.
DEFAULT_DURATION = 1.0e-4


def _point_spec(spec: Any, name: str, index: int, inputs: tuple) -> Any:
    """The spec of point ``index`` of a launch of ``spec`` run on its own (the runtime
    builds a real task spec instead: ``Scheduler.make_point_spec``)."""
    return ("point", spec, name, index, inputs)


class Scheduler(Placement, Recovery, Launches):
    """Event-driven DAG scheduler; see the module docstring for its state."""

    def __init__(self, prefetch: int = 2, queue_window: float = 2e-3, max_queue: int = 256,
                 lineage: bool = False, max_lost: int = 3) -> None:
        self.tasks: dict[int, TaskRecord] = {}
        #: graph depth -> how many records of that depth exist (see Placement._run_ahead)
        self.width: dict[int, int] = {}
        #: Values kept in a GPU's memory: task id -> (rank, bytes), counted in that
        #: worker's ``used["gpu_memory"]`` until released.
        self._gpu_held: dict[int, tuple[int, int]] = {}
        #: Keep what it takes to compute a value again (each task's spec, and the
        #: records of its inputs while it exists): on when ranks may die and the
        #: job goes on (ULFM).  Costs memory: a chain keeps its ancestors' specs
        #: as long as its last value is referenced.
        self.lineage = lineage
        #: A task that was running on ``max_lost`` ranks that died fails instead
        #: of killing another one (it may be what kills them: OOM, segfault).
        self.max_lost = max_lost
        self.n_workers_lost = 0
        self.n_recomputed = 0
        self.n_reloaded = 0
        self.n_rescheduled = 0
        self.workers: dict[int, WorkerRecord] = {}
        # Indexes over the workers, so that no decision walks all of them (Placement._touch
        # keeps them whenever a worker's load, backlog, capacity or stuck count changes):
        #: sum of the workers' free room (``WorkerRecord.free``)
        self.free_total = 0
        #: heap of ``(backlog per slot, rank)`` of workers with room; stale entries
        #: are dropped when they reach the top (Placement._least_loaded)
        self._room: list = []
        #: ranks whose ``ahead`` list is not empty and that had room again since it was
        #: last tried (Placement._touch): only those are tried after a batch
        self._ahead_due: set[int] = set()
        #: workers with more tasks than slots (steal victims), with fewer (idle slots)
        self._n_queued = 0
        self._n_idle = 0
        #: the queued ranks by their queue depth (tasks beyond their slots), less those
        #: whose queue a steal found nothing to take from since their load last changed
        self._victims: dict[int, set[int]] = {}
        self._idle_ranks: set[int] = set()  # the idle ones
        self._per_slot: Optional[int] = None  # queue depth per slot last set (_update_capacity)
        self.ready = ReadyQueue()
        self.prefetch = prefetch
        self.queue_window = queue_window
        self.max_queue = max_queue
        self._out: list[Instruction] = []
        self._ahead_stack: list[int] = []  # see _assign
        self._draining_ahead = False
        self._mean_duration = DEFAULT_DURATION
        self._fn_mean: dict[Any, float] = {}  # (function, processor kind) -> recent mean duration
        self._n_durations = 0
        self.bandwidth = DEFAULT_BANDWIDTH
        self.n_submitted = 0
        self.n_stolen = 0
        self.n_restored = 0
        self.n_retried = 0
        self.n_run_ahead = 0
        self.n_finished = 0
        self.n_failed = 0
        #: launch id -> LaunchRecord (dagmpi.core.launches): one record per launch of many points
        self.launches: dict = {}
        self._launch_ids: list = []  # their ids, sorted (Launches._point)
        self._worker_span: Optional[tuple] = None  # (lowest, highest, count) of the worker ranks
        #: launches waiting for ranks to join: [(record, spec)], in submission order
        self._parked: list = []
        self._dead_ranks: set = set()  # worker ranks that died (a launch there fails at once)
        #: lineage mode: released launches kept while a record may need their points
        #: computed again (Launches._drop_lineage), their ids sorted, and the points of
        #: them made records during one recovery (Launches._dep_record)
        self._lineage_launches: dict = {}
        self._lineage_ids: list = []
        self._cone: dict = {}
        self._dead_order: list = []  # the dead worker ranks in the order they died
        #: id(layout) -> (layout, the same without the dead ranks): Launches._on_launch_submitted
        self._relaid_layouts: dict = {}
        #: ``(launch spec, name, index, inputs in order) -> spec`` of a point run on its
        #: own (computed again after its rank died); the runtime sets its own
        self.make_point_spec: Any = _point_spec
        #: ``(name, index, task id) -> spec`` of a launch's lost point read back from the
        #: checkpoint on its new rank (None: computed again instead); the runtime sets it
        self.make_restore_spec: Any = None
        self.n_launches = 0
        self.n_points = 0
        self.n_points_done = 0
        self.n_loops_restarted = 0  # loops run again from the start after a death (lineage mode)
        self.n_point_records = 0  # points made task records (counted in n_submitted too)
        self.n_point_records_done = 0  # ... of them finished (counted in n_finished too)
        self._handlers = {
            LaunchSubmitted: self._on_launch_submitted,
            LaunchDone: self._on_launch_done,
            WorkerJoined: self._on_worker_joined,
            TaskSubmitted: self._on_submitted,
            TaskFinished: self._on_finished,
            TaskFailed: self._on_failed,
            TaskBlocked: self._on_blocked,
            TaskUnblocked: self._on_unblocked,
            HandleAcquired: self._on_acquired,
            HandleReleased: self._on_released,
            WatchRequested: self._on_watch,
            TasksReturned: self._on_returned,
            StuckReturned: self._on_stuck_returned,
            WorkerLost: self._on_worker_lost,
            TaskStarted: self._on_started,
        }

    # ------------------------------------------------------------ interface

    def handle(self, *events: Any) -> list[Instruction]:
        """Apply ``events`` in order and return the instructions they cause."""
        handlers = self._handlers
        for ev in events:
            handlers[type(ev)](ev)
        self._schedule()
        if self._ahead_due:
            workers = self.workers
            due, self._ahead_due = self._ahead_due, set()
            for r in due:
                w = workers.get(r)
                if w is None:
                    continue
                ahead = w.ahead
                while ahead and w.load < w.capacity:
                    t = self.tasks.get(ahead.popleft())
                    if t is not None:
                        t.in_ahead = False
                        if t.state is _WAITING:
                            self._run_ahead(t)
        if self._n_steal_candidates():
            self._steal()
        out, self._out = self._out, []
        return out

    def handle_many(self, events: Iterable[Any]) -> list[Instruction]:
        """Like :meth:`handle` for an iterable (the runtime's batched form)."""
        return self.handle(*events)

    @property
    def n_active(self) -> int:
        """Tasks that are not final yet (submitted and not finished or failed)."""
        return self.n_submitted - self.n_finished - self.n_failed


    def describe_active(self, limit: int = 5) -> list[str]:
        """Words for up to ``limit`` unfinished tasks (running ones first), for messages.

        Walks the task table: call it rarely (a notice every few seconds)."""
        order = {_ASSIGNED: 0, TaskState.READY: 1, _WAITING: 2}
        found: list[tuple[int, int, str]] = []
        for t in self.tasks.values():
            rank = order.get(t.state)
            if rank is None:
                continue
            if t.state is _ASSIGNED:
                where = f"blocked in fetch on rank {t.worker}" if t.blocked else f"running on rank {t.worker}"
            elif t.state is _WAITING:
                where = "waiting for its inputs"
            else:
                where = "ready, waiting for a free slot"
            found.append((rank, t.id, f"{t.name!r} ({t.id:#x}) {where}"))
            if len(found) >= 10 * limit:
                break
        found.sort()
        return [words for _, _, words in found[:limit]]
    def _validate_indexes(self) -> None:
        """The worker indexes agree with the worker records (see Placement._touch)."""
        ws = self.workers.values()
        for w in ws:
            f = 0 if w.stuck else max(0, w.capacity - w.load)
            assert w.free == f, f"worker {w.rank}: free {w.free} != {f}"
            assert w.qdepth == max(0, w.load - w.slots) and w.idle == (w.load < w.slots), f"worker {w.rank}: flags"
            if f > 0:  # (an entry no later than its key: see Placement._least_loaded)
                key = w.backlog / w.slots
                assert w.room_key is not None and w.room_key <= key and (w.room_key, w.rank) in self._room, \
                    f"worker {w.rank} has room, not in the heap"
            if w.ahead and f > 0:
                assert w.rank in self._ahead_due, f"worker {w.rank}: ahead list with room, not due"
        assert self.free_total == sum(w.free for w in ws), "free_total"
        assert self._n_queued == sum(1 for w in ws if w.qdepth), "queued count"
        assert self._n_idle == sum(1 for w in ws if w.idle) == len(self._idle_ranks), "idle count"
        victims = {(q, r) for q, rs in self._victims.items() for r in rs}
        assert victims == {(w.load - w.slots, w.rank) for w in ws if w.qdepth and not w.barren}, "victims"
        assert self._idle_ranks == {w.rank for w in ws if w.idle}, "idle ranks"

    def state_of(self, task_id: int) -> Optional[TaskState]:
        """The state of a task still known to the scheduler, else ``None``."""
        t = self.tasks.get(task_id)
        return t.state if t is not None else None

    # -------------------------------------------------------------- events

    def _on_worker_joined(self, ev: WorkerJoined) -> None:
        self._worker_span = None
        if ev.rank in self.workers:
            if not ev.rejoin:
                raise ValueError(f"worker rank {ev.rank} joined twice")
            if self.workers[ev.rank].assigned:
                raise ValueError(f"worker rank {ev.rank} changed its slots while it had tasks")
        if ev.slots < 1:
            raise ValueError(f"worker rank {ev.rank} offers {ev.slots} slots; need at least 1")
        old = self.workers.get(ev.rank)
        if old is not None:  # (a rejoin: the old record leaves the indexes)
            self._untouch(old)
        w = self.workers[ev.rank] = WorkerRecord(ev.rank, ev.slots, ev.slots + self.prefetch, ev.resources)
        if old is not None and self._gpu_held:  # (a rejoin keeps the values its GPU holds)
            held = sum(nb for r, nb in self._gpu_held.values() if r == ev.rank)
            if held:
                w.used["gpu_memory"] = held
        self._ring = None
        self._update_capacity(w)
        if self._parked:
            self._unpark_launches()

    def _on_submitted(self, ev: TaskSubmitted) -> None:
        if ev.task_id in self.tasks:
            raise ValueError(f"task {ev.task_id:#x} submitted twice")
        t = TaskRecord(ev)
        self.tasks[t.id] = t
        self.n_submitted += 1
        failed_dep: Optional[TaskRecord] = None
        tasks = self.tasks
        recs = [tasks.get(d) for d in t.deps]
        if None in recs:
            for d, dep in zip(t.deps, recs):
                if dep is None and (not self.launches or self._launch_at(d) is None):
                    t.deps = ()
                    self.width[0] = self.width.get(0, 0) + 1
                    self._fail(t, UnknownDependency(d))
                    return
        for d, dep in zip(t.deps, recs):
            if dep is None:  # a point of a launch, read on its own: its record made now
                dep = tasks.get(d) or self._point(d)  # (made already if read twice)
            elif dep.launch is not None and not dep.held:  # (a point kept for lineage)
                self._point_revive(dep)
            if dep.level >= t.level:
                t.level = dep.level + 1
            if dep.dependents:
                dep.dependents.append(t.id)
            else:
                dep.dependents = [t.id]
            dep.consumers += 1
            dep.heirs += 1
            if dep.state is _ERRORED:
                failed_dep = dep
            elif dep.state is not _FINISHED:
                t.waiting += 1
        self.width[t.level] = self.width.get(t.level, 0) + 1
        if ev.restored is not None:
            self._restore(t, ev.restored)
            return
        why = self.can_ever_run(t.ranks, t.needs) if (t.needs or t.ranks) and self.workers else None
        if why is not None:
            self._fail(t, ImpossibleScope(why))
        elif failed_dep is not None:
            self._fail(t, UpstreamFailure(failed_dep.id, failed_dep.name, root_error(failed_dep.error)))
        elif t.waiting == 0:
            self._make_ready(t)
        else:
            self._run_ahead(t)

    def _restore(self, t: TaskRecord, where: Any) -> None:
        """``t``'s result was found in a checkpoint: it is finished, owned by the file."""
        t.waiting = 0
        t.spec = None
        self._set_state(t, _FINISHED)
        t.owner = where
        t.nbytes = getattr(where, "nbytes", 0)
        self.n_finished += 1
        self.n_restored += 1
        if t.watchers:
            for r in t.watchers:
                self._out.append(Deliver(r, t.id, owner=where))
            t.watchers = None
        if t.deps:
            self._dependency_done(t)
        self._maybe_forget(t)

    def _on_finished(self, ev: TaskFinished) -> None:
        t = self.tasks.get(ev.task_id)
        if t is None or t.state is not _ASSIGNED or t.worker != ev.rank:
            # it failed meanwhile (an input it had already fetched was lost with
            # its rank and could not be recomputed): nobody wants this value
            if ev.rank in self.workers:
                self._out.append(Release(ev.rank, ev.task_id))
            return
        if t.worker is not None:
            self._unassign(t)
        t.state = _FINISHED  # (from ASSIGNED, tested above)
        t.owner = ev.rank
        t.nbytes = ev.nbytes
        t.stale = False
        if ev.device_nbytes:
            self._hold_gpu_memory(t.id, ev.rank, ev.device_nbytes)
        self.n_finished += 1
        if ev.duration > 0:
            self._n_durations += 1
            n = self._n_durations if self._n_durations < 100 else 100
            self._mean_duration += (ev.duration - self._mean_duration) / n
            old = self._fn_mean.get(t.fn)
            self._fn_mean[t.fn] = ev.duration if old is None else old + 0.2 * (ev.duration - old)
            if self._n_durations & 63 == 1:
                self._update_capacity()
        self._finished_news(t)
        if t.launch is not None:  # a lost point computed again (pinned until now)
            t.ranks = None
            self._point_redone(t, ev.nbytes)
        if t.deps:
            self._dependency_done(t)
        if t.refs <= 0 and t.consumers <= 0:
            self._maybe_forget(t)

    def _finished_news(self, t: TaskRecord) -> None:
        """``t`` finished (its value on ``t.owner``): tell its watchers, feed its consumers."""
        if t.watchers:
            for r in t.watchers:
                self._out.append(Deliver(r, t.id, owner=t.owner))
            t.watchers = None
        tasks = self.tasks
        for c in t.dependents:  # one input fewer for each consumer
            ct = tasks.get(c)
            if ct is not None:
                if ct.state is _WAITING:
                    ct.waiting -= 1
                    if ct.waiting == 0:
                        self._make_ready(ct)
                elif ct.state is _ASSIGNED and ct.waiting > 0:  # ran ahead: fed locally
                    ct.waiting -= 1
                    if ct.waiting == 0:  # it may be stolen now: its rank is a victim again
                        w = self.workers.get(ct.worker)
                        if w is not None and w.barren:
                            self._requeue_victim(w, w.qdepth)

    def _on_failed(self, ev: TaskFailed) -> None:
        if ev.stuck and ev.rank in self.workers:
            self.workers[ev.rank].stuck += 1
            self._touch(self.workers[ev.rank])
        t = self.tasks.get(ev.task_id)
        if t is None or t.state >= FIRST_FINAL:
            return  # already failed here (an input failed first) and maybe forgotten
        self._unassign(t)
        if ev.retryable and t.retries > 0 and t.spec is not None:
            t.retries -= 1
            t.attempt += 1
            if t.avoid is None:
                t.avoid = set()
            t.avoid.add(ev.rank)
            self.n_retried += 1
            self._make_ready(t)
            return
        self._fail(t, ev.error)

    def _on_started(self, ev: TaskStarted) -> None:
        t = self.tasks.get(ev.task_id)
        if t is not None and t.state is _ASSIGNED and t.worker == ev.rank:
            t.started_on = ev.rank

    def _on_stuck_returned(self, ev: StuckReturned) -> None:
        w = self.workers.get(ev.rank)
        if w is not None and w.stuck > 0:
            w.stuck -= 1
            self._touch(w)

    def _on_blocked(self, ev: TaskBlocked) -> None:
        t = self.tasks.get(ev.task_id)
        if t is None or t.state is not _ASSIGNED or t.blocked:
            return
        t.blocked = True
        w = self.workers[t.worker]
        w.load -= 1
        w.backlog -= t.est
        self._touch(w)

    def _on_unblocked(self, ev: TaskUnblocked) -> None:
        t = self.tasks.get(ev.task_id)
        if t is None or t.state is not _ASSIGNED or not t.blocked:
            return
        t.blocked = False
        w = self.workers[t.worker]
        w.load += 1
        w.backlog += t.est
        self._touch(w)

    def _on_returned(self, ev: TasksReturned) -> None:
        w = self.workers.get(ev.rank)
        if w is None:
            return  # the rank died meanwhile: its tasks were rescheduled then
        for tid in ev.kept:
            w.stealing.discard(tid)
        if w.barren:  # (its queue changed: look at it again)
            self._requeue_victim(w, w.qdepth)
        for tid, spec in ev.returned:
            t = self.tasks.get(tid)
            if t is None or t.state >= FIRST_FINAL:
                continue  # failed meanwhile (an input failed): the worker dropped it too
            if t.state is not _ASSIGNED or t.worker != ev.rank:
                raise ValueError(f"rank {ev.rank} returned task {tid:#x}, which it was not assigned")
            requested = tid in w.stealing
            self._unassign(t)
            self._orphan_dependents(t)
            t.spec = spec
            if requested:
                self.n_stolen += 1
            else:  # given back unasked: an input it was fetching died with its rank
                self.n_rescheduled += 1
            self._requeue(t)

    def _on_acquired(self, ev: HandleAcquired) -> None:
        t = self.tasks.get(ev.task_id)
        if t is not None:
            t.refs += 1
            if t.launch is not None and not t.held:
                self._point_revive(t)
        elif self.launches and not self._launch_handle(ev.task_id, 1):
            t = self._point(ev.task_id)  # a point's handle was pickled: it holds the point
            if t is not None:
                t.refs += 1

    def _on_released(self, ev: HandleReleased) -> None:
        t = self.tasks.get(ev.task_id)
        if t is not None:
            t.refs -= 1
            self._maybe_forget(t)
        elif self.launches:
            self._launch_handle(ev.task_id, -1)

    def _on_watch(self, ev: WatchRequested) -> None:
        t = self.tasks.get(ev.task_id)
        if t is None:
            if not self.launches or self._launch_watch(ev.task_id, ev.rank):
                return
            t = self._point(ev.task_id)  # a point of a launch, waited for on its own
            if t is None:
                return
            if t.state >= FIRST_FINAL:  # its launch ended: told now, the record not kept
                self._out.append(Deliver(ev.rank, t.id, owner=t.owner) if t.state is _FINISHED else
                                 Deliver(ev.rank, t.id, error=t.error))
                self._maybe_forget(t)
                return
        if t.state is _FINISHED:
            self._out.append(Deliver(ev.rank, t.id, owner=t.owner))
        elif t.state is _ERRORED:
            self._out.append(Deliver(ev.rank, t.id, error=t.error))
        else:
            if t.watchers is None:
                t.watchers = (ev.rank,)
            elif ev.rank not in t.watchers:
                t.watchers += (ev.rank,)

    # ------------------------------------------------------------ helpers

    def _set_state(self, t: TaskRecord, new: TaskState) -> None:
        if t.state * 8 + new not in LEGAL_MOVES:
            check_transition(t.id, t.state, new)  # raises, naming the move
        t.state = new

    def _requeue(self, t: TaskRecord) -> None:
        """``t`` is not running anywhere (any more): READY if every input has a
        value, else WAITING for those that are being computed (again)."""
        tasks = self.tasks
        missing = 0
        for d in t.deps:
            dep = tasks[d]
            if dep.state is not _FINISHED or dep.gone:
                missing += 1
        t.stale = False
        t.waiting = missing
        if missing == 0:
            if t.state is not _READY:
                self._make_ready(t)
        elif t.state is not _WAITING:
            self._set_state(t, _WAITING)

    def _orphan_dependents(self, t: TaskRecord) -> None:
        """``t`` no longer runs where it was assigned: a consumer that ran ahead
        behind it (on any rank) waits for it in vain; its worker hears so (the
        producer answers its request "moved", or the rank died) and gives it back."""
        tasks = self.tasks
        for c in t.dependents:
            ct = tasks.get(c)
            if ct is not None and ct.state is _ASSIGNED and ct.waiting > 0:
                ct.stale = True

    def _make_ready(self, t: TaskRecord) -> None:
        if t.state * 8 + _READY not in LEGAL_MOVES:  # (_set_state, inline: once per task)
            check_transition(t.id, t.state, _READY)
        t.state = _READY
        # Order: user priority; then started work before new roots, and among it
        # first the tasks that are the last consumer of an input nobody else
        # holds (running them frees it: a chain over kept blocks runs each
        # block's chain to its end before starting the next block's); then the
        # shallowest depth (an iterative graph's older step first: in a stencil,
        # where every point frees its previous block, the step the other ranks'
        # next step waits for; deepest first let a rank run its own step k+1
        # while its neighbours idled for its step k); then the number of inputs
        # it frees; then submission order.
        if t.deps:
            frees = 0
            tasks = self.tasks
            for d in t.deps:
                dep = tasks[d]
                if dep.consumers == 1 and dep.refs <= 0:
                    frees += 1
            self.ready.put((-t.priority, 0 if frees else 1, t.level, -frees), t.id)
        else:
            self.ready.put((-t.priority, 2, 0, 0), t.id)

    def _unassign(self, t: TaskRecord) -> None:
        if t.worker is None:
            return
        w = self.workers[t.worker]
        if w.assigned.pop(t.id, _GONE) is None:
            lv = w.levels
            n = lv[t.level] - 1
            if n:
                lv[t.level] = n
            else:
                del lv[t.level]
        w.stealing.discard(t.id)
        if t.needs is not None:
            for k, v in t.needs.items():
                w.used[k] -= v
        if not t.blocked:
            w.load -= 1
            b = w.backlog - t.est
            w.backlog = b if w.load and b > 0.0 else 0.0
            self._touch(w)
        t.blocked = False
        t.worker = None

    def _fail(self, t: TaskRecord, error: Any) -> None:
        """Fail ``t`` and, transitively, every task that consumes it."""
        stack = [(t, error)]
        while stack:
            cur, err = stack.pop()
            if cur.state >= FIRST_FINAL:
                continue
            if cur.worker is not None:  # ran ahead: its worker drops it when the input fails
                self._unassign(cur)
            self._set_state(cur, _ERRORED)
            cur.error = err
            cur.spec = None
            self.n_failed += 1
            if cur.launch is not None:  # (a lost point computed again: its launch fails too)
                self._point_redo_failed(cur, err)
            if cur.watchers:
                for r in cur.watchers:
                    self._out.append(Deliver(r, cur.id, error=err))
                cur.watchers = None
            up = UpstreamFailure(cur.id, cur.name, root_error(err))
            for c in cur.dependents:
                ct = self.tasks.get(c)
                if ct is not None and ct.state < FIRST_FINAL:
                    stack.append((ct, up))
            self._dependency_done(cur)
            self._maybe_forget(cur)

    def _dependency_done(self, t: TaskRecord) -> None:
        """``t`` is final: it no longer needs its inputs."""
        tasks = self.tasks
        for d in t.deps:
            dep = tasks.get(d)
            if dep is not None:
                dep.consumers -= 1
                if dep.consumers <= 0 and dep.refs <= 0:  # (_maybe_forget's first test, inline)
                    self._maybe_forget(dep)

    def _hold_gpu_memory(self, tid: int, rank: int, nbytes: int) -> None:
        """A value in ``rank``'s GPU memory: its bytes are not free for tasks that
        ask for ``gpu_memory`` until it is released."""
        w = self.workers.get(rank)
        if w is None:
            return
        w.used["gpu_memory"] = w.used.get("gpu_memory", 0) + nbytes
        self._gpu_held[tid] = (rank, nbytes)

    def _drop_gpu_memory(self, tid: int) -> None:
        held = self._gpu_held.pop(tid, None)
        if held is not None:
            w = self.workers.get(held[0])
            if w is not None:
                w.used["gpu_memory"] -= held[1]

    def _forgot(self, t: TaskRecord) -> None:
        """``t``'s record was deleted: one fewer of its depth."""
        n = self.width[t.level] - 1
        if n:
            self.width[t.level] = n
        else:
            del self.width[t.level]
        if self.lineage:
            if t.launch is not None:
                self._launch_heir_gone(t.launch)
            if t.deps and (self._launch_at(t.id) is not None or self._lineage_at(t.id) is not None):
                # (a point computed again: a record of the same id may be made again,
                # which must not look like a consumer of these)
                tasks = self.tasks
                for d in t.deps:
                    dep = tasks.get(d)
                    if dep is not None and t.id in dep.dependents:
                        dep.dependents.remove(t.id)

    def _maybe_forget(self, t: TaskRecord) -> None:
        if t.refs > 0 or t.consumers > 0 or t.state < FIRST_FINAL:
            return
        if t.launch is not None:  # a point: its launch frees the value, not this record
            self._point_forgotten(t)
        elif t.state is _FINISHED and t.owner is not None and not t.gone:
            self._out.append(Release(t.owner, t.id))
            if self._gpu_held:
                self._drop_gpu_memory(t.id)
            if type(t.owner) is int:
                t.gone = True  # (a value in a checkpoint file stays readable)
        if not self.lineage:
            del self.tasks[t.id]
            self._forgot(t)
            return
        # lineage: keep the record (and its spec) while a consumer's record
        # exists, which may have to be computed again from it
        tasks = self.tasks
        stack = [t]
        while stack:
            cur = stack.pop()
            if cur.heirs > 0 or cur.refs > 0 or cur.consumers > 0 or cur.state < FIRST_FINAL \
                    or cur.id not in tasks:
                continue
            del tasks[cur.id]
            self._forgot(cur)
            for d in cur.deps:
                dep = tasks.get(d)
                if dep is not None:
                    dep.heirs -= 1
                    if dep.heirs <= 0:
                        stack.append(dep)

    # ----------------------------------------------------------- placement

    def _assign(self, t: TaskRecord, w: WorkerRecord) -> None:
        if t.state * 8 + _ASSIGNED not in LEGAL_MOVES:  # (_set_state, inline: once per task)
            check_transition(t.id, t.state, _ASSIGNED)
        t.state = _ASSIGNED
        rank = t.worker = w.rank
        w.load += 1
        # (self.estimate(t), inline: this runs once per task)
        est = self._fn_mean.get(t.fn)
        t.est = est = self._mean_duration if est is None else est
        w.backlog += est
        self._touch(w)
        if t.needs is not None:
            for k, v in t.needs.items():
                w.used[k] = w.used.get(k, 0) + v
        w.assigned[t.id] = None
        lv = w.levels
        lv[t.level] = lv.get(t.level, 0) + 1
        tasks = self.tasks
        if t.deps:
            # an input not computed yet is on its assignee: ``rank`` (here, in
            # memory), or ``~worker`` (another rank, which sends it when it ends)
            ins = []
            for d in t.deps:
                dep = tasks[d]
                o = dep.owner
                if o is None:
                    o = dep.worker
                    if o != rank:
                        o = ~o
                ins.append((d, o))
            inputs: tuple = tuple(ins)
        else:  # (a lost point read back from the checkpoint: its own saved value)
            inputs = () if t.restore is None else ((t.id, t.restore),)
        self._out.append(Execute(rank, t.id, t.spec, inputs, t.attempt, t.lost > 0, t.launch is not None))
        if not t.retries and not self.lineage:
            t.spec = None  # kept only while a retry (or a recomputation) may need it
        if t.dependents:
            # its waiting consumers may run ahead behind it: depth first, as a
            # recursion would, but with an explicit stack (a chain assigned in one
            # go is as deep as a worker's queue, deeper than Python's stack)
            stack = self._ahead_stack
            stack.extend(reversed(t.dependents))
            if not self._draining_ahead:  # the outermost _assign drains it
                self._draining_ahead = True
                try:
                    while stack:
                        ct = tasks.get(stack.pop())
                        if ct is not None and ct.state is _WAITING:
                            self._run_ahead(ct)
                finally:
                    stack.clear()
                    self._draining_ahead = False

    # ----------------------------------------------------------- checking

    def validate(self) -> None:
        """Check every invariant of the state; raise ``AssertionError`` if broken."""
        self._validate_indexes()
        tasks = self.tasks
        ready_ids = self.ready.ids()
        for t in tasks.values():
            assert t.refs >= 0, f"{t.id:#x} negative refs"
            assert t.consumers >= 0, f"{t.id:#x} negative consumers"
            live_consumers = sum(
                1 for c in t.dependents if c in tasks and tasks[c].state < FIRST_FINAL)
            assert t.consumers == live_consumers, (
                f"{t.id:#x} consumers={t.consumers} but {live_consumers} dependents are pending")
            if self.lineage:
                heirs = sum(1 for c in t.dependents if c in tasks)
                assert t.heirs == heirs, f"{t.id:#x} heirs={t.heirs} but {heirs} dependents are kept"
                assert t.spec is not None or t.state >= FIRST_FINAL or t.launch is not None, \
                    f"{t.id:#x} lineage without a spec"
            redo = t.launch is not None and t.spec is not None  # (a lost point computed again)
            if redo:
                rec = self.launches.get(t.launch)
                # (or of a launch that failed meanwhile, whose own run again goes on)
                assert t.state >= FIRST_FINAL or rec is not None and (rec.error is not None or rec.redo and
                                                                      t.id in rec.redo), \
                    f"point {t.id:#x} computed again for a launch that does not wait for it"
            if t.state is _WAITING and t.launch is not None and not redo:  # a point: waits for its launch
                rec = self.launches.get(t.launch)
                assert t.waiting == 1 and rec is not None and rec.pending and t.id in rec.points, \
                    f"point {t.id:#x} waiting for a launch that is not running"
            elif t.state is _WAITING:
                pending = sum(1 for d in t.deps if tasks[d].state is not _FINISHED or tasks[d].gone)
                assert t.waiting == pending > 0, f"{t.id:#x} waiting={t.waiting}, pending={pending}"
            if t.state is _READY:
                assert t.id in ready_ids, f"{t.id:#x} READY but not queued"
                assert all(tasks[d].state is _FINISHED and not tasks[d].gone for d in t.deps)
            if t.state is _ASSIGNED:
                assert t.worker in self.workers and t.id in self.workers[t.worker].assigned
                pending = [d for d in t.deps if tasks[d].state is not _FINISHED or tasks[d].gone]
                assert t.waiting == len(pending), f"{t.id:#x} ASSIGNED waiting={t.waiting}"
                if not t.stale:
                    assert all(tasks[d].state is _ASSIGNED for d in pending), \
                        f"{t.id:#x} ran ahead of an input that is not assigned"
            else:
                assert not t.blocked
            if t.state is _FINISHED and not t.gone:
                assert t.owner is not None
            if t.state < FIRST_FINAL:
                assert t.owner is None, f"{t.id:#x} not finished but has an owner"
            if t.state >= FIRST_FINAL:
                assert t.refs > 0 or t.consumers > 0 or (self.lineage and t.heirs > 0), \
                    f"{t.id:#x} final and unreferenced"
                if t.refs > 0 or t.consumers > 0:
                    assert not t.gone, f"{t.id:#x} needed but its value is gone"
        width: dict = {}
        for t in tasks.values():
            width[t.level] = width.get(t.level, 0) + 1
        assert width == self.width, f"width {self.width}, records {width}"
        for w in self.workers.values():
            assert w.stealing <= set(w.assigned), f"worker {w.rank}: stealing unassigned tasks"
            unblocked = sum(1 for i in w.assigned if not tasks[i].blocked)
            backlog = sum(tasks[i].est for i in w.assigned if not tasks[i].blocked)
            assert abs(w.backlog - backlog) <= 1e-6 * max(1.0, backlog), f"worker {w.rank}: backlog"
            assert w.load == unblocked, f"worker {w.rank}: load={w.load}, unblocked={unblocked}"
            used: dict = {}
            for i in w.assigned:
                assert tasks[i].state is _ASSIGNED and tasks[i].worker == w.rank
                for k, v in (tasks[i].needs or {}).items():
                    used[k] = used.get(k, 0) + v
            for i, (rank, nb) in self._gpu_held.items():
                if rank == w.rank:  # values kept in its GPU's memory
                    assert tasks[i].state is _FINISHED and tasks[i].owner == rank and not tasks[i].gone
                    used["gpu_memory"] = used.get("gpu_memory", 0) + nb
            levels: dict = {}
            for i in w.assigned:
                levels[tasks[i].level] = levels.get(tasks[i].level, 0) + 1
            assert levels == w.levels, f"worker {w.rank}: levels {w.levels}, assigned {levels}"
            for k in set(used) | set(w.used):
                assert abs(used.get(k, 0) - w.used.get(k, 0)) < 1e-9, f"worker {w.rank}: {k} used"
                # (values kept on a GPU are a fact, not a reservation: they may exceed it)
                assert k == "gpu_memory" or w.used.get(k, 0) <= w.total.get(k, 0) + 1e-9, \
                    f"worker {w.rank}: {k} over"


