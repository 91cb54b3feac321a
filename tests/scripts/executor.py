"""dagmpi.Executor keeps the concurrent.futures contract (in-process and under mpiexec).

Modelled on what CPython's test_concurrent_futures checks: results, exceptions,
timeouts, cancel, wait/as_completed, callbacks, map (order, chunks, errors at
their position, timeout), shutdown, the context manager; plus dagmpi's own:
futures and tasks as each other's dependencies, max_workers, use inside a task.
"""
import concurrent.futures as cf
import logging
import sys
import threading
import time

import dagmpi
from dagmpi.runtime import context


def sq(x):
    return x * x


def slow(x, seconds=0.3):
    time.sleep(seconds)
    return x


def fail_at(x, bad=7):
    if x == bad:
        raise KeyError(f"item {x}")
    return x


def rank(_=None):
    return context.current_client().rank


def echo_kwargs(**kw):
    return sorted(kw.items())


def inside_a_task(n):
    with dagmpi.Executor() as ex:
        return sum(ex.map(sq, range(n), chunksize=7))


def check(name, cond, detail=""):
    assert cond, f"{name}: {detail}"
    print("ok", name, flush=True)


def main():
    workers = dagmpi.workers()
    with dagmpi.Executor() as ex:
        f = ex.submit(sq, 12)
        check("result", f.result(30) == 144 and f.done() and not f.cancelled() and f.exception() is None)
        check("is a concurrent.futures.Future", isinstance(f, cf.Future))
        check("kwargs (even 'options') reach the function",
              ex.submit(echo_kwargs, options=1, a=2).result(30) == [("a", 2), ("options", 1)])
        g = ex.submit(fail_at, 7)
        exc = g.exception(30)
        check("exception keeps its type", isinstance(exc, KeyError), repr(exc))
        try:
            g.result()
        except KeyError as e:
            check("result raises it, with the remote traceback", e.__cause__ is not None)
        s = ex.submit(slow, 1, 1.0)
        try:
            s.result(timeout=0.05)
            check("result timeout", False)
        except cf.TimeoutError:
            check("result timeout", True)
        check("a running call cannot be cancelled", s.cancel() is False and s.result(30) == 1)

        fs = [ex.submit(sq, i) for i in range(200)]
        check("as_completed", sorted(x.result() for x in cf.as_completed(fs, timeout=60)) ==
              [i * i for i in range(200)])
        fs = [ex.submit(slow, 0, 2.0), ex.submit(sq, 3)]
        done, not_done = cf.wait(fs, timeout=30, return_when=cf.FIRST_COMPLETED)
        check("wait FIRST_COMPLETED", fs[1] in done and fs[0] in not_done, (done, not_done))
        fs = [ex.submit(fail_at, 7), ex.submit(slow, 0, 2.0)]
        done, not_done = cf.wait(fs, timeout=30, return_when=cf.FIRST_EXCEPTION)
        check("wait FIRST_EXCEPTION", fs[0] in done and fs[1] in not_done, (done, not_done))
        done, not_done = cf.wait(fs, timeout=30)
        check("wait ALL_COMPLETED", not not_done)

        seen, where = [], []
        ev = threading.Event()

        def cb(fut):
            seen.append(fut.result())
            where.append(threading.current_thread().name)
            ev.set()

        h = ex.submit(slow, 5, 0.2)
        h.add_done_callback(cb)
        ev.wait(30)
        check("callback once, on the executor's thread", seen == [5] and where == ["dagmpi-executor"],
              (seen, where))
        h.add_done_callback(cb)
        check("callback on a done future runs at once", seen == [5, 5])
        logging.getLogger("concurrent.futures").setLevel(logging.CRITICAL)
        bad = ex.submit(sq, 2)
        bad.add_done_callback(lambda fut: 1 / 0)
        check("an exception in a callback is logged, not raised", bad.result(30) == 4)

        check("map in order", list(ex.map(sq, range(50))) == [i * i for i in range(50)])
        check("map of several iterables", list(ex.map(pow, [2, 3], [5, 2])) == [32, 9])
        check("map chunks", list(ex.map(sq, range(1003), chunksize=100)) == [i * i for i in range(1003)])
        check("map objects in chunks", list(ex.map(len, [[1], [1, 2], "abc"], chunksize=2)) == [1, 2, 3])
        got = []
        try:
            for y in ex.map(fail_at, range(20), chunksize=5):
                got.append(y)
        except KeyError:
            check("map raises at the failing item, after the results before it", got == list(range(7)), got)
        try:
            list(ex.map(slow, [1, 2, 3], timeout=0.1))
            check("map timeout", False)
        except cf.TimeoutError:
            check("map timeout", True)
        for bad_chunk in (0, -1):
            try:
                ex.map(sq, [1], chunksize=bad_chunk)
                check("chunksize < 1 refused", False)
            except ValueError:
                pass
        check("chunksize < 1 refused", True)

        fut = ex.submit(sq, 3)
        t = dagmpi.spawn(sq, fut)
        check("a Future is a dependency of spawn", dagmpi.fetch(t) == 81)
        check("a Task is a dependency of submit", ex.submit(sq, t).result(30) == 6561)
        check("a Future nested in an argument", dagmpi.fetch(dagmpi.spawn(sum, [fut, fut])) == 18)

        check("an Executor inside a task", dagmpi.fetch(dagmpi.spawn(inside_a_task, 100)) ==
              sum(i * i for i in range(100)))

    # the window: one call in the runtime, the rest held (and cancellable)
    ex = dagmpi.Executor(window=1)
    first = ex.submit(slow, 1, 0.5)
    held = [ex.submit(sq, i) for i in range(5)]
    check("a held call is cancelled", held[2].cancel() and held[2].cancelled())
    try:
        held[2].result()
        check("a cancelled call raises CancelledError", False)
    except cf.CancelledError:
        check("a cancelled call raises CancelledError", True)
    done, _ = cf.wait(held, timeout=30)
    check("the others run", [h.result() for h in held if not h.cancelled()] == [0, 1, 9, 16] and
          first.result() == 1)
    d = ex.submit(slow, 0, 0.5)
    e = ex.submit(sq, 4)  # held behind d
    check("a held Future used as a dependency is handed over at once",
          dagmpi.fetch(dagmpi.spawn(sq, e), timeout=30) == 256)
    more = [ex.submit(slow, i, 0.2) for i in range(5)]
    ex.shutdown(wait=True, cancel_futures=True)
    check("shutdown(cancel_futures=True) cancels the held calls",
          sum(m.cancelled() for m in more) >= 3 and all(m.done() for m in more))
    try:
        ex.submit(sq, 1)
        check("no submit after shutdown", False)
    except RuntimeError:
        check("no submit after shutdown", True)

    ex = dagmpi.Executor()
    fs = [ex.submit(slow, i, 0.05) for i in range(10)]
    ex.shutdown(wait=True)
    check("shutdown(wait=True) waits", all(f.done() for f in fs))

    with dagmpi.Executor(max_workers=1) as ex:
        ranks = set(ex.map(rank, range(20)))
    check("max_workers=1 runs on one rank", ranks == {workers[0]}, ranks)
    for bad in (0, -2, 1.5):
        try:
            dagmpi.Executor(max_workers=bad)
            check("bad max_workers refused", False)
        except ValueError:
            pass
    check("bad max_workers refused", True)
    print("EXECUTOR-OK", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(0)
