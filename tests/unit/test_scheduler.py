"""The scheduler as a pure state machine: events in, instructions out, no MPI."""

import pytest

from dagmpi.core.events import (
    Deliver,
    Execute,
    HandleAcquired,
    HandleReleased,
    Release,
    TaskBlocked,
    TaskFailed,
    TaskFinished,
    TaskSubmitted,
    TaskUnblocked,
    WatchRequested,
    WorkerJoined,
)
from dagmpi.core.scheduler import Scheduler, UnknownDependency, UpstreamFailure
from dagmpi.core.states import InvalidTransition, TaskState


class Harness:
    """Feeds events and checks every invariant after each step (like distributed's ``ws``)."""

    def __init__(self, prefetch=0, workers=((1, 1),)):
        self.s = Scheduler(prefetch=prefetch, queue_window=0)
        self.step(*(WorkerJoined(r, n) for r, n in workers))

    def step(self, *events):
        out = self.s.handle(*events)
        self.s.validate()
        return out


def sub(tid, deps=(), name=None, watch=False, priority=0, ranks=None, submitter=0):
    return TaskSubmitted(tid, name or f"t{tid}", tuple(deps), f"spec{tid}", submitter, priority,
                         ranks, watch)


def executes(out):
    return [(i.rank, i.task_id) for i in out if isinstance(i, Execute)]


@pytest.fixture
def h():
    return Harness()


def test_independent_task_is_executed_with_its_spec(h):
    out = h.step(sub(1))
    assert out == [Execute(1, 1, "spec1", ())]
    assert h.s.state_of(1) is TaskState.ASSIGNED


def test_dependency_waits_then_runs_with_input_location(h):
    out = h.step(sub(1), sub(2, deps=[1]))
    assert executes(out) == [(1, 1)]
    assert h.s.state_of(2) is TaskState.WAITING
    out = h.step(TaskFinished(1, rank=1, nbytes=8))
    assert out == [Execute(1, 2, "spec2", ((1, 1),))]


def test_capacity_is_slots_plus_prefetch():
    h = Harness(prefetch=1, workers=[(1, 2)])
    out = h.step(*(sub(i) for i in range(1, 6)))
    assert len(executes(out)) == 3  # 2 slots + 1 queued ahead
    out = h.step(TaskFinished(1, 1))
    assert executes(out) == [(1, 4)]


def test_tasks_spread_over_idle_workers():
    h = Harness(workers=[(1, 1), (2, 1), (3, 1)])
    out = h.step(*(sub(i) for i in range(1, 4)))
    assert sorted(r for r, _ in executes(out)) == [1, 2, 3]


def test_large_input_pulls_task_to_its_owner():
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([2])))
    h.step(TaskFinished(1, rank=2, nbytes=256 << 20))
    out = h.step(sub(2, deps=[1]))
    assert executes(out) == [(2, 2)]


def test_small_inputs_let_balance_win():
    h = Harness(prefetch=4, workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([2])))
    h.step(TaskFinished(1, rank=2, nbytes=8))
    h.step(sub(10, ranks=frozenset([2])), sub(11, ranks=frozenset([2])))  # rank 2 now busy
    out = h.step(sub(2, deps=[1]))
    assert executes(out) == [(1, 2)]


def test_scope_restricts_ranks_and_waits_for_them():
    h = Harness(workers=[(1, 1), (2, 1)])
    out = h.step(sub(1, ranks=frozenset([2])), sub(2, ranks=frozenset([2])))
    assert executes(out) == [(2, 1)]
    assert h.s.state_of(2) is TaskState.READY  # rank 1 is free but out of scope
    out = h.step(TaskFinished(1, 2))
    assert executes(out) == [(2, 2)]


def test_priority_orders_ready_tasks(h):
    h.step(sub(1))  # occupies the only slot
    h.step(sub(2, priority=0), sub(3, priority=5), sub(4, priority=1))
    order = []
    for done in (1, 3, 4):
        order += [t for _, t in executes(h.step(TaskFinished(done, 1)))]
    assert order == [3, 4, 2]


def test_blocked_task_gives_its_slot_back(h):
    assert executes(h.step(sub(1), sub(2))) == [(1, 1)]
    out = h.step(TaskBlocked(1))
    assert executes(out) == [(1, 2)]
    h.step(TaskUnblocked(1))
    assert h.s.workers[1].load == 2  # over capacity until one ends
    assert executes(h.step(sub(3))) == []
    h.step(TaskFinished(2, 1))
    assert executes(h.step(TaskFinished(1, 1))) == [(1, 3)]


def test_failure_propagates_to_dependents_only(h):
    h.step(sub(1), sub(2, deps=[1], watch=True), sub(3, deps=[2], watch=True), sub(4, watch=True))
    out = h.step(TaskFailed(1, 1, "boom"))
    delivered = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert delivered[2] == UpstreamFailure(1, "t1", "boom")
    assert delivered[3] == UpstreamFailure(2, "t2", "boom")  # names its direct input, keeps the root
    assert 4 not in delivered
    assert executes(out) == [(1, 4)]
    assert h.s.n_failed == 3


