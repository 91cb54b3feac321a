"""The scheduler's records of one task and one worker rank.

Owned and mutated by :class:`~dagmpi.core.scheduler.Scheduler` and its policy
mixins (:mod:`~dagmpi.core.placement`, :mod:`~dagmpi.core.recovery`) only; see
the scheduler's module docstring for what each field means.
"""

from __future__ import annotations

import collections
from typing import Any, Optional

from .events import TaskSubmitted
from .states import TaskState

_WAITING = TaskState.WAITING


class TaskRecord:
    __slots__ = (
        "id", "name", "state", "deps", "waiting", "dependents", "priority", "ranks",
        "owner", "nbytes", "refs", "consumers", "spec", "watchers", "error",
        "worker", "blocked", "needs", "near", "level", "retries", "attempt", "avoid", "fn", "est",
        "in_ahead", "heirs", "gone", "lost", "stale", "started_on", "launch", "held", "restore",
    )

    def __init__(self, ev: TaskSubmitted) -> None:
        self.id = ev.task_id
        self.name = ev.name
        self.state = _WAITING
        self.deps = ev.deps
        self.waiting = 0
        # () until the first consumer arrives, and watchers a tuple: most records
        # then hold no container the garbage collector has to walk
        self.dependents: Any = ()
        self.priority = ev.priority
        self.ranks = ev.ranks
        self.owner: Optional[int] = None
        self.nbytes = 0
        self.refs = 1  # the submitter's handle
        self.consumers = 0
        self.spec = ev.spec
        self.watchers: Optional[tuple[int, ...]] = (ev.submitter,) if ev.watch else None
        self.error: Any = None
        self.worker: Optional[int] = None
        self.blocked = False
        self.needs = ev.needs
        self.near = ev.near
        self.level = 0  # 1 + the deepest input's level
        self.retries = ev.retries  # re-runs left
        self.attempt = 1
        self.avoid: Optional[set[int]] = None  # ranks it failed on
        #: a key of its function and processor kind (durations are learned per key)
        self.fn = (ev.fn, ev.needs is not None and "gpu" in ev.needs)
        self.est = 0.0  # its estimated run time, counted in its worker's backlog
        self.in_ahead = False  # queued in a worker's ``ahead`` list
        self.restore: Any = None  # a lost point read back from this checkpoint location
        self.heirs = 0  # records of tasks that consume it (lineage mode: they may need it again)
        self.gone = False  # FINISHED, but the value no longer exists (freed, or its rank died)
        self.lost = 0  # times it was running on a rank that died
        self.stale = False  # ASSIGNED, and an input it may not have fetched yet is computed again
        self.started_on: Optional[int] = None  # a suspect (lost > 0): the rank that said it started it
        #: a point of a launch, materialised (see Launches._point): the launch's id, and
        #: whether the record holds a reference to it (until it is forgotten)
        self.launch: Optional[int] = None
        self.held = False


class WorkerRecord:
    __slots__ = ("rank", "slots", "capacity", "load", "assigned", "total", "used", "stealing", "ahead",
                 "stuck", "backlog", "levels", "free", "idle", "room_key", "qdepth", "barren")

    def __init__(self, rank: int, slots: int, capacity: int, resources: Optional[dict]) -> None:
        self.rank = rank
        self.slots = slots
        self.capacity = capacity  # slots + queue depth; see Scheduler._update_capacity
        self.total: dict = dict(resources or {})  # what the rank offers
        self.used: dict = {}  # held by its assigned tasks that declared needs
        self.load = 0  # assigned tasks that are not blocked in fetch
        self.assigned: dict[int, None] = {}  # in assignment order (the worker runs them FIFO)
        self.stealing: set[int] = set()  # asked back, answer pending
        self.ahead: collections.deque = collections.deque()  # could run ahead here when room frees
        self.stuck = 0  # timed-out calls still running: no new work until they return
        self.backlog = 0.0  # estimated seconds of work of its unblocked assigned tasks
        self.levels: dict[int, int] = {}  # graph depth -> its assigned tasks of that depth
        # its part of the scheduler's indexes (Placement._touch keeps them): room for
        # more tasks (0 while stuck), fewer tasks than slots
        self.free = 0
        self.idle = False
        #: the key of its entry in the heap of ranks with room, at most its backlog per
        #: slot (a larger backlog moves the entry when it comes to the top); None: none
        self.room_key: Optional[float] = None
        #: its queue depth (tasks beyond its slots; > 0: a steal victim), and whether it
        #: is left out of the victims, as a steal found nothing to take since its load changed
        self.qdepth = 0
        self.barren = False
