"""The user-facing API: spawn, fetch, wait, as_completed, the task decorator."""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Sequence, Union, overload

from .errors import SerializationError, is_task_failure
from .runtime import context
from .options import DEFAULT_OPTIONS, Options
from .task import Task

FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"


class _Region(threading.local):
    #: The ``dagmpi.datadeps()`` region open on this thread, which :func:`spawn`
    #: hands its calls to (set and cleared by :mod:`dagmpi.datadeps`).  A class
    #: default, so a spawn outside any region pays one attribute read.
    current: Any = None


_REGION = _Region()


def spawn_many(fn: Callable, n: int, *args: Any, layout: Any = None, reads: Any = (),
               name: Optional[str] = None, retries: Optional[int] = None,
               retry_on: Optional[Any] = None, checkpoint: Optional[bool] = None,
               keys: Optional[Sequence[str]] = None) -> Any:
    """Launch ``n`` point tasks of one function at once; return their :class:`~dagmpi.task.Launch`.

    Point ``i`` (0 <= i < n) calls ``fn(i, *args, *inputs)`` on the rank ``layout``
    gives it: ``"blocks"`` (the default: contiguous runs of points per worker),
    ``"cyclic"`` or a :class:`dagmpi.Layout`.  ``reads``: ``(launch, projection)``
    pairs: point ``i`` receives, as its trailing arguments, the values of the points
    of that earlier launch that the :class:`dagmpi.Projection` maps it to (e.g.
    ``Projection("offsets", (-1, 0, 1))`` for a 1-D stencil), sent to it straight
    from the ranks that computed them.  ``args`` are pickled once for all points and
    may not hold tasks.  Rank 0 handles the launch as one record (not ``n``): wait
    on it like a task, or ``launch.fetch()`` the values in point order;
    ``launch[i]`` is point ``i`` as a task of its own (pass it to :func:`spawn`,
    fetch it, wait on it).  A point that raises is run again where it is, up to
    ``retries`` times (default: the ``retries`` setting) when its exception is one
    of ``retry_on`` (default: any ``Exception``), as a task's ``Options`` say; then
    it fails the launch (and the points that read it).  A dead worker rank fails
    the launches with points on it (not computed again yet).

    With checkpointing on (``dagmpi.init(checkpoint=...)``), every point has a key:
    ``keys[i]`` (as ``Options(key=name)`` gives them: ``dagmpi.api.key_of(name)``), else one
    derived from the function, the arguments and the keys of what it reads.  A point
    the checkpoint holds is read back on its rank instead of run; the others are
    saved as they end when ``checkpoint`` is true (default: the checkpoint policy).
    """
    return context.current_client().spawn_many(fn, n, args, layout, reads, name, retries, retry_on,
                                               checkpoint, None if keys is None else tuple(keys))


