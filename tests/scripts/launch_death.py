"""A worker rank dies (SIGKILL) inside a point of a chain of launches (ULFM): the launches
with points there fail with WorkerLostError (or UpstreamError/TaskError for the ones that
read them) within seconds, and new launches on the ranks left give the right answer.

    launch_death.py MARKER_DIR
"""
import os
import signal
import sys
import time

import numpy as np

import dagmpi
from dagmpi import Projection


def step(i, marker, *ins):
    if i == 1 and ins and ins[0][1] >= 5:  # point 1 of the 6th launch kills its rank, once
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    s = sum(x[0] for x in ins)
    return np.array([s + i, (ins[0][1] + 1) if ins else 0.0])


if __name__ == "__main__":
    marker = os.path.join(sys.argv[1], "died")
    workers = sorted(dagmpi.workers())
    n = len(workers)  # one point per rank: point 1 is on the second worker
    proj = Projection("offsets", (-1, 0, 1))
    u = dagmpi.spawn_many(step, n, marker)
    t0 = time.monotonic()
    for k in range(20):
        u = dagmpi.spawn_many(step, n, marker, reads=[(u, proj)])
    try:
        u.fetch(timeout=60)
    except (dagmpi.WorkerLostError, dagmpi.UpstreamError, dagmpi.TaskError) as exc:
        print("failed as expected:", type(exc).__name__, str(exc)[:200], flush=True)
    else:
        raise AssertionError("the chain must fail: a rank with its points died")
    assert os.path.exists(marker)
    assert time.monotonic() - t0 < 30
    # the job goes on, on the ranks left
    a = dagmpi.spawn_many(step, 7, marker)
    b = dagmpi.spawn_many(step, 7, marker, reads=[(a, Projection("same"))])
    got = [float(x[0]) for x in b.fetch(timeout=60)]
    assert got == [2.0 * i for i in range(7)], got
    print("LAUNCH-DEATH-OK", flush=True)
