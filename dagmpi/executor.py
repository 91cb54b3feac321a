"""``dagmpi.Executor``: the :mod:`concurrent.futures` interface on dagmpi's runtime.

Code written for ``ThreadPoolExecutor``/``ProcessPoolExecutor`` or
``mpi4py.futures.MPIPoolExecutor`` runs unchanged on the job's worker ranks::

    with dagmpi.Executor() as ex:
        fut = ex.submit(simulate, params)          # a concurrent.futures.Future
        for y in ex.map(f, range(1_000_000), chunksize=1000):
            ...

Each call is a dagmpi task.  The executor keeps at most ``window`` of its calls
in the runtime at a time and holds the rest itself: a held call can still be
cancelled (``Future.cancel()`` returns True), one handed to the runtime runs
(``cancel()`` returns False, as for a ``ProcessPoolExecutor`` call already in
its call queue).  Futures and tasks mix: a :class:`Future` passed to
:func:`dagmpi.spawn` (or to ``submit``) is a dependency edge -- the consumer
gets the value rank to rank, it never visits the driver -- and a
:class:`~dagmpi.Task` passed to ``submit`` is one too.  A result is fetched
to the caller only when ``result()`` asks for it.

Callbacks (``add_done_callback``) and the bookkeeping run on one thread per
executor, never on the rank's communication loop; an exception in a callback
is logged and ignored, as the standard library does.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import itertools
import logging
import pickle
import queue
import threading
import time
import traceback
from typing import Any, Callable, Iterable, Iterator, Optional

from . import serialize
from .config import Config
from .errors import RemoteTraceback, build_exception
from .options import DEFAULT_OPTIONS, Options, scope
from .task import ERRORED, Task

log = logging.getLogger("dagmpi.executor")

#: ``Future._result`` while the task's value is still on its rank.
_UNFETCHED = object()
#: Calls in the runtime per worker rank (default window: this many per rank, at least 16).
WINDOW_PER_RANK = 4


class Future(cf.Future):
    """A :class:`concurrent.futures.Future` whose call runs as a dagmpi task.

    Works with :func:`concurrent.futures.wait`/``as_completed``, callbacks,
    ``cancel()``, ``result(timeout)`` and ``exception(timeout)``.  ``.task`` is
    the :class:`~dagmpi.Task` (pass the future itself to ``dagmpi.spawn`` to
    use its value in another task)."""

    def __init__(self, executor: "Executor", call: tuple) -> None:
        super().__init__()
        self._executor = executor
        self._call: Optional[tuple] = call  # (fn, args, kwargs, name) until handed to the runtime
        self._task: Optional[Task] = None
        self._fetch_lock = threading.Lock()

    @property
    def task(self) -> Task:
        """The task that runs this call; a call the executor still holds is handed
        to the runtime now.  Raises ``CancelledError`` if it was cancelled."""
        if self._task is None:
            self._executor._dispatch_now(self)
        if self._task is None:
            if self.cancelled():
                raise cf.CancelledError(f"{self!r} was cancelled: it has no task")
            self.result()  # it failed before it became a task (its arguments would not pickle)
        return self._task  # type: ignore[return-value]

    def cancel(self) -> bool:
        """Cancel the call if the executor still holds it (True); a call handed to
        the runtime is not cancelled (False)."""
        if not super().cancel():
            return False
        self._executor._drop_held(self)
        return True

    def result(self, timeout: Optional[float] = None) -> Any:
        value = super().result(timeout)
        if value is _UNFETCHED:
            with self._fetch_lock:
                if self._result is _UNFETCHED:
                    self._result = self._task.fetch()  # type: ignore[union-attr]
                value = self._result
        return value

    def __repr__(self) -> str:
        what = "" if self._task is None else f" task={self._task.id:#x}"
        return super().__repr__()[:-1] + what + ">"


class _ChunkError:
    """A chunk of ``map`` whose item raised after some succeeded: the results
    before it, and the exception (raised at its position on the driver)."""

    __slots__ = ("results", "exc_bytes", "text")

    def __init__(self, results: list, exc_bytes: bytes, text: str) -> None:
        self.results, self.exc_bytes, self.text = results, exc_bytes, text

    def raise_it(self) -> None:
        exc = pickle.loads(self.exc_bytes)
        exc.__cause__ = RemoteTraceback(f'\n"""\n{self.text}"""')
        raise exc


def _run_chunk(fn: Callable, chunk: Any) -> Any:
    """Run ``fn(*args)`` for each ``args`` of a ``map`` chunk (``bytes``: pickled)."""
    if type(chunk) is bytes:
        chunk = pickle.loads(chunk)
    out = []
    for args in chunk:
        try:
            out.append(fn(*args))
        except Exception as exc:
            if not out:
                raise  # the task fails with it (and its traceback) like any task
            try:
                exc_bytes = serialize.dump_value(exc)[0]
                pickle.loads(exc_bytes)
            except Exception:
                raise exc from None  # it will not travel as an object: fail the chunk as text
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return _ChunkError(out, exc_bytes, text)
    return out


class Executor(cf.Executor):
    """A :class:`concurrent.futures.Executor` that runs calls as dagmpi tasks.

    ``max_workers``: run on at most this many worker ranks (the first ones);
    ``None``: all of them.  ``options``: :class:`~dagmpi.Options` for every
    call (name, priority, scope, retries, resources); not together with
    ``max_workers``.  ``window``: calls in the runtime at a time (keyword >
    ``DAGMPI_EXECUTOR_WINDOW`` > 4 per worker rank used, at least 16); the
    rest wait in the executor, where they can be cancelled.

    Works embedded (no MPI), on the driver under ``mpiexec``, and inside tasks
    (the calls are then spawned by that task's rank).
    """

    def __init__(self, max_workers: Optional[int] = None, *, options: Optional[Options] = None,
                 window: Optional[int] = None) -> None:
        if max_workers is not None and (not isinstance(max_workers, int) or isinstance(max_workers, bool)
                                        or max_workers <= 0):
            raise ValueError(f"max_workers must be a positive integer or None, got {max_workers!r}")
        if options is not None and not isinstance(options, Options):
            raise TypeError(f"options= must be a dagmpi.Options, got {type(options).__name__}")
        if options is not None and max_workers is not None and options.scope is not None:
            raise TypeError("give max_workers= or options=Options(scope=...), not both")
        if window is None:
            window = Config.from_sources().executor_window or None  # (DAGMPI_EXECUTOR_WINDOW)
        if window is not None and window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._max_workers = max_workers
        self._base_options = options or DEFAULT_OPTIONS
        self._options: Optional[Options] = None  # resolved at the first call (needs the runtime)
        self._window = window
        self._client: Any = None
        self._lock = threading.Lock()
        self._held: collections.deque = collections.deque()
        self._in_flight = 0
        self._outstanding: set = set()  # futures not done yet
        self._ended: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._shutdown = False

    # ------------------------------------------------------------ interface

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        """Schedule ``fn(*args, **kwargs)``; a :class:`Future` for its result."""
        if not callable(fn):
            raise TypeError(f"submit() needs a callable as its first argument, got {type(fn).__name__}")
        return self._submit_call(fn, args, kwargs)

    def map(self, fn: Callable, *iterables: Iterable, timeout: Optional[float] = None,  # type: ignore[override]
            chunksize: int = 1) -> Iterator:
        """``fn`` over the items of ``iterables`` (zipped), like ``map``: the calls are
        submitted now, in tasks of ``chunksize`` items; results come back in order,
        lazily; the first exception is raised where its item is (the results
        before it are yielded first); ``timeout`` counts from this call.  Leaving
        the iteration early cancels the chunks the executor still holds."""
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive integer, got {chunksize!r}")
        end = None if timeout is None else time.monotonic() + timeout
        items = zip(*iterables)
        if chunksize == 1:
            fs = [self._submit_call(fn, args, {}) for args in items]
        else:
            run = _ChunkRunner(fn)
            name = f"map({getattr(fn, '__qualname__', type(fn).__name__)})"
            fs = []
            while True:
                chunk = tuple(itertools.islice(items, chunksize))
                if not chunk:
                    break
                if all(type(a) in serialize._SIMPLE for args in chunk for a in args):
                    # plain values: one bytes argument, pickled by the C pickler
                    chunk = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)  # type: ignore[assignment]
                fs.append(self._submit_call(run, (chunk,), {}, name))
        return self._results(fs, end, chunksize > 1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; ``cancel_futures``: cancel the calls the executor still
        holds; ``wait``: return when every call is done."""
        with self._lock:
            self._shutdown = True
            held = list(self._held) if cancel_futures else []
        for f in held:
            f.cancel()
        if wait:
            with self._lock:
                pending = list(self._outstanding)
            cf.wait(pending)
        self._ended.put(None)  # the bookkeeping thread ends once nothing is outstanding

    # -------------------------------------------------------------- inside

    def _results(self, fs: list, end: Optional[float], chunked: bool) -> Iterator:
        try:
            fs.reverse()  # pop from the end: the references of yielded futures go at once
            while fs:
                f = fs[-1]
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise cf.TimeoutError(f"{len(fs)} map call(s) unfinished at the timeout")
                value = f.result(left)
                fs.pop()
                if not chunked:
                    yield value
                elif type(value) is _ChunkError:
                    yield from value.results
                    value.raise_it()
                else:
                    yield from value
                del f, value
        finally:
            for f in fs:
                f.cancel()

    def _submit_call(self, fn: Callable, args: tuple, kwargs: dict, name: Optional[str] = None) -> Future:
        f = Future(self, (fn, args, kwargs, name))
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._client is None:
                self._start()
            self._outstanding.add(f)
            if self._held or self._in_flight >= self._window:  # type: ignore[operator]
                self._held.append(f)
                return f
            self._in_flight += 1
        self._dispatch(f)
        return f

    def _start(self) -> None:
        """First call (``_lock`` held): bind the caller's client, resolve options and window."""
        from .runtime import context

        self._client = client = context.current_client()
        ranks = sorted(client.worker_ranks)
        opts = self._base_options
        if self._max_workers is not None:
            ranks = ranks[:self._max_workers]
            opts = dataclasses.replace(opts, scope=scope(ranks=ranks))
        self._options = opts
        if self._window is None:
            self._window = max(16, WINDOW_PER_RANK * len(ranks))
        self._thread = threading.Thread(target=self._bookkeeping, name="dagmpi-executor", daemon=True)
        self._thread.start()

    def _dispatch(self, f: Future) -> None:
        """Hand ``f``'s call to the runtime (counted in ``_in_flight`` already)."""
        if not f.set_running_or_notify_cancel():
            self._ended.put(f)  # cancelled meanwhile: free its place in the window
            return
        fn, args, kwargs, name = f._call  # type: ignore[misc]
        f._call = None
        opts = self._options if name is None or self._options.name else dataclasses.replace(self._options, name=name)
        try:
            task = self._client.spawn(fn, args, kwargs, opts)
        except BaseException as exc:  # (arguments that do not pickle, an impossible scope)
            f.set_exception(exc)
            self._ended.put(f)
            return
        f._task = task
        self._client.on_end(task, lambda _t, f=f: self._ended.put(f))

    def _dispatch_now(self, f: Future) -> None:
        """``f`` is wanted as a dependency: hand it over even if the window is full."""
        with self._lock:
            try:
                self._held.remove(f)
            except ValueError:
                return  # handed over already (or being handed over: its task comes)
            self._in_flight += 1
        self._dispatch(f)

    def _drop_held(self, f: Future) -> None:
        """``f`` was cancelled: forget it if it was held (else the dispatcher notices)."""
        with self._lock:
            try:
                self._held.remove(f)
            except ValueError:
                return
            self._outstanding.discard(f)
        f.set_running_or_notify_cancel()  # (CANCELLED_AND_NOTIFIED: waiters wake)

    def _bookkeeping(self) -> None:
        """The executor's thread: finish the futures whose tasks ended (their
        callbacks run here) and hand held calls to the runtime as room frees."""
        ended = self._ended
        while True:
            f = ended.get()
            if f is not None:
                task = f._task
                if task is not None and not f.done():
                    if task._state == ERRORED:
                        f.set_exception(build_exception(task._error))
                    else:
                        f.set_result(_UNFETCHED)
                send = []
                with self._lock:
                    self._in_flight -= 1
                    self._outstanding.discard(f)
                    while self._held and self._in_flight < self._window:  # type: ignore[operator]
                        send.append(self._held.popleft())
                        self._in_flight += 1
                for g in send:
                    self._dispatch(g)
                del f, task, send
            with self._lock:
                if self._shutdown and not self._outstanding:
                    return


class _ChunkRunner:
    """``map``'s task function for one ``fn`` (pickled once per ``map`` call)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, chunk: Any) -> Any:
        return _run_chunk(self.fn, chunk)

    def __eq__(self, other: object) -> bool:  # one cached pickle per function, not per map call
        return type(other) is _ChunkRunner and other.fn == self.fn

    def __hash__(self) -> int:
        return hash((_ChunkRunner, self.fn))


serialize.FUTURE_TYPES = (Future,)
