"""Every message that crosses a process boundary (or a rank's local queue), defined once.

Both ends import these types: the sender builds one by name, the receiver
dispatches on its type (``type(m) is Exec``) and reads its fields by name.
Messages travel in lists (one batch per destination and loop turn), pickled
with protocol 5 by the MPI transport (out-of-band buffers stay raw) or passed
by reference in-process.  They are ``NamedTuple``\\ s: a message is a tuple on
the wire, with no per-field dictionary.

Who sends what::

    rank 0 -> worker         worker -> rank 0                 local (a rank's _outq)
    FnCode  Exec  Free       Hello  Finished  Failed          Pull  Restored
    LaunchExec  FreeLaunch   LaunchSubmit  LaunchReport
    LaunchMoved
    Ended  GiveBack          LateReturn  Started  Returned    ConfigureAll  Stop
    PeerLost  Configure      Submit  FnCode  Release  Acquire
    TraceOn                  TraceBatch
    Preempt  Stop            Watch  Blocked  Unblocked
    Abort (transport)        PreemptRequest  Flushed  Bye
    any rank <-> any rank:   Get -> Value,  Await -> Value,  LoopValue (pushed)
    from the transport:      RankDead (a rank died; ULFM)

Empty messages (``Stop()``, ``Bye()``...) all compare equal to ``()``: never
compare messages with ``==``, test their type.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

from .. import serialize
from ..transport.base import Abort, RankDead

__all__ = [
    "Abort", "Acquire", "Await", "Blocked", "Bye", "Configure", "ConfigureAll", "Ended", "Exec", "FAILED", "Failed",
    "Finished", "Flushed", "FnCode", "Free", "Get", "GiveBack", "Hello", "LateReturn", "LaunchMoved", "LoopValue", "MOVED",
    "PeerLost", "Preempt", "PreemptRequest", "Pull", "RankDead", "Release", "Restored", "Returned", "Started",
    "Stop", "Submit", "TaskSpec", "TraceBatch", "TraceOn", "Unblocked", "Value", "Watch",
]

# ------------------------------------------------------------ both directions


class FnCode(NamedTuple):
    """A function's cloudpickled bytes, sent once per link ahead of its first task."""

    fn_id: tuple
    code: bytes


class Get(NamedTuple):
    """Ask the owner of a value for it; answered by :class:`Value`."""

    task_id: int
    req_id: int


class Await(NamedTuple):
    """Ask the rank computing a task for its value, before it exists: a consumer
    ran ahead on the sender (see ``Placement._run_ahead``).  Answered by
    :class:`Value` the moment the value exists (at once if it does); when the
    task fails there, or is given back to rank 0, ``ok`` is false and
    ``buffers`` says which (:data:`FAILED`, :data:`MOVED`)."""

    task_id: int
    req_id: int


#: ``Value.buffers`` of a refused :class:`Await`: the task failed (rank 0 fails
#: its consumers too: drop them), or it was given back (give them back as well).
FAILED = "failed"
MOVED = "moved"


class Value(NamedTuple):
    """The answer to :class:`Get` or :class:`Await`: the pickled value (``ok``), or why there is none."""

    req_id: int
    ok: bool
    payload: Any
    buffers: Any


class LoopValue(NamedTuple):
    """The value of point ``index`` after step ``step`` of a loop (``dagmpi.spawn_loop``),
    pushed by the rank that computed it to each rank with a point that reads it at the
    next step (no request: the loop's projections say who reads what).  ``ok`` false:
    the point failed (or one of its inputs did), ``payload`` is the error."""

    launch_id: int
    step: int
    index: int
    ok: bool
    payload: Any
    buffers: Any
    #: the loop's run it belongs to (see :class:`LaunchReport`): older ones are dropped
    epoch: int = 0


class TaskSpec(NamedTuple):
    """What it takes to run a task again: the scheduler carries it opaquely
    (``TaskSubmitted.spec`` -> ``Execute.spec``); rank 0 builds it from a
    :class:`Submit`, a worker returns it in :class:`Returned`.  ``save``: the
    checkpoint key when its result is to be saved."""

    name: str
    fn_id: tuple
    payload: Any
    buffers: Any
    needs: Optional[dict]
    policy: Optional[tuple]
    save: Optional[str]
    #: a launch's point run on its own (computed again after its rank died): ``(index,
    #: input ids in order[, pinned])``, called ``fn(index, *args, *inputs)``; ``pinned``
    #: (in an ``Exec``): on the rank its launch's layout gives it, where it comes back
    point: Optional[tuple] = None
    #: a loop (``dagmpi.spawn_loop``): ``(steps, projections, share)``, see :class:`LaunchExec`
    loop: Optional[tuple] = None


#: The function of a point read back from the checkpoint: its value is its one input
#: (the worker's ``_restored``).
RESTORED_FN = (-1, 0)
#: The pickled arguments of a call without any.
NO_ARGS = serialize.dump_args((), {})[0]


