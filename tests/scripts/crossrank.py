"""Dependencies across ranks: consumers run ahead and get their inputs pushed by the producers.

    crossrank.py stencil [STEPS]   a 1-D stencil (3 neighbours, width 2 x workers), every value checked
    crossrank.py steal             a task whose input was pushed to a busy rank is stolen by an idle one
    crossrank.py fail              a producer fails: its consumers that ran ahead on other ranks fail
                                   with UpstreamError, unrelated work goes on
    crossrank.py die MARKER_DIR    (ULFM) a consumer's rank dies while it waits for a pushed input:
                                   the job goes on and every value is right
"""
import collections
import os
import signal
import sys
import time

import numpy as np

import dagmpi
from dagmpi.runtime import context


def point(i, t, *neighbours):
    """One stencil point: its own id plus its neighbours' values (checked exactly)."""
    return np.array([float(i + t + sum(float(v[0]) for v in neighbours) % 1e6), context.current_client().rank])


def reference(width, steps):
    vals = [float(i + 0) for i in range(width)]
    for t in range(1, steps + 1):
        vals = [float(i + t + sum(vals[j] for j in (i - 1, i, i + 1) if 0 <= j < width) % 1e6)
                for i in range(width)]
    return vals


def stencil(width, steps, slow=None):
    prev = [dagmpi.spawn(point, i, 0) for i in range(width)]
    every = [prev]
    for t in range(1, steps + 1):
        fn = point if slow is None else slow
        prev = [dagmpi.spawn(fn, i, t, *[prev[j] for j in (i - 1, i, i + 1) if 0 <= j < width])
                for i in range(width)]
        every.append(prev)
    return every


def sched():
    return context._runtime.driver.scheduler


def where(x=None, seconds=0.0):
    time.sleep(seconds)
    return context.current_client().rank


def add(a, b):
    return a + b, context.current_client().rank


def boom(x):
    raise ValueError("the producer failed")


def main():
    mode = sys.argv[1]
    workers = dagmpi.workers()
    if mode == "stencil":
        steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
        width = 2 * len(workers)
        every = dagmpi.fetch([p for step in stencil(width, steps) for p in step])
        got = every[-width:]
        want = reference(width, steps)
        assert [g[0] for g in got] == want, (got, want)
        s = sched()
        if len(workers) > 1:
            assert s.n_run_ahead > width * steps // 2, s.n_run_ahead  # most steps ran ahead
            # and the points stayed spread over the ranks (no collapse onto one)
            ran = collections.Counter(int(g[1]) for g in every)
            assert all(ran[r] >= len(every) / (4 * len(workers)) for r in workers), ran
        print(f"CROSSRANK-STENCIL-OK width={width} steps={steps} run_ahead={s.n_run_ahead}")
    elif mode == "steal":
        a, b = workers[0], workers[1]
        on = lambda r: dagmpi.Options(scope=dagmpi.scope(rank=r))  # noqa: E731
        dagmpi.fetch([dagmpi.spawn(where, None, 0.001) for _ in range(20)])  # learn: short tasks
        p1 = dagmpi.spawn(where, None, options=on(a))
        dagmpi.wait([p1])
        long = dagmpi.spawn(where, None, 1.5, options=on(a))  # rank a is busy for 1.5 s
        p2 = dagmpi.spawn(where, None, 0.2, options=on(b))
        q = dagmpi.spawn(where, p2, options=on(b))  # (a task of the consumer's depth on b)
        c = dagmpi.spawn(add, p1, p2)  # runs ahead on a: p2 is pushed there from b when it ends
        s = sched()
        for _ in range(100):  # (the spawn reaches the scheduler on the driver's loop)
            rec = s.tasks.get(c.id)
            if rec is not None and rec.worker is not None:
                break
            time.sleep(0.005)
        assert rec.worker == a, (rec.worker, a)
        value, ran_on = dagmpi.fetch(c)
        assert value == a + b, value
        assert ran_on != a and s.n_stolen >= 1, (ran_on, s.n_stolen)
        dagmpi.fetch([long, q])
        print(f"CROSSRANK-STEAL-OK stolen={s.n_stolen} ran_on={ran_on}")
    elif mode == "fail":
        a, b = workers[0], workers[1]
        on = lambda r: dagmpi.Options(scope=dagmpi.scope(rank=r))  # noqa: E731
        bad = dagmpi.spawn(boom, dagmpi.spawn(where, None, 0.3, options=on(a)), options=on(a))
        good = dagmpi.spawn(where, None, 0.3, options=on(b))
        kids = [dagmpi.spawn(add, bad, good) for _ in range(4)]
        grandkids = [dagmpi.spawn(add, k, good) for k in kids]
        fine = dagmpi.spawn(add, good, good)
        for t in kids + grandkids:
            try:
                dagmpi.fetch(t)
            except dagmpi.UpstreamError as exc:
                assert "the producer failed" in str(exc), exc
            else:
                raise AssertionError("a consumer of a failed task did not fail")
        assert dagmpi.fetch(fine)[0] == 2 * b
        # the ranks are still fine
        got = dagmpi.fetch(stencil(2 * len(workers), 50)[-1])
        assert [g[0] for g in got] == reference(2 * len(workers), 50)
        print("CROSSRANK-FAIL-OK")
    elif mode == "die":
        marker = os.path.join(sys.argv[2], "died")
        victim = workers[-1]

        def slow_point(i, t, *neighbours):
            if t == 40 and context.current_client().rank == victim:
                try:
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.002)
            return point(i, t, *neighbours)

        width, steps = 2 * len(workers), 80
        got = dagmpi.fetch(stencil(width, steps, slow_point)[-1])
        assert [g[0] for g in got] == reference(width, steps), got
        assert os.path.exists(marker), "nothing died"
        s = sched()
        assert s.n_workers_lost == 1, s.n_workers_lost
        assert victim not in {int(g[1]) for g in got}
        print(f"CROSSRANK-DIE-OK rescheduled={s.n_rescheduled} recomputed={s.n_recomputed}")
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
