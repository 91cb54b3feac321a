"""The queue of READY tasks, in the order the scheduler runs them."""

from __future__ import annotations

import collections
import heapq


class ReadyQueue:
    """READY task ids in run order: by their key (``Scheduler._make_ready``:
    priority, then what frees inputs, then depth), then first in, first out.

    One FIFO per distinct order key, and a heap of the keys: most graphs have
    few distinct keys at a time (a wide map has one), so putting and taking a
    task is a dict lookup and a deque operation instead of a heap operation on
    a heap of every ready task.  Ids of tasks that stopped being READY while
    queued stay until taken; the taker skips them.
    """

    __slots__ = ("_keys", "_fifo", "_n")

    def __init__(self) -> None:
        self._keys: list[tuple[int, ...]] = []  # heap of the keys that have a FIFO
        self._fifo: dict[tuple[int, ...], collections.deque] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _fifo_of(self, key: tuple[int, ...]) -> collections.deque:
        q = self._fifo.get(key)
        if q is None:
            q = self._fifo[key] = collections.deque()
            heapq.heappush(self._keys, key)
        return q

    def put(self, key: tuple[int, ...], task_id: int) -> None:
        """Queue ``task_id`` behind every queued task with the same or a smaller key."""
        self._fifo_of(key).append(task_id)
        self._n += 1

    def put_back(self, items: list[tuple[tuple[int, ...], int]]) -> None:
        """Return ``(key, id)`` pairs taken by :meth:`take`, in the order taken, to the front."""
        for key, task_id in reversed(items):
            self._fifo_of(key).appendleft(task_id)
            self._n += 1

    def take(self) -> tuple[tuple[int, ...], int]:
        """Remove and return ``(key, id)`` of the first task (the queue must not be empty)."""
        key = self._keys[0]
        q = self._fifo[key]
        task_id = q.popleft()
        if not q:
            heapq.heappop(self._keys)
            del self._fifo[key]
        self._n -= 1
        return key, task_id

    def ids(self) -> set[int]:
        """Every queued id (for checks)."""
        return {i for q in self._fifo.values() for i in q}
