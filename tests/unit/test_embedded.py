"""The public API on the embedded (in-process) runtime: no MPI needed."""

from __future__ import annotations

import numpy as np
import pytest

import dagmpi


@pytest.fixture
def runtime():
    dagmpi.init(transport="inproc", workers=2, slots=2)
    yield
    dagmpi.shutdown()


def inc(x):
    return x + 1


def boom(x):
    raise KeyError(f"bad key {x}")


def test_spawn_fetch_chain(runtime):
    t = dagmpi.spawn(inc, 0)
    for _ in range(50):
        t = dagmpi.spawn(inc, t)
    assert dagmpi.fetch(t) == 51
    assert t.done() and t.exception() is None


def test_fetch_list_and_kwargs(runtime):
    a = dagmpi.spawn(np.arange, 10)
    b = dagmpi.spawn(np.multiply, a, 2)
    c = dagmpi.spawn(dict, x=a, y=[b])
    va, vb, vc = dagmpi.fetch([a, b, c])
    np.testing.assert_array_equal(vb, np.arange(10) * 2)
    np.testing.assert_array_equal(vc["y"][0], vb)


def test_errors_keep_type_and_name_upstream(runtime):
    bad = dagmpi.spawn(boom, 1, options=dagmpi.Options(name="the-bad-one"))
    after = dagmpi.spawn(inc, bad)
    fine = dagmpi.spawn(inc, 1)
    with pytest.raises(KeyError, match="bad key 1"):
        dagmpi.fetch(bad)
    assert isinstance(bad.exception(), KeyError)
    with pytest.raises(dagmpi.UpstreamError, match="the-bad-one"):
        dagmpi.fetch(after)
    assert dagmpi.fetch(fine) == 2


def test_wait_and_as_completed(runtime):
    tasks = [dagmpi.spawn(inc, i) for i in range(20)]
    done, not_done = dagmpi.wait(tasks)
    assert len(done) == 20 and not not_done
    assert sorted(dagmpi.fetch(t) for t in dagmpi.as_completed(tasks)) == list(range(1, 21))


def test_decorator_with_options(runtime):
    @dagmpi.task(priority=5, name="sq")
    def square(x):
        return x * x

    assert square(3) == 9  # still a plain function when called
    assert dagmpi.fetch(square.spawn(4)) == 16


def test_workers_and_info(runtime):
    assert len(dagmpi.workers()) == 2
    assert dagmpi.info()["transport"] == "inproc"


def sleepy(s):
    import time
    time.sleep(s)
    return s


def test_wait_return_when(runtime):
    fast = dagmpi.spawn(sleepy, 0.0)
    slow = dagmpi.spawn(sleepy, 1.0)
    done, not_done = dagmpi.wait([fast, slow], return_when="FIRST_COMPLETED")
    assert fast in done and slow in not_done
    bad = dagmpi.spawn(boom, 2)
    slow2 = dagmpi.spawn(sleepy, 1.0)
    done, not_done = dagmpi.wait([slow2, bad], return_when="FIRST_EXCEPTION")
    assert bad in done and slow2 in not_done
    done, not_done = dagmpi.wait([slow, slow2], timeout=0.01)
    assert done | not_done == {slow, slow2}
    assert dagmpi.wait([slow, slow2]).not_done == set()


def test_as_completed_yields_each_once_in_order_of_ending(runtime):
    tasks = [dagmpi.spawn(sleepy, s) for s in (0.3, 0.0, 0.15)]
    order = [dagmpi.fetch(t) for t in dagmpi.as_completed(tasks + tasks[:1])]
    assert order == [0.0, 0.15, 0.3]
