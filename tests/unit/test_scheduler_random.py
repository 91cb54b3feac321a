"""The scheduler under random events, with workers that do what it says (no MPI).

Workers obey ``Execute``/``Steal``/``Release``; the events are random: submissions (inputs,
rank scopes, resources, ``near`` tasks and ranks, retries, three functions, values from 8 B
to 10 MB), finishes, failures (retryable, stuck), blocked/unblocked tasks, steal answers
(at once or later), tasks given back when an input's rank died, joins, rejoins, deaths and
released handles, on three bandwidths.  After every step: ``validate()`` (the indexes agree
with the records), no READY task that could be placed, no task listed as running ahead that
no rank lists, every value computed from the right inputs; at the end every task is final.
A run that can go no further with tasks left is a hang.  (Written for the review of the
steal index, the ``ahead`` retries and the run-ahead spread, 2026-12-07; it found a task
retried after failing on its ``near`` rank that stayed READY, and a value computed again
from an input that had failed that waited forever, both older, and both mended.)
"""

import random

import pytest

from dagmpi.core.events import (Execute, HandleReleased, Release, Steal, StuckReturned,
                                TaskBlocked, TaskFailed, TaskFinished, TaskSubmitted,
                                TaskUnblocked, TasksReturned, WorkerJoined, WorkerLost)
from dagmpi.core.scheduler import Scheduler
from dagmpi.core.states import TaskState

_READY, _WAITING, _ASSIGNED = TaskState.READY, TaskState.WAITING, TaskState.ASSIGNED


