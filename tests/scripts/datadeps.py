"""dagmpi.datadeps under mpiexec: the orders In/Out/InOut imply, aliasing views,
concurrency of disjoint views, copy-back into the driver's arrays, DArray blocks
that stay on the workers, failures and refusals.  Prints "ok <check>" per check
and DATADEPS-OK at the end; any failure raises (the job exits non-zero).

The task that comes first in program order is the slow one in each ordering
check, so a missing edge would let the later task run first and change the values.
The task bodies here serve tests/unit/test_datadeps.py too.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import dagmpi
import dagmpi.array as da
from dagmpi import In, InOut, Out


def check(name, cond, detail=""):
    assert cond, f"{name}: {detail}"
    print("ok", name, flush=True)


def add_slowly(a, d, delay=0.3):
    time.sleep(delay)
    a += d


def set_to(a, v, delay=0.0):
    time.sleep(delay)
    a[...] = v


def total(a, delay=0.0):
    time.sleep(delay)
    return float(a.sum())


def copy_of(a, delay=0.0):
    time.sleep(delay)
    return a.copy()


def rank_of(a, d):
    a += d
    return dagmpi.info()["rank"]


def meet(a, me, other, timeout=30.0):
    """Create the marker ``me``, then wait for ``other``: both tasks must run at once."""
    Path(me).touch()
    deadline = time.monotonic() + timeout
    while not os.path.exists(other):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never appeared: the two tasks did not run at the same time")
        time.sleep(0.01)
    a += 1
    return dagmpi.info()["rank"]


def fail(a):
    raise KeyError("tile 3 is broken")


def two_writes(x, y):
    x += 1
    y += 2
    return "both"


def region_in_a_task(n):
    x = np.zeros(n)
    with dagmpi.datadeps():
        for i in range(n):
            dagmpi.spawn(set_to, Out(x[i:i + 1]), float(i))
        dagmpi.spawn(add_slowly, InOut(x), 1.0, delay=0.0)
    return x


def gs_block(left, x, right, b):
    """Gauss-Seidel sweep over one block of -x[j-1] + 2 x[j] - x[j+1] = b[j], in place:
    ``left``/``right`` are the neighbours' edge points (empty at the ends)."""
    lo = left[0] if left.size else 0.0
    for j in range(x.size):
        hi = x[j + 1] if j + 1 < x.size else (right[0] if right.size else 0.0)
        x[j] = (b[j] + lo + hi) / 2.0
        lo = x[j]


def gauss_seidel(n=96, nb=6, sweeps=5):
    """Blocked Gauss-Seidel with InOut blocks against the sequential sweep: equal, bit for bit."""
    b = np.linspace(1.0, 2.0, n)
    seq = np.zeros(n)
    for _ in range(sweeps):
        gs_block(seq[:0], seq, seq[:0], b)
    x = np.zeros(n)
    size = n // nb
    with dagmpi.datadeps():
        for _ in range(sweeps):
            for i in range(nb):
                lo, hi = i * size, (i + 1) * size
                dagmpi.spawn(gs_block, In(x[max(lo - 1, 0):lo]), InOut(x[lo:hi]), In(x[hi:hi + 1]), b[lo:hi])
    return x, seq


