"""What every rank does as a *user* of the runtime: spawn, watch, fetch.

Both the driver on rank 0 (:class:`~dagmpi.runtime.Driver`) and each worker
(:class:`~dagmpi.worker.Worker`, for tasks that spawn tasks) are clients.
User threads never touch the transport: they append messages to ``_outq``
(one ordered queue, so a task's spawns always precede its completion) and wait
on ``_cond``; the rank's communication loop drains ``_outq`` and calls
:meth:`Client._deliver` / :meth:`Client._pulled` when answers come back.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import math
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional

from .. import serialize
from . import messages as msg
from ..checkpoint.base import Location
from ..core.launches import Layout, Projection
from ..errors import SerializationError, raise_error
from ..options import DEFAULT_OPTIONS, Options
from ..task import ERRORED, FINISHED, PENDING, Launch, Point, Task

#: ``_Pull.buffers`` marker: the payload is the value itself (read from a checkpoint).
LOADED = object()
#: ``_Pull.payload`` marker: the owner rank died; ask the scheduler where the value is now.
LOST = object()

ID_SHIFT = 40  # task id = rank << 40 | counter: unique without asking rank 0

class _Current(threading.local):
    #: The client of the worker whose task runs on this thread (``None``: none).
    #: A class default, so reading it on other threads is cheap (no AttributeError).
    client: Any = None


_CURRENT = _Current()


class _Pull:
    __slots__ = ("task_id", "done", "ok", "payload", "buffers", "group", "owner")

    def __init__(self, task_id: int, group: "_PullGroup", owner: Any = None) -> None:
        self.task_id = task_id
        self.owner = owner
        self.done = False
        self.ok = False
        self.payload: Any = None
        self.buffers: Any = None
        self.group = group

    def finish(self, ok: bool, payload: Any, buffers: Any) -> None:
        self.ok, self.payload, self.buffers, self.done = ok, payload, buffers, True
        self.group.left -= 1


class _PullGroup:
    """The pulls of one fetch: a count, so waiting on n values is not O(n) per answer."""

    __slots__ = ("left",)

    def __init__(self, n: int) -> None:
        self.left = n


class _Waiter:
    """One ``wait``/``as_completed`` call: counts deliveries instead of rescanning its tasks."""

    __slots__ = ("mode", "remaining", "done", "ended", "ids")

    def __init__(self, mode: str, remaining: int, any_ended: bool, any_failed: bool) -> None:
        self.mode = mode
        self.remaining = remaining
        self.ended: list[int] = []
        self.ids: set[int] = set()
        self.done = remaining == 0 or (mode == "FIRST_COMPLETED" and any_ended) \
            or (mode == "FIRST_EXCEPTION" and any_failed)

    def hit(self, task_id: int, failed: bool) -> None:
        self.remaining -= 1
        if self.mode == "EACH":
            self.ended.append(task_id)
        elif self.mode == "FIRST_COMPLETED" or self.remaining == 0 or \
                (failed and self.mode == "FIRST_EXCEPTION"):
            self.done = True


class Client:
    """Spawning, watching and fetching on one rank (see the module docstring)."""

    #: The driver watches every task it spawns; workers watch on demand.
    auto_watch = False
    #: See :meth:`_spawned` (0: never called).
    drive_every = 0

    def __init__(self, rank: int, worker_ranks: Iterable[int], serializes: bool) -> None:
        self.rank = rank
        self.worker_ranks = frozenset(worker_ranks)
        self.serializes = serializes
        self.fns = serialize.FunctionCache(rank)
        self._fn_sent: set[tuple[int, int]] = set()
        self._ids = itertools.count(1)
        #: the next free id of the launches' half of this rank's id space (see spawn_many)
        self._launch_ids = 1 << (ID_SHIFT - 1)
        self._req_ids = itertools.count(1)
        self._outq: collections.deque = collections.deque()
        #: Messages to other ranks queued by the comm loop this turn, per destination.
        self._out: dict[int, list] = {}
        self._spawn_lock = threading.Lock()
        self._cond = threading.Condition()
        #: task id -> its handle(s) here to update when it ends (see :func:`_add_one`)
        self._watch: dict[int, Any] = {}
        #: launch id -> (the Launch, ids of its points watched here): a point ends with
        #: its launch, so waiting for points costs rank 0 one watch per launch, not per point
        self._point_watch: dict[int, tuple] = {}
        self._pulls: dict[int, _Pull] = {}
        self._waiters: dict[int, Any] = {}  # task id -> _Waiter(s) (see :func:`_add_one`)
        #: task id -> function(s) to call when it ends (see :meth:`on_end`)
        self._on_end: dict[int, Any] = {}
        #: what a thread waits for (see :meth:`_wait_until`) -> its wake-up Event(s)
        self._sleepers: dict[Any, Any] = {}
        self._retry_on_cache: dict[tuple, bytes] = {}
        self._reader: Any = None  # checkpoint reader, made on first restored value
        #: Retries of a task that gives no ``retries=`` (``DAGMPI_RETRIES``).
        self.default_retries = 0
        self.n_points_restored = 0  # points of launches read back from the checkpoint
        #: the array layer issues one launch per operation over all blocks (Config.array_launches)
        self.array_launches = True
        #: Checkpointing is on: every task gets a key; ``checkpoint_all``: policy "all".
        self.checkpointing = False
        self.checkpoint_all = False
        self._tls = threading.local()
        self.closed = False
        #: Ranks that died (ULFM): values they held are asked for again.
        self.dead: set[int] = set()

    def wakeup(self) -> None:  # overridden: interrupt the communication loop
        pass

    def _wait_until(self, predicate: Callable[[], bool], timeout: Optional[float], key: Any = None) -> bool:
        """Block until ``predicate()`` holds.

        ``key`` names what the caller waits for (a task id, or the ``id()`` of a
        waiter or pull group): only a delivery for that key wakes this thread, so
        hundreds of tasks blocked in nested fetches on one rank do not all wake on
        every delivery (a broadcast costs O(blocked) thread switches per message).
        ``key=None`` wakes on every delivery.  Subclasses override this to make
        the waiting thread drive the rank's communication itself, which saves a
        thread wake-up per message.
        """
        cond = self._cond
        with cond:
            if predicate():
                return True
            if timeout is not None and timeout <= 0:
                return False
            bell = threading.Event()
            _add_one(self._sleepers, key, bell)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                bell.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
                with cond:
                    if predicate():
                        return True
                    if deadline is not None and time.monotonic() >= deadline:
                        return False
                    bell.clear()
        finally:
            with cond:
                _drop_one(self._sleepers, key, bell)

    def _ring(self, keys: Iterable[Any]) -> None:
        """Wake the threads waiting for ``keys`` and those waiting for anything (hold ``_cond``)."""
        sleepers = self._sleepers
        if not sleepers:
            return
        for k in keys:
            cur = sleepers.get(k)
            if cur is not None:
                for bell in (cur if type(cur) is list else (cur,)):
                    bell.set()
        cur = sleepers.get(None)
        if cur is not None:
            for bell in (cur if type(cur) is list else (cur,)):
                bell.set()

    def _ring_all(self) -> None:
        for cur in self._sleepers.values():
            for bell in (cur if type(cur) is list else (cur,)):
                bell.set()

    # -------------------------------------------------------------- spawn

    def spawn(self, fn: Callable, args: tuple, kwargs: dict, options: Options = DEFAULT_OPTIONS) -> Task:
        if self.closed:
            raise RuntimeError("dagmpi has been shut down; no new tasks can be spawned")
        if not callable(fn):
            raise TypeError(f"spawn() needs a callable as its first argument, got {type(fn).__name__}")
        ranks = options.scope.ranks if options.scope is not None else None
        if ranks is not None and not ranks & self.worker_ranks:
            raise ValueError(
                f"impossible scope: the task may only run on rank(s) {sorted(ranks)}, but the worker "
                f"ranks of this job are {_ranges(self.worker_ranks)}")
        if ranks is not None:
            ranks = ranks & self.worker_ranks
        needs = options.needs()
        near = options.scope.near if options.scope is not None else None
        if near is None and options.scope is not None and options.scope.prefer in self.worker_ranks:
            near = -1 - options.scope.prefer  # a rank, not a task id (those are >= 0)
        retries = self.default_retries if options.retries is None else options.retries
        policy = None
        if retries or options.timeout is not None or not options.move:
            retry_on = None if options.retry_on is None else self._retry_on_bytes(options.retry_on)
            policy = (retries, retry_on, options.timeout) if options.move else \
                (retries, retry_on, options.timeout, False)
        if needs is not None or ranks is not None:
            self._check_placeable(ranks, needs)
        name = options.name or getattr(fn, "__qualname__", None) or type(fn).__name__
        ckpt = key = None
        if self.checkpointing:
            from ..checkpoint.keys import task_key

            key = task_key(fn, args, kwargs, options.key)
            where = self._saved(key)
            if where is not None:  # completed from the checkpoint: nothing to pickle or run
                return self._spawn_restored(name, key, where)
            save = self.checkpoint_all if options.checkpoint is None else options.checkpoint
            ckpt = (key, save)
        fn_id, fn_bytes = self.fns.get(fn)
        payload, buffers, deps = serialize.dump_args(args, kwargs)
        task = self._new_task(name, key)
        tid = task.id
        if self.auto_watch:
            # no lock: nothing can end this task before its "sub" is queued below
            self._watch[tid] = task
            task._watched = True
        if fn_id not in self._fn_sent:  # (added to the set after its bytes are queued)
            with self._spawn_lock:
                if fn_id not in self._fn_sent:
                    self._enqueue(msg.FnCode(fn_id, fn_bytes))  # ahead of every task that uses it
                    self._fn_sent.add(fn_id)
        self._enqueue(msg.Submit(tid, name, fn_id, payload, buffers, deps, options.priority, ranks,
                                 self.auto_watch, needs, near, policy, ckpt))
        if self.drive_every:
            self._spawned()
        return task

    def spawn_loop(self, fn: Callable, n: int, steps: int, args: tuple, step_reads: Any, layout: Any = None,
                   reads: Any = (), name: Optional[str] = None, retries: Optional[int] = None,
                   retry_on: Any = None, checkpoint: Optional[bool] = None, keys: Optional[tuple] = None,
                   share: Optional[Callable] = None) -> Any:
        """See :func:`dagmpi.spawn_loop`."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"spawn_loop() needs a number of steps >= 1, got {steps!r}")
        if share is not None and not callable(share):
            raise TypeError(f"spawn_loop(): share is a function share(i, value) -> what the readers of point i "
                            f"get, or None; got {type(share).__name__}")
        projs = (step_reads,) if isinstance(step_reads, Projection) else tuple(step_reads or ())
        if not projs or not all(isinstance(p, Projection) for p in projs):
            raise TypeError("spawn_loop(): step_reads is the dagmpi.Projection by which each step reads the "
                            "step before (or a sequence of them, used in turn), got "
                            f"{step_reads!r}")
        for p in projs:  # (each step reads the step before: a launch of n points too)
            _check_grid(p, n, n, "spawn_loop()")
        loop = None
        if steps > 1:
            loop = (steps, projs, None if share is None else serialize.dump_function(share))
        return self.spawn_many(fn, n, args, layout, reads, name, retries, retry_on, checkpoint, keys, loop,
                               "spawn_loop()", share)

    def spawn_many(self, fn: Callable, n: int, args: tuple, layout: Any = None, reads: Any = (),
                   name: Optional[str] = None, retries: Optional[int] = None, retry_on: Any = None,
                   checkpoint: Optional[bool] = None, keys: Optional[tuple] = None,
                   loop: Optional[tuple] = None, what: str = "spawn_many()", share: Optional[Callable] = None) -> Any:
        """See :func:`dagmpi.spawn_many` (``loop``: ``(steps, projections, pickled share)`` of
        :meth:`spawn_loop`, and its ``share`` function)."""
        if self.closed:
            raise RuntimeError("dagmpi has been shut down; no new tasks can be spawned")
        if not callable(fn):
            raise TypeError(f"{what} needs a callable as its first argument, got {type(fn).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"{what} needs a number of points n >= 0, got {n!r}")
        workers = sorted(self.worker_ranks - self.dead)
        if not workers:
            raise RuntimeError(f"{what} needs live worker ranks")
        ranks = range(workers[0], workers[-1] + 1) if workers[-1] - workers[0] + 1 == len(workers) else workers
        if layout is None or layout == "blocks":
            layout = Layout.blocks(n, ranks)
        elif layout == "cyclic":
            layout = Layout.cyclic(n, ranks)
        elif not isinstance(layout, Layout) or layout.n != n:
            raise ValueError(f"{what}: layout must be 'blocks', 'cyclic' or a dagmpi.Layout of {n} points, "
                             f"got {layout!r}")
        outside = sorted(set(layout.table if layout.kind == "table" else layout.touched()) - self.worker_ranks)
        if outside:
            raise ValueError(f"{what}: the layout puts points on rank(s) {outside[:8]}, which are not "
                             f"worker ranks (the worker ranks of this job are {_ranges(self.worker_ranks)})")
        pairs = []
        reads = list(reads)
        for r in reads:
            if not (isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], Launch)
                    and isinstance(r[1], Projection)):
                raise TypeError(f"{what}: reads are (Launch, dagmpi.Projection) pairs, got "
                                f"{r!r}")
            _check_grid(r[1], n, r[0].n, what)
            pairs.append((r[0].id, r[1]))
        opts = Options(retries=retries, retry_on=retry_on)  # (checks them, as spawn's options)
        retries = self.default_retries if opts.retries is None else opts.retries
        policy = (retries, None if opts.retry_on is None else self._retry_on_bytes(opts.retry_on), None) \
            if retries else None
        payload, buffers, deps = serialize.dump_args(args, {})
        if deps:
            raise TypeError(f"{what}: the shared arguments may not hold tasks; read the points of "
                            "earlier launches with reads=[(launch, projection)], or fetch a task's value first")
        key = save = restored = lookup = None
        if keys is not None and len(keys) != n:
            raise ValueError(f"{what}: keys= gives one checkpoint key per point ({n}), got {len(keys)}")
        if self.checkpointing:
            # every point has a key (the tasks reading it derive theirs from it); the
            # points a checkpoint holds are read back from it where they run, the
            # others computed, and saved under it when the policy or checkpoint= says
            from ..checkpoint.keys import task_key

            keyless = [r[0] for r in reads if r[0]._key is None]
            if keyless:
                raise SerializationError(f"{what}: {keyless[0]!r} has no checkpoint key (it was launched "
                                         "before checkpointing was enabled, or on another rank)")
            kind = ("launch", n) if loop is None else \
                ("loop", n, *loop[:2], *(() if share is None else (hashlib.sha256(loop[2]).hexdigest(),)))
            key = task_key(fn, (kind, *args),
                           {"reads": tuple((r[0]._key, r[1]) for r in reads),
                                                          "keys": keys})
            if keys is None:
                keys = tuple(f"{key}/{i}" for i in range(n))
            if not self.holds_index:  # (a worker: rank 0 holds the index and looks them up)
                lookup = keys
            else:
                found = {}
                for i, k in enumerate(keys):
                    where = self._saved(k)
                    if where is not None:
                        found[i] = where
                if found and (loop is None or len(found) == n):
                    # (a loop's points need each other's earlier steps: all read back, or none)
                    restored = found
                    self.n_points_restored += len(found)
            if self.checkpoint_all if checkpoint is None else checkpoint:
                save = keys
        else:
            keys = None
        fn_id, fn_bytes = self.fns.get(fn)
        name = name or getattr(fn, "__qualname__", None) or type(fn).__name__
        with self._spawn_lock:
            lid = (self.rank << ID_SHIFT) | self._launch_ids
            self._launch_ids += n * (1 if loop is None else loop[0]) + 1  # (a loop: trace ids of its steps)
            if fn_id not in self._fn_sent:
                self._enqueue(msg.FnCode(fn_id, fn_bytes))
                self._fn_sent.add(fn_id)
        launch = Launch(lid, name, self, lid + 1, n, layout)
        launch._key, launch.keys = key, keys
        if self.auto_watch:
            self._watch[lid] = launch
            launch._watched = True
        self._enqueue(msg.LaunchSubmit(lid, lid + 1, n, name, fn_id, payload, buffers, layout, tuple(pairs),
                                       self.auto_watch, policy, save, restored, lookup, loop))
        if self.drive_every:
            self._spawned()
        return launch

    def fetch_launch(self, launch: Any, timeout: Optional[float] = None) -> list:
        """The values of a launch's points, in order, pulled from the ranks that hold them."""
        self.wait_for(launch, timeout)
        if launch._state == ERRORED:
            raise_error(launch._error)
        points = [Point(launch, i) for i in range(launch.n)]  # (finished: no message each)
        return self._pull_all(points, timeout) if points else []

    def _spawned(self) -> None:
        """Hook after each spawn (rank 0 drives its loop from here in bursts)."""

    def _new_task(self, name: str, key: Optional[str]) -> Task:
        task = Task((self.rank << ID_SHIFT) | next(self._ids), name, self)
        task._key = key
        return task

    def _enqueue(self, m: tuple) -> None:
        """Queue ``m`` for the comm loop; wake it only if the queue was empty
        (otherwise it has not drained the queue yet and will see this too)."""
        outq = self._outq
        outq.append(m)
        if len(outq) == 1:
            self.wakeup()

    #: Whether this rank holds the checkpoint's index (rank 0: see :meth:`_saved`).
    holds_index = False

    def _saved(self, key: str) -> Any:
        """Where a saved result of ``key`` is, if this rank knows (rank 0 holds the index)."""
        return None

    def _spawn_restored(self, name: str, key: str, where: Any) -> Task:
        task = self._new_task(name, key)
        task._owner = where
        task._state = FINISHED
        with self._spawn_lock:  # keeps submissions in spawn order
            self._enqueue(msg.Restored(task.id, name, key, where))
        return task

    def _retry_on_bytes(self, types: tuple) -> bytes:
        """``retry_on`` pickled once per distinct tuple (user exception classes
        may live in ``__main__``, so cloudpickle, like functions)."""
        cache = self._retry_on_cache
        hit = cache.get(types)
        if hit is None:
            hit = cache[types] = serialize.dump_function(types)
        return hit

    def _check_placeable(self, ranks: Optional[frozenset], needs: Optional[dict]) -> None:
        """Refuse a task no rank can ever run (the driver knows the ranks; on a
        worker the scheduler makes such a task fail with the same message)."""

    # ------------------------------------------------------ handle counting

    def release(self, task_id: int) -> None:
        if not self.closed:
            self._outq.append(msg.Release(task_id))

    def acquire(self, task_id: int) -> None:
        self._outq.append(msg.Acquire(task_id))

    # -------------------------------------------------------------- waiting

    def watch(self, task: Task) -> None:
        """Ask to be told when ``task`` ends (idempotent)."""
        if task._watched:  # registered already (every task the driver spawns is)
            return
        if type(task) is Point:
            self._watch_point(task)
            return
        with self._cond:
            if task._state != PENDING:
                return
            task._watched = True
            if not _add_one(self._watch, task.id, task):
                return  # another handle of it is watched already
        self._outq.append(msg.Watch(task.id))
        self.wakeup()

    def _watch_point(self, point: Point) -> None:
        """A point ends when its launch does: watch the launch (once), and end the
        point with it (:meth:`_deliver_many`)."""
        launch = point.launch
        with self._cond:
            if point._state != PENDING:
                return
            point._watched = True
            _add_one(self._watch, point.id, point)
            if launch._state != PENDING:  # (it ended meanwhile: the point with it, now)
                ended = [(point.id, launch.layout.rank_of(point.index) if launch._state == FINISHED else None,
                          launch._error)]
            else:
                ended = None
                entry = self._point_watch.get(launch.id)
                if entry is None:
                    self._point_watch[launch.id] = (launch, {point.id})
                else:
                    entry[1].add(point.id)
        if ended is not None:
            self._deliver_many(ended)
        else:
            self.watch(launch)

    def on_end(self, task: Task, fn: Callable[[Task], None]) -> None:
        """Call ``fn(task)`` once ``task`` has ended (at once if it has).

        ``fn`` runs on the thread that delivers the end (the rank's
        communication loop): it must be quick and must not wait for tasks --
        hand the work to another thread (as :class:`dagmpi.Executor` does)."""
        self.watch(task)
        with self._cond:
            if task._state == PENDING:
                _add_one(self._on_end, task.id, (task, fn))
                return
        fn(task)

    @contextlib.contextmanager
    def _blocking(self) -> Iterator[None]:
        """Inside a task: give the slot back while this thread waits."""
        tid = getattr(self._tls, "task_id", None)
        if tid is None:
            yield
            return
        self._outq.append(msg.Blocked(tid))
        self.wakeup()
        try:
            yield
        finally:
            self._outq.append(msg.Unblocked(tid))
            self.wakeup()

    def wait_for(self, task: Task, timeout: Optional[float] = None) -> None:
        if task._state != PENDING:
            return
        self.watch(task)
        with self._blocking():
            ok = self._wait_until(lambda: task._state != PENDING, timeout, task.id)
        if not ok:
            raise TimeoutError(f"{task!r} did not finish within {timeout} s")

    def wait(self, tasks: list[Task], timeout: Optional[float], return_when: str) -> tuple[set, set]:
        for t in tasks:
            self.watch(t)
        with self._cond:
            waiter = self._add_waiter(tasks, return_when)
        if not waiter.done:
            try:
                with self._blocking():
                    self._wait_until(lambda: waiter.done, timeout, id(waiter))
            finally:
                with self._cond:
                    self._drop_waiter(waiter)
        done = {t for t in tasks if t._state != PENDING}
        return done, {t for t in tasks if t._state == PENDING}

    def as_completed(self, tasks: list[Task], timeout: Optional[float]) -> Iterator[Task]:
        by_id: dict[int, list[Task]] = {}
        for t in dict.fromkeys(tasks):
            by_id.setdefault(t.id, []).append(t)
            self.watch(t)
        with self._cond:
            waiter = self._add_waiter(tasks, "EACH")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for tid, lst in list(by_id.items()):  # already ended: yield first
                if lst[0]._state != PENDING:
                    del by_id[tid]
                    yield from lst
            while by_id:
                if not waiter.ended:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"{len(by_id)} task(s) unfinished after {timeout} s")
                    with self._blocking():
                        self._wait_until(lambda: bool(waiter.ended), left, id(waiter))
                    continue
                with self._cond:
                    ended, waiter.ended = waiter.ended, []
                for tid in ended:
                    yield from by_id.pop(tid, ())
        finally:
            with self._cond:
                self._drop_waiter(waiter)

    def _add_waiter(self, tasks: list[Task], mode: str) -> "_Waiter":
        """Register a waiter on the pending ones among ``tasks`` (call with ``_cond`` held).

        Each delivery updates the waiters of that task in O(1), so waiting on
        n tasks costs O(n) in all, not O(n) per delivery.
        """
        pending = {t.id for t in tasks if t._state == PENDING}
        w = _Waiter(mode, len(pending), any(t._state != PENDING for t in tasks),
                    any(t._state == ERRORED for t in tasks))
        for tid in pending:
            _add_one(self._waiters, tid, w)
        w.ids = pending
        return w

    def _drop_waiter(self, w: "_Waiter") -> None:
        waiters = self._waiters
        for tid in w.ids:
            cur = waiters.get(tid)
            if cur is w:
                del waiters[tid]
            elif type(cur) is list and w in cur:
                cur.remove(w)
                if not cur:
                    del waiters[tid]
        w.ids = set()

    def fetch(self, task: Task, timeout: Optional[float] = None) -> Any:
        if task._has_value:
            return task._value
        self.wait_for(task, timeout)
        if task._state == ERRORED:
            raise_error(task._error)
        if task._has_value:
            return task._value
        value = self._pull(task, timeout)
        task._value = value
        task._has_value = True
        return value

    def fetch_many(self, tasks: list[Task], timeout: Optional[float] = None) -> list:
        """Values of ``tasks``, in order: wait for all, then pull every missing
        value at once (one round of requests, not one round trip per task)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wait(tasks, timeout, "ALL_COMPLETED")
        for t in tasks:
            if t._state == PENDING:
                raise TimeoutError(f"{t!r} did not finish within {timeout} s")
            if t._state == ERRORED:
                raise_error(t._error)
        need = list({t.id: t for t in tasks if not t._has_value}.values())
        if need:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            for t, value in zip(need, self._pull_all(need, left)):
                t._value, t._has_value = value, True
        out = []
        for t in tasks:
            if not t._has_value:  # another handle of the same task got the value
                t._value, t._has_value = self.fetch(t, timeout), True
            out.append(t._value)
        return out

    def _pull(self, task: Task, timeout: Optional[float]) -> Any:
        return self._pull_all([task], timeout)[0]

    def _pull_all(self, tasks: list[Task], timeout: Optional[float]) -> list:
        deadline = None if timeout is None else time.monotonic() + timeout
        values: list = [None] * len(tasks)
        todo = list(range(len(tasks)))
        for attempt in range(1000):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out = self._pull_once([tasks[i] for i in todo], left)
            again = []
            for i, v in zip(todo, out):
                if v is LOST:
                    again.append(i)
                else:
                    values[i] = v
            if not again:
                return values
            # their owner rank died: the scheduler computes them again; wait, then pull
            if attempt:
                time.sleep(min(0.05, 0.002 * attempt))
            for i in again:
                self._rewatch(tasks[i])
            for i in again:
                t = tasks[i]
                self.wait_for(t, None if deadline is None else max(0.0, deadline - time.monotonic()))
                if t._state == ERRORED:
                    raise_error(t._error)
            todo = again
        raise RuntimeError("the values kept being lost with their ranks")

    def _rewatch(self, task: Task) -> None:
        """The value of ``task`` died with its rank: forget where it was and ask again."""
        with self._cond:
            task._state = PENDING
            task._owner = None
            task._watched = True
            _add_one(self._watch, task.id, task)
        self._enqueue(msg.Watch(task.id))

    def _pull_once(self, tasks: list[Task], timeout: Optional[float]) -> list:
        """One round of requests: the values, or ``LOST`` where the owner rank died."""
        reqs = []
        group = _PullGroup(len(tasks))
        with self._cond:
            for task in tasks:
                rid = next(self._req_ids)
                req = _Pull(task.id, group, task._owner)
                self._pulls[rid] = req
                reqs.append((rid, req, task))
        for rid, req, task in reqs:
            self._outq.append(msg.Pull(rid, task.id, task._owner))
        self.wakeup()
        with self._blocking():
            ok = self._wait_until(lambda: group.left == 0, timeout, id(group))
        if not ok:
            late = [t for _, r, t in reqs if not r.done]
            raise TimeoutError(f"the value of {late[0]!r} did not arrive within {timeout} s")
        out: list = []
        for _, req, task in reqs:
            if not req.ok:
                if req.payload is LOST:
                    out.append(LOST)
                    continue
                raise_error(req.payload)
            if req.buffers is LOADED or not self.serializes:
                out.append(req.payload)
            else:
                out.append(serialize.load_value(req.payload, req.buffers))
        return out

    # ------------------------------------------- called by the comm loop

    def _deliver(self, task_id: int, owner: Optional[int], error: Any) -> None:
        self._deliver_many([(task_id, owner, error)])

    def _deliver_many(self, ends: list[tuple[int, Any, Any]]) -> None:
        """Tasks ended: ``(task_id, owner, error)`` each; update handles and waiters."""
        watch, all_waiters, on_end = self._watch, self._waiters, self._on_end
        calls = None
        with self._cond:
            if self._point_watch:  # launches that ended end their points watched here
                more = []
                for task_id, owner, error in ends:
                    entry = self._point_watch.pop(task_id, None)
                    if entry is not None:
                        launch, ids = entry
                        for pid in ids:
                            more.append((pid, None if error is not None else launch.layout.rank_of(pid - launch.base),
                                         error))
                if more:
                    ends = list(ends) + more
            for task_id, owner, error in ends:
                for t in _pop_all(watch, task_id):
                    if error is None:
                        t._owner = owner
                        t._state = FINISHED
                    else:
                        t._error = error
                        t._state = ERRORED
                if all_waiters:
                    if task_id in all_waiters:
                        for w in _pop_all(all_waiters, task_id):
                            w.ids.discard(task_id)
                            w.hit(task_id, error is not None)
                            if self._sleepers:
                                self._ring((id(w),))
                if on_end and task_id in on_end:
                    if calls is None:
                        calls = []
                    calls.extend(_pop_all(on_end, task_id))
            if self._sleepers:
                self._ring([e[0] for e in ends])
            self._cond.notify_all()
        if calls:
            for task, fn in calls:
                fn(task)

    def _request_value(self, owner: Any, task_id: int, rid: int) -> None:
        """Ask ``owner`` for a value (comm loop), or read it when it lives in a checkpoint."""
        if isinstance(owner, Location):
            try:
                value = self._checkpoint_reader().load(owner)
            except Exception as exc:  # noqa: BLE001 - the fetch raises it
                self._pulled(rid, False, exc, None)
            else:
                self._pulled(rid, True, value, LOADED)
        elif owner in self.dead:
            self._pulled(rid, False, LOST, None)
        else:
            self._send(owner, msg.Get(task_id, rid))

    def _lost_rank(self, rank: int) -> None:
        """``rank`` died (comm loop): pulls waiting on it are answered ``LOST``."""
        self.dead.add(rank)
        with self._cond:
            for rid, req in list(self._pulls.items()):
                if req.owner == rank:
                    del self._pulls[rid]
                    req.finish(False, LOST, None)
            self._ring_all()
            self._cond.notify_all()

    def _checkpoint_reader(self) -> Any:
        if self._reader is None:
            from ..checkpoint.hdf5 import Reader

            self._reader = Reader()
        return self._reader

    def _send(self, dest: int, m: tuple) -> None:
        """Queue ``m`` for rank ``dest`` (comm loop); the loop's ``_flush`` sends each batch."""
        box = self._out.get(dest)
        if box is None:
            self._out[dest] = [m]
        else:
            box.append(m)

    def _pulled(self, rid: int, ok: bool, payload: Any, buffers: Any) -> None:
        with self._cond:
            req = self._pulls.pop(rid, None)
            if req is None:
                return
            req.finish(ok, payload, buffers)
            if self._sleepers and req.group.left == 0:
                self._ring((id(req.group),))
            self._cond.notify_all()

    def _fail_all(self, error: Any) -> None:
        """Wake every waiter with ``error`` (the runtime is going away)."""
        with self._cond:
            for tid in list(self._watch):
                for t in _pop_all(self._watch, tid):
                    t._error, t._state = error, ERRORED
                for w in _pop_all(self._waiters, tid):
                    w.hit(tid, True)
            for rid in list(self._pulls):
                self._pulls.pop(rid).finish(False, error, None)
            calls = [c for tid in list(self._on_end) for c in _pop_all(self._on_end, tid)]
            self._ring_all()
            self._cond.notify_all()
        for task, fn in calls:  # (each is watched: its state was set above)
            fn(task)


