"""dagmpi.core.loops: who reads what in a loop, and when a point may start (no MPI)."""

import random

import pytest

from dagmpi.core.launches import Layout, Projection
from dagmpi.core.loops import OWN, LoopState, loop_links

PROJECTIONS = [Projection("offsets", (-1, 0, 1)), Projection("offsets", (-2, 1, 0), wrap=True),
               Projection("xor", (2,)), Projection("parent", (3,)), Projection("same"), Projection("all"),
               Projection("grid", ((3, 4), ((-1, 0), (0, 1), (0, 0)), (False, True)))]


@pytest.mark.parametrize("proj", PROJECTIONS, ids=lambda p: p.kind + ("w" if p.wrap else ""))
@pytest.mark.parametrize("kind", ["blocks", "cyclic", "table"])
def test_links_match_brute_force(proj, kind):
    n = 12
    ranks = range(1, 5)
    layout = {"blocks": Layout.blocks(n, ranks), "cyclic": Layout.cyclic(n, ranks),
              "table": Layout.of_table([random.Random(n).choice(ranks) for _ in range(n)])}[kind]
    for rank in ranks:
        local, remote, calls = loop_links(layout, proj, rank)
        for j in range(n):
            srcs = proj.points(j, n)
            if layout.rank_of(j) == rank:
                assert calls[j] == tuple(srcs)
            for i in set(srcs):
                if layout.rank_of(j) == rank:
                    assert j in local[i]
                elif layout.rank_of(i) == rank:
                    assert layout.rank_of(j) in remote[i]
        # nothing extra: each listed reader does read the point, each rank once
        for i, js in local.items():
            assert all(i in proj.points(j, n) and layout.rank_of(j) == rank for j in js)
            assert len(js) == len(set(js))
        for i, rs in remote.items():
            assert layout.rank_of(i) == rank and len(rs) == len(set(rs)) and rank not in rs
            assert all(any(layout.rank_of(j) == r and i in proj.points(j, n) for j in range(n)) for r in rs)


def test_a_point_starts_with_its_last_input_and_keeps_the_first_error():
    layout = Layout.blocks(6, range(1, 3))
    st = LoopState(100, 101, layout, 1, 4, [Projection("offsets", (-1, 0, 1, 0))])
    assert st.mine == (0, 1, 2)
    assert st.call(1, 2) == (102, 103, 104, 103)  # (an input named twice is passed twice)
    assert st.readers(0, 2) == ([1, 2], [2])  # (point 3 of rank 2 reads it)
    assert st.readers(3, 2) == ((), ())  # (the last step: nobody)
    assert st.arrive(1, 2, 1, "a") is None
    assert st.arrive(1, 2, 3, None, error="boom") is None
    assert st.arrive(1, 2, 2, "b") == [0, {102: "a", 103: "b"}, "boom"]
    assert (1, 2) not in st.pending
    # every point's steps before the last end, and its last starts: then the state goes
    events = len(st.mine) * st.steps
    assert not any(st.one_done() for _ in range(events - 1)) and st.one_done()


def test_the_carry_form_waits_for_its_own_value_first():
    """With a share function a point reads its own value (OWN) first, then the shares;
    it waits for its own value even where the projection gives it nothing."""
    up = Projection("grid", ((2, 3), ((-1, 0),), (False, False)))  # (the first row reads nothing)
    st = LoopState(0, 1, Layout.blocks(6, [1, 2]), 1, 3, [up], share=lambda i, v: v)
    assert st.call(1, 0) == (OWN,) and st.call(2, 1) == (OWN,)
    assert st.empty(1) == ()  # (nobody starts without its own value)
    assert st.readers(0, 0) == ((), [2])  # (point 3, on rank 2, reads point 0's share)
    assert st.arrive(1, 0, OWN, "mine") == [0, {OWN: "mine"}, None]
    st2 = LoopState(0, 1, Layout.blocks(6, [1, 2]), 2, 3, [up], share=lambda i, v: v)
    assert st2.call(1, 3) == (OWN, 1)
    assert st2.arrive(1, 3, 0, "edge") is None  # (its own value is still missing)
    assert st2.arrive(1, 3, OWN, None, error="boom") == [0, {1: "edge"}, "boom"]


def test_every_run_of_a_loop_has_its_own_trace_id():
    st = LoopState(100, 101, Layout.blocks(4, [1, 2]), 2, 3, [Projection("offsets", (-1, 0))], share=b"pickled")
    ids = {st.trace_id(t, j) for t in range(3) for j in range(4)}
    assert len(ids) == 12 and min(ids) == 101 and max(ids) == 100 + 4 * 3  # (the ids a loop reserves)
    assert [st.trace_id(2, j) for j in range(4)] == [101, 102, 103, 104]  # (the last step: the points' ids)
    # point 2 (rank 2) at step 1: its own value, then point 1's (on rank 1)
    assert st.trace_inputs(1, 2) == [(st.trace_id(0, 2), 2, 2), (st.trace_id(0, 1), 1, 1)]


def test_points_that_read_nothing_are_found():
    up = Projection("grid", ((2, 3), ((-1, 0),), (False, False)))  # (the first row reads nothing)
    st = LoopState(0, 1, Layout.blocks(6, [1]), 1, 3, [up])
    assert st.empty(1) == [0, 1, 2] and st.empty(2) == [0, 1, 2]


def test_bad_loops_are_refused():
    with pytest.raises(ValueError, match="2 steps"):
        LoopState(0, 1, Layout.blocks(4, [1]), 1, 1, [Projection("same")])
    with pytest.raises(ValueError, match="projection"):
        LoopState(0, 1, Layout.blocks(4, [1]), 1, 3, [])


def test_many_random_orders_start_every_point_once():
    """Values of a step arriving in any order start each point of the next step once,
    with all its inputs."""
    rng = random.Random(7)
    proj = Projection("offsets", (-1, 0, 1))
    for _ in range(50):
        n = rng.randint(1, 9)
        layout = Layout.cyclic(n, range(1, 4))
        st = LoopState(0, 1, layout, 1, 3, [proj])
        arrivals = [(j, i) for j in st.mine for i in dict.fromkeys(proj.points(j, n))]
        rng.shuffle(arrivals)
        started = {}
        for j, i in arrivals:
            got = st.arrive(1, j, i, i * 10)
            if got is not None:
                assert j not in started
                started[j] = got[1]
        assert sorted(started) == list(st.mine) and not st.pending
        for j, inputs in started.items():
            assert inputs == {1 + i: i * 10 for i in proj.points(j, n)}