def spawn_loop(fn: Callable, n: int, steps: int, *args: Any, step_reads: Any, reads: Any = (),
               layout: Any = None, name: Optional[str] = None, retries: Optional[int] = None,
               retry_on: Optional[Any] = None, checkpoint: Optional[bool] = None,
               keys: Optional[Sequence[str]] = None, share: Optional[Callable] = None) -> Any:
    """Run ``steps`` steps of ``n`` point tasks on the workers, rank 0 out of the loop;
    return the :class:`~dagmpi.task.Launch` of the last step.

    The same as ``steps`` calls of :func:`spawn_many` where step ``t >= 1`` reads step
    ``t - 1`` through ``step_reads`` (a :class:`dagmpi.Projection`, or a sequence of
    them used in turn: step ``t`` uses ``step_reads[(t - 1) % len(step_reads)]``), and
    step 0 reads ``reads`` (as :func:`spawn_many`'s)::

        u = dagmpi.spawn_many(init, n)
        for _ in range(steps):
            u = dagmpi.spawn_many(step, n, dt, reads=[(u, dagmpi.Projection("offsets", (-1, 0, 1)))])

    is ``dagmpi.spawn_loop(step, n, steps, dt, reads=[(u0, proj)], step_reads=proj)`` with
    ``u0 = dagmpi.spawn_many(init, n)``.  Point ``i`` of every step calls
    ``fn(i, *args, *inputs)`` on the rank ``layout`` gives it (the same every step).
    Rank 0 handles the loop as one launch, sent once; each rank runs its points step
    after step and pushes each value to the ranks whose points read it at the next
    step, as soon as it exists (no request, no message through rank 0): the cost per
    step is the workers' alone.  Only the last step's values are kept, as the points
    of the returned launch; the values of earlier steps are dropped as soon as the next
    step has read them.

    ``share`` (the *carry* form, for a time loop over blocks that reads only its
    neighbours' edges): point ``i`` of step ``t >= 1`` calls ``fn(i, *args, own,
    *shares)``, where ``own`` is its own value of step ``t - 1`` (which stays on its rank
    and is never sent) and ``shares`` are ``share(j, value_j)`` of the points ``j``
    that ``step_reads`` gives it, in order.  ``share`` runs on point ``j``'s rank right
    after its step (not after the last); only what it returns travels, e.g. a block's
    halos, never the block.  Step 0 reads ``reads`` as without ``share``.  The points on
    ``j``'s rank get the very object ``share`` returned (other ranks a copy): if ``fn``
    updates ``own`` in place, ``share`` must return a copy (``v[:1].copy()``), not a
    view of it.

    Retries, ``checkpoint`` and ``keys`` are :func:`spawn_many`'s, for the last step's
    points: a rerun of the script reads the loop back from the checkpoint when it holds
    every point of it, and runs it again otherwise.  A point that fails (after its
    retries), at any step, fails the loop with its error, and the points that read it at
    later steps fail without running (those outside its cone run on).
    A worker rank that dies while the loop runs (ULFM) makes it run again from the start on
    the ranks left; so does a loop that had ended and loses values with a rank while it is
    held (it keeps what it read until it is released), unless a task reads one of its points
    on its own: that task fails with a :class:`~dagmpi.errors.WorkerLostError` (a loop's
    points are not computed again one by one).
    """
    return context.current_client().spawn_loop(fn, n, steps, args, step_reads, layout, reads, name, retries,
                                               retry_on, checkpoint, None if keys is None else tuple(keys),
                                               share)


def spawn(fn: Callable, *args: Any, options: Optional[Options] = None, **kwargs: Any) -> Task:
    """Run ``fn(*args, **kwargs)`` as a task somewhere in the job; return its :class:`Task`.

    Any ``Task`` among the arguments (also inside lists, tuples, dicts or
    objects) is a dependency: the task starts after it finished and receives
    its value, pulled directly from the rank that holds it.  A
    :class:`~dagmpi.task.Launch` there stands for the list of its points'
    values (each point then a dependency: rank 0 keeps a record per point).  ``options`` (an
    :class:`Options`) sets the name, priority and scope; the keyword
    ``options`` is therefore reserved and not passed to ``fn``.

    Raises ``TypeError``/:class:`~dagmpi.errors.SerializationError` at once if
    ``fn`` or an argument cannot be pickled, ``ValueError`` for an impossible
    scope.  Works on the driver and inside tasks (dynamic graphs).  Inside a
    ``with dagmpi.datadeps():`` region, arguments wrapped in ``dagmpi.In``,
    ``Out`` or ``InOut`` order the task by the data they name (see
    :mod:`dagmpi.datadeps`).
    """
    if options is None:
        options = DEFAULT_OPTIONS
    elif not isinstance(options, Options):
        raise TypeError(f"options= must be a dagmpi.Options, got {type(options).__name__}; "
                        "use dagmpi.Options(name=..., priority=..., scope=...)")
    region = _REGION.current
    if region is not None:
        return region.spawn(fn, args, kwargs, options)
    try:
        return context.current_client().spawn(fn, args, kwargs, options)
    except SerializationError as exc:  # an In/Out/InOut outside a region: say so, not "cannot be pickled"
        if getattr(exc.__cause__, "dagmpi_datadeps", False):
            raise exc.__cause__.with_traceback(None) from None
        raise


@overload
def fetch(x: Task, timeout: Optional[float] = None) -> Any: ...
@overload
def fetch(x: Union[list, tuple], timeout: Optional[float] = None) -> list: ...


