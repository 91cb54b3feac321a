"""dagmpi.spawn_many (launches of many point tasks) against plain Python: projections,
layouts, streaming with release, errors and bad input."""

import numpy as np

import dagmpi
from dagmpi import Layout, Projection


def first(i, scale):
    return np.array([float(i) * scale])


def total(i, *ins):
    return np.array([sum(x[0] for x in ins) + i])


def boom(i):
    if i == 3:
        raise ZeroDivisionError("point 3 divides by zero")
    return np.array([1.0])


def slow(i, scale):
    import time

    time.sleep(0.3)
    return np.array([float(i) * scale])


def flaky(i, where):
    """Raises OSError the first time each point runs (a marker file per point)."""
    import os

    mark = os.path.join(where, f"{i}")
    if not os.path.exists(mark):
        open(mark, "w").close()
        raise OSError(f"point {i}: a transient failure")
    return np.array([float(i)])


def add_all(xs, extra=0.0):
    return float(sum(x[0] for x in xs)) + extra


def reference(prev, proj, n):
    return [sum(prev[j] for j in proj.points(i, len(prev))) + i for i in range(n)]


def check(name, got, want):
    got = [float(x[0]) for x in got]
    assert got == [float(w) for w in want], (name, got, want)
    print("ok", name, flush=True)