class Sim:
    def __init__(self, seed, n_tasks=400, steal_delay=True, profile="default"):
        self.rng = rng = random.Random(seed)
        self.s = Scheduler(prefetch=rng.randint(0, 3), queue_window=rng.choice([0, 0, 2e-3]),
                           lineage=True, max_lost=10)
        self.s.bandwidth = rng.choice([2e9, 1e3, 1e6])
        self.next_rank = 1
        self.alive = set()
        self.queues = {}
        self.store = {}
        self.blocked = {}  # rank -> set of tids blocked (started)
        self.stuck = []  # ranks owing a StuckReturned
        self.pending_steals = []
        self.events = []
        self.expected = {}
        self.held = set()
        self.fn = {}
        self.recent = rng.choice([0, 3, 8, 20])
        self.n_start = rng.choice([2, 3, 6, 12])
        if profile == "deep":  # deep queues, few recent inputs: trees, steals
            self.recent = rng.choice([2, 4, 6])
            self.n_start = rng.choice([4, 8, 16])
            self.s.max_queue = rng.choice([4, 16, 256])
            self.s.queue_window = rng.choice([2e-3, 5e-2])
        self.n_tasks = n_tasks
        self.tid = 0
        self.steal_delay = steal_delay
        self.stats = dict(steals=0, returned=0, lost=0, joined=0, rejoin=0, blocked=0, failed=0,
                          finished=0, barren=0)
        for _ in range(self.n_start):
            self.join()

    def join(self):
        r = self.next_rank
        self.next_rank += 1
        res = {"cpu": 4, "gpu": 1} if r == 1 or self.rng.random() < 0.4 else None
        self.alive.add(r)
        self.queues[r] = []
        self.store[r] = {}
        self.blocked[r] = set()
        self.events.append(WorkerJoined(r, self.rng.randint(1, 3), res))
        self.stats["joined"] += 1

    def submit(self):
        rng = self.rng
        self.tid += 1
        tid = self.tid
        pool = sorted(self.held)
        if self.recent:
            pool = pool[-self.recent:]
        deps = tuple(sorted(set(rng.sample(pool, min(len(pool), rng.choice([0, 1, 1, 1, 2, 3]))))))
        ranks = needs = near = None
        x = rng.random()
        if x < 0.1 and self.alive:
            ranks = frozenset(rng.sample([1, 2], rng.randint(1, 2)))
        elif x < 0.18:
            needs = {"gpu": 1}
        elif x < 0.25 and deps:
            near = rng.choice(deps)
        elif x < 0.28 and self.alive:
            near = -1 - rng.choice(sorted(self.alive))
        fn = rng.choice("abc")
        self.fn[tid] = fn
        self.expected[tid] = tid + sum(self.expected[d] for d in deps)
        self.held.add(tid)
        self.events.append(TaskSubmitted(tid, f"t{tid}", deps, f"spec{tid}", 0, rng.randint(0, 1) * 0,
                                         ranks, False, needs, near,
                                         rng.choice([0, 0, 1, 2]), fn))

    def apply(self, out):
        for ins in out:
            if isinstance(ins, Execute):
                assert ins.rank in self.alive, ins
                self.queues[ins.rank].append(ins)
            elif isinstance(ins, Release):
                if ins.rank in self.alive:
                    self.store[ins.rank].pop(ins.task_id, None)
            elif isinstance(ins, Steal):
                self.stats["steals"] += 1
                if self.steal_delay and self.rng.random() < 0.5:
                    self.pending_steals.append(ins)
                else:
                    self.answer(ins)

    def answer(self, ins):
        if ins.rank not in self.alive:
            return
        q = self.queues[ins.rank]
        started = {q[0].task_id} if q else set()
        started |= self.blocked[ins.rank]
        back = [e for e in q if e.task_id in ins.task_ids and e.task_id not in started]
        self.queues[ins.rank] = [e for e in q if e not in back]
        kept = tuple(t for t in ins.task_ids if t not in {e.task_id for e in back})
        self.stats["returned"] += len(back)
        self.events.append(TasksReturned(ins.rank, tuple((e.task_id, e.spec) for e in back), kept))

    def resolve(self, r, ex):
        args = []
        for dep, owner in ex.inputs:
            if type(owner) is int and owner < 0:
                owner = ~owner
                if owner in self.alive and dep not in self.store[owner]:
                    if any(e.task_id == dep for e in self.queues[owner]):
                        return False
                    return None
            if owner not in self.alive:
                return None
            if dep not in self.store[owner]:
                assert owner == r, f"input {dep} missing on live rank {owner} (for {ex.task_id} on {r})"
                return False
            args.append(self.store[owner][dep])
        return args

    def give_back(self, r, ex):
        q = self.queues[r]
        q.remove(ex)
        back, gone = [ex], {ex.task_id}
        grew = True
        while grew:
            grew = False
            for e in list(q):
                if e.task_id in self.blocked[r]:
                    continue
                if any(o == r and d in gone for d, o in e.inputs):
                    q.remove(e)
                    back.append(e)
                    gone.add(e.task_id)
                    grew = True
        self.blocked[r] -= gone
        self.events.append(TasksReturned(r, tuple((e.task_id, e.spec) for e in back)))

    def check_ahead(self):
        s = self.s
        listed = set()
        for w in s.workers.values():
            listed.update(w.ahead)
        for t in s.tasks.values():
            if t.in_ahead and t.state is _WAITING and t.id not in listed:
                self.stats["orphan_in_ahead"] = self.stats.get("orphan_in_ahead", 0) + 1

    def check_quiescent(self):
        """After a step no READY task may be placeable (else it waits for an unrelated event)."""
        s = self.s
        for t in s.tasks.values():
            if t.state is _READY:
                w = s._choose_worker(t)
                assert w is None, f"READY task {t.id} placeable on {w.rank} after the step"

    def step_once(self):
        s = self.s
        events, self.events = self.events, []
        self.apply(s.handle(*events))
        s.validate()
        self.check_quiescent()
        self.check_ahead()
        self.stats["barren"] += sum(1 for w in s.workers.values() if w.barren)

    def random_event(self, submitting):
        rng = self.rng
        x = rng.random()
        if submitting and x < 0.35:
            for _ in range(rng.randint(1, 3 * self.n_start)):
                if self.tid < self.n_tasks:
                    self.submit()
            return True
        if x < 0.38 and self.held and rng.random() < 0.5:
            tid = rng.choice(sorted(self.held))
            if tid < self.tid - 20:
                self.held.discard(tid)
                self.events.append(HandleReleased(tid))
                return True
        if x < 0.40 and self.pending_steals:
            self.answer(self.pending_steals.pop(rng.randrange(len(self.pending_steals))))
            return True
        if x < 0.405 and submitting and len(self.alive) > 1:
            dead = rng.choice(sorted(self.alive - {1, 2}) or [0])
            if not dead:
                return False
            self.alive.discard(dead)
            del self.queues[dead], self.store[dead], self.blocked[dead]
            self.stuck = [r for r in self.stuck if r != dead]
            self.events.append(WorkerLost(dead))
            self.stats["lost"] += 1
            return True
        if x < 0.415 and submitting:
            self.join()
            return True
        if x < 0.43 and submitting:
            idle = [r for r in sorted(self.alive) if not self.queues[r] and r in self.s.workers
                    and not self.s.workers[r].assigned and r not in self.stuck]
            if idle:
                r = rng.choice(idle)
                self.events.append(WorkerJoined(r, rng.randint(1, 3), self.s.workers[r].total or None, rejoin=True))
                self.stats["rejoin"] += 1
                return True
        if x < 0.45 and self.stuck:
            self.events.append(StuckReturned(self.stuck.pop(rng.randrange(len(self.stuck)))))
            return True
        # work on some rank
        busy = [r for r in sorted(self.alive) if self.queues[r]]
        if not busy:
            if self.pending_steals:
                self.answer(self.pending_steals.pop(0))
                return True
            if self.stuck:
                self.events.append(StuckReturned(self.stuck.pop()))
                return True
            return False
        r = rng.choice(busy)
        q = self.queues[r]
        if self.blocked[r] and rng.random() < 0.5:
            tid = rng.choice(sorted(self.blocked[r]))
            self.blocked[r].discard(tid)
            self.events.append(TaskUnblocked(tid))
            return True
        # like a worker: the first job whose inputs are there (or give one back)
        for ex in list(q):
            if ex.task_id in self.blocked[r]:
                continue
            st = self.s.tasks.get(ex.task_id)
            if st is None or st.state is TaskState.ERRORED:
                q.remove(ex)  # an input failed: the worker drops it (told by the producer)
                return True
            args = self.resolve(r, ex)
            if args is None:
                self.give_back(r, ex)
                return True
            if args is False:
                continue
            y = rng.random()
            if y < 0.08:
                self.blocked[r].add(ex.task_id)
                self.events.append(TaskBlocked(ex.task_id))
                self.stats["blocked"] += 1
                return True
            if y < 0.11:
                q.remove(ex)
                stuck = rng.random() < 0.3
                if stuck:
                    self.stuck.append(r)
                self.events.append(TaskFailed(ex.task_id, r, "boom", retryable=True, stuck=stuck))
                self.stats["failed"] += 1
                return True
            q.remove(ex)
            val = ex.task_id + sum(args)
            assert val == self.expected[ex.task_id], f"task {ex.task_id}: wrong inputs"
            self.store[r][ex.task_id] = val
            nb = rng.choice([8, 8, 8, 10 ** 4, 10 ** 7])
            dur = {"a": 1e-3, "b": 1e-2, "c": 1e-4}[self.fn[ex.task_id]] * rng.uniform(0.5, 2)
            self.events.append(TaskFinished(ex.task_id, r, nb, dur))
            self.stats["finished"] += 1
            return True
        # every job of this rank waits: blocked ones must unblock eventually
        if self.blocked[r]:
            tid = sorted(self.blocked[r])[0]
            self.blocked[r].discard(tid)
            self.events.append(TaskUnblocked(tid))
            return True
        return None  # this rank waits for others

    def explain(self):
        s = self.s
        out = []
        for t in s.tasks.values():
            if t.state in (_READY, _WAITING, _ASSIGNED):
                out.append(f"{t.id} {t.state.name} w={t.worker} ranks={t.ranks and set(t.ranks)} needs={t.needs} "
                           f"near={t.near} avoid={t.avoid} in_ahead={t.in_ahead} waiting={t.waiting} deps="
                           + str([(d, s.tasks[d].state.name, s.tasks[d].worker, s.tasks[d].owner, s.tasks[d].gone) for d in t.deps]))
        ws = [(w.rank, w.load, w.capacity, w.stuck, w.free, list(w.ahead)) for w in s.workers.values()]
        return "\n  ".join(out[:12]) + f"\n  workers {ws} alive {sorted(self.alive)}"

    def run(self, max_steps=20000):
        s = self.s
        for stepno in range(max_steps):
            self.step_once()
            submitting = self.tid < self.n_tasks
            if not submitting and s.n_active == 0 and not self.events:
                return stepno
            progressed = False
            for _ in range(200):
                got = self.random_event(submitting)
                if got:
                    progressed = True
                    break
                if got is False and not submitting:
                    break
            if not progressed and not self.events:
                # every busy rank waits for another, and nothing else can happen: a hang
                raise AssertionError(f"hang: {s.n_active} active; " + self.explain()
                                     + f"; queues {{{', '.join(f'{r}: {[e.task_id for e in q]}' for r, q in self.queues.items())}}}")
        raise AssertionError("did not finish")


@pytest.mark.parametrize("profile,seeds", [("default", range(0, 24)), ("deep", range(100, 112))])
def test_every_task_ends_under_random_events(profile, seeds):
    for seed in seeds:
        sim = Sim(seed, profile=profile)
        try:
            sim.run()
        except AssertionError as e:
            raise AssertionError(f"{profile} seed {seed}: {e}") from None
        assert sim.s.n_active == 0 and sim.stats["finished"] > 0