def test_submitting_on_a_failed_input_fails_at_once(h):
    h.step(sub(1))
    h.step(TaskFailed(1, 1, "boom"))
    out = h.step(sub(2, deps=[1], watch=True))
    assert out == [Deliver(0, 2, error=UpstreamFailure(1, "t1", "boom"))]


def test_unknown_dependency_is_an_error_not_a_crash(h):
    out = h.step(sub(2, deps=[99], watch=True))
    assert out == [Deliver(0, 2, error=UnknownDependency(99))]
    assert h.s.n_active == 0


def test_value_released_when_handles_and_consumers_are_gone(h):
    h.step(sub(1), sub(2, deps=[1]))
    h.step(TaskFinished(1, 1))
    out = h.step(HandleReleased(1))
    assert not any(isinstance(i, Release) for i in out)  # task 2 still needs it
    out = h.step(TaskFinished(2, 1))
    assert Release(1, 1) in out
    assert 1 not in h.s.tasks
    out = h.step(HandleReleased(2))
    assert out == [Release(1, 2)]
    assert h.s.tasks == {}


def test_acquired_handle_keeps_value(h):
    h.step(sub(1), HandleAcquired(1))
    h.step(TaskFinished(1, 1))
    assert h.step(HandleReleased(1)) == []
    assert h.step(HandleReleased(1)) == [Release(1, 1)]


def test_watch_delivers_owner_now_or_later(h):
    h.step(sub(1))
    assert h.step(WatchRequested(1, 3)) == []
    out = h.step(TaskFinished(1, 1))
    assert Deliver(3, 1, owner=1) in out
    assert h.step(WatchRequested(1, 4)) == [Deliver(4, 1, owner=1)]


def test_illegal_transition_is_refused(h):
    from dagmpi.core.states import check_transition

    with pytest.raises(InvalidTransition, match="FINISHED -> READY"):
        check_transition(1, TaskState.FINISHED, TaskState.READY)
    h.step(sub(1, watch=True))
    h.step(TaskFinished(1, 1))
    # a second report of the same task (a late duplicate) is dropped and its value freed
    assert h.step(TaskFinished(1, 1)) == [Release(1, 1)]
    assert h.s.n_finished == 1


def test_no_workers_means_tasks_stay_ready():
    h = Harness(workers=[])
    assert h.step(sub(1)) == []
    assert executes(h.step(WorkerJoined(1, 1))) == [(1, 1)]


def test_long_chain_and_wide_reduction_leave_no_state():
    h = Harness(prefetch=2, workers=[(1, 2), (2, 2)])
    leaves = list(range(1, 65))
    events = [sub(i) for i in leaves]
    nxt = 100
    level = leaves
    while len(level) > 1:
        new = []
        for a, b in zip(level[::2], level[1::2]):
            events.append(sub(nxt, deps=[a, b]))
            new.append(nxt)
            nxt += 1
        level = new
    out = h.step(*events, *(HandleReleased(i) for i in range(1, nxt) if i != level[0]))
    pending = [i for i in out if isinstance(i, Execute)]
    released = 0
    while pending:
        ins = pending.pop(0)
        out = h.step(TaskFinished(ins.task_id, ins.rank, nbytes=8))
        pending += [i for i in out if isinstance(i, Execute)]
        released += sum(isinstance(i, Release) for i in out)
    assert h.s.n_active == 0
    assert list(h.s.tasks) == [level[0]]  # only the root, whose handle is alive
    assert released == len(leaves) + 63 - 1  # every value but the root's was freed


# ------------------------------------------------------------- processors, scopes, resources

from dagmpi.core.scheduler import ImpossibleScope, unplaceable  # noqa: E402


def gsub(tid, deps=(), needs=None, near=None, ranks=None):
    return TaskSubmitted(tid, f"t{tid}", tuple(deps), f"spec{tid}", 0, 0, ranks, False, needs, near)


def hetero(prefetch=2):
    """Rank 1: CPU only; rank 2: one GPU; both 1 slot."""
    h = Harness(prefetch=prefetch, workers=[])
    h.step(WorkerJoined(1, 1, {"cpu": 1, "gpu": 0, "memory": 8e9}),
           WorkerJoined(2, 1, {"cpu": 1, "gpu": 1, "memory": 8e9}))
    return h


def test_gpu_tasks_never_land_on_cpu_only_ranks():
    h = hetero(prefetch=4)
    out = h.step(*(gsub(i, needs={"gpu": 1.0}) for i in range(1, 6)))
    # one GPU: one GPU task at a time, all on rank 2, the rest wait at the scheduler
    assert executes(out) == [(2, 1)]
    for i in range(1, 5):
        out = h.step(TaskFinished(i, 2))
        assert executes(out) == [(2, i + 1)]
    h.step(TaskFinished(5, 2))
    # plain tasks still use both ranks
    out = h.step(gsub(10), gsub(11))
    assert sorted(r for r, _ in executes(out)) == [1, 2]


