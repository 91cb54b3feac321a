"""A worker rank dies (SIGKILL) inside a point of a chain of launches (ULFM): the points
it held, of the launches still needed and of the one running, are computed again from
the launches' lineage on the ranks left (back through the released launches), and the
chain gives the right answer; new launches whose layouts name the dead rank run on the
ranks left.  With ``twice`` (5 ranks or more) a second rank dies later in the chain,
after the first death moved points; with ``flaky`` every point run after the death
raises ``OSError`` once (``retries=2``): each runs again where it is, those computed
again too.

    launch_death.py MARKER_DIR [twice|flaky]
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
        die_once(marker)
    if i == 3 and ins and ins[0][1] >= 12 and os.path.exists(marker + "-twice"):
        die_once(marker + "2")  # (twice: point 3 of the 13th launch kills a second rank)
    if os.path.exists(marker + "-flaky") and os.path.exists(marker):
        # (flaky: after the death, every point -- those computed again too -- raises once)
        step_no = ins[0][1] + 1 if ins else 0
        try:
            fd = os.open(f"{marker}-flaky-{i}-{step_no}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            raise OSError(f"flaky point {i} of step {step_no}")
    return value(i, *ins)


def die_once(marker):
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def value(i, *ins):
    s = sum(x[0] for x in ins)
    return np.array([s + i, (ins[0][1] + 1) if ins else 0.0])


if __name__ == "__main__":
    marker = os.path.join(sys.argv[1], "died")
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    if mode in ("twice", "flaky"):
        open(f"{marker}-{mode}", "w").close()
    opts = {"retries": 2, "retry_on": OSError} if mode == "flaky" else {}
    workers = sorted(dagmpi.workers())
    n = len(workers)  # one point per rank: point 1 is on the second worker
    proj = Projection("offsets", (-1, 0, 1))
    u = dagmpi.spawn_many(step, n, marker, **opts)
    want = [np.array([float(i), 0.0]) for i in range(n)]
    t0 = time.monotonic()
    for k in range(20):
        u = dagmpi.spawn_many(step, n, marker, reads=[(u, proj)], **opts)
        want = [value(i, *[want[j] for j in proj.points(i, n)]) for i in range(n)]
    got = u.fetch(timeout=60)
    assert os.path.exists(marker), "no rank died"
    assert os.path.exists(marker + "2") == (mode == "twice")
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert time.monotonic() - t0 < 30
    print("chain computed again:", [float(x[0]) for x in got], flush=True)
    # the job goes on, on the ranks left: a layout naming the dead rank too
    a = dagmpi.spawn_many(step, n, marker, layout=dagmpi.Layout.of_table(workers), **opts)
    b = dagmpi.spawn_many(step, n, marker, reads=[(a, Projection("same"))], **opts)
    got = [float(x[0]) for x in b.fetch(timeout=60)]
    assert got == [2.0 * i for i in range(n)], got
    c = dagmpi.spawn_many(step, 7, marker, **opts)
    got = [float(x[0]) for x in c.fetch(timeout=60)]
    assert got == [float(i) for i in range(7)], got
    print("LAUNCH-DEATH-OK", flush=True)