def restore_spec(name: str, index: int, task_id: int) -> TaskSpec:
    """The spec of point ``index`` (id ``task_id``) of a launch, lost with its rank and
    read back from the checkpoint where its launch's layout now puts it
    (``Scheduler.make_restore_spec``): its one input is its own saved value."""
    return TaskSpec(name, RESTORED_FN, NO_ARGS, (), None, None, None, (index, (task_id,)))


def point_spec(spec: TaskSpec, name: str, index: int, inputs: tuple) -> TaskSpec:
    """The spec of point ``index`` of a launch whose spec is ``spec`` (its ``save``:
    ``(keys to save under, restored)``), run on its own as a plain task
    (``Scheduler.make_point_spec``); its worker retries it in place under the launch's
    ``policy``, as the launch's points."""
    keys = spec.save[0] if spec.save else None
    return TaskSpec(name, spec.fn_id, spec.payload, spec.buffers, None, spec.policy,
                    keys[index] if keys else None, (index, inputs))


class LaunchSubmit(NamedTuple):
    """A launch of ``n`` point tasks (``dagmpi.spawn_many``): to rank 0.  ``reads``:
    ``(launch_id, Projection)`` pairs; ``layout``: a :class:`dagmpi.core.launches.Layout`."""

    launch_id: int
    base: int
    n: int
    name: str
    fn_id: tuple
    payload: Any
    buffers: Any
    layout: Any
    reads: tuple
    watch: bool
    #: ``(retries, retry_on bytes, None)`` or None: a point that raises runs again on its rank
    policy: Optional[tuple] = None
    #: checkpointing: each point's key to save its value under (None: not saved), and
    #: ``{point: Location}`` of the points a checkpoint holds (read back, not run)
    save: Optional[tuple] = None
    restored: Optional[dict] = None
    #: checkpointing, from a rank without the checkpoint's index (a worker): the points'
    #: keys, which rank 0 looks up (``restored`` then comes from there)
    lookup: Optional[tuple] = None
    #: a loop (``dagmpi.spawn_loop``): ``(steps, projections, share)``, see :class:`LaunchExec`
    loop: Optional[tuple] = None


# ------------------------------------------------------------- rank 0 -> worker


class LaunchExec(NamedTuple):
    """Run this rank's points of a launch (``dagmpi.core.launches.expand`` gives them
    and their inputs); point ``i`` calls ``fn(i, *args, *its inputs)``; ``policy`` as
    :class:`LaunchSubmit`'s."""

    launch_id: int
    base: int
    name: str
    fn_id: tuple
    payload: Any
    buffers: Any
    layout: Any
    reads: tuple
    policy: Optional[tuple] = None
    save: Optional[tuple] = None
    restored: Optional[dict] = None
    #: sent down the launch's ``ReportTree`` (its ranks beyond ``TREE_FANOUT``): this rank
    #: passes it on to its children and reports for its subtree to its parent
    tree: bool = False
    #: a loop (``dagmpi.spawn_loop``): ``(steps, projections, share, epoch)``.  ``reads``
    #: feed step 0; step ``t >= 1`` reads step ``t - 1`` through ``projections[(t - 1) %
    #: len]``, its values pushed rank to rank (:class:`LoopValue`); the points' ids,
    #: reports, saved values and frees are those of the last step.  ``share``: None, or
    #: the pickled ``share(i, value)`` of the carry form (a point reads its own value
    #: whole, and the others' shares, which are what is pushed).  ``epoch`` > 0: a rank
    #: died and the loop runs again from the start (what this rank had of its last run is
    #: dropped)
    loop: Optional[tuple] = None


class LaunchMoved(NamedTuple):
    """A rank died holding points of a launch (ULFM): they are computed again on the
    ranks ``layout`` gives them now.  Points waiting for them ask there; a rank that
    gets some frees them with the launch."""

    launch_id: int
    base: int
    layout: Any


class FreeLaunch(NamedTuple):
    """Drop the values of this rank's points of a launch (``forward``: and pass it on
    down the launch's tree, when it came down one)."""

    launch_id: int
    forward: bool = True


class Exec(NamedTuple):
    """Run a task.  ``inputs``: ``(dep_id, owner)`` pairs (an owner may be a
    checkpoint location); ``policy``: ``(retries, retry_on bytes, timeout)`` or
    ``None``; ``save``: its checkpoint key when its result is to be saved;
    ``suspect``: it was running on a rank that died (say :class:`Started`)."""

    task_id: int
    name: str
    fn_id: tuple
    payload: Any
    buffers: Any
    inputs: tuple
    needs: Optional[dict]
    policy: Optional[tuple]
    attempt: int
    save: Optional[str]
    suspect: bool
    point: Optional[tuple] = None  # (see TaskSpec.point)


class Free(NamedTuple):
    """Drop these values: nothing needs them any more."""

    task_ids: list


class Ended(NamedTuple):
    """A task this rank watches ended: its value is on ``owner``, or it failed with ``error``."""

    task_id: int
    owner: Any
    error: Any


class GiveBack(NamedTuple):
    """Return those of these queued tasks that have not started (stealing); see :class:`Returned`."""

    task_ids: tuple


class PeerLost(NamedTuple):
    """Worker ``rank`` died (ULFM): pulls from it fail over, tasks waiting on its data go back."""

    rank: int


