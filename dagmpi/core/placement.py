"""Scheduling policy: which ready task runs where, and when.

Part of the pure scheduler (no I/O, no MPI): :class:`Placement` is a mixin of
:class:`~dagmpi.core.scheduler.Scheduler` and works on its state (``tasks``,
``workers``, ``ready``); state changes still go through the scheduler's
``_assign``/``_set_state``.

Order: ready tasks leave the heap by user priority, then started work before
new roots (reductions and chains finish before more data is produced), among
it those that are the last consumer of an input first (memory they free),
then the shallowest depth (an iterative graph's older step first), then
submission order.

Placement: a ready task goes to the worker with the smallest estimated finish
time among those with free capacity that its scope and resources allow: queue
wait (the rank's backlog -- run times of its assigned tasks, learned online per
function and processor kind -- divided by its slots) plus the time to move the
inputs it does not already hold (bytes / bandwidth).  Large inputs
pull a task to the rank that owns them; small ones let balance win.  A worker
holds at most ``capacity`` unblocked tasks (its slots plus a queue sized to
cover ``queue_window`` seconds of work, see :meth:`Placement._update_capacity`).

Running ahead: a task whose unfinished inputs are all assigned (to any ranks)
is assigned at once, to a rank computing one of them; the worker starts it
when the inputs exist (those computed on other ranks are sent to it by their
producers as they finish), so neither a chain nor a stencil step
round-trips through rank 0 per task.

Stealing: when a rank has idle slots and nothing is ready, the newest queued
tasks of a busy rank are asked back (:class:`~dagmpi.core.events.Steal`); those not
started come back (:class:`~dagmpi.core.events.TasksReturned`) and are placed again.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Any, Optional

from .events import Steal
from .records import TaskRecord, WorkerRecord
from .states import TaskState

_WAITING, _READY, _ASSIGNED = TaskState.WAITING, TaskState.READY, TaskState.ASSIGNED
_FINISHED = TaskState.FINISHED
#: Queued tasks a steal looks at beyond four per task it wants.
STEAL_SCAN = 32

class Placement:
    """Order, placement, queue depth, running ahead and stealing (see the module docstring)."""

    # provided by Scheduler
    tasks: dict
    workers: dict
    ready: list
    _out: list
    prefetch: int
    queue_window: float
    max_queue: int
    bandwidth: float
    _mean_duration: float
    _fn_mean: dict
    n_run_ahead: int
    free_total: int
    _room: list
    _ahead_due: set
    _n_queued: int
    _n_idle: int
    _victims: dict
    _idle_ranks: set
    _per_slot: Optional[int]
    _ring: Optional[list] = None  # sorted worker ranks (rebuilt when the workers change)

    def estimate(self, t: TaskRecord) -> float:
        """Expected run time of ``t``: the recent mean of its function on its
        processor kind, else the mean of all tasks so far."""
        est = self._fn_mean.get(t.fn)
        return self._mean_duration if est is None else est

    def _update_capacity(self, new: Optional[WorkerRecord] = None) -> None:
        """Tasks a worker may hold beyond its slots: at least ``prefetch``, and
        enough queued work to keep each slot busy for ``queue_window`` seconds at
        the mean task duration (at most ``max_queue`` per slot).  Short tasks then
        never leave a worker idle during a round trip to rank 0, while long ones
        stay with the scheduler, free to go to whichever rank frees up first.

        Only when the depth per slot changes are all workers updated (``new``: a
        worker that just joined gets it alone): no O(workers) work per join or
        per finished task."""
        per_slot = 0
        if self.queue_window > 0:
            per_slot = min(self.max_queue, int(self.queue_window / max(self._mean_duration, 1e-9)))
        if per_slot == self._per_slot:
            if new is not None:
                new.capacity = new.slots + max(self.prefetch, per_slot * new.slots)
                self._touch(new)
            return
        self._per_slot = per_slot
        for w in self.workers.values():
            w.capacity = w.slots + max(self.prefetch, per_slot * w.slots)
            self._touch(w)

    # ------------------------------------------------------------ the indexes

    def _touch(self, w: WorkerRecord) -> None:
        """``w``'s load, backlog, capacity or stuck count changed: update the indexes
        (free room, the heap of workers with room, the idle ranks, the steal victims)."""
        load = w.load
        slots = w.slots
        f = w.capacity - load
        if f < 0 or w.stuck:
            f = 0
        if f != w.free:
            self.free_total += f - w.free
            w.free = f
        if load < slots:
            if not w.idle:
                self._n_idle += 1
                self._idle_ranks.add(w.rank)
                w.idle = True
            if w.qdepth:
                self._requeue_victim(w, 0)
        else:
            if w.idle:
                self._n_idle -= 1
                self._idle_ranks.discard(w.rank)
                w.idle = False
            if load - slots != w.qdepth or w.barren:  # (a barren victim's load changed: look again)
                self._requeue_victim(w, load - slots)
        if f > 0:
            if w.ahead:
                self._ahead_due.add(w.rank)
            # its entry in the heap moves only when its key falls: one that grew is
            # moved when it comes to the top (_least_loaded), most never do
            key = w.backlog / w.slots
            rk = w.room_key
            if rk is None or key < rk:
                room = self._room
                heapq.heappush(room, (key, w.rank))
                w.room_key = key
                if len(room) > 8 * len(self.workers) + 1024:  # stale entries: start afresh (amortised O(1))
                    room = self._room = []
                    for x in self.workers.values():
                        x.room_key = None
                        if x.free > 0:
                            x.room_key = k = x.backlog / x.slots
                            room.append((k, x.rank))
                    heapq.heapify(room)

    def _requeue_victim(self, w: WorkerRecord, depth: int) -> None:
        """``w``'s queue beyond its slots is ``depth`` tasks now: its place among the
        steal victims (none at 0), no longer barren."""
        victims = self._victims
        old = w.qdepth
        if old and not w.barren:
            victims[old].discard(w.rank)
        if depth:
            at = victims.get(depth)
            if at is None:
                at = victims[depth] = set()
            at.add(w.rank)
            if not old:
                self._n_queued += 1
        elif old:
            self._n_queued -= 1
        w.qdepth = depth
        w.barren = False

    def _untouch(self, w: WorkerRecord) -> None:
        """``w`` leaves (it died, or joins again with new slots): out of the indexes."""
        self.free_total -= w.free
        w.free = 0
        if w.qdepth:
            self._requeue_victim(w, 0)
        if w.idle:
            self._n_idle -= 1
            self._idle_ranks.discard(w.rank)
            w.idle = False
        self._ahead_due.discard(w.rank)

    def _least_loaded(self) -> Optional[WorkerRecord]:
        """The worker with room and the least backlog per slot (lowest rank on a tie).

        Every worker with room has an entry in the heap whose key is at most its
        backlog per slot (``room_key``), so the top entry's worker, when its key is
        current, has the least; a key that grew since is moved down when it comes
        to the top.  Entries of workers without room, or older ones, are dropped."""
        room, workers = self._room, self.workers
        while room:
            b, r = room[0]
            w = workers.get(r)
            if w is not None and w.free > 0:
                key = w.backlog / w.slots
                if key == b:
                    return w
                if key > b and w.room_key == b:  # (its entry: moved to its key now)
                    heapq.heapreplace(room, (key, r))
                    w.room_key = key
                    continue
            heapq.heappop(room)
            if w is not None and w.room_key == b:  # (its entry left the heap)
                w.room_key = None
        return None

    def _schedule(self) -> None:
        ready = self.ready
        if not ready or not self.workers:
            return
        free = self.free_total
        deferred = []
        tasks = self.tasks
        while ready and free > 0:
            item = ready.take()
            t = tasks.get(item[1])
            if t is None or t.state is not _READY:
                continue
            w = self._choose_worker(t)
            if w is None:
                deferred.append(item)
                # running ahead (when tasks are assigned) also takes room: recount
                # before looking further, or a full cluster makes this loop walk
                # (and push back) the whole heap on every call
                free = self.free_total
                continue
            self._assign(t, w)
            free -= 1
        if deferred:
            ready.put_back(deferred)

    def can_ever_run(self, ranks: Optional[frozenset], needs: Optional[dict]) -> Optional[str]:
        """``None`` if some joined worker could run such a task, else why not."""
        return unplaceable({r: w.total for r, w in self.workers.items()}, ranks, needs)

    def _n_steal_candidates(self) -> int:
        """Cheap pre-check: ranks with queued tasks beyond their slots (0: no stealing)."""
        if self.ready or len(self.workers) < 2 or not self._n_idle:
            return 0  # (with no idle slot, _steal has nothing to do)
        return self._n_queued

    def _steal(self) -> None:
        """Idle slots while another rank has tasks queued: ask for some back.

        A worker runs its queue in order, so the most recently assigned tasks
        are the ones not started; the victim returns those it has not started
        (:class:`TasksReturned`) and they are placed again, on the idle rank.
        """
        if self.ready:
            return  # placement could not fill the idle slots with ready work: stealing would not help
        # From the indexes, the deepest queues first: O(the victims looked at + the idle
        # ranks that take what they give), not O(workers), so a ramp of many idle ranks
        # costs no scan of them all; and a victim whose newest tasks cannot move (they ran
        # ahead and wait for inputs) is left out until its load changes, so a cluster of
        # such queues is not scanned again on every batch.
        workers = self.workers
        victims = self._victims
        tasks = self.tasks
        spare = iter(self._idle_ranks)
        idle: list = []  # the idle ranks taken so far
        room = 0  # what they can still take
        for depth in sorted((d for d, rs in victims.items() if rs), reverse=True):
            at = victims[depth]
            for r in list(at):
                v = workers[r]
                queued = depth - len(v.stealing)
                if queued <= 0:
                    continue  # (its last steal is not answered yet)
                limit = (queued + 1) // 2
                while room < limit:
                    i = next(spare, None)
                    if i is None:
                        break
                    w = workers[i]
                    if w.free > 0:
                        idle.append(w)
                        room += w.free
                if room <= 0:
                    return
                limit = min(limit, room)
                take = []
                # look at the newest tasks only: a queue that ran ahead (a chain waiting
                # on itself) has nothing to steal, and scanning it all would cost O(queue)
                for n, tid in enumerate(reversed(v.assigned)):
                    if len(take) >= limit or n >= 4 * limit + STEAL_SCAN:
                        break
                    t = tasks[tid]
                    if t.blocked or tid in v.stealing or t.near is not None or t.waiting:
                        continue
                    if any((c := tasks.get(d)) is not None and c.state is _ASSIGNED and c.waiting
                           for d in t.dependents):
                        continue  # a task ran ahead on this rank and waits for it there
                    # inputs held by the victim would have to move: worth it only
                    # when that is quicker than waiting in the victim's queue
                    held = sum(tasks[d].nbytes for d in t.deps if tasks[d].owner == v.rank)
                    if held / self.bandwidth > queued * self._mean_duration:
                        continue
                    if any(self._fits(t, w) for w in idle):
                        take.append(tid)
                if take:
                    v.stealing.update(take)
                    self._out.append(Steal(v.rank, tuple(take)))
                    room -= len(take)
                else:  # nothing to take until its load changes (Placement._touch)
                    at.discard(r)
                    v.barren = True

    def _fits(self, t: TaskRecord, w: WorkerRecord) -> bool:
        if t.ranks is not None and w.rank not in t.ranks:
            return False
        if t.needs is not None and any(w.total.get(k, 0) < v for k, v in t.needs.items()):
            return False
        return True

    def _ring_next(self, rank: int) -> Optional[int]:
        """The worker rank after ``rank`` (wrapping around), ``None`` if it is the only one."""
        ring = self._ring
        if ring is None:
            ring = self._ring = sorted(self.workers)
        if len(ring) < 2:
            return None
        i = bisect.bisect_right(ring, rank)
        return ring[i % len(ring)]

    def _near_home(self, near: int) -> Optional[int]:
        """The rank a ``near`` task should run on: the owner (or assignee) of the task
        ``near`` names, or, for ``near < 0``, the preferred rank ``-1 - near`` while it
        is a live worker; ``None`` when neither is known."""
        if near < 0:
            rank = -1 - near
            return rank if rank in self.workers else None
        other = self.tasks.get(near)
        if other is None:
            return None
        home = other.owner if other.owner is not None else other.worker
        # a value restored from a checkpoint is owned by its file, not by a rank
        return home if home in self.workers else None

    def _choose_worker(self, t: TaskRecord) -> Optional[WorkerRecord]:
        """The worker with the earliest estimated finish time for ``t``."""
        if t.near is None and t.ranks is None and t.needs is None and t.avoid is None:
            return self._choose_anywhere(t)
        tasks = self.tasks
        needs = t.needs
        ranks = t.ranks
        if t.near is not None:
            home = self._near_home(t.near)
            # (a rank it failed on is not its home: it runs elsewhere, its inputs moved)
            if home is not None and (ranks is None or home in ranks) and \
                    (t.avoid is None or home not in t.avoid):
                ranks = frozenset([home])
        avoid = t.avoid
        if avoid is not None and not any(
                w.rank not in avoid and not w.stuck and self._fits(t, w) for w in self.workers.values()):
            avoid = None  # every rank that could run it failed it already: any will do
        if ranks is None and needs is None and avoid is None:
            return self._choose_anywhere(t)
        local: dict[int, int] = {}  # (only for the scan: _choose_anywhere counts its own)
        total = 0
        for d in t.deps:
            dep = tasks[d]
            total += dep.nbytes
            local[dep.owner] = local.get(dep.owner, 0) + dep.nbytes
        best: Optional[WorkerRecord] = None
        best_cost = 0.0
        bw = self.bandwidth
        for w in self.workers.values():
            if w.load >= w.capacity or w.stuck or (ranks is not None and w.rank not in ranks):
                continue
            if needs is not None and any(w.total.get(k, 0) - w.used.get(k, 0) < v
                                         for k, v in needs.items()):
                continue
            if avoid is not None and w.rank in avoid:
                continue
            # queue wait on this rank + moving the inputs it does not hold (the run
            # time itself is the same on every rank of one processor kind)
            cost = w.backlog / w.slots + (total - local.get(w.rank, 0)) / bw
            if best is None or cost < best_cost:
                best, best_cost = w, cost
        return best

    def _choose_anywhere(self, t: TaskRecord) -> Optional[WorkerRecord]:
        """:meth:`_choose_worker` for a task that may run anywhere: the ranks holding
        its inputs against the least-loaded worker with room.  Any other rank holds
        none of its inputs and has no less backlog, so this is the full scan's
        choice, in O(inputs + log W)."""
        tasks, workers = self.tasks, self.workers
        bw = self.bandwidth
        deps = t.deps
        if len(deps) == 1:  # (most tasks: no table of the ranks holding inputs)
            dep = tasks[deps[0]]
            total = dep.nbytes
            local: Any = None
            held_on = dep.owner
        else:
            local = {}
            total = 0
            for d in deps:
                dep = tasks[d]
                total += dep.nbytes
                local[dep.owner] = local.get(dep.owner, 0) + dep.nbytes
            held_on = None
        best: Optional[WorkerRecord] = None
        best_cost = 0.0
        if local is not None:
            for r, held in local.items():
                w = workers.get(r) if type(r) is int else None
                if w is None or w.free <= 0:
                    continue
                cost = w.backlog / w.slots + (total - held) / bw
                if best is None or cost < best_cost or (cost == best_cost and w.rank < best.rank):
                    best, best_cost = w, cost
        elif type(held_on) is int:
            w = workers.get(held_on)
            if w is not None and w.free > 0:
                best, best_cost = w, w.backlog / w.slots
        w = self._least_loaded()
        if w is not None:
            if local is not None:
                cost = w.backlog / w.slots + (total - local.get(w.rank, 0)) / bw
            else:
                cost = w.backlog / w.slots + (0 if w.rank == held_on else total / bw)
            if best is None or cost < best_cost or (cost == best_cost and w.rank < best.rank):
                best = w
        return best

    def _run_ahead(self, t: TaskRecord) -> None:
        """Assign a waiting task, before its inputs exist, to a rank that computes
        one of them, if it has room.  The worker starts it the moment its inputs
        exist, with no round trip through rank 0: an input computed on the same
        rank is handed over in memory, one computed on another rank is asked for
        at once (:class:`~dagmpi.runtime.messages.Await`) and sent by its
        producer the moment it finishes.  A chain, and a stencil whose steps read
        their neighbours' values, run at the workers' pace.

        Each unfinished input must be assigned (not blocked in ``fetch``, not
        being stolen back, with no retries left that could move it).  The home
        is the ``near`` rank when it is known, else one of the ranks computing
        or holding its inputs: one that has fewer than its fair share of the
        tasks of this graph depth (the wider of this depth and the one above,
        over the workers: the points of a stencil step spread over the ranks,
        and a graph does not collapse onto the rank that happens to compute its
        first inputs), then the one with most of its inputs (a stencil keeps
        its points on the ranks that computed them: owner computes), the fewest
        tasks of this depth, the least backlog, the lowest rank; when the rank chosen
        has its share, the least-loaded rank takes it if it has less (neither this
        nor the ring's next rank when the inputs that exist already are big: moving
        them would take longer than a task);
        a home without room keeps the task in its ``ahead`` list, retried when a
        task of that rank ends.  Inputs already finished elsewhere are pulled as
        usual."""
        tasks = self.tasks
        workers = self.workers
        ranks: dict = {}  # rank -> its inputs computed or held there
        pending = False
        held = 0  # bytes of its inputs that exist already
        for d in t.deps:
            dep = tasks[d]
            if dep.state is _FINISHED:
                held += dep.nbytes
                r = dep.owner
                if type(r) is not int or r not in workers:
                    continue  # (a value in a checkpoint file)
            else:
                if dep.state is not _ASSIGNED or dep.blocked or dep.retries:
                    return
                r = dep.worker
                if d in workers[r].stealing:
                    return  # it may come back from there: this one would wait for it in vain
                pending = True
            ranks[r] = ranks.get(r, 0) + 1
        if not pending:
            return
        home = next(iter(ranks))  # (the rank of its first input)
        level = t.level
        width = self.width
        # a rank's fair share of this depth: the wider of this depth (so far) and
        # the one above it, over the workers
        share = -(-max(width.get(level - 1, 0), width[level]) // len(workers))
        small = held / self.bandwidth < self._mean_duration  # (the inputs that exist may move)
        if len(ranks) == 1 and len(t.deps) > 1 and t.near is None and small and \
                workers[home].levels.get(level, 0) >= share:
            # all its inputs on one rank, which already has its share of this
            # depth: the next rank in ring order may take it (else a stencil
            # whose points of one step once landed on one rank would stay there)
            nxt = self._ring_next(home)
            if nxt is not None:
                ranks[nxt] = 0
        if t.near is not None:
            home = self._near_home(t.near)  # where it runs anyway: its inputs come to it
            if home is None:
                return
        else:
            if len(ranks) > 1:
                best = None
                for r, n in ranks.items():
                    w = workers[r]
                    if not self._fits(t, w) or w.stuck:
                        continue
                    lv = w.levels.get(level, 0)
                    key = (w.load >= w.capacity, lv >= share, -n, lv, w.backlog / w.slots, r)
                    if best is None or key < best[0]:
                        best = (key, r)
                if best is None:
                    return
                home = best[1]
                crowded = best[0][1]
            else:
                crowded = workers[home].levels.get(level, 0) >= share
            if crowded and small and t.ranks is None and t.needs is None:
                # the rank chosen has its share of this depth already: the least-loaded
                # rank takes it if it has less (a tree, whose points of one step read
                # one point each of the step before, would pile up on the ranks of the
                # first points, to be stolen back from there), unless moving the inputs
                # that exist takes longer than a task
                spare = self._least_loaded()
                if spare is not None and spare.levels.get(level, 0) < share:
                    home = spare.rank
        w = workers[home]
        if not self._fits(t, w) or w.stuck:
            return
        if w.load >= w.capacity:
            if not t.in_ahead:  # retried when a task of this rank ends
                t.in_ahead = True
                w.ahead.append(t.id)  # (due for a retry when it has room: _touch)
            return
        if t.needs is not None and any(w.total.get(k, 0) - w.used.get(k, 0) < v
                                       for k, v in t.needs.items()):
            return
        self.n_run_ahead += 1
        self._assign(t, w)


def unplaceable(offers: dict[int, dict], ranks: Optional[frozenset], needs: Optional[dict]) -> Optional[str]:
    """Why no rank of ``offers`` (rank -> resources offered) can ever run a task
    restricted to ``ranks`` that holds ``needs``; ``None`` if one can."""
    cands = [r for r in offers if ranks is None or r in ranks]
    if not cands:
        return f"it may only run on rank(s) {sorted(ranks or ())}, which are not worker ranks"
    if needs:
        if not any(all(offers[r].get(k, 0) >= v for k, v in needs.items()) for r in cands):
            offered = {r: {k: offers[r].get(k, 0) for k in needs} for r in sorted(cands)}
            return (f"it needs {needs}, but no rank offers that much (worker ranks offer {offered}); "
                    "check the scope/resources, or start ranks that have them")
    return None
