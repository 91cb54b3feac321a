"""Launches of many point tasks in the pure core (dagmpi.core.launches): layouts,
projections, the workers' expansion, and rank 0's one record per launch."""

import pytest

from dagmpi.core.events import (
    HandleAcquired,
    Deliver,
    ExecuteLaunch,
    HandleReleased,
    LaunchDone,
    LaunchSubmitted,
    ReleaseLaunch,
    WatchRequested,
    WorkerJoined,
    WorkerLost,
)
from dagmpi.core.failures import RankLost, UnknownDependency, UpstreamFailure
from dagmpi.core.launches import SPREAD, Layout, Projection, Read, Reports, ReportTree, expand
from dagmpi.core.scheduler import Scheduler


def test_layouts_place_every_point_once():
    for lay in (Layout.blocks(10, (1, 2, 3)), Layout.cyclic(10, (1, 2, 3)), Layout.of_table([3, 1, 1, 2, 3]),
                Layout.blocks(2, (1, 2, 3, 4))):
        seen = sorted(i for r in lay.ranks for i in lay.points_of(r))
        assert seen == list(range(lay.n)), lay
        assert all(lay.rank_of(i) == r for r in lay.ranks for i in lay.points_of(r))
        assert all(len(lay.points_of(r)) for r in lay.touched())
    assert list(Layout.blocks(10, (1, 2, 3)).points_of(2)) == [4, 5, 6, 7]
    assert Layout.blocks(2, (1, 2, 3, 4)).touched() == (1, 2)
    assert list(Layout.cyclic(10, (1, 2, 3)).points_of(3)) == [2, 5, 8]
    with pytest.raises(ValueError, match="one rank per point"):
        Layout("table", 3, (), (1, 2))
    with pytest.raises(ValueError, match="'blocks', 'cyclic' or 'table'"):
        Layout("spiral", 3, (1,))


def test_projections_are_task_benchs_patterns():
    assert Projection("same").points(3, 8) == [3]
    stencil = Projection("offsets", (-1, 0, 1))
    assert stencil.points(0, 8) == [0, 1] and stencil.points(4, 8) == [3, 4, 5] and stencil.points(7, 8) == [6, 7]
    assert Projection("offsets", (-1, 0, 1), wrap=True).points(0, 8) == [7, 0, 1]
    assert Projection("xor", (2,)).points(1, 8) == [1, 3] and Projection("xor", (4,)).points(5, 6) == [1, 5]
    assert Projection("parent", (2,)).points(5, 4) == [2] and Projection("parent", (2,)).points(9, 4) == []
    assert Projection("all").points(0, 3) == [0, 1, 2]
    # an N-D stencil over a 3 x 4 grid of blocks: its faces, wrapped on axis 1 only
    star = Projection("grid", ((3, 4), ((-1, 0), (1, 0), (0, -1), (0, 1)), (False, True)))
    assert star.points(0, 12) == [4, 3, 1] and star.points(5, 12) == [1, 9, 4, 6]
    assert star.points(11, 12) == [7, 10, 8]
    # the blocks of a reduction over axis 1 of that grid read the blocks along it
    line = Projection("grid", ((3, 1), tuple((0, j) for j in range(4)), (False, False), (3, 4)))
    assert line.points(0, 12) == [0, 1, 2, 3] and line.points(2, 12) == [8, 9, 10, 11]
    with pytest.raises(ValueError, match="grid shape, offsets, wrap"):
        Projection("grid", ((3, 4), ((1,),), (False, False)))
    with pytest.raises(ValueError, match="one positive integer"):
        Projection("xor", ())


def test_expand_gives_each_point_its_inputs_and_their_owners():
    src = Read(launch_id=100, base=101, n=4, layout=Layout.blocks(4, (1, 2)), projection=Projection("offsets", (-1, 0, 1)))
    jobs = expand(201, Layout.blocks(4, (1, 2)), 2, [src])
    assert jobs == [(203, ((102, 1), (103, 2), (104, 2))), (204, ((103, 2), (104, 2)))]
    assert expand(201, Layout.blocks(4, (1, 2)), 3, [src]) == []


