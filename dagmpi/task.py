"""The ``Task`` handle returned by ``spawn``."""

from __future__ import annotations

from typing import Any, Callable, Optional

PENDING, FINISHED, ERRORED = 0, 1, 2
_STATES = ("pending", "finished", "failed")

#: Returns the client of the calling thread; set by the runtime when it starts
#: (:func:`set_client_finder`).  A handle unpickled on some rank belongs to that
#: rank's client: the handle module never imports the runtime.
_client_finder: Optional[Callable[[], Any]] = None


def set_client_finder(finder: Callable[[], Any]) -> None:
    """Tell handles rebuilt from a pickle how to find the client of their thread."""
    global _client_finder
    _client_finder = finder


class Task:
    """A handle to a spawned task: pass it to other tasks, ``fetch`` it, wait on it.

    A ``Task`` used as an argument of ``spawn`` (at any depth inside lists,
    tuples, dicts or objects) is a dependency: the consumer receives its value.
    The value stays on the rank that computed it until it is fetched; it is
    freed when no handle and no pending task needs it.
    """

    __slots__ = ("id", "name", "_client", "_state", "_owner", "_error", "_value", "_has_value", "_key",
                 "_watched",
                 "__weakref__")

    def __init__(self, task_id: int, name: str, client: Any) -> None:
        self.id = task_id
        self.name = name
        self._client = client
        self._state = PENDING
        self._owner: Optional[int] = None
        self._error: Any = None
        self._value: Any = None
        self._has_value = False
        self._key: Optional[str] = None  # checkpoint key, when checkpointing is on
        self._watched = False  # registered with its client for the end notice

    # -------------------------------------------------------- public API

    def done(self) -> bool:
        """True if the task finished or failed (does not wait)."""
        if self._state == PENDING:
            self._client.watch(self)
        return self._state != PENDING

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """Wait for the task; return the exception it raised, or ``None``."""
        from .errors import build_exception

        self._client.wait_for(self, timeout)
        return build_exception(self._error) if self._state == ERRORED else None

    def fetch(self, timeout: Optional[float] = None) -> Any:
        """Wait for the task and return its value (see :func:`dagmpi.fetch`)."""
        return self._client.fetch(self, timeout)

    def __repr__(self) -> str:
        return f"<Task {self.name} {self.id:#x} {_STATES[self._state]}>"

    # ----------------------------------------------------- handle counting

    def __del__(self) -> None:
        try:
            self._client.release(self.id)
        except Exception:  # interpreter shutdown: nothing left to free
            pass

    def __reduce__(self) -> tuple:
        # Pickled outside of spawn() arguments (e.g. inside a result): the copy
        # is a new handle, counted now so the value outlives the pickle's trip.
        self._client.acquire(self.id)
        return (_rebuild_task, (self.id, self.name, self._key))


def _rebuild_task(task_id: int, name: str, key: Optional[str] = None) -> Task:
    if _client_finder is None:
        raise RuntimeError("a dagmpi Task was unpickled in a process where dagmpi is not running")
    t = Task(task_id, name, _client_finder())
    t._key = key
    return t


class Launch(Task):
    """The handle of a launch of ``n`` point tasks (:func:`dagmpi.spawn_many`): wait on
    it like a task (it ends when every point has), read it from a later launch
    (``reads=``), and :meth:`fetch` the points' values.  Point ``i`` is the task
    ``base + i``, run on ``layout.rank_of(i)``."""

    __slots__ = ("base", "n", "layout", "keys")

    def __init__(self, launch_id: int, name: str, client: Any, base: int, n: int, layout: Any) -> None:
        super().__init__(launch_id, name, client)
        self.base, self.n, self.layout = base, n, layout
        self.keys: Optional[tuple] = None  # (checkpointing) each point's checkpoint key

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> "Point":
        """Point ``i`` (negative counts from the end) as a task handle of its own: pass
        it to ``spawn`` (its value is the input), ``fetch`` it, wait on it.  It keeps
        the launch's values alive as long as it lives."""
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"a launch's points are numbered by integers, not {type(i).__name__}")
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"point {i} of a launch of {self.n} points")
        return Point(self, i)

    def fetch(self, timeout: Optional[float] = None) -> list:
        """Wait for the launch; the values of its points, in order (pulled from their ranks)."""
        return self._client.fetch_launch(self, timeout)

    def __repr__(self) -> str:
        return f"<Launch {self.name} {self.id:#x} of {self.n} points {_STATES[self._state]}>"

    def __reduce__(self) -> tuple:
        # (an argument of spawn is not pickled this way: it stands for its points' values)
        raise TypeError("a Launch can be an argument of spawn (the list of its points' values) or read by "
                        "another launch (spawn_many(..., reads=[(launch, projection)])), but it cannot be "
                        "pickled into other values: pass its points (launch[i]) instead")


class Point(Task):
    """Point ``index`` of a :class:`Launch` (``launch[i]``): the task ``launch.base +
    index``.  Usable wherever a ``Task`` is (an argument of ``spawn``, ``fetch``,
    ``wait``); its value lives on the rank its launch's layout gives it, and is freed
    with the launch's, so the handle keeps the launch alive instead of counting
    itself.  When it is read by a plain task or waited for before its launch ended,
    rank 0 makes a task record of it then (not for the other points)."""

    __slots__ = ("launch", "index")

    def __init__(self, launch: Launch, index: int) -> None:
        super().__init__(launch.base + index, f"{launch.name}[{index}]", launch._client)
        self.launch, self.index = launch, index
        if launch.keys is not None:  # (checkpointing: the key of a task reading it derives from it)
            self._key = launch.keys[index]
        if launch._state == FINISHED:
            self._state, self._owner = FINISHED, launch.layout.rank_of(index)
        elif launch._state == ERRORED:
            self._state, self._error = ERRORED, launch._error

    def __del__(self) -> None:
        pass  # (not counted: the launch it holds keeps the value)

    def __repr__(self) -> str:
        return f"<Point {self.index} of {self.launch.name} {self.id:#x} {_STATES[self._state]}>"

    def __reduce__(self) -> tuple:
        # pickled outside of spawn() arguments: the copy is a counted handle (rank 0
        # makes the point's record, which holds the launch)
        self._client.acquire(self.id)
        return (_rebuild_task, (self.id, self.name, self._key))
