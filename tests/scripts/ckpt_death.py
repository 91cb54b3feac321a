"""A worker rank dies (SIGKILL) holding points of a checkpointed launch whose lineage
ends in a loop released since (a loop's points are not computed again one by one): the
lost points are read back from the checkpoint where the launch's layout now puts them,
and what reads the launch afterwards gets the right values.

    DAGMPI_CHECKPOINT=DIR ckpt_death.py MARKER_DIR [save | restored]

``save``: compute and save the launch, and stop (no death).  ``restored``, run after
``save`` with the same directory: the launch is read back from the checkpoint when it is
launched and not saved again (``checkpoint=False``); its lost points are read back from
the first run's files all the same.
"""
import os
import signal
import sys
import time

import numpy as np

import dagmpi
import dagmpi.runtime.context
from dagmpi import Projection


def step(i, *ins):
    return np.array([float(i) + sum(x[0] for x in ins)])


def same(i, x):
    return x.copy()


def plus_one(i, x):
    return x + 1.0


def die(marker):
    if not os.path.exists(marker):  # (once: it is not run again where it would kill another)
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    marker = os.path.join(sys.argv[1], "died")
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    workers = sorted(dagmpi.workers())
    n = 2 * len(workers)
    proj = Projection("offsets", (-1, 0, 1))
    want = [float(i) for i in range(n)]
    for _ in range(1, 5):
        want = [float(i) + sum(want[j] for j in proj.points(i, n)) for i in range(n)]
    loop = dagmpi.spawn_loop(step, n, 5, step_reads=proj)
    saved = dagmpi.spawn_many(same, n, reads=[(loop, Projection("same"))], checkpoint=mode != "restored")
    assert [float(x[0]) for x in saved.fetch(timeout=60)] == want
    if mode == "save":
        print("CKPT-DEATH-OK saved", flush=True)
        sys.exit(0)
    if mode == "restored":
        restored = dagmpi.runtime.context._runtime.driver.n_restored
        assert restored >= n, restored  # (read back when launched, all of its points)
    del loop  # (released: only the checkpointed launch's saved values are left of it)
    time.sleep(1.0)  # (the saves are made durable meanwhile: DAGMPI_CHECKPOINT_INTERVAL)
    last = workers[-1]
    dagmpi.spawn(die, marker, options=dagmpi.Options(scope=dagmpi.scope(ranks=[last])))
    deadline = time.monotonic() + 30
    while last in dagmpi.workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert last not in dagmpi.workers(), "no rank died"
    after = dagmpi.spawn_many(plus_one, n, reads=[(saved, Projection("same"))]).fetch(timeout=60)
    assert [float(x[0]) for x in after] == [w + 1.0 for w in want], (after, want)
    assert [float(x[0]) for x in saved.fetch(timeout=60)] == want
    print("CKPT-DEATH-OK", flush=True)