def test_memory_resource_limits_concurrency():
    h = hetero(prefetch=4)
    out = h.step(*(gsub(i, needs={"memory": 5e9}) for i in range(1, 5)))
    assert sorted(executes(out)) == [(1, 1), (2, 2)]  # 8 GB each: one 5 GB task per rank
    out = h.step(TaskFinished(1, 1))
    assert executes(out) == [(1, 3)]


def test_impossible_request_fails_with_reason():
    h = hetero()
    out = h.step(TaskSubmitted(1, "t1", (), "s", 0, 0, None, True, {"gpu": 2.0}, None))
    (d,) = [i for i in out if isinstance(i, Deliver)]
    assert isinstance(d.error, ImpossibleScope) and "gpu" in d.error.reason
    assert unplaceable({1: {"gpu": 0}}, None, {"gpu": 1}) is not None
    assert unplaceable({1: {"gpu": 1}}, frozenset([5]), None) is not None
    assert unplaceable({1: {"gpu": 1}}, None, {"gpu": 1}) is None


def test_near_runs_next_to_the_given_tasks_result():
    h = Harness(prefetch=4, workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([2])))
    h.step(TaskFinished(1, 2, nbytes=8))
    out = h.step(*(gsub(i, near=1) for i in range(2, 5)))
    assert {r for r, _ in executes(out)} == {2}


def test_near_a_value_restored_from_a_checkpoint_runs_anywhere():
    """A restored value is owned by its file, not a rank: a task near it must still be
    placed (it hung before: its only allowed rank was the file)."""
    h = Harness(prefetch=4, workers=[(1, 1), (2, 1)])
    h.step(TaskSubmitted(1, "t1", (), "spec1", restored="file.h5#7"))
    out = h.step(gsub(2, deps=[1], near=1))
    assert [t for _, t in executes(out)] == [2]


def test_prefer_runs_on_the_preferred_rank_while_it_is_alive():
    h = Harness(prefetch=4, workers=[(1, 1), (2, 1), (3, 1)])
    out = h.step(*(gsub(i, near=-1 - 3) for i in range(1, 4)))  # scope(prefer=3)
    assert {r for r, _ in executes(out)} == {3}
    out = h.step(gsub(9, near=-1 - 7))  # a rank that is not a worker: anywhere
    assert len(executes(out)) == 1


from dagmpi.core.events import Steal, TasksReturned  # noqa: E402


def test_idle_worker_steals_queued_tasks():
    h = Harness(prefetch=4, workers=[(1, 1), (2, 1)])
    out = h.step(*(sub(i) for i in range(1, 11)))
    on = {r: [t for rr, t in executes(out) if rr == r] for r in (1, 2)}
    assert len(on[1]) == len(on[2]) == 5
    # rank 2's tasks were quick; rank 1 is stuck on its first one
    out = []
    for t in on[2]:
        out += h.step(TaskFinished(t, 2))
    steals = [i for i in out if isinstance(i, Steal)]
    assert len(steals) == 1 and steals[0].rank == 1
    asked = steals[0].task_ids
    assert on[1][0] not in asked and set(asked) <= set(on[1][1:])  # the newest, not the running one
    # rank 1 already started one of them; it gives back the rest
    out = h.step(TasksReturned(1, tuple((t, f"spec{t}") for t in asked[1:]), kept=asked[:1]))
    assert sorted(executes(out)) == sorted((2, t) for t in asked[1:])
    assert h.s.n_stolen == len(asked) - 1
    for t in asked[1:]:
        h.step(TaskFinished(t, 2))
    # no steal is repeated for a task still being asked about or already kept
    for t in on[1]:
        if t not in asked[1:]:
            h.step(TaskFinished(t, 1))
    assert h.s.n_active == 0


def test_no_stealing_while_ready_work_exists_or_for_pinned_tasks():
    h = Harness(prefetch=1, workers=[(1, 1), (2, 1)])
    out = h.step(*(sub(i, ranks=frozenset([1])) for i in range(1, 4)))
    assert executes(out) == [(1, 1), (1, 2)]
    out = h.step(sub(9))
    assert executes(out) == [(2, 9)]
    out = h.step(TaskFinished(9, 2))
    assert not [i for i in out if isinstance(i, Steal)]  # rank 2 may not run the pinned tasks


# ------------------------------------------------------------------ running ahead