def fetch(x: Any, timeout: Optional[float] = None) -> Any:
    """The value of a task (or a list of values for a list/tuple of tasks).

    Waits for the task; if it failed, raises the original exception type with
    the remote traceback as ``__cause__`` (a task that did not run because an
    input failed raises :class:`~dagmpi.errors.UpstreamError`).  Inside a
    task, the waiting task gives its slot back so other tasks can run.
    """
    try:
        if isinstance(x, Task):
            return x._client.fetch(x, timeout)
        hook = getattr(type(x), "__dagmpi_fetch__", None)
        if hook is not None:  # e.g. a dagmpi.array.DArray: its whole value
            return hook(x, timeout)
        if isinstance(x, (list, tuple)):
            bad = [i for i, t in enumerate(x) if not isinstance(t, Task)]
            if bad:
                raise TypeError(f"fetch() got a {type(x).__name__} whose item {bad[0]} is a "
                                f"{type(x[bad[0]]).__name__}, not a Task")
            if not x:
                return []
            if len(x) >= PROGRESS_MIN_TASKS and progress_enabled():
                _wait_with_bar(list(x), timeout, "fetch")
            return x[0]._client.fetch_many(list(x), timeout)
    except BaseException as exc:
        if is_task_failure(exc):  # the task's own error: how dagmpi delivered it is no news
            raise exc.with_traceback(None)
        raise
    raise TypeError(f"fetch() expects a Task or a list/tuple of Tasks, got {type(x).__name__}")


class DoneAndNotDone(NamedTuple):
    done: set
    not_done: set


def _tasks(tasks: Iterable[Task], what: str) -> list[Task]:
    lst = list(tasks)
    for t in lst:
        if not isinstance(t, Task):
            raise TypeError(f"{what}() expects Tasks, got {type(t).__name__}")
    return lst


def wait(tasks: Iterable[Task], timeout: Optional[float] = None,
         return_when: str = ALL_COMPLETED) -> DoneAndNotDone:
    """Wait like :func:`concurrent.futures.wait`; returns ``(done, not_done)`` sets."""
    if return_when not in (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED):
        raise ValueError(f"return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, "
                         f"not {return_when!r}")
    lst = _tasks(tasks, "wait")
    if not lst:
        return DoneAndNotDone(set(), set())
    if return_when == ALL_COMPLETED and len(lst) >= PROGRESS_MIN_TASKS and progress_enabled():
        _wait_with_bar(lst, timeout, "wait")
        done = {t for t in lst if t.done()}
        return DoneAndNotDone(done, set(lst) - done)
    done, not_done = lst[0]._client.wait(lst, timeout, return_when)
    return DoneAndNotDone(done, not_done)


def as_completed(tasks: Iterable[Task], timeout: Optional[float] = None) -> Iterator[Task]:
    """Yield the tasks as they end (finished or failed), like ``concurrent.futures``."""
    lst = _tasks(tasks, "as_completed")
    if not lst:
        return iter(())
    it = lst[0]._client.as_completed(lst, timeout)
    if len(lst) >= PROGRESS_MIN_TASKS and progress_enabled():
        return iter(progress(it, total=len(lst), desc="dagmpi as_completed", unit="task"))
    return it


#: ``wait``/``fetch``/``as_completed`` on at least this many tasks show a progress bar
#: (when progress bars are on, and only once the wait has lasted ``PROGRESS_DELAY`` s).
PROGRESS_MIN_TASKS = 2
PROGRESS_DELAY = 1.0


def progress_enabled() -> bool:
    """Are progress bars on?  ``progress=`` / ``DAGMPI_PROGRESS``: "1" always, "0" never,
    "auto" (the default) only when stderr is a terminal, so never in a batch job's log."""
    import sys

    rt = context._runtime
    if rt is not None:
        setting = rt.config.progress
    else:
        import os

        setting = os.environ.get("DAGMPI_PROGRESS", "auto")
    setting = str(setting).strip().lower()
    if setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: Optional[str] = None,
             unit: str = "it", delay: float = 0.0, **tqdm_kwargs: Any) -> Any:
    """A tqdm progress bar (done/total, rate, ETA) over ``iterable`` on the driver when
    progress bars are on (:func:`progress_enabled`), else a silent one: use it for an
    application's own loop, e.g. ``for step in dagmpi.progress(range(n), desc="steps")``.
    Returns the ``tqdm`` object (``update``, ``set_postfix``, ``close`` work either way)."""
    import sys

    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, delay=delay, file=sys.stderr,
                disable=not progress_enabled(), dynamic_ncols=True, mininterval=0.25, **tqdm_kwargs)


