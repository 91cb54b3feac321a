"""Events into and instructions out of the scheduler state machine.

Events describe something that happened (a task was submitted, a worker
reported a result); instructions tell the runtime loop what to do next (run a
task on a rank, free a value, tell a rank that a task ended).  Both are
dataclasses with ``__slots__`` (not frozen: a frozen dataclass's ``__init__``
costs several times more, and one is made per task); nobody mutates them.
The scheduler never performs I/O itself.

Payloads that the scheduler does not interpret (the serialized function and
arguments) travel as ``spec``: an opaque object the runtime gives in
:class:`TaskSubmitted` and gets back, untouched, in :class:`Execute`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# --------------------------------------------------------------------- events


@dataclass(slots=True)
class WorkerJoined:
    """A worker rank is ready to run tasks on ``slots`` concurrent slots."""

    rank: int
    slots: int = 1
    #: What the rank offers, e.g. ``{"cpu": 1, "gpu": 1, "memory": 6.4e10}``.
    resources: Optional[dict] = None
    #: A rank that joined before says hello again with new slots/resources (no task yet).
    rejoin: bool = False


@dataclass(slots=True)
class TaskSubmitted:
    """A task was spawned on rank ``submitter``.

    ``deps`` are the ids of the tasks whose values it consumes (each once).
    ``watch`` asks for a :class:`Deliver` to the submitter when the task ends.
    ``ranks`` restricts placement (``None``: any worker); ``needs`` are the
    resources it holds while assigned (``{"gpu": 1.0}``); ``near`` is a task
    id whose owner rank it should run on.
    """

    task_id: int
    name: str
    deps: tuple[int, ...]
    spec: Any
    submitter: int = 0
    priority: int = 0
    ranks: Optional[frozenset[int]] = None
    watch: bool = False
    needs: Optional[dict] = None
    near: Optional[int] = None
    retries: int = 0
    #: A key of the function (durations are learned per function).
    fn: Any = None
    #: Where a saved result of this task is (a checkpoint location): it is
    #: complete at once, its value read from there by whoever needs it.
    restored: Any = None


@dataclass(slots=True)
class TaskFinished:
    """A worker computed the task; the value now lives on ``rank``."""

    task_id: int
    rank: int
    nbytes: int = 0
    duration: float = 0.0
    #: Bytes of the value in the rank's GPU memory: they count against its
    #: ``gpu_memory`` until the value is released.
    device_nbytes: int = 0


@dataclass(slots=True)
class TaskFailed:
    """The task raised on ``rank``; ``error`` is an opaque error payload.

    ``retryable``: the exception is one the task may be retried on.
    ``stuck``: it timed out and its call has not returned; the rank gets no
    new work until :class:`StuckReturned`.
    """

    task_id: int
    rank: int
    error: Any
    retryable: bool = False
    stuck: bool = False


@dataclass(slots=True)
class WorkerLost:
    """Worker ``rank`` died (its process is gone, detected by the MPI library).

    Its queued and running tasks run again elsewhere; the values it held are
    computed again from their inputs when something still needs them.
    """

    rank: int
    #: ``task_id -> location`` of lost or freed values found in a checkpoint:
    #: read back from there instead of computed again.
    saved: Optional[dict] = None


@dataclass(slots=True)
class TaskStarted:
    """A suspect task (see :class:`Execute`) starts running on ``rank``."""

    task_id: int
    rank: int


@dataclass(slots=True)
class StuckReturned:
    """A call that had timed out on ``rank`` finally returned (its result is dropped)."""

    rank: int


@dataclass(slots=True)
class TaskBlocked:
    """The running task waits in ``fetch``; its slot may run other work."""

    task_id: int


@dataclass(slots=True)
class TaskUnblocked:
    """The task that was blocked in ``fetch`` runs again."""

    task_id: int


@dataclass(slots=True)
class HandleAcquired:
    """One more handle to the task exists (a Task object was pickled)."""

    task_id: int


@dataclass(slots=True)
class HandleReleased:
    """A handle to the task was dropped."""

    task_id: int


@dataclass(slots=True)
class WatchRequested:
    """Rank ``rank`` wants a :class:`Deliver` when the task ends."""

    task_id: int
    rank: int


@dataclass(slots=True)
class LaunchSubmitted:
    """A launch of ``n`` point tasks (ids ``base .. base+n-1``) of one function
    (``spec``), each point on the rank ``layout`` gives it, reading the points of
    earlier launches that ``reads`` (``(launch_id, Projection)`` pairs) project it to.
    See :mod:`dagmpi.core.launches`."""

    launch_id: int
    base: int
    n: int
    name: str
    spec: Any
    layout: Any
    reads: tuple = ()
    submitter: int = 0
    watch: bool = False
    #: a loop (``dagmpi.spawn_loop``): its points are the last of many steps, run on the
    #: workers; they cannot be computed again one by one (a death fails the loop)
    loop: bool = False


@dataclass(slots=True)
class LaunchDone:
    """``count`` more points of a launch finished: reported by the root of its
    :class:`~dagmpi.core.launches.ReportTree` for all of them (``rank``: that root), or
    by any rank for its own (values of ``nbytes`` in all, ``seconds`` of task time);
    ``errors``: ``(task_id, error)`` of the points that failed among them."""

    launch_id: int
    rank: int
    count: int
    nbytes: int = 0
    seconds: float = 0.0
    errors: tuple = ()
    #: the loop's run it reports (see ``LaunchRecord.epoch``)
    epoch: int = 0


# --------------------------------------------------------------- instructions


@dataclass(slots=True)
class Execute:
    """Run ``spec`` on ``rank``; ``inputs`` are ``(dep_id, owner_rank)`` pairs;
    ``attempt`` counts from 1 (retries run the task again); ``suspect``: it was
    on a rank that died, so the worker says when it starts it (:class:`TaskStarted`);
    ``pinned``: a launch's lost point computed again on the rank its launch's layout now
    gives it (it comes back there if given back: the points waiting for it keep waiting)."""

    rank: int
    task_id: int
    spec: Any
    inputs: tuple[tuple[int, int], ...]
    attempt: int = 1
    suspect: bool = False
    pinned: bool = False


@dataclass(slots=True)
class Release:
    """Free the value of ``task_id`` held on ``rank``."""

    rank: int
    task_id: int


@dataclass(slots=True)
class Deliver:
    """Tell ``rank`` that ``task_id`` ended: its value is on ``owner``, or it failed.

    Exactly one of ``owner`` (a rank) and ``error`` (an error payload) is set.
    """

    rank: int
    task_id: int
    owner: Optional[int] = None
    error: Any = None


@dataclass(slots=True)
class ExecuteLaunch:
    """Run a launch on ``ranks`` (sent down a :class:`~dagmpi.core.launches.ReportTree`):
    each rank's points and their inputs come from :func:`dagmpi.core.launches.expand`
    on ``layout`` and ``reads`` (which carry the layouts of the launches read)."""

    ranks: Any
    launch_id: int
    base: int
    spec: Any
    layout: Any
    reads: tuple
    #: a loop's run (0, then one more per restart after a death)
    epoch: int = 0


@dataclass(slots=True)
class MoveLaunch:
    """Some points of a launch live elsewhere now (lineage mode: their rank died, and
    they are computed again on the ranks ``layout`` gives them): tell every live worker,
    so that the points waiting for them ask their new ranks and the new ranks free them
    with the launch."""

    launch_id: int
    base: int
    layout: Any


@dataclass(slots=True)
class ReleaseLaunch:
    """Free the values of a launch's points on ``ranks`` (down the same tree)."""

    ranks: Any
    launch_id: int


@dataclass(slots=True)
class Steal:
    """Ask ``rank`` to hand back those of ``task_ids`` it has not started."""

    rank: int
    task_ids: tuple[int, ...]


@dataclass(slots=True)
class TasksReturned:
    """``rank`` answered a :class:`Steal`: ``returned`` is ``((task_id, spec), ...)``
    of the tasks it gave back (not started); the rest of the request it keeps."""

    rank: int
    returned: tuple
    kept: tuple[int, ...] = ()


Event = (
    WorkerJoined | TaskSubmitted | TaskFinished | TaskFailed | TaskBlocked | TaskUnblocked
    | HandleAcquired | HandleReleased | WatchRequested | TasksReturned | StuckReturned | WorkerLost
    | TaskStarted | LaunchSubmitted | LaunchDone
)
Instruction = Execute | Release | Deliver | Steal | ExecuteLaunch | ReleaseLaunch | MoveLaunch