def test_chain_runs_ahead_on_the_rank_computing_its_input():
    h = Harness(prefetch=3, workers=[(1, 1), (2, 1)])
    out = h.step(sub(1), sub(2, deps=[1]), sub(3, deps=[2]))
    # 2 and 3 go straight to rank 1, told that their input will be computed there
    ex = [i for i in out if isinstance(i, Execute)]
    assert [(i.rank, i.task_id, i.inputs) for i in ex] == [
        (1, 1, ()), (1, 2, ((1, 1),)), (1, 3, ((2, 1),))]
    assert h.s.n_run_ahead == 2
    out = h.step(TaskFinished(1, 1), TaskFinished(2, 1))
    assert not executes(out)
    h.step(TaskFinished(3, 1))
    assert h.s.n_active == 0


def test_run_ahead_across_ranks_names_the_producers_rank():
    h = Harness(prefetch=1, workers=[(1, 1), (2, 1)])
    out = h.step(sub(1, ranks=frozenset([1])), sub(2, ranks=frozenset([2])), sub(3, deps=[1, 2]))
    ex = {i.task_id: i for i in out if isinstance(i, Execute)}
    # inputs on two ranks: 3 goes to one of them at once; the other input is
    # named as ``~rank`` (computed there, sent when it ends)
    assert sorted(ex) == [1, 2, 3] and ex[3].rank == 1
    assert ex[3].inputs == ((1, 1), (2, ~2))
    assert h.s.n_run_ahead == 1
    out = h.step(TaskFinished(2, 2), TaskFinished(1, 1))
    assert not executes(out)  # rank 1 starts it when both exist: no round trip
    h.step(TaskFinished(3, 1))
    assert h.s.n_active == 0


def test_run_ahead_goes_to_the_rank_computing_most_inputs():
    h = Harness(prefetch=3, workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([1])), sub(2, ranks=frozenset([2])), sub(3, ranks=frozenset([2])))
    out = h.step(sub(4, deps=[1, 2, 3]))
    assert [(i.rank, i.inputs) for i in out if isinstance(i, Execute)] == [(2, ((1, ~1), (2, 2), (3, 2)))]


def test_stencil_runs_ahead_column_by_column():
    """A 1-D stencil of width 2 on two ranks: every step is assigned at once, each
    column stays on its rank, and the neighbour's value comes from the other rank."""
    h = Harness(prefetch=8, workers=[(1, 1), (2, 1)])
    prev = [1, 2]
    h.step(sub(1), sub(2))
    tid = 3
    for _ in range(3):
        cur = []
        for _col in range(2):
            h.step(sub(tid, deps=prev))
            cur.append(tid)
            tid += 1
        prev = cur
    where = {i: h.s.tasks[i].worker for i in range(1, tid)}
    assert all(where[i] is not None for i in where)  # all assigned ahead
    assert [where[i] for i in range(1, tid)] == [1, 2] * 4
    assert h.s.n_run_ahead == 6
    for i in range(1, tid):
        h.step(TaskFinished(i, where[i]))
    assert h.s.n_active == 0


def test_no_run_ahead_beyond_capacity_or_behind_unassigned_inputs():
    h = Harness(prefetch=1, workers=[(1, 1)])
    out = h.step(sub(1), sub(2, deps=[1]), sub(3, deps=[2]))
    assert executes(out) == [(1, 1), (1, 2)]  # capacity 2: the third waits for room
    out = h.step(TaskFinished(1, 1))
    assert executes(out) == [(1, 3)]
    h2 = Harness(prefetch=0, workers=[(1, 1)])
    out = h2.step(sub(1), sub(2), sub(3, deps=[1, 2]))
    assert executes(out) == [(1, 1)]  # 2 is not assigned anywhere: 3 waits
    assert h2.s.state_of(3) is TaskState.WAITING


def test_producer_with_a_consumer_waiting_on_another_rank_is_not_stolen():
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1)])
    h.step(*(sub(i, ranks=frozenset([1])) for i in (1, 2)), sub(3, ranks=frozenset([1])))
    h.step(sub(4, ranks=frozenset([2])), sub(5, deps=[3, 4], ranks=frozenset([2])))
    assert h.s.tasks[5].worker == 2 and h.s.tasks[3].worker == 1
    out = h.step(TaskFinished(4, 2))  # rank 2 idles while rank 1 has a queue
    steals = [i for i in out if isinstance(i, Steal)]
    assert all(3 not in st.task_ids for st in steals)


def test_consumer_of_a_returned_producer_is_given_back_and_runs_again():
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([1])), sub(2, ranks=frozenset([2])), sub(3, deps=[1, 2], watch=True))
    assert h.s.tasks[3].worker == 1
    # rank 2 gives task 2 back unasked (an input it was fetching died): the consumer on
    # rank 1 waits for it in vain, and is stale until rank 1 gives it back too
    h.step(TasksReturned(2, ((2, "spec2"),)))
    assert h.s.tasks[3].stale
    out = h.step(TasksReturned(1, ((3, "spec3"),)))
    assert h.s.state_of(3) is TaskState.WAITING or (1, 3) in executes(out) or (2, 3) in executes(out)
    for i in (1, 2):
        out = h.step(TaskFinished(i, h.s.tasks[i].worker))
    r = h.s.tasks[3].worker
    out = h.step(TaskFinished(3, r))
    assert [i for i in out if isinstance(i, Deliver)] == [Deliver(0, 3, owner=r)]


