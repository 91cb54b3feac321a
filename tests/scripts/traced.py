"""A traced run with a known graph, for the trace tests.

    python -m dagmpi --trace TRACE tests/scripts/traced.py MARKER_DIR [SLEEP]

8 loads, a tree of 7 adds, a total (16 tasks), a task that fails once and is
retried (2 runs), a task that fails for good (1 run), and 30 short sleeps waited
for with dagmpi.wait (the progress bar test): 48 tasks, 49 runs, 2 failed runs.
"""
import os
import sys
import time

import numpy as np

import dagmpi


def load(i):
    return np.full(50_000, float(i))


def add(a, b):
    return a + b


def total(x):
    return float(x.sum())


def flaky(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise OSError("first attempt fails")
    return "second attempt ok"


def bad():
    raise ValueError("this task always fails")


def nap(i, seconds):
    time.sleep(seconds)
    return i


if __name__ == "__main__":
    markers, pause = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    ws = dagmpi.workers()  # loads spread over the workers: the tree's inputs cross ranks
    parts = [dagmpi.spawn(load, i, options=dagmpi.Options(scope=dagmpi.scope(rank=ws[i % len(ws)])))
             for i in range(8)]
    while len(parts) > 1:
        parts = [dagmpi.spawn(add, parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
    result = dagmpi.fetch(dagmpi.spawn(total, parts[0]))
    f = dagmpi.spawn(flaky, os.path.join(markers, "flaky"), options=dagmpi.Options(retries=1))
    b = dagmpi.spawn(bad)
    naps = [dagmpi.spawn(nap, i, pause) for i in range(30)]
    done, _ = dagmpi.wait(naps)
    print("RESULT", result, dagmpi.fetch(f), type(b.exception()).__name__, len(done))
