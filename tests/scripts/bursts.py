"""Spawn bursts on rank 0: the spawning thread drives the loop itself; when it
stops (sleeps, computes) the runtime thread takes the loop back and the tasks
finish without anyone waiting; several threads spawning at once lose nothing."""

import os
import tempfile
import threading
import time

import dagmpi


def inc(x):
    return x + 1


# 1. a burst, then the script does something else (no fetch, no wait)
ts = [dagmpi.spawn(inc, i) for i in range(3000)]
deadline = time.monotonic() + 60
while not all(t.done() for t in ts):  # done() only looks; it never drives the loop
    assert time.monotonic() < deadline, "tasks of a burst did not finish without a waiter"
    time.sleep(0.05)
assert dagmpi.fetch(ts) == [i + 1 for i in range(3000)]

# 2. four threads spawn bursts at once, chains and independent tasks mixed
out = {}


def burst(k):
    t = dagmpi.spawn(inc, 0)
    for _ in range(499):
        t = dagmpi.spawn(inc, t)
    singles = [dagmpi.spawn(inc, k * 1000 + i) for i in range(500)]
    out[k] = (dagmpi.fetch(t), sum(dagmpi.fetch(singles)))


# (three rounds: a thread that waited for the loop while the runtime thread took
# back its claim once starved forever, in about one run in six)
for _ in range(3):
    out.clear()
    threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert out == {k: (500, sum(k * 1000 + i + 1 for i in range(500))) for k in range(4)}, out
# 3. one thread waits in fetch for a task that ends only when this thread has
#    spawned, and itself fetched, a burst: neither may wait on the other's lead
marker = os.path.join(tempfile.mkdtemp(), "open")


def gate(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    return "opened"


g = dagmpi.spawn(gate, marker)
got = {}
waiter = threading.Thread(target=lambda: got.setdefault("gate", dagmpi.fetch(g)))
waiter.start()
time.sleep(0.3)  # the waiter now leads the loop, inside fetch
ts = [dagmpi.spawn(inc, i) for i in range(3000)]
assert dagmpi.fetch(ts) == [i + 1 for i in range(3000)]
open(marker, "w").close()
waiter.join(60)
assert got == {"gate": "opened"}, got
print("BURSTS-OK")