def test_consumer_waiting_on_a_dead_rank_is_stale_until_given_back():
    from dagmpi.core.events import WorkerLost

    h = Harness(prefetch=2, workers=[(1, 1), (2, 1), (3, 1)])
    h.s.lineage = True
    h.step(sub(1), sub(2), sub(3, deps=[1, 2], watch=True))
    home = h.s.tasks[3].worker
    dead = ({h.s.tasks[1].worker, h.s.tasks[2].worker} - {home}).pop()
    h.step(WorkerLost(dead))
    assert h.s.tasks[3].stale and h.s.tasks[3].worker == home
    h.step(TasksReturned(home, ((3, "spec3"),)))  # its worker: "the rank I waited on died"
    for _ in range(4):
        for i in (1, 2):
            t = h.s.tasks[i]
            if t.state is TaskState.ASSIGNED:
                h.step(TaskFinished(i, t.worker))
    t3 = h.s.tasks[3]
    assert t3.state is TaskState.ASSIGNED and not t3.stale
    out = h.step(TaskFinished(3, t3.worker))
    assert any(isinstance(i, Deliver) and i.task_id == 3 and i.error is None for i in out)


def test_a_tree_spreads_over_the_ranks_as_it_runs_ahead():
    # each point of a step reads one point of the step before: once the producer's rank has
    # its share of the depth, the least-loaded rank takes the next child (not the
    # producer's rank, to be stolen back from there)
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1), (3, 1), (4, 1)])
    h.step(sub(1))
    root = h.s.tasks[1].worker
    out = h.step(*(sub(i, deps=[1]) for i in range(2, 6)))
    ex = {i.task_id: i for i in out if isinstance(i, Execute)}
    assert set(ex) == {2, 3, 4, 5}  # all ran ahead, before their input exists
    assert sorted(i.rank for i in ex.values()) == [1, 2, 3, 4]  # one per rank
    for i in ex.values():  # told where the input is computed
        assert i.inputs == ((1, root if i.rank == root else ~root),)
    h.s.validate()


def test_a_big_input_keeps_a_task_that_runs_ahead_on_its_rank():
    # the inputs that exist would take longer to move than a task: no spreading
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1), (3, 1)])
    h.step(sub(1, ranks=frozenset([1])))
    h.step(TaskFinished(1, 1, 10**12, 1e-3))  # 1 TB on rank 1; tasks take 1 ms
    h.step(sub(2, ranks=frozenset([1])))
    out = h.step(*(sub(i, deps=[1, 2]) for i in range(3, 5)))
    # rank 1 has its share of their depth after 3, and 4 stays with it all the same
    assert [(i.rank, i.task_id) for i in out if isinstance(i, Execute)] == [(1, 3), (1, 4)]
    h.s.validate()


def test_a_barren_victim_is_looked_at_again_once_its_load_changes():
    from dagmpi.core.events import WorkerJoined

    h = Harness(prefetch=2, workers=[(1, 1)])
    # rank 1 runs 1; 2 and 3 ran ahead behind it (they wait for 1: nothing to steal)
    h.step(sub(1), sub(2, deps=[1]), sub(3, deps=[1]))
    assert h.s.workers[1].load == 3
    out = h.step(WorkerJoined(2, 1))
    assert not [i for i in out if isinstance(i, Steal)]
    w = h.s.workers[1]
    assert w.barren and 1 not in h.s._victims.get(w.qdepth, ())  # left out of the index
    out = h.step(sub(9, ranks=frozenset([2])))
    assert executes(out) == [(2, 9)]
    out = h.step(TaskFinished(9, 2))  # rank 2 idle again, rank 1 unchanged: not looked at
    assert w.barren and not [i for i in out if isinstance(i, Steal)]
    h.s.validate()
    out = h.step(TaskFinished(1, 1))  # rank 1's load changed (and 2, 3 may start now)
    assert [i for i in out if isinstance(i, Steal)] == [Steal(1, (3,))]
    h.s.validate()


def test_a_task_that_can_be_stolen_once_its_input_ends_elsewhere_is_stolen_at_once():
    # a2 ran ahead behind a long task on rank 1 and waited for an input of rank 2, so
    # rank 1 was no victim; when that input ends, a2 may move: rank 3, idle, takes it
    # (not only once rank 1's load changes)
    from dagmpi.core.events import WorkerJoined

    h = Harness(prefetch=2, workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([1])), sub(2, ranks=frozenset([2])))
    h.step(sub(3, deps=[2]), sub(4, deps=[2]))
    assert h.s.tasks[4].worker == 1
    h.step(WorkerJoined(3, 1))
    assert h.s.workers[1].barren
    out = h.step(TaskFinished(2, 2, 8, 1e-3))
    assert [i for i in out if isinstance(i, Steal)] == [Steal(1, (4,))]


