"""A worker's units of work: one task to run (:class:`Job`) and the threads
that run user code off the communication loop (:class:`Executor`)."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

from .messages import Exec

#: The rank of the scheduler (and the driver).
SCHEDULER = 0


class Job:
    """One :class:`~dagmpi.runtime.messages.Exec` on a worker: what to run, and its inputs as they arrive."""

    __slots__ = ("id", "name", "fn_id", "payload", "buffers", "inputs", "missing", "failed", "needs",
                 "policy", "attempt", "timed_out", "replaced", "save", "suspect", "trace_in", "point", "call",
                 "loop")

    def __init__(self, m: Exec) -> None:
        self.id, self.name, self.fn_id, self.payload, self.buffers = m.task_id, m.name, m.fn_id, m.payload, m.buffers
        self.needs, self.policy, self.attempt, self.save, self.suspect = m.needs, m.policy, m.attempt, m.save, m.suspect
        inputs = m.inputs
        self.timed_out = False
        self.replaced = False  # timed out, and its slot was handed to a replacement
        self.inputs: Any = inputs  # tuple of (dep_id, owner), then dict dep_id -> value
        self.missing = 0
        self.failed: Any = None
        #: Tracing on: the :class:`~dagmpi.trace.records.Input` records of its inputs.
        self.trace_in: Any = None
        #: A point of a launch: ``(index, input ids in order)`` (it runs ``fn(index, *args, *inputs)``).
        self.point: Any = None
        #: How it is called: as a point (``point``, or a launch's point run on its own,
        #: computed again after its rank died: ``Exec.point``), else None.
        self.call: Any = m.point
        #: A step of a loop before its last (``dagmpi.spawn_loop``): ``(LoopState, step)``;
        #: its value goes on to the next step, not to the store.
        self.loop: Any = None

    @property
    def pinned(self) -> bool:
        """A launch's lost point computed again where its launch's layout now puts it:
        given back, it comes back here (``Exec.point``'s third field)."""
        call = self.call
        return call is not None and self.point is None and len(call) > 2 and bool(call[2])


class Executor:
    """Threads for user code; grows when every thread is busy or blocked."""

    def __init__(self, run: Callable[[Job], None], name: str) -> None:
        self._run = run
        self._name = name
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = 0
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def submit(self, job: Job) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._q.put(job)
        if spawn:
            t = threading.Thread(target=self._loop, name=f"{self._name}-exec{len(self.threads)}", daemon=True)
            self.threads.append(t)
            t.start()

    def _loop(self) -> None:
        q = self._q
        while True:
            job = q.get()
            if job is None:
                return
            self._run(job)
            with self._lock:
                self._idle += 1

    def stop(self) -> None:
        for _ in self.threads:
            self._q.put(None)
