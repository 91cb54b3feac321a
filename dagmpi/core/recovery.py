"""Recovery from the death of a worker rank (ULFM): a mixin of the scheduler.

When a rank dies, its queued and running tasks are placed again, and the
values it held that something still needs are read back from a checkpoint
file when one holds them, else computed again from their lineage (the specs
and input records the scheduler keeps when ``lineage`` is on).  A task that
cannot run again (no lineage, killed too many ranks, no live rank fits its
scope) fails with :class:`~dagmpi.core.failures.RankLost`.  Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Optional

from .events import WorkerLost
from .failures import RankLost, root_error
from .records import TaskRecord
from .states import FIRST_FINAL, TaskState

_WAITING, _READY, _ASSIGNED = TaskState.WAITING, TaskState.READY, TaskState.ASSIGNED
_FINISHED, _ERRORED = TaskState.FINISHED, TaskState.ERRORED


class Recovery:
    """Handling of :class:`~dagmpi.core.events.WorkerLost` (see the module docstring)."""

    # provided by Scheduler
    tasks: dict
    workers: dict
    max_lost: int
    launches: dict
    lineage: bool
    make_restore_spec: Any
    _cone: dict
    _worker_span: Any
    n_workers_lost: int
    n_recomputed: int
    n_reloaded: int
    n_finished: int

    def _on_worker_lost(self, ev: WorkerLost) -> None:
        """Worker ``ev.rank`` died: run its tasks elsewhere and compute again the
        values it held that are still needed (from their inputs, recursively:
        inputs whose values were freed are recomputed too).  A task that cannot
        be recomputed (no lineage, or restricted to dead ranks) fails with
        :class:`RankLost`."""
        w = self.workers.pop(ev.rank, None)
        self._worker_span = None
        # (also a rank that died before it joined: its launches wait for it, or move)
        redo = self._launches_lost(ev.rank)
        if w is None:
            return
        self._untouch(w)
        self._ring = None
        self.n_workers_lost += 1
        if self._gpu_held:  # (its GPU's values are gone with it)
            for tid in [i for i, (r, _) in self._gpu_held.items() if r == ev.rank]:
                del self._gpu_held[tid]
        tasks = self.tasks
        rank = ev.rank
        touched: dict[int, TaskRecord] = {}
        # 1. its assigned tasks: any of them may have been running (and be what
        #    killed it), so each becomes a suspect (like Dask's ``allowed-failures``);
        #    a suspect says when it starts, and counts a death only if it had started
        for tid in w.assigned:
            t = tasks[tid]
            t.worker = None
            t.blocked = False
            if t.lost == 0 or t.started_on == rank:
                t.lost += 1
            t.started_on = None
            self.n_rescheduled += 1
            touched[tid] = t
            self._orphan_dependents(t)
        for tid in w.ahead:
            t = tasks.get(tid)
            if t is not None:
                t.in_ahead = False
        # 2. the values it held
        lost = [t for t in tasks.values() if t.state is _FINISHED and t.owner == rank and not t.gone]
        for t in lost:
            t.gone = True
            t.owner = None
            t.nbytes = 0
        # 3. bring back the lost values something still needs, and the freed inputs
        #    they need: read from a checkpoint file when one holds them, else recomputed
        saved = ev.saved or {}
        doomed: dict[int, str] = {}
        stack = [t for t in lost if t.refs > 0 or t.consumers > 0]
        stack += redo  # (lineage: the points of launches that were sent there)
        for t in redo:  # (held until the end: failures below must not delete them meanwhile)
            t.refs += 1
        while stack:
            t = stack.pop()
            if t.state is not _FINISHED or not t.gone:
                continue
            if t.launch is not None:
                if self._point_revive(t):
                    continue  # a point whose launch still holds its value, on a live rank
                self._detach_point(t)  # (of a launch released: a plain record now)
            if t.id in saved and t.launch is None:  # (a launch's lost point: on its new rank)
                t.owner = saved[t.id]
                t.nbytes = getattr(t.owner, "nbytes", 0)
                t.gone = False
                self.n_reloaded += 1
                continue
            self._set_state(t, _WAITING)
            t.gone = False
            t.owner = None  # (a freed value's record still names the rank that had it)
            t.nbytes = 0
            self.n_finished -= 1
            touched[t.id] = t
            t.restore = None  # (read back last time it was lost, perhaps: set again below if so now)
            if t.id in saved and t.launch is not None and self.make_restore_spec is not None \
                    and t.launch in self.launches:
                # a point of a launch held here, lost and saved: read back on the rank its
                # launch's layout now gives it, not computed again (its cone may be long,
                # or reach a loop, whose points are not computed again one by one)
                t.restore = saved[t.id]
                t.spec = self.make_restore_spec(t.name, t.id - self.launches[t.launch].base, t.id)
                t.deps = ()
                self.n_reloaded += 1
            elif t.spec is None and (t.launch is not None or t.id in self._cone):
                self._point_lineage(t)  # (a point: its launch's spec and projections)
            for d in t.deps:
                tasks[d].consumers += 1
            why = self._why_not_again(t, rank)
            if why is not None:
                doomed[t.id] = why
                continue
            if t.restore is None:
                self.n_recomputed += 1
            for d in t.deps:
                dep = tasks[d]
                if dep.state is _FINISHED and dep.gone:
                    stack.append(dep)
            for c in t.dependents:
                ct = tasks.get(c)
                if ct is None:
                    continue
                if ct.state is _WAITING or ct.state is _READY:
                    touched[c] = ct
                elif ct.state is _ASSIGNED and ct.worker is not None:
                    # on a live rank: it runs if it fetched this input before the
                    # rank died, else its worker gives it back
                    ct.waiting += 1
                    ct.stale = True
        self._cone.clear()
        # 4. fail what cannot run again; place the rest
        if not self.workers:
            for t in redo:
                t.refs -= 1
            for t in [t for t in tasks.values() if t.state < FIRST_FINAL]:
                self._fail(t, RankLost(rank, "no worker rank is left alive"))
            return
        for t in touched.values():
            if t.state < FIRST_FINAL and t.id not in doomed:
                why = self._why_not_again(t, rank)
                if why is not None:
                    doomed[t.id] = why
        for tid, why in doomed.items():
            t = tasks.get(tid)
            if t is not None:
                self._fail(t, RankLost(rank, why))
        for t in touched.values():
            if t.state < FIRST_FINAL and t.id in tasks:
                self._requeue(t)
        for t in redo:
            t.refs -= 1
            if t.id in tasks:
                self._maybe_forget(t)

    def _why_not_again(self, t: TaskRecord, rank: int) -> Optional[str]:
        """Why ``t`` (its value or its run lost with ``rank``) cannot run again, or ``None``."""
        for d in t.deps:
            dep = self.tasks.get(d)
            if dep is not None and dep.state is _ERRORED:
                # (computed again after a death of its own, and failed: t would wait for it forever)
                return (f"its input {dep.name!r} ({d:#x}) was computed again after a rank died, "
                        f"and failed: {root_error(dep.error)}")
        if t.spec is None and t.launch is not None:
            return (f"it is a point of a launch whose values on rank {rank} are lost, and its "
                    "launch's lineage is not kept any more (or an input of it failed)")
        if t.spec is None:
            return (f"its value, or the task itself, was on rank {rank}, and this run keeps no "
                    "lineage to compute it again")
        if t.lost >= self.max_lost:
            return (f"it was running on {t.lost} ranks that died (the last one rank {rank}); "
                    "it may be what kills them (memory, a crash in native code)")
        if t.ranks or t.needs:
            scope = self.can_ever_run(t.ranks, t.needs)
            if scope is not None:
                return f"no live rank can run it any more: {scope}"
        return None