def test_a_near_task_that_failed_on_its_near_rank_is_retried_elsewhere():
    h = Harness(workers=[(1, 1), (2, 1)])
    h.step(sub(1, ranks=frozenset([1])))
    h.step(TaskFinished(1, 1, 8))
    out = h.step(TaskSubmitted(2, "b", (1,), "s2", near=1, retries=1))
    assert executes(out) == [(1, 2)]
    out = h.step(TaskFailed(2, 1, "boom", retryable=True))
    assert executes(out) == [(2, 2)]  # (it stayed READY forever: near said rank 1, avoid said not)


def test_near_task_runs_ahead_on_its_near_rank():
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1), (3, 1)])
    h.step(sub(1, ranks=frozenset([1])), sub(2, ranks=frozenset([2])), sub(9, ranks=frozenset([3])))
    ev = TaskSubmitted(4, "t4", (1, 2), "spec4", 0, 0, None, False, None, 9)
    out = h.step(ev)
    assert [(i.rank, i.inputs) for i in out if isinstance(i, Execute)] == [(3, ((1, ~1), (2, ~2)))]


def test_failed_input_fails_the_task_that_ran_ahead():
    h = Harness(prefetch=3, workers=[(1, 1)])
    h.step(sub(1), sub(2, deps=[1], watch=True), sub(3, deps=[2], watch=True))
    out = h.step(TaskFailed(1, 1, "boom"))
    failed = {i.task_id: i.error for i in out if isinstance(i, Deliver)}
    assert set(failed) == {2, 3} and all(isinstance(e, UpstreamFailure) for e in failed.values())
    assert h.s.workers[1].load == 0
    # a late report from the worker about a task already failed here is ignored
    h.step(TaskFailed(2, 1, "late"))


def test_started_work_goes_before_new_roots():
    h = Harness(prefetch=0, workers=[(1, 1)])
    h.step(*(sub(i) for i in range(1, 7)))  # six loads; one slot: 1 runs, 2..6 wait
    h.step(TaskFinished(1, 1))  # 2 runs
    out = h.step(sub(10, deps=[1, 2]), TaskFinished(2, 1))
    # the reduction of the two finished loads goes before the remaining loads
    assert executes(out) == [(1, 10)]
    out = h.step(TaskFinished(10, 1))
    assert executes(out) == [(1, 3)]
    # explicit priority still wins over depth
    h.step(sub(20, priority=5), sub(21, deps=[10]))
    out = h.step(TaskFinished(3, 1))
    assert executes(out) == [(1, 20)]


def test_a_chain_over_kept_blocks_ends_before_the_next_block_starts():
    """Tasks that free an input nobody else holds go first: ``g(f(x_i))`` over kept
    blocks ``x_i`` keeps one intermediate alive, not one per block."""
    h = Harness(prefetch=0, workers=[(1, 1)])
    for x in (1, 2, 3):  # kept blocks (their handles stay)
        h.step(sub(x))
        h.step(TaskFinished(x, 1))
    assert executes(h.step(sub(11, deps=[1]), sub(12, deps=[2]), sub(13, deps=[3]),
                           sub(21, deps=[11]), sub(22, deps=[12]), sub(23, deps=[13]),
                           *(HandleReleased(i) for i in (11, 12, 13)))) == [(1, 11)]
    order = []
    for tid in (11, 21, 12, 22, 13, 23):
        order += [i for _, i in executes(h.step(TaskFinished(tid, 1)))]
    assert order == [21, 12, 22, 13, 23]


def test_shallower_started_work_goes_first():
    """Among tasks with inputs, the older step first: in a stencil, the step the other
    ranks' next step waits for (depth first let a rank run its own next step while
    its neighbours idled for this one)."""
    h = Harness(prefetch=0, workers=[(1, 1)])
    h.step(sub(1), sub(2), sub(3))  # 1 runs
    h.step(TaskFinished(1, 1))  # 2 runs
    h.step(sub(10, deps=[1]))  # depth 1: waits for the slot
    assert executes(h.step(TaskFinished(2, 1))) == [(1, 10)]  # started work before the root 3
    h.step(sub(11, deps=[10]), sub(12, deps=[2]))  # 11: depth 2, waits for 10; 12: depth 1, ready
    out = h.step(TaskFinished(10, 1))  # 11 becomes ready too
    assert executes(out) == [(1, 12)]  # the shallower one first
    assert executes(h.step(TaskFinished(12, 1))) == [(1, 11)]
    assert executes(h.step(TaskFinished(11, 1))) == [(1, 3)]  # roots last


# ------------------------------------------------------------------ retries, timeouts

from dagmpi.core.events import StuckReturned  # noqa: E402


def rsub(tid, retries, deps=(), watch=True):
    return TaskSubmitted(tid, f"t{tid}", tuple(deps), f"spec{tid}", 0, 0, None, watch, None, None, retries)