def _wait_with_bar(lst: list, timeout: Optional[float], what: str) -> None:
    """Wait for every task of ``lst`` with a progress bar (shown after PROGRESS_DELAY s);
    returns at the timeout with the rest still running."""
    bar = progress(total=len(lst), desc=f"dagmpi {what}", unit="task", delay=PROGRESS_DELAY)
    try:
        for _ in lst[0]._client.as_completed(lst, timeout):
            bar.update(1)
    except TimeoutError:
        pass
    finally:
        bar.close()


def saved(key: str) -> bool:
    """Does the checkpoint of this run hold a result saved under ``key`` (a task's
    ``Options(key=...)``)?  False when checkpointing is off.  On the driver only: an
    application uses it to find the last step it saved before spawning from there."""
    client = context.current_client()
    return getattr(client, "ckpt_index", None) is not None and client._saved(key_of(key)) is not None


def key_of(user_key: str) -> str:
    """The checkpoint key that ``Options(key=user_key)`` gives a task."""
    from .checkpoint.keys import task_key

    return task_key(len, (), {}, user_key)


class TaskFunction:
    """A function decorated with :func:`task`: call it normally, or ``.spawn`` it."""

    def __init__(self, fn: Callable, options: Options) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def spawn(self, *args: Any, **kwargs: Any) -> Task:
        """``dagmpi.spawn(fn, *args, options=<the decorator's options>, **kwargs)``."""
        return spawn(self.fn, *args, options=self.options, **kwargs)

    def __repr__(self) -> str:
        return f"<dagmpi task {self.fn.__qualname__} {self.options}>"


def task(fn: Optional[Callable] = None, **options: Any) -> Any:
    """Decorator: ``@dagmpi.task`` or ``@dagmpi.task(name=..., priority=..., scope=...)``.

    The decorated function still runs normally when called; ``f.spawn(...)``
    spawns it with these options.
    """
    opts = Options.from_kwargs(**options)
    if fn is None:
        return lambda f: TaskFunction(f, opts)
    if not callable(fn):
        raise TypeError(f"@dagmpi.task decorates a function, got {type(fn).__name__}")
    return TaskFunction(fn, opts)


def init(**config: Any) -> None:
    """Start dagmpi; keywords override ``DAGMPI_*`` variables (see :class:`dagmpi.Config`).

    Under ``mpiexec``/``srun``: on rank 0 this returns and the script goes on as
    the driver; on every other rank it serves tasks until the driver ends, then
    exits the process with status 0 (it never returns there).  Without a
    launcher it starts the in-process runtime.  Calling it is optional:
    ``python -m dagmpi app.py`` and the first ``spawn`` call it for you.

    Checkpoints: ``init(checkpoint="run.ckpt", policy="all" | "marked")`` (or
    ``DAGMPI_CHECKPOINT`` / ``DAGMPI_CHECKPOINT_POLICY``) saves results in HDF5
    under that directory; a rerun completes already-saved tasks from it.
    """
    if "policy" in config:
        config["checkpoint_policy"] = config.pop("policy")
    context.init(**config)


def shutdown() -> None:
    """Wait for every task, stop the workers; runs automatically at exit."""
    context.shutdown()


def workers() -> list[int]:
    """The ranks that run tasks (under ULFM, a rank that died is no longer among them)."""
    client = context.current_client()
    return sorted(client.worker_ranks - client.dead)


def processors() -> list[dict[str, Any]]:
    """The worker ranks and what each offers, e.g.
    ``[{"rank": 1, "host": "n01", "cpu_slots": 1, "gpus": [0], "memory": 68719476736,
    "resources": {"cpu": 1, "gpu": 1, "memory": ..., "licence": 2.0}}, ...]``.
    Waits (briefly) until every worker has reported."""
    from .runtime.driver import Driver

    client = context.current_client()
    if not isinstance(client, Driver):
        raise RuntimeError("dagmpi.processors() is available on the driver (rank 0) only")
    return client.processors()


def info() -> dict[str, Any]:
    """How this process runs dagmpi: mode, transport, size, ``rank`` (where the caller
    runs: 0 on the driver, the worker's rank inside a task), worker ranks."""
    return context.runtime_info()
