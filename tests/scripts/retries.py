"""Retries, retry_on and timeouts end to end (needs >= 2 worker ranks)."""
import os
import sys
import tempfile
import time

import dagmpi
from dagmpi.runtime import context


class Flaky(Exception):
    pass


def attempt_no(tag, d):
    """Count this call in a marker directory shared by all ranks (one node)."""
    path = os.path.join(d, tag)
    with open(path, "a") as fh:
        fh.write(f"{context.current_client().rank}\n")
    with open(path) as fh:
        return len(fh.read().split())


def flaky(i, d):
    if attempt_no(f"flaky{i}", d) == 1:
        raise Flaky(f"first try of {i} fails")
    return i * 10


def always(d):
    attempt_no("always", d)
    raise Flaky("always fails")


def wrong_kind(d):
    attempt_no("wrong", d)
    raise ValueError("not retried")


def slow_first(d, seconds):
    if attempt_no("slow", d) == 1:
        time.sleep(seconds)
    return context.current_client().rank


def runs(d, tag):
    with open(os.path.join(d, tag)) as fh:
        return fh.read().split()


if __name__ == "__main__":
    d = tempfile.mkdtemp(prefix="dagmpi-retries-")
    checks = 0
    # (every worker has joined first: a task failed before the others joined is retried on
    # the only rank there, the scheduler's rule when every rank it may use failed it)
    dagmpi.fetch([dagmpi.spawn(int, options=dagmpi.Options(scope=dagmpi.scope(rank=r))) for r in dagmpi.workers()])
    # flaky tasks complete with one retry each, on another rank
    opts = dagmpi.Options(retries=1, retry_on=Flaky)
    assert dagmpi.fetch([dagmpi.spawn(flaky, i, d, options=opts) for i in range(8)]) == \
        [i * 10 for i in range(8)]
    assert all(len(set(runs(d, f"flaky{i}"))) == 2 for i in range(8)), "retry ran on the same rank"
    checks += 1
    # a task that always fails reports its error after n+1 attempts
    try:
        dagmpi.fetch(dagmpi.spawn(always, d, options=dagmpi.Options(retries=2)))
    except Flaky as exc:
        assert len(runs(d, "always")) == 3
        assert any("attempt 3 of 3" in n for n in getattr(exc, "__notes__", [])), exc.__notes__
        checks += 1
    # retry_on limits which exceptions retry
    try:
        dagmpi.fetch(dagmpi.spawn(wrong_kind, d, options=dagmpi.Options(retries=3, retry_on=(Flaky,))))
    except ValueError:
        assert len(runs(d, "wrong")) == 1
        checks += 1
    # a timed-out task is retried elsewhere; the job does not wait for the stuck call
    t0 = time.time()
    first_rank = None
    r = dagmpi.fetch(dagmpi.spawn(slow_first, d, 6.0, options=dagmpi.Options(timeout=0.5, retries=1)))
    took = time.time() - t0
    ranks = runs(d, "slow")
    assert len(ranks) == 2 and ranks[0] != ranks[1] and str(r) == ranks[1], (ranks, r)
    assert took < 5.0, f"waited {took:.1f} s for a 0.5 s timeout"
    checks += 1
    # without retries the timeout is the error
    try:
        dagmpi.fetch(dagmpi.spawn(time.sleep, 6.0, options=dagmpi.Options(timeout=0.3)))
    except TimeoutError as exc:
        assert "timeout of 0.3 s" in str(exc)
        checks += 1
    assert time.time() - t0 < 8.0
    # the run-wide default (DAGMPI_RETRIES=1 in the test) applies when no retries= is given
    if os.environ.get("DAGMPI_RETRIES") == "1":
        assert dagmpi.fetch(dagmpi.spawn(flaky, 99, d)) == 990
        checks += 1
    print(f"RETRIES-OK {checks}")
    sys.stdout.flush()