def sched(n=4):
    s = Scheduler()
    s.handle(*[WorkerJoined(r) for r in range(1, n + 1)])
    return s


def launch(lid, n, ranks, reads=(), watch=False, name="f"):
    return LaunchSubmitted(lid, lid + 1, n, name, ("spec", lid), Layout.blocks(n, ranks), reads, 0, watch)


def test_one_execute_per_rank_and_one_record_per_launch():
    s = sched()
    out = s.handle(launch(10, 1000, range(1, 5), watch=True))
    assert len(out) == 1 and type(out[0]) is ExecuteLaunch and out[0].ranks == range(1, 5)
    assert out[0].base == 11 and out[0].spec == ("spec", 10)
    assert not s.tasks and len(s.launches) == 1
    assert s.handle(LaunchDone(10, 1, 250), LaunchDone(10, 2, 100)) == []
    assert s.handle(LaunchDone(10, 2, 150), LaunchDone(10, 3, 250)) == []
    out = s.handle(LaunchDone(10, 4, 250, nbytes=4000))
    assert out == [Deliver(0, 10, owner=SPREAD)]
    assert s.launches[10].nbytes == 4000  # the driver's handle keeps its values
    assert s.handle(HandleReleased(10)) == [ReleaseLaunch(range(1, 5), 10)]
    assert not s.launches and s.n_points == s.n_points_done == 1000


def test_a_launch_keeps_what_it_reads_until_it_ends():
    s = sched(2)
    s.handle(launch(10, 4, (1, 2)))
    out = s.handle(launch(20, 4, (1, 2), reads=((10, Projection("offsets", (-1, 0, 1))),)))
    assert out[0].reads[0].base == 11 and out[0].reads[0].layout == Layout.blocks(4, (1, 2))
    s.handle(LaunchDone(10, 1, 2), LaunchDone(10, 2, 2))
    assert s.handle(HandleReleased(10)) == []  # launch 20 still reads it
    out = s.handle(LaunchDone(20, 1, 4))  # (the root of the report tree, for every point)
    assert out == [ReleaseLaunch((1, 2), 10)]
    assert s.handle(HandleReleased(20)) == [ReleaseLaunch((1, 2), 20)]
    assert not s.launches


def test_watch_and_point_errors():
    s = sched(2)
    s.handle(launch(10, 4, (1, 2)))
    assert s.handle(WatchRequested(10, 5)) == []
    out = s.handle(LaunchDone(10, 1, 2, errors=((11, "boom"),)), LaunchDone(10, 2, 2))
    assert out == [Deliver(5, 10, error="boom")]
    assert s.handle(WatchRequested(10, 6)) == [Deliver(6, 10, error="boom")]


def test_unknown_reads_fail_at_once_and_launches_wait_for_ranks_to_join():
    s = sched(2)
    out = s.handle(launch(10, 4, (1, 2), reads=((99, Projection("same")),), watch=True))
    assert out == [Deliver(0, 10, error=UnknownDependency(99))]
    # rank 3 has not joined yet (the runtime checked it is a worker rank): parked, in order
    assert s.handle(launch(30, 6, range(1, 4), watch=True)) == []
    assert s.handle(launch(40, 2, (1,))) == []  # (behind the parked one)
    out = s.handle(WorkerJoined(3))
    assert [(type(i), i.launch_id) for i in out] == [(ExecuteLaunch, 30), (ExecuteLaunch, 40)]
    # a parked launch on a rank that dies before it joined fails
    s.handle(launch(50, 4, (1, 5), watch=True))
    out = s.handle(WorkerJoined(4), WorkerLost(5))
    assert [type(i) for i in out] == [Deliver] and isinstance(out[0].error, RankLost)
    assert type(s.handle(launch(60, 2, (1, 2)))[0]) is ExecuteLaunch
    # a launch on a rank known dead fails at once
    out = s.handle(launch(70, 4, (1, 5), watch=True))
    assert [type(i) for i in out] == [Deliver] and isinstance(out[0].error, RankLost)


