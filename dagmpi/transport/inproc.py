"""In-process transport: every rank is a thread of one process, queues between them.

Used when there is no MPI launcher (scripts, notebooks, unit tests) and for
``mpiexec -n 1``.  Messages are passed by reference, never pickled, so values
are shared between the driver and the workers as with any thread pool.
"""

from __future__ import annotations

import os
import queue
import sys
from typing import Any, NoReturn

from .base import Transport

_WAKE = object()


class InprocHub:
    """The shared switchboard of ``size`` in-process endpoints."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an in-process hub needs at least one rank")
        self.size = size
        self.queues: list[queue.SimpleQueue] = [queue.SimpleQueue() for _ in range(size)]
        self.endpoints = [InprocTransport(self, r) for r in range(size)]


class InprocTransport(Transport):
    """One endpoint of an :class:`InprocHub`."""

    serializes = False
    name = "inproc"

    def __init__(self, hub: InprocHub, rank: int) -> None:
        self.hub = hub
        self.rank = rank
        self.size = hub.size
        self._inbox = hub.queues[rank]

    def send(self, dest: int, msg: Any) -> None:
        self.hub.queues[dest].put((self.rank, msg))

    def poll(self, timeout: float, spin: bool = False) -> list[tuple[int, Any]]:
        out: list[tuple[int, Any]] = []
        inbox = self._inbox
        try:
            item = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
        except queue.Empty:
            return out
        while True:
            if item is not _WAKE:
                out.append(item)
            try:
                item = inbox.get_nowait()
            except queue.Empty:
                return out

    def wakeup(self) -> None:
        self._inbox.put(_WAKE)

    def abort(self, code: int = 1) -> NoReturn:
        sys.stderr.flush()
        os._exit(code)
