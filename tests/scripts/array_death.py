"""A worker rank dies (SIGKILL) inside a block of a map_overlap time loop under ULFM:
each step is two launches (halos, then the step), and the blocks the dead rank held are
computed again from the launches' lineage (back to the first step), so the loop gives
numpy's answer.  With ``ckpt`` (and ``DAGMPI_CHECKPOINT`` set) the loop checkpoints
its array every third step (``da.checkpoint``: a launch whose points are saved), and
the cone of points computed again stops there: they are read back from the files.

With ``loop`` the 12 steps are one ``map_overlap_loop`` (under ULFM: launches kept for
their lineage, step by step): the rank dies at its top-left block's 6th step, and the
result is numpy's.

With ``loop-ended`` a rank dies after a ``map_overlap_loop`` ended, while its result is
held (its blocks waited for one by one and fetched): fetched again, and the next step,
give numpy's answer.

    array_death.py MARKER_DIR [ckpt | loop | loop-ended]
"""
import os
import signal
import sys
import time

import numpy as np

import dagmpi
import dagmpi.array as da


def smooth(u, marker, step):
    """A 5-point average; the block at the top-left corner of step 6 kills its rank, once."""
    if step == 6 and u[0, 0] == -1.0:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            time.sleep(0.5)  # (the checkpoint files of the steps before are written meanwhile)
            os.kill(os.getpid(), signal.SIGKILL)
    return (u[1:-1, 1:-1] + u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:]) / 5


def die(marker):
    if not os.path.exists(marker):  # (once: it is not run again where it would kill another)
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


def smooth_counted(u, marker):
    """``smooth``; the top-left block's 6th call on a rank kills that rank, once."""
    if u[0, 0] == -1.0:
        with open(f"{marker}-calls-{os.getpid()}", "a+") as fh:
            fh.write("x")
            fh.seek(0)
            calls = len(fh.read())
        if calls == 6:
            return smooth(u, marker, 6)
    return smooth(u, marker, 0)


if __name__ == "__main__":
    marker = os.path.join(sys.argv[1], "died")
    ckpt = sys.argv[2:] == ["ckpt"]
    if sys.argv[2:] == ["loop"]:
        want = np.zeros((32, 32))
        for _ in range(12):
            p = np.pad(want, 1, constant_values=-1.0)
            want = (p[1:-1, 1:-1] + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 5
        A = da.zeros((32, 32), blocks=8).map_overlap_loop(smooth_counted, 12, 1, boundary=-1.0, marker=marker)
        got = A.to_numpy(timeout=120)
        assert os.path.exists(marker), "no rank died"
        np.testing.assert_allclose(got, want, rtol=1e-13)
        print("ARRAY-DEATH-OK loop", flush=True)
        sys.exit(0)
    if sys.argv[2:] == ["loop-ended"]:
        want = np.zeros((32, 32))
        for _ in range(6):
            p = np.pad(want, 1, constant_values=-1.0)
            want = (p[1:-1, 1:-1] + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 5
        B = da.zeros((32, 32), blocks=8).map_overlap_loop(smooth, 5, 1, boundary=-1.0, marker=marker, step=0)
        dagmpi.wait(list(B.tasks.flat))
        before = B.to_numpy(timeout=60)
        last = sorted(dagmpi.workers())[-1]
        dagmpi.spawn(die, marker, options=dagmpi.Options(scope=dagmpi.scope(ranks=[last])))
        deadline = time.monotonic() + 30
        while last in dagmpi.workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert last not in dagmpi.workers(), "no rank died"
        np.testing.assert_allclose(B.to_numpy(timeout=120), before, rtol=1e-13)  # (fetched while it runs again)
        got = B.map_overlap(smooth, 1, boundary=-1.0, marker=marker, step=0).to_numpy(timeout=120)
        np.testing.assert_allclose(got, want, rtol=1e-13)
        print("ARRAY-DEATH-OK loop-ended", flush=True)
        sys.exit(0)
    x = np.zeros((32, 32))
    want = x.copy()
    A = da.zeros((32, 32), blocks=8)
    assert A._launch is not None, "the array layer issues launches under ULFM too"
    for step in range(12):
        A = A.map_overlap(smooth, 1, boundary=-1.0, marker=marker, step=step)
        p = np.pad(want, 1, constant_values=-1.0)
        want = (p[1:-1, 1:-1] + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 5
        if ckpt and step % 3 == 2:
            A = da.checkpoint(A, f"u{step}")
    got = A.to_numpy(timeout=120)
    assert os.path.exists(marker), "no rank died"
    np.testing.assert_allclose(got, want, rtol=1e-13)
    print("ARRAY-DEATH-OK", flush=True)