def test_a_dead_rank_fails_its_launches_and_their_readers():
    s = sched(3)
    s.handle(launch(10, 4, (1, 2)), launch(20, 4, (3,), reads=((10, Projection("same")),), watch=True))
    s.handle(LaunchDone(10, 1, 2))
    out = s.handle(WorkerLost(2))
    errors = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert isinstance(errors[20], UpstreamFailure) and isinstance(errors[20].cause, RankLost)
    assert isinstance(s.launches[10].error, RankLost)
    out = s.handle(HandleReleased(10), HandleReleased(20))
    assert out == [ReleaseLaunch((1,), 10), ReleaseLaunch((3,), 20)]
    assert not s.launches


def test_launches_and_plain_tasks_share_the_scheduler():
    from dagmpi.core.events import Execute, TaskFinished, TaskSubmitted

    s = sched(2)
    s.handle(launch(10, 2, (1, 2)))
    out = s.handle(TaskSubmitted(50, "g", (), "spec"))
    assert any(isinstance(i, Execute) and i.task_id == 50 for i in out)
    s.handle(TaskFinished(50, 1))
    s.handle(LaunchDone(10, 1, 1), LaunchDone(10, 2, 1))
    assert 10 in s.launches and 50 in s.tasks


def test_a_plain_task_reads_a_point_of_a_running_launch():
    from dagmpi.core.events import Execute, HandleAcquired, TaskFinished, TaskSubmitted

    s = sched(2)
    s.handle(launch(10, 4, (1, 2)))  # points 11..14: 11, 12 on rank 1; 13, 14 on rank 2
    assert s.handle(TaskSubmitted(50, "g", (13,), "spec", watch=True)) == []  # waits for the launch
    assert s.tasks[13].launch == 10 and s.launches[10].refs == 2 and len(s.tasks) == 2
    s.validate()
    assert s.handle(LaunchDone(10, 1, 2)) == []
    out = s.handle(LaunchDone(10, 2, 2, nbytes=800))
    ex = [i for i in out if isinstance(i, Execute)]
    assert len(ex) == 1 and ex[0].task_id == 50 and ex[0].inputs == ((13, 2),) and ex[0].rank == 2
    assert s.tasks[13].nbytes == 200
    s.validate()
    s.handle(HandleReleased(10))  # the driver drops the launch: the point still holds it
    assert 10 in s.launches
    out = s.handle(TaskFinished(50, 2))
    assert Deliver(0, 50, owner=2) in out and ReleaseLaunch((1, 2), 10) in out
    assert 13 not in s.tasks and not s.launches  # no Release of the point itself: the launch freed it
    assert not any(type(i).__name__ == "Release" for i in out if getattr(i, "task_id", None) == 13)
    # a point of a finished launch is finished at once, on its layout's rank; a wait on
    # a point is delivered with its owner; a pickled point handle counts
    s.handle(launch(20, 4, (1, 2)), LaunchDone(20, 1, 2), LaunchDone(20, 2, 2))
    assert s.handle(WatchRequested(22, 7)) == [Deliver(7, 22, owner=1)]
    out = s.handle(TaskSubmitted(60, "g", (21, 24), "spec"))
    assert [(type(i), i.inputs) for i in out] in ([(Execute, ((21, 1), (24, 2)))],)
    s.handle(HandleAcquired(23))
    assert s.tasks[23].refs == 1
    s.handle(HandleReleased(20), TaskFinished(60, 1))
    assert 20 in s.launches and list(s.tasks) == [50, 60, 23]  # (50, 60: their submitter's handles)
    assert s.handle(HandleReleased(23)) == [ReleaseLaunch((1, 2), 20)]
    s.validate()