def _check_grid(proj: Projection, n: int, n_read: int, what: str) -> None:
    """A 'grid' projection's grids must be those of the launch (``n`` points) and of the
    one it reads (``n_read``)."""
    if proj.kind == "grid":
        shape = proj.args[0]
        src = proj.args[3] if len(proj.args) > 3 else shape
        if math.prod(shape) != n or math.prod(src) != n_read:
            raise ValueError(f"{what}: a 'grid' projection over a grid of {math.prod(shape)} "
                             f"points reading one of {math.prod(src)}, for a launch of {n} points "
                             f"reading one of {n_read}")


def _add_one(d: dict, key: int, item: Any) -> bool:
    """Add ``item`` under ``key`` of a dict whose values are one item or a list of
    several (one handle or waiter per task is the rule: no list, less for the
    garbage collector to walk).  Returns False if ``key`` already had items."""
    cur = d.get(key)
    if cur is None:
        d[key] = item
        return True
    if type(cur) is list:
        if item not in cur:
            cur.append(item)
    elif cur is not item:
        d[key] = [cur, item]
    return False


def _drop_one(d: dict, key: Any, item: Any) -> None:
    """Remove one ``item`` from ``key`` of a dict of :func:`_add_one`."""
    cur = d.get(key)
    if cur is item:
        del d[key]
    elif type(cur) is list:
        cur.remove(item)
        if len(cur) == 1:
            d[key] = cur[0]


def _pop_all(d: dict, key: int) -> Any:
    """Remove ``key`` from a dict of :func:`_add_one`; its items (maybe none)."""
    cur = d.pop(key, None)
    if cur is None:
        return ()
    return cur if type(cur) is list else (cur,)


def _ranges(ranks: Iterable[int]) -> str:
    rs = sorted(ranks)
    if not rs:
        return "(none)"
    if rs == list(range(rs[0], rs[-1] + 1)) and len(rs) > 2:
        return f"{rs[0]}..{rs[-1]}"
    return ", ".join(map(str, rs))