def test_retry_runs_again_on_another_rank_then_gives_up():
    h = Harness(prefetch=0, workers=[(1, 1), (2, 1)])
    out = h.step(rsub(1, retries=2))
    ex = [i for i in out if isinstance(i, Execute)]
    assert [(i.rank, i.attempt, i.spec) for i in ex] == [(1, 1, "spec1")]
    out = h.step(TaskFailed(1, 1, "e1", retryable=True))
    ex = [i for i in out if isinstance(i, Execute)]
    assert [(i.rank, i.attempt, i.spec) for i in ex] == [(2, 2, "spec1")]  # elsewhere, same spec
    out = h.step(TaskFailed(1, 2, "e2", retryable=True))
    assert [(i.rank, i.attempt) for i in out if isinstance(i, Execute)] == [(1, 3)]
    out = h.step(TaskFailed(1, 1, "e3", retryable=True))
    assert [i.error for i in out if isinstance(i, Deliver)] == ["e3"]  # out of retries
    assert h.s.n_retried == 2


def test_non_retryable_error_fails_at_once():
    h = Harness(prefetch=0, workers=[(1, 1), (2, 1)])
    h.step(rsub(1, retries=5))
    out = h.step(TaskFailed(1, 1, "nope", retryable=False))
    assert [i.error for i in out if isinstance(i, Deliver)] == ["nope"]


def test_rank_with_a_stuck_call_gets_no_work_until_it_returns():
    h = Harness(prefetch=2, workers=[(1, 1), (2, 1)])
    h.step(rsub(1, retries=1))
    out = h.step(TaskFailed(1, 1, "timeout", retryable=True, stuck=True))
    assert executes(out) == [(2, 1)]  # retried on the other rank
    out = h.step(sub(5), sub(6))
    assert {r for r, _ in executes(out)} == {2}  # rank 1 is not trusted
    out = h.step(StuckReturned(1), sub(7))
    assert executes(out) == [(1, 7)]


def fsub(tid, fn, ranks=None):
    return TaskSubmitted(tid, f"t{tid}", (), f"spec{tid}", 0, 0, ranks, False, None, None, 0, fn)


def test_durations_are_learned_per_function_and_drive_queue_wait():
    h = Harness(prefetch=8, workers=[(1, 1), (2, 1)])
    # learn: "slow" takes 1 s, "fast" 1 ms
    h.step(fsub(1, "slow", ranks=frozenset([1])), fsub(2, "fast", ranks=frozenset([2])))
    h.step(TaskFinished(1, 1, duration=1.0), TaskFinished(2, 2, duration=1e-3))
    assert h.s.estimate(_probe(h, "slow")) == 1.0 and h.s.estimate(_probe(h, "fast")) == 1e-3
    # rank 1 gets one slow task, rank 2 three fast ones
    h.step(fsub(10, "slow", ranks=frozenset([1])),
           *(fsub(i, "fast", ranks=frozenset([2])) for i in (11, 12, 13)))
    # a new task waits less behind three fast tasks than behind one slow one
    out = h.step(fsub(20, "fast"))
    assert executes(out) == [(2, 20)]


def _probe(h, fn):
    from dagmpi.core.records import TaskRecord as _Task
    return _Task(fsub(999, fn))


def test_ready_queue_orders_by_key_then_fifo_and_puts_back_in_front():
    from dagmpi.core.ready import ReadyQueue

    q = ReadyQueue()
    for key, tid in [((0, 0, 0), 1), ((-5, 0, 0), 2), ((0, 0, 0), 3), ((0, -2, 0), 4), ((-5, 0, 0), 5)]:
        q.put(key, tid)
    assert len(q) == 5 and q.ids() == {1, 2, 3, 4, 5}
    taken = [q.take() for _ in range(3)]
    assert [i for _, i in taken] == [2, 5, 4]  # higher priority first, FIFO within; then smaller keys
    q.put_back(taken[1:])  # 5 and 4 could not be placed: they keep their places
    assert [q.take()[1] for _ in range(len(q))] == [5, 4, 1, 3]
    assert len(q) == 0 and q.ids() == set()


def test_a_chain_longer_than_the_python_stack_runs_ahead_in_one_go():
    import sys

    s = Scheduler(prefetch=2, max_queue=100000)
    s.handle(WorkerJoined(1))
    s.workers[1].capacity = 10 * sys.getrecursionlimit()  # room for the whole chain
    n = 3 * sys.getrecursionlimit()
    evs = [TaskSubmitted(1, "f", (), None)] + [TaskSubmitted(i, "f", (i - 1,), None) for i in range(2, n + 1)]
    out = s.handle_many(evs)
    assert sum(type(i) is Execute for i in out) == n  # every link sent to rank 1 at once
    s.validate()