def test_a_point_of_a_failed_launch_fails_its_readers():
    from dagmpi.core.events import TaskSubmitted

    s = sched(3)
    s.handle(launch(10, 4, (1, 2)))
    s.handle(TaskSubmitted(50, "g", (12,), "spec", watch=True), WatchRequested(14, 3))
    out = s.handle(LaunchDone(10, 1, 2, errors=((11, "boom"),)), LaunchDone(10, 2, 2))
    errors = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert errors[14] == "boom" and isinstance(errors[50], UpstreamFailure)
    s.validate()
    # points on a rank that dies: waiting ones fail with the launch, finished ones with their rank
    s.handle(launch(20, 4, (1, 2)), LaunchDone(20, 1, 2))
    s.handle(TaskSubmitted(60, "g", (21,), "spec", watch=True, ranks=frozenset({2})))
    s.handle(launch(30, 2, (1, 2)))
    s.handle(TaskSubmitted(70, "g", (32,), "spec", watch=True))
    out = s.handle(WorkerLost(2))
    errors = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert isinstance(errors[70], UpstreamFailure) and isinstance(errors[70].cause, RankLost)
    # (point 21 ran on rank 1, but its launch did not end: it fails with it)
    assert isinstance(errors[60], UpstreamFailure) and isinstance(errors[60].cause, RankLost)
    s.validate()
    # a finished point whose rank dies: its reader fails (points are not computed again yet)
    s.handle(launch(40, 2, (1, 3)), LaunchDone(40, 1, 1), LaunchDone(40, 3, 1))
    s.handle(TaskSubmitted(80, "g", (42,), "spec", watch=True, ranks=frozenset({1})))
    assert s.tasks[42].owner == 3 and s.tasks[80].state.name == "ASSIGNED"
    out = s.handle(WorkerLost(3))
    errors = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert isinstance(errors[80], UpstreamFailure) and isinstance(errors[80].cause, RankLost)
    s.validate()


def test_point_records_keep_the_counts_right_in_corner_cases():
    from dagmpi.core.events import Execute, TaskFinished, TaskSubmitted

    # a failed launch whose last holder is its own point, read by a plain task
    for end in ([LaunchDone(10, 1, 2, errors=((11, "boom"),)), LaunchDone(10, 2, 2)], [WorkerLost(2)]):
        s = sched(2)
        s.handle(launch(10, 4, (1, 2)), TaskSubmitted(50, "g", (11,), "spec"), HandleReleased(10))
        out = s.handle(*end)
        assert [i for i in out if isinstance(i, ReleaseLaunch)] and not s.launches
        s.validate()
    # a task with an unknown input besides a point makes no point record (nothing leaks)
    s = sched(2)
    s.handle(launch(10, 4, (1, 2)), LaunchDone(10, 1, 2), LaunchDone(10, 2, 2))
    out = s.handle(TaskSubmitted(50, "g", (11, 999), "spec", watch=True))
    assert out == [Deliver(0, 50, error=UnknownDependency(999))] and list(s.tasks) == [50]
    assert s.handle(HandleReleased(10), HandleReleased(50)) == [ReleaseLaunch((1, 2), 10)]
    # lineage: a waiting point has no spec; a point kept for lineage whose launch still
    # holds its value is read again by a task computed again after its rank died
    s = Scheduler(lineage=True)
    s.handle(*[WorkerJoined(r) for r in (1, 2, 3)])
    s.handle(launch(20, 4, (1, 2)), TaskSubmitted(60, "g", (21,), "spec"))
    s.validate()
    s = Scheduler(lineage=True)
    s.handle(*[WorkerJoined(r) for r in (1, 2, 3)])
    s.handle(launch(10, 2, (1,)), LaunchDone(10, 1, 2))
    out = s.handle(TaskSubmitted(50, "g", (11,), "spec", ranks=frozenset({2, 3})))
    r = [i for i in out if isinstance(i, Execute)][0].rank
    s.handle(TaskFinished(50, r))
    assert s.tasks[11].gone and s.launches[10].refs == 1  # (only the client's handle)
    out = s.handle(WorkerLost(r))
    again = [i for i in out if isinstance(i, Execute)]
    assert len(again) == 1 and again[0].task_id == 50 and again[0].inputs == ((11, 1),), out
    assert s.launches[10].refs == 2 and not s.tasks[11].gone
    s.validate()


