"""A worker rank dies (SIGKILL) inside a point of a dagmpi.spawn_loop (ULFM): the loop
fails at once with a WorkerLostError that says its points are not computed again one by one,
nothing hangs, and the script runs the loop again on the ranks left (from the launch
it started from, which rank 0 keeps and computes again where needed) and gets the
right values.

    loop_death.py MARKER_DIR
"""
import os
import signal
import sys
import time

import numpy as np

import dagmpi
from dagmpi import Projection


def step(i, marker, *ins):
    if i == 1 and ins and ins[0][1] >= 5 and not os.path.exists(marker):  # point 1, 6th step
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return value(i, *ins)


def value(i, *ins):
    s = sum(x[0] for x in ins)
    return np.array([s + i, (ins[0][1] + 1) if ins else 0.0])


if __name__ == "__main__":
    marker = os.path.join(sys.argv[1], "died")
    workers = sorted(dagmpi.workers())
    n = 2 * len(workers)
    proj = Projection("offsets", (-1, 0, 1))
    u0 = dagmpi.spawn_many(step, n, marker)
    want = [np.array([float(i), 0.0]) for i in range(n)]
    for _ in range(12):
        want = [value(i, *[want[j] for j in proj.points(i, n)]) for i in range(n)]
    t0 = time.monotonic()
    loop = dagmpi.spawn_loop(step, n, 12, marker, reads=[(u0, proj)], step_reads=proj)
    try:
        loop.fetch(timeout=60)
    except dagmpi.WorkerLostError as exc:
        assert "not computed again one by one" in str(exc), exc
        print("loop failed:", exc, flush=True)
    else:
        raise AssertionError("the loop must fail when a rank dies in it")
    assert os.path.exists(marker), "no rank died"
    assert time.monotonic() - t0 < 30
    # run again on the ranks left, from the same start (its lost points computed again)
    again = dagmpi.spawn_loop(step, n, 12, marker, reads=[(u0, proj)], step_reads=proj)
    got = again.fetch(timeout=60)
    np.testing.assert_array_equal(np.array(got), np.array(want))
    print("loop run again:", [float(x[0]) for x in got], flush=True)
    print("LOOP-DEATH-OK", flush=True)