if __name__ == "__main__":
    workers = sorted(r for r in dagmpi.workers())
    n = 3 * len(workers) + 1
    a = dagmpi.spawn_many(first, n, 2.0)
    vals = [2.0 * i for i in range(n)]
    check("first launch", a.fetch(), vals)
    for proj, layout in [(Projection("offsets", (-1, 0, 1)), "blocks"),
                         (Projection("offsets", (-2, 0, 1), wrap=True), "cyclic"),
                         (Projection("xor", (2,)), Layout.of_table([workers[(7 * i) % len(workers)] for i in range(n)])),
                         (Projection("parent", (2,)), "blocks"),
                         (Projection("same"), "cyclic"),
                         (Projection("all"), "blocks")]:
        b = dagmpi.spawn_many(total, n, reads=[(a, proj)], layout=layout)
        vals2 = reference(vals, proj, n)
        check(f"reads {proj.kind} layout {layout if isinstance(layout, str) else 'table'}", b.fetch(), vals2)
    # a stencil time loop of launches streams: handles dropped, values released
    proj = Projection("offsets", (-1, 0, 1))
    u, ref = a, vals
    for step in range(200):
        u = dagmpi.spawn_many(total, n, reads=[(u, proj)])
        ref = reference(ref, proj, n)
    check("200 launches", u.fetch(), ref)
    del a, b
    from dagmpi.runtime import context
    sched = context._runtime.driver.scheduler
    live = len(sched.launches)
    assert live <= 3, f"{live} launches kept after the loop"
    print("ok released", live, sched.n_launches, sched.n_points, flush=True)
    # zero points, and plain tasks next to launches
    z = dagmpi.spawn_many(first, 0, 1.0)
    assert z.fetch() == [] and len(z) == 0
    assert dagmpi.fetch(dagmpi.spawn(sum, [1, 2])) == 3
    print("ok empty and plain", flush=True)
    # a failing point fails its launch with the user's error, and the launches that read it
    bad = dagmpi.spawn_many(boom, n)
    after = dagmpi.spawn_many(total, n, reads=[(bad, Projection("same"))])
    try:
        bad.fetch()
    except ZeroDivisionError as exc:
        assert "divides by zero" in str(exc)
    else:
        raise AssertionError("the failing launch must raise")
    try:
        after.fetch()
    except dagmpi.TaskError as exc:
        assert "one of its inputs failed" in str(exc), exc
    else:
        raise AssertionError("a launch reading a failed point must fail")
    dagmpi.wait([after])
    check("the job goes on", dagmpi.spawn_many(first, n, 1.0).fetch(), list(range(n)))
    # points are tasks: read by plain tasks (before and after their launch ends),
    # fetched and waited for one by one, pickled as handles, failing with their launch
    import pickle

    s = dagmpi.spawn_many(slow, n, 3.0)
    early = dagmpi.spawn(add_all, [s[1], s[-1]], extra=0.5)  # (its launch still runs)
    alone = dagmpi.spawn(np.sum, s[n // 2])  # (the cheap path: a handle at the top level)
    assert dagmpi.fetch(early) == 3.0 * (1 + n - 1) + 0.5 and dagmpi.fetch(alone) == 3.0 * (n // 2), \
        (dagmpi.fetch(early), dagmpi.fetch(alone))
    p2, p0 = s[2], s[0]
    done, _ = dagmpi.wait([p2, p0])
    assert done == {p2, p0} and p2.done() and float(p2.fetch()[0]) == 6.0 and float(dagmpi.fetch(p0)[0]) == 0.0
    late = dagmpi.spawn(add_all, (s[0], s[n - 1]))
    assert dagmpi.fetch(late) == 3.0 * (n - 1)
    copy = pickle.loads(pickle.dumps(s[3]))  # (a counted handle, like a pickled Task)
    assert type(copy) is dagmpi.Task and float(dagmpi.fetch(copy)[0]) == 9.0
    assert repr(s[-1]).startswith(f"<Point {n - 1} of slow")
    keep = s[n - 2]
    del s, p2, p0, done, early, alone, late
    assert float(keep.fetch()[0]) == 3.0 * (n - 2)  # the point keeps its launch's values alive
    del keep, copy
    import gc
    import time

    gc.collect()
    def kept():  # (rank 0's tables, read while its loop may change them: copied first)
        while True:
            try:
                return ([r.name for r in list(sched.launches.values())],
                        [t.id for t in list(sched.tasks.values()) if t.launch is not None])
            except RuntimeError:
                pass

    deadline = time.monotonic() + 10
    while "slow" in kept()[0] and time.monotonic() < deadline:
        dagmpi.spawn(sum, [1]).fetch()  # (the releases travel with the next messages)
    assert "slow" not in kept()[0] and not kept()[1], kept()  # no launch, no point record left
    bad2 = dagmpi.spawn_many(boom, n)
    reader = dagmpi.spawn(add_all, [bad2[0]])
    for t, kind in [(bad2[3], ZeroDivisionError), (bad2[0], ZeroDivisionError), (reader, dagmpi.UpstreamError)]:
        try:
            dagmpi.fetch(t)
        except kind:
            pass
        else:
            raise AssertionError(f"{t!r} must fail with {kind.__name__}")
    try:
        bad2[n]
    except IndexError:
        pass
    else:
        raise AssertionError("a point past the end")
    # a launch as an argument of spawn: the list of its points' values
    s2 = dagmpi.spawn_many(first, n, 2.0)
    assert dagmpi.fetch(dagmpi.spawn(add_all, s2)) == sum(2.0 * i for i in range(n))
    assert dagmpi.fetch(dagmpi.spawn(len, {"all": s2})) == 1  # (nested: the general pickler)
    print("ok points are tasks", flush=True)
    # retries: a point that raises runs again where it is
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        check("retried points", dagmpi.spawn_many(flaky, n, d, retries=1).fetch(), list(range(n)))
    for kw in [{}, {"retries": 2, "retry_on": ValueError}]:
        with tempfile.TemporaryDirectory() as d:
            try:
                dagmpi.spawn_many(flaky, n, d, **kw).fetch()
            except OSError as exc:
                assert "transient" in str(exc), exc
            else:
                raise AssertionError(f"no retry with {kw}: the launch must fail")
    print("ok retries", flush=True)
    # bad input: said at once, nothing spawned
    for call, kind, words in [
            (lambda: dagmpi.spawn_many(first, -1), ValueError, "n >= 0"),
            (lambda: dagmpi.spawn_many(42, 3), TypeError, "callable"),
            (lambda: dagmpi.spawn_many(first, 3, 1.0, layout="spiral"), ValueError, "layout"),
            (lambda: dagmpi.spawn_many(first, 3, 1.0, layout=Layout.blocks(4, workers)), ValueError, "of 3 points"),
            (lambda: dagmpi.spawn_many(total, 3, reads=[(u, "same")]), TypeError, "Projection"),
            (lambda: dagmpi.spawn_many(first, 3, dagmpi.spawn(float, 1)), TypeError, "may not hold tasks"),
            (lambda: pickle.dumps(u), TypeError, "cannot be pickled into other values"),
            (lambda: dagmpi.spawn_many(first, 3, 1.0, retries=-1), ValueError, "retries")]:
        try:
            call()
        except kind as exc:
            assert words in str(exc), (words, exc)
        except Exception as exc:  # (a pickling wrapper) must still name the reason
            assert words in str(exc) or words in str(exc.__cause__), (words, exc)
        else:
            raise AssertionError(f"no error: {words}")
    print("ok errors", flush=True)
    print("ALL OK", flush=True)