def test_report_trees_reduce_to_one_message_per_launch():
    ranks = range(1, 41)
    tree = ReportTree(ranks, k=3)
    assert tree.parent(1) is None and tree.parent(2) == tree.parent(4) == 1 and tree.parent(5) == 2
    assert list(tree.children(1)) == [2, 3, 4] and tree.depth(1) == 0 and tree.depth(40) == 3
    # every rank reaches the root, each once a child
    assert sorted(c for r in ranks for c in tree.children(r)) == list(ranks[1:])
    # simulate: points done in any order, children's reports before their parent heard of the launch
    lay = Layout.cyclic(100, ranks)
    reps = {r: Reports() for r in ranks}
    inbox = []  # (to rank or None for rank 0, count, errors)
    for r in reversed(ranks):  # leaves first: their reports come before their parents expect
        sent = reps[r].expect(7, len(lay.points_of(r)), len(tree.children(r)))
        assert sent is None
        for i in lay.points_of(r):
            sent = reps[r].own_done(7, ((i, "err"),) if i == 42 else ())
        while sent is not None:
            parent = tree.parent(r)
            if parent is None:
                inbox.append(sent)
                break
            sent = reps[parent].child(7, *sent)
            r = parent
    assert inbox == [(100, ((42, "err"),))]
    assert all(not rep.state for rep in reps.values())