def test_values_in_gpu_memory_count_against_gpu_memory():
    h = Harness(prefetch=2, workers=[])
    h.step(WorkerJoined(1, 2, {"cpu": 2, "gpu": 1, "gpu_memory": 100.0}))
    # task 1 (watched: a handle keeps its value) leaves 80 bytes in the GPU's memory
    h.step(TaskSubmitted(1, "t1", (), "s", 0, 0, None, True, None, None))
    h.step(TaskFinished(1, 1, 800, 0.0, 80))
    assert h.s.workers[1].used["gpu_memory"] == 80
    out = h.step(gsub(2, needs={"gpu_memory": 50.0}))
    assert executes(out) == []  # only 20 bytes free: it waits
    out = h.step(HandleReleased(1))
    assert Release(1, 1) in out and executes(out) == [(1, 2)]  # freed: it runs
    assert h.s.workers[1].used["gpu_memory"] == 50
    h.step(TaskFinished(2, 1))
    assert h.s.workers[1].used["gpu_memory"] == 0


def test_gpu_memory_of_a_dead_rank_is_forgotten_and_a_rejoin_keeps_its_values():
    from dagmpi.core.events import WorkerLost

    h = Harness(prefetch=2, workers=[])
    h.step(WorkerJoined(1, 1, {"cpu": 1, "gpu": 1, "gpu_memory": 100.0}),
           WorkerJoined(2, 1, {"cpu": 1, "gpu": 1, "gpu_memory": 100.0}))
    h.step(TaskSubmitted(1, "t1", (), "s", 0, 0, frozenset([1]), True, None, None),
           TaskSubmitted(2, "t2", (), "s", 0, 0, frozenset([2]), True, None, None))
    h.step(TaskFinished(1, 1, 80, 0.0, 80), TaskFinished(2, 2, 30, 0.0, 30))
    h.step(WorkerJoined(2, 1, {"cpu": 1, "gpu": 1, "gpu_memory": 100.0}, rejoin=True))
    assert h.s.workers[2].used["gpu_memory"] == 30
    h.step(WorkerLost(1))
    assert 1 not in {r for r, _ in h.s._gpu_held.values()}
    h.step(HandleReleased(2))
    assert h.s.workers[2].used["gpu_memory"] == 0


def test_least_loaded_index_agrees_with_a_scan_under_random_load():
    """The heap of ranks with room moves an entry only when its key falls (a grown
    key moves when it comes to the top): the rank it gives is always the one a scan
    of every worker gives, through random submissions, finishes of functions of
    different durations, blocked tasks, slot counts and a worker leaving."""
    import random

    from dagmpi.core.events import WorkerLost

    for seed in range(40):
        rng = random.Random(seed)
        s = Scheduler(prefetch=rng.randint(0, 3), queue_window=0)
        ranks = list(range(1, rng.randint(2, 9)))
        s.handle(*(WorkerJoined(r, rng.randint(1, 3)) for r in ranks))
        running: list[int] = []
        blocked: list[int] = []
        tid = 0
        for _ in range(300):
            r = rng.random()
            if r < 0.45:
                tid += 1
                deps = tuple(rng.sample(range(1, tid), k=min(tid - 1, rng.randint(0, 2)))) if tid > 1 else ()
                deps = tuple(d for d in deps if d in s.tasks and s.tasks[d].state is not TaskState.ERRORED)
                fn = rng.choice(("a", "b", "c"))
                out = s.handle(TaskSubmitted(tid, fn, deps, "spec", 0, 0, None, False, fn=fn))
            elif r < 0.85 and running:
                t = running.pop(rng.randrange(len(running)))
                rec = s.tasks.get(t)
                fn = rec.fn[0] if rec is not None else "a"  # (its function, processor kind)
                dur = {"a": 1e-3, "b": 1e-2, "c": 0.1}[fn] * rng.uniform(0.5, 2)
                out = s.handle(TaskFinished(t, s.tasks[t].worker, 8, dur) if rec is not None
                               and rec.worker is not None else TaskFinished(t, 1, 8, dur))
            elif r < 0.92 and running:
                t = running.pop(rng.randrange(len(running)))
                blocked.append(t)
                out = s.handle(TaskBlocked(t))
            elif blocked:
                t = blocked.pop()
                running.append(t)
                out = s.handle(TaskUnblocked(t))
            else:
                continue
            running += [i.task_id for i in out if isinstance(i, Execute)]
            running = [t for t in running if t in s.tasks and s.tasks[t].state is TaskState.ASSIGNED]
            s.validate()
            scan = min(((w.backlog / w.slots, w.rank) for w in s.workers.values() if w.free > 0), default=None)
            got = s._least_loaded()
            assert (None if got is None else (got.backlog / got.slots, got.rank)) == scan, seed
        if len(ranks) > 2:  # a worker leaves: its entries go, the others stay right
            s.handle(WorkerLost(ranks[-1]))
            s.validate()
            scan = min(((w.backlog / w.slots, w.rank) for w in s.workers.values() if w.free > 0), default=None)
            got = s._least_loaded()
            assert (None if got is None else (got.backlog / got.slots, got.rank)) == scan, seed
