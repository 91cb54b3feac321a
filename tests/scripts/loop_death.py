"""A worker rank dies (SIGKILL) inside a point of a dagmpi.spawn_loop (ULFM): the loop
runs again from the start on the ranks left (the launch it started from is computed
again where its points were lost), gives the right values, and nothing hangs; a loop
that had ended and loses values with a rank runs again too (what it read is held while
it is), but one whose points a task reads one by one fails with a WorkerLostError that
says why.

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


def die(marker):
    if not os.path.exists(marker):  # (once: it is not run again where it would kill another)
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def kill_rank(rank, marker):
    """Kill worker ``rank`` (once) and wait until rank 0 knows it died."""
    before = len(dagmpi.workers())
    dagmpi.spawn(die, marker, options=dagmpi.Options(scope=dagmpi.scope(ranks=[rank])))
    deadline = time.monotonic() + 30
    while len(dagmpi.workers()) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(dagmpi.workers()) < before, "the rank did not die"


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
    later = dagmpi.spawn_many(step, n, marker, reads=[(loop, Projection("same"))])
    got = loop.fetch(timeout=60)
    assert os.path.exists(marker), "no rank died"
    np.testing.assert_array_equal(np.array(got), np.array(want))
    np.testing.assert_array_equal(np.array(later.fetch(timeout=60)),
                                  np.array([value(i, want[i]) for i in range(n)]))
    assert time.monotonic() - t0 < 30
    print("loop run again:", [float(x[0]) for x in got], flush=True)
    # a loop that has ended loses the values a second rank held: it runs again from what
    # it read (a launch no handle holds: the loop holds it), and what reads it gets its values
    left = sorted(dagmpi.workers())
    done = dagmpi.spawn_loop(step, n, 3, marker, reads=[(dagmpi.spawn_many(step, n, marker), proj)], step_reads=proj,
                             layout=dagmpi.Layout.cyclic(n, left))
    want = [value(i) for i in range(n)]
    for _ in range(3):
        want = [value(i, *[want[j] for j in proj.points(i, n)]) for i in range(n)]
    np.testing.assert_array_equal(np.array(done.fetch(timeout=60)), np.array(want))
    kill_rank(left[-1], marker + "-2")
    after = dagmpi.spawn_many(step, n, marker, reads=[(done, Projection("same"))]).fetch(timeout=60)
    np.testing.assert_array_equal(np.array(after), np.array([value(i, want[i]) for i in range(n)]))
    np.testing.assert_array_equal(np.array(done.fetch(timeout=60)), np.array(want))
    print("ended loop run again:", [float(x[0]) for x in after], flush=True)
    # ... but not one whose point a task waits to read on its own: that task fails, said so
    left = sorted(dagmpi.workers())
    held = dagmpi.spawn_loop(step, n, 3, marker, step_reads=proj, layout=dagmpi.Layout.cyclic(n, left))
    held.fetch(timeout=60)
    slow = dagmpi.spawn(time.sleep, 3, options=dagmpi.Options(scope=dagmpi.scope(ranks=[left[0]])))
    reader = dagmpi.spawn(lambda x, _: float(x[0]), held[n - 1], slow)
    kill_rank(left[-1], marker + "-3")
    try:
        dagmpi.fetch(reader, timeout=60)
    except (dagmpi.WorkerLostError, dagmpi.TaskError) as exc:
        assert f"worker rank {left[-1]} died" in str(exc), exc
        print("ended loop lost:", exc, flush=True)
    else:
        raise AssertionError("a task reading a point of a loop whose values died with a rank must fail")
    print("LOOP-DEATH-OK", flush=True)