@pytest.mark.parametrize("pattern", ["stencil_1d", "nearest5", "fft", "tree", "trivial"])
def test_the_simulator_runs_task_bench_graphs_as_launches(pattern):
    """benchmarks/simulate.py's launch mode: every point runs once, rank 0 gets one
    report per launch (up the report tree) and no launch is left."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
    import simulate
    from taskbench import graph_width

    width = graph_width(pattern, 40)
    graph = simulate.task_graph(pattern, width, 5)
    sim = simulate.LaunchSimulation(40, 5e-6, 10e9, 1e-3)
    makespan = sim.run_launches(pattern, width, 5, len(graph))
    assert sim.finished == len(graph) == sim.sched.n_points_done
    assert sim.sched.n_launches == 5 and makespan >= 5e-3
    assert all(not rep.state for rep in sim.reports.values())
    # each launch kept only by the driver's handle (the simulation never drops it)
    assert len(sim.sched.launches) == 5 and all(r.refs == 1 and not r.pending for r in sim.sched.launches.values())


def _lineage_sched(n=3):
    s = Scheduler(lineage=True, queue_window=0)
    s.handle(*[WorkerJoined(r) for r in range(1, n + 1)])
    return s


def _finish_all(s, out, seen=None):
    """Run the scheduler's instructions as workers would (each Execute finishes on its
    rank, each ExecuteLaunch reports per rank) until none is left; the Executes seen."""
    from dagmpi.core.events import Execute, TaskFinished

    seen = [] if seen is None else seen
    while out:
        events = []
        for i in out:
            if isinstance(i, Execute):
                seen.append(i)
                events.append(TaskFinished(i.task_id, i.rank, nbytes=8))
            elif isinstance(i, ExecuteLaunch):
                for r in i.layout.touched():
                    events.append(LaunchDone(i.launch_id, r, len(i.layout.points_of(r)), 8))
        out = s.handle(*events) if events else []
        s.validate()
    return seen


def test_lineage_computes_the_lost_points_of_a_chain_of_launches_again():
    """ULFM: a rank dies in the middle of a chain of stencil launches.  Its points of
    the launch still held, and of the one running, are computed again on the ranks
    left (pinned where the new layout puts them, which every live worker is told),
    from the released launches before (whose lineage is kept), and the chain goes on
    on the new layout; nothing is failed."""
    from dagmpi.core.events import MoveLaunch

    s = _lineage_sched(3)
    proj = Projection("offsets", (-1, 0, 1))
    out = s.handle(launch(10, 6, (1, 2, 3)))
    _finish_all(s, out)
    prev = 10
    for lid in (20, 30):  # each step reads the one before; the one before is released
        out = s.handle(launch(lid, 6, (1, 2, 3), reads=((prev, proj),)))
        _finish_all(s, out)
        s.handle(HandleReleased(prev))
        prev = lid
    assert set(s.launches) == {30} and set(s._lineage_launches) == {10, 20}
    # launch 40 runs: rank 1 reported its points, rank 2 (points 2, 3) dies before it did
    s.handle(launch(40, 6, (1, 2, 3), reads=((30, proj),), watch=True), LaunchDone(40, 1, 2, 8))
    out = s.handle(WorkerLost(2))
    s.validate()
    moves = {i.launch_id: i.layout for i in out if isinstance(i, MoveLaunch)}
    assert set(moves) == {30, 40} and not [i for i in out if isinstance(i, Deliver)], out
    lay = moves[40]
    assert [lay.rank_of(i) for i in range(6)] == [1, 1, 1, 3, 3, 3]  # (2 -> 1, 3 -> 3: spread)
    assert s.launches[40].pending == 4 and set(s.launches[40].redo) == {43, 44}
    # the cone: 43 and 44 (points 2, 3 of launch 40) need 32..35 of launch 30, whose 33,
    # 34 were on rank 2 too; those need launch 20's 22..25 (released: computed again as
    # plain tasks), which need all of launch 10's (released too): back to the first launch
    seen = _finish_all(s, out)
    ran = {i.task_id for i in seen}
    assert {43, 44, 33, 34} <= ran and {11, 12, 13, 14, 15, 16} <= ran, ran
    assert {i.task_id for i in seen if 21 <= i.task_id < 27} == {22, 23, 24, 25}
    assert all(i.rank == lay.rank_of(i.task_id - 41) for i in seen if i.task_id in (43, 44))
    spec = next(i.spec for i in seen if i.task_id == 44)
    assert spec == ("point", ("spec", 40), "f[3]", 3, (33, 34, 35))  # its launch's spec, its inputs
    assert s.n_recomputed == len(seen)
    # ... and launch 40 ends once rank 3 reports its own points
    out = s.handle(LaunchDone(40, 3, 2, 8))
    assert Deliver(0, 40, owner=SPREAD) in out
    s.validate()
    # a later launch with the old layout runs on the ranks left, where the data went
    out = s.handle(launch(50, 6, (1, 2, 3), reads=((40, proj),)))
    ex = [i for i in out if isinstance(i, ExecuteLaunch)][0]
    assert [ex.layout.rank_of(i) for i in range(6)] == [1, 1, 1, 3, 3, 3]
    assert ex.reads[0].layout == lay
    _finish_all(s, out)
    # everything is let go in the end: the lineage kept for the chain with it
    s.handle(HandleReleased(30), HandleReleased(40), HandleReleased(50))
    s.validate()
    assert not s.launches and not s._lineage_launches and not s.tasks


def test_lineage_fails_what_cannot_be_computed_again():
    """A lost point whose lineage is gone (its launch failed) fails its launch and the
    launches reading it; a point computed again that raises does too."""
    from dagmpi.core.events import Execute, TaskFailed

    s = _lineage_sched(3)
    out = s.handle(launch(10, 3, (1, 2, 3)), LaunchDone(10, 1, 1), LaunchDone(10, 2, 1), LaunchDone(10, 3, 1))
    out = s.handle(launch(20, 3, (1, 2, 3), reads=((10, Projection("same")),), watch=True))
    out = s.handle(WorkerLost(2))
    ex = [i for i in out if isinstance(i, Execute)]
    assert sorted(i.task_id for i in ex) == [12, 22], out
    out = s.handle(*[TaskFailed(i.task_id, i.rank, "boom") for i in ex if i.task_id == 12])
    errors = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert isinstance(errors[20], UpstreamFailure), out
    s.validate()


def test_lineage_corner_cases_found_in_review():
    from dagmpi.core.events import Execute, TaskFinished, TaskSubmitted

    def execs(out):
        return [i for i in out if isinstance(i, Execute)]

    def step(s, *evs):
        out = s.handle(*evs)
        s.validate()
        return out

    # a point moved to a rank that dies after it was computed again there is not counted
    # twice: the launch waits for the rank that has not reported, and keeps its error
    s = _lineage_sched(4)
    step(s, launch(10, 4, (1, 2, 3, 4), watch=True), LaunchDone(10, 3, 1, 8))
    out = step(s, WorkerLost(2))
    step(s, *[TaskFinished(i.task_id, i.rank, 8) for i in execs(out)])
    out = step(s, WorkerLost(1))
    assert s.launches[10].redo == {11: True, 12: False}
    out = step(s, *[TaskFinished(i.task_id, i.rank, 8) for i in execs(out)])
    assert not [i for i in out if isinstance(i, Deliver)] and s.launches[10].pending == 1
    out = step(s, LaunchDone(10, 4, 1, 0, errors=((14, "boom"),)))
    assert out == [Deliver(0, 10, error="boom")]
    # a launch that failed already, whose points on the dead rank a running launch reads:
    # that one fails too (its points there wait for values nobody computes again)
    s = _lineage_sched(3)
    step(s, launch(10, 6, (1, 2, 3)))
    step(s, launch(20, 6, (1, 3), reads=((10, Projection("offsets", (-1, 0, 1))),), watch=True))
    step(s, LaunchDone(10, 1, 2, errors=((11, "boom"),)), LaunchDone(10, 2, 2), LaunchDone(10, 3, 2))
    out = step(s, WorkerLost(2))
    assert [type(i.error).__name__ for i in out if isinstance(i, Deliver)] == ["UpstreamFailure"]
    # a launch reading a failed launch fails at once
    out = step(s, launch(30, 6, (1, 3), reads=((10, Projection("same")),), watch=True))
    assert [type(i.error).__name__ for i in out if isinstance(i, Deliver)] == ["UpstreamFailure"]
    # a lost point computed again, then let go, is read again where it now is (its launch
    # still runs), not computed a second time
    s = _lineage_sched(3)
    _finish_all(s, step(s, launch(10, 6, (1, 2, 3))))
    step(s, launch(20, 6, (1, 2, 3), reads=((10, Projection("same")),)), LaunchDone(20, 1, 2), LaunchDone(20, 3, 2))
    out = step(s, WorkerLost(2))
    _finish_all(s, out)
    out = step(s, TaskSubmitted(50, "T", (23,), "spec", watch=True))
    assert [(i.task_id, i.inputs) for i in execs(out)] == [(50, ((23, 1),))]
    # a point record made again after its earlier record (computed again) was deleted is
    # no consumer of that one's inputs
    s = _lineage_sched(3)
    _finish_all(s, step(s, launch(10, 6, (1, 2, 3))))
    step(s, HandleAcquired(13))
    step(s, launch(20, 6, (1, 2, 3), reads=((10, Projection("offsets", (-1,))),)))
    _finish_all(s, step(s, WorkerLost(2)))
    assert 24 not in s.tasks and s.tasks[13].dependents == []
    step(s, TaskSubmitted(50, "T", (24,), "spec"))
    out = step(s, WorkerLost(1))
    _finish_all(s, out)
    assert s.tasks[24].state.name == "WAITING" and s.launches[20].error is None


def test_lineage_rewrites_a_layout_used_again_once_per_death():
    s = _lineage_sched(3)
    lay = Layout.blocks(6, (1, 2, 3))
    s.handle(WorkerLost(2))
    calls = []
    relayout = s._relayout
    s._relayout = lambda layout, deaths: calls.append(layout) or relayout(layout, deaths)
    outs = [s.handle(LaunchSubmitted(lid, lid + 1, 6, "f", ("spec", lid), lay, (), 0, False)) for lid in (10, 20)]
    tables = [[i for i in out if isinstance(i, ExecuteLaunch)][0].layout.table for out in outs]
    assert tables[0] == tables[1] == (1, 1, 1, 3, 3, 3) and calls == [lay]
    s.handle(WorkerLost(3))  # (a death: rewritten again)
    out = s.handle(LaunchSubmitted(30, 31, 6, "f", ("spec", 30), lay, (), 0, False))
    assert [i for i in out if isinstance(i, ExecuteLaunch)][0].layout.table == (1,) * 6
    assert sum(c is lay for c in calls) == 2  # (and the two launches moved by the recovery)
