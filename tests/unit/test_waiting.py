"""Threads blocked in fetch wake only for what they wait for (issue #11, rule 5).

With one OS thread per blocked task, a broadcast wake-up on every delivery costs
O(blocked tasks) thread switches per message: nested graphs (fib) then slow down
with their depth.  A delivery must wake the threads waiting for that task only."""

from __future__ import annotations

import threading
import time

from dagmpi.runtime.client import Client


def test_a_delivery_wakes_only_the_thread_waiting_for_that_task():
    client = Client(0, [1], serializes=False)
    tasks = [client._new_task(f"t{i}", None) for i in range(50)]
    checks = [0] * len(tasks)
    done = [False] * len(tasks)

    def waiter(i: int) -> None:
        t = tasks[i]

        def pred() -> bool:
            checks[i] += 1
            return t._state != 0

        client._wait_until(pred, 30, t.id)
        done[i] = True

    threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(len(tasks))]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 10
    while len(client._sleepers) < len(tasks) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(client._sleepers) == len(tasks)
    before = list(checks)
    for t in tasks:  # the client watches them, as the driver does for its tasks
        client._watch[t.id] = t
    client._deliver(tasks[7].id, 1, None)
    threads[7].join(5)
    assert done[7]
    time.sleep(0.1)
    woken = [i for i in range(len(tasks)) if checks[i] != before[i]]
    assert woken == [7], woken
    for t in tasks:
        client._deliver(t.id, 1, None)
    for th in threads:
        th.join(5)
    assert all(done) and not client._sleepers


def test_a_timeout_returns_false_and_leaves_nothing_behind():
    client = Client(0, [1], serializes=False)
    t = client._new_task("t", None)
    t0 = time.monotonic()
    assert client._wait_until(lambda: t._state != 0, 0.2, t.id) is False
    assert 0.15 < time.monotonic() - t0 < 5
    assert not client._sleepers