class Configure(NamedTuple):
    """Checkpoint settings: ``directory`` ("" = off) and ``save_all`` (policy "all")."""

    directory: str
    save_all: bool


class Resize(NamedTuple):
    """New task ``slots`` and ``resources`` text (``DAGMPI_RESOURCES`` form) for a worker
    rank, before any task ran: it takes them and says :class:`Hello` again."""

    slots: int
    resources: str


class TraceOn(NamedTuple):
    """Record every task run from now on (``trace=``): ``start`` is the run's time zero."""

    start: float


class Preempt(NamedTuple):
    """Start nothing new; running tasks get ``grace`` seconds, then flush the checkpoint."""

    grace: float


class Stop(NamedTuple):
    """Every task has ended: answer :class:`Bye` and exit (also rank 0's own "shut down")."""


# ------------------------------------------------------------- worker -> rank 0


class LaunchReport(NamedTuple):
    """This rank's points of a launch are all done: ``count`` of them, values of
    ``nbytes``, ``seconds`` of task time; ``errors``: ``(task_id, error payload)``."""

    launch_id: int
    count: int
    nbytes: int
    seconds: float
    errors: tuple
    #: a loop's run (0, then one more each time a death restarted it): rank 0 counts
    #: only the reports of its current run
    epoch: int = 0


class Hello(NamedTuple):
    """A worker is ready: its slots, host and what it offers (resources, GPU ids, pid)."""

    slots: int
    host: str
    offers: dict


class Finished(NamedTuple):
    """A task's value now lives on the sender: its pickled size and run time, and
    how many of its bytes are in GPU memory."""

    task_id: int
    nbytes: int
    seconds: float
    device_nbytes: int = 0


class Failed(NamedTuple):
    """A task raised (``error``: an :class:`~dagmpi.errors.ErrorInfo`); ``retryable``:
    its ``retry_on`` allows another run; ``stuck``: it timed out and the call goes on."""

    task_id: int
    error: Any
    retryable: bool
    stuck: bool


class LateReturn(NamedTuple):
    """A call that had timed out returned at last (its result is dropped)."""


class Started(NamedTuple):
    """A suspect task (see :attr:`Exec.suspect`) starts now."""

    task_id: int


class Returned(NamedTuple):
    """The answer to :class:`GiveBack` (or tasks given back unasked: an input died with
    its rank): ``returned`` is ``[(task_id, TaskSpec), ...]``, ``kept`` the ids not given."""

    returned: list
    kept: list


class Submit(NamedTuple):
    """A task was spawned (on the driver, or inside a task on a worker).

    ``deps``: ids of the tasks it consumes; ``watch``: tell the spawner when it
    ends; ``ranks``/``needs``/``near``: its scope and resources; ``policy`` as
    in :class:`Exec`; ``ckpt``: ``(key, save)`` when checkpointing is on.
    """

    task_id: int
    name: str
    fn_id: tuple
    payload: Any
    buffers: Any
    deps: tuple
    priority: int
    ranks: Optional[frozenset]
    watch: bool
    needs: Optional[dict]
    near: Optional[int]
    policy: Optional[tuple]
    ckpt: Optional[tuple]


class Release(NamedTuple):
    """A handle to the task was dropped."""

    task_id: int


class Acquire(NamedTuple):
    """One more handle to the task exists (a Task object was pickled)."""

    task_id: int


class Watch(NamedTuple):
    """Tell the sender (with :class:`Ended`) when the task ends."""

    task_id: int


class Blocked(NamedTuple):
    """The running task waits in ``fetch``: its slot may run other work."""

    task_id: int


class Unblocked(NamedTuple):
    """The task that waited in ``fetch`` runs again."""

    task_id: int


class PreemptRequest(NamedTuple):
    """The worker got SIGTERM/SIGUSR1 (``srun`` signals every rank): rank 0 coordinates."""

    signum: int


class Flushed(NamedTuple):
    """After :class:`Preempt`: the worker's checkpoint is durable; ``saved`` results in it."""

    saved: int


class TraceBatch(NamedTuple):
    """Trace records (tracing on): ``runs`` of :class:`~dagmpi.trace.records.TaskRun`,
    ``instants`` of :class:`~dagmpi.trace.records.Instant`; sent in batches while the
    rank works, the rest before :class:`Flushed` or :class:`Bye`."""

    runs: list
    instants: list


class Bye(NamedTuple):
    """The answer to :class:`Stop`: the worker is done.  ``stats``: its store's numbers
    (:meth:`dagmpi.runtime.spill.Store.stats`: memory limit, values spilled, read back)."""

    stats: Optional[dict] = None


# ------------------------------------------------------------ a rank's own queue


class Pull(NamedTuple):
    """A user thread wants a value (``req_id`` matches the answer); the loop asks its owner."""

    req_id: int
    task_id: int
    owner: Any


class Restored(NamedTuple):
    """A task spawned on rank 0 whose result the checkpoint holds (at ``where``)."""

    task_id: int
    name: str
    key: str
    where: Any


class ConfigureAll(NamedTuple):
    """Rank 0: the checkpoint settings changed (a late ``dagmpi.init``); tell every worker."""