def main():
    workers = dagmpi.workers()
    size = dagmpi.info()["size"]

    x = np.zeros(1000)
    with dagmpi.datadeps():
        dagmpi.spawn(add_slowly, InOut(x), 1.0)
        raw = dagmpi.spawn(total, In(x))
        war = dagmpi.spawn(total, In(x), delay=0.3)
        dagmpi.spawn(set_to, Out(x), 5.0)
        dagmpi.spawn(set_to, Out(x[:500]), 2.0)   # write after write, partial
        last = dagmpi.spawn(total, In(x))
    check("read after write", dagmpi.fetch(raw) == 1000.0, dagmpi.fetch(raw))
    check("write after read", dagmpi.fetch(war) == 1000.0, dagmpi.fetch(war))
    check("write after write", dagmpi.fetch(last) == 3500.0 and x[0] == 2 and x[-1] == 5, x)

    A = np.zeros((64, 64))
    cols = A[:, 32:]
    with dagmpi.datadeps():
        dagmpi.spawn(set_to, Out(A[:, :32]), 1.0, delay=0.3)
        top = dagmpi.spawn(copy_of, In(A[:16]))
        dagmpi.spawn(add_slowly, InOut(A[8:24, 16:48]), 10.0, delay=0.1)
        dagmpi.spawn(add_slowly, InOut(cols), 100.0, delay=0.05)
        whole = dagmpi.spawn(copy_of, In(A))
    expect_top = np.zeros((16, 64))
    expect_top[:, :32] = 1
    expect = np.zeros((64, 64))
    expect[:, :32] = 1
    expect[8:24, 16:48] += 10
    expect[:, 32:] += 100
    check("overlapping views are ordered", np.array_equal(dagmpi.fetch(top), expect_top))
    check("views compose", np.array_equal(dagmpi.fetch(whole), expect))
    check("the driver's array is updated in place", np.array_equal(A, expect) and
          np.array_equal(cols, expect[:, 32:]))

    if len(workers) >= 2:
        tmp = tempfile.mkdtemp(prefix="datadeps-")
        try:
            a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
            B = np.zeros((32, 32))
            on = [dagmpi.Options(scope=dagmpi.scope(rank=r)) for r in workers[:2]]
            with dagmpi.datadeps():  # column halves: byte ranges overlap, index boxes do not
                r1 = dagmpi.spawn(meet, InOut(B[:, :16]), a, b, options=on[0])
                r2 = dagmpi.spawn(meet, InOut(B[:, 16:]), b, a, options=on[1])
            check("disjoint views run at the same time", np.array_equal(B, np.ones((32, 32))) and
                  dagmpi.fetch([r1, r2]) == workers[:2], dagmpi.fetch([r1, r2]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    D = da.zeros((64, 64), blocks=(32, 32))
    old = D.tasks[0, 1]
    with dagmpi.datadeps():
        where = dagmpi.spawn(rank_of, InOut(D, block=(0, 1)), 3.0)
        r = dagmpi.spawn(total, In(D, block=(0, 1)))
        dagmpi.spawn(add_slowly, InOut(D, block=(1, 1)), 1.0, delay=0.05)
    rank = dagmpi.fetch(where)
    check("a DArray block is updated on a worker", rank in workers and (size == 1 or rank != 0), rank)
    check("a DArray block stays distributed", D.tasks[0, 1] is not old and not D.tasks[0, 1]._has_value)
    expect = np.zeros((64, 64))
    expect[:32, 32:] = 3
    expect[32:, 32:] = 1
    check("the DArray has the writes", dagmpi.fetch(r) == 3 * 32 * 32 and np.array_equal(D.to_numpy(), expect))
    check("the old block is intact", np.array_equal(dagmpi.fetch(old), np.zeros((32, 32))))

    u, v = np.zeros(3), np.zeros(3)
    with dagmpi.datadeps():
        w = dagmpi.spawn(two_writes, InOut(u), InOut(v))
        rv = dagmpi.spawn(total, In(v))
    check("a task writing two data", dagmpi.fetch(w) == "both" and dagmpi.fetch(rv) == 6.0 and
          np.array_equal(u, np.ones(3)))

    y = np.zeros(4)
    try:
        with dagmpi.datadeps():
            dagmpi.spawn(fail, InOut(y))
            dagmpi.spawn(add_slowly, InOut(y), 1.0, delay=0.0)
    except KeyError as exc:
        check("a failure raises its own type at exit", "tile 3 is broken" in str(exc) and not y.any(), exc)
    else:
        raise AssertionError("the failing region did not raise")

    try:
        dagmpi.spawn(total, In(y))
    except TypeError as exc:
        check("In outside a region is refused", "dagmpi.datadeps()" in str(exc), exc)
    else:
        raise AssertionError("In outside a region was accepted")

    x, seq = gauss_seidel()
    check("Gauss-Seidel with InOut blocks gives the sequential answer", np.array_equal(x, seq),
          np.abs(x - seq).max())

    got = dagmpi.fetch(dagmpi.spawn(region_in_a_task, 6))
    check("a task opens its own region", np.array_equal(got, np.arange(6.0) + 1), got)
    print("DATADEPS-OK", flush=True)


if __name__ == "__main__":
    main()
