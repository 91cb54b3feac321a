"""Rank 0's real scheduler against W simulated workers: Task Bench METG at scales this
machine cannot host.

    python benchmarks/simulate.py [--workers 32,512,4096] [--patterns stencil_1d,nearest5,tree,fft,trivial]
                                  [--steps 6] [--latency 5e-6] [--bandwidth 10e9]

A discrete-event simulation with a simulated clock.  Rank 0 is the real
:class:`dagmpi.core.scheduler.Scheduler`: every batch of events it handles is
timed (``perf_counter``) and that real CPU time is charged to rank 0's clock,
so the scheduler's cost per task -- and how it grows with the number of
workers -- is what the simulation measures.  Workers are simulated: one slot
each, a run queue, inputs that arrive ``latency`` + bytes / ``bandwidth``
after their producer finished (pushed to consumers that ran ahead, as the real
workers do), task durations as given, results reported to rank 0 after
``latency``.  The workers have joined when the clock starts (at 0); the driver
spawns the whole graph from then and drives the loop
every 128 spawns, as the real one does; its own cost per spawn, measured at the start
(``dagmpi.spawn`` in this process while its loop does not run, see
:func:`measure_spawn_cost`: a base cost and one per Task argument,
``--spawn-cost``/``--spawn-dep-cost`` to set them), is charged to rank 0 too, which it
shares a process with; so is its cost per launch (``--launch-cost``).
Rank 0's garbage-collection threshold is the one dagmpi sets on MPI ranks.

Graphs are Task Bench's (``benchmarks/taskbench.py``): ``--steps`` steps of width
= workers, each task reading its pattern's points of the step before, 16-byte
values (``tree`` gets 3 log2(width) more steps: its width doubles from one point,
and the steps at full width must dominate for 50% to be reachable at all).
For each pattern and W the task duration is searched (bisection on a log
scale) for METG(50%): the smallest duration at which the workers are busy at least
half of the makespan.  Next to the published Task Bench figures (SC20, stencil,
METG(50%)): MPI 4.6-61 µs up to 256 nodes, Regent/Legion index launches ~1 ms,
Dask 186 ms on one node and 1.21 s on 16.

``--launches`` also runs each graph as launches (one per step, one point per
task: :mod:`dagmpi.core.launches`): rank 0 handles one ``LaunchSubmitted`` per
step and sends one ``ExecuteLaunch``, which travels down a 16-ary tree of the
ranks (a hop of ``latency`` per level); the simulated workers expand their points
with the real worker-side code (``launches.expand``, its measured time charged to
the worker's clock), get remote inputs from their producers, and report up the
same tree (``launches.Reports``: a rank reports once its points and its subtree's
are done), so rank 0 handles one ``LaunchDone`` per launch.  A run ends when the last point has finished and rank 0
has handled every report.  The runtime runs ``dagmpi.spawn_many`` (and the array
layer's operations) this way: see docs/design.md.
"""

from __future__ import annotations

import argparse
import collections
import gc
import heapq
import json
import math
import os
import sys
import time
import tracemalloc
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402
from taskbench import active, deps, graph_width, launch_projection  # noqa: E402

from dagmpi.core import events as ev  # noqa: E402
from dagmpi.core import launches as lc  # noqa: E402
from dagmpi.core.scheduler import Scheduler  # noqa: E402

#: Task Bench (SC20) METG(50%) on the stencil pattern, seconds, for the table.
PUBLISHED = "MPI 4.6-61 µs (1-256 nodes); Regent/Legion ~1 ms; Dask 186 ms (1 node), 1.21 s (16 nodes)"
VALUE_BYTES = 16
SUBMIT_BATCH = 128


class Worker:
    __slots__ = ("rank", "free_at", "ready", "jobs", "values")

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.free_at = 0.0
        self.ready: collections.deque = collections.deque()  # job ids whose inputs are here, FIFO
        self.jobs: dict[int, list] = {}  # task id -> [inputs missing, spec]
        self.values: dict[int, float] = {}  # task id -> when its value exists here


class Simulation:
    """One run of one graph at one task duration."""

    def __init__(self, nworkers: int, latency: float, bandwidth: float, duration: float,
                 spawn_cost: float = 0.0, spawn_dep_cost: float = 0.0) -> None:
        self.sched = Scheduler(prefetch=2, lineage=False)
        # the driver's own cost per spawn and per Task argument (same process as rank 0's loop)
        self.spawn_cost = spawn_cost
        self.spawn_dep_cost = spawn_dep_cost
        self.submits: list = []
        self.workers = {r: Worker(r) for r in range(1, nworkers + 1)}
        self.latency = latency
        self.hop = latency + VALUE_BYTES / bandwidth  # a value's trip to another rank
        self.duration = duration
        self.queue: list = []  # (time, seq, kind, payload)
        self.seq = 0
        self.inbox: list = []  # (arrival time, seq, event) for rank 0
        self.rank0_free = 0.0
        self.rank0_cpu = 0.0
        self.handle_calls = 0
        self.finished = 0
        self.last_finish = 0.0
        self.done_at: dict[int, tuple[int, float]] = {}  # task id -> (rank, when its value exists)
        self.waiters: dict[int, list] = collections.defaultdict(list)  # task id -> [(rank, job id)]

    # ---------------------------------------------------------------- plumbing

    def at(self, t: float, kind: str, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (t, self.seq, kind, payload))

    def to_rank0(self, t: float, event: object) -> None:
        self.seq += 1
        heapq.heappush(self.inbox, (t, self.seq, event))

    def rank0_step(self, now: float) -> None:
        """Rank 0 takes every event that has arrived, and the next ``SUBMIT_BATCH`` spawns of
        the driver (which drives the loop every 128 spawns), and handles them as one batch."""
        batch = []
        while self.inbox and self.inbox[0][0] <= now:
            batch.append(heapq.heappop(self.inbox)[2])
        spawned = self.submits[:SUBMIT_BATCH]
        del self.submits[:SUBMIT_BATCH]
        batch.extend(spawned)
        if not batch:
            return
        t0 = time.perf_counter()
        out = self.sched.handle_many(batch)
        cpu = time.perf_counter() - t0 + len(spawned) * self.spawn_cost + \
            (sum(len(s.deps) for s in spawned) * self.spawn_dep_cost if self.spawn_dep_cost else 0.0)
        self.rank0_cpu += cpu
        self.handle_calls += 1
        self.rank0_free = now + cpu
        self.handled(batch)
        for ins in out:
            self.dispatch(ins)

    def handled(self, batch: list) -> None:
        """Hook: rank 0 has just handled ``batch`` (its clock is at ``rank0_free``)."""

    def dispatch(self, ins: object) -> None:
        """Carry out one of rank 0's instructions (it leaves rank 0 at ``rank0_free``)."""
        kind = type(ins)
        if kind is ev.Execute:
            self.at(self.rank0_free + self.latency, "exec", ins)
        elif kind is ev.Steal:
            self.at(self.rank0_free + self.latency, "steal", ins)

    def need(self, t: float, w: "Worker", tid: int, inputs: tuple) -> int:
        """Ask for a job's inputs that are not on ``w`` (from ``t``); how many are missing."""
        missing = 0
        for dep, owner in inputs:
            if dep in w.values:
                continue
            done = self.done_at.get(dep)
            if done is not None:  # exists on ``done[0]``: asked for now, arrives after a round trip
                src, when = done
                arrive = max(t + self.latency, when) + self.hop if src != w.rank else when
                self.at(arrive, "input", (w.rank, tid, dep))
            else:  # being computed (ran ahead): its producer pushes it when it exists
                self.waiters[dep].append((w.rank, tid))
            missing += 1
        return missing

    # ---------------------------------------------------------------- workers

    def on_exec(self, t: float, ins: ev.Execute) -> None:
        w = self.workers[ins.rank]
        missing = self.need(t, w, ins.task_id, ins.inputs)
        w.jobs[ins.task_id] = [missing, ins.spec]
        if missing == 0:
            self.make_ready(t, w, ins.task_id)

    def on_input(self, t: float, rank: int, tid: int, dep: int) -> None:
        w = self.workers[rank]
        w.values.setdefault(dep, t)
        job = w.jobs.get(tid)
        if job is None:
            return  # (given back meanwhile)
        job[0] -= 1
        if job[0] == 0:
            self.make_ready(t, w, tid)

    def make_ready(self, t: float, w: Worker, tid: int) -> None:
        w.ready.append(tid)
        if w.free_at <= t and len(w.ready) == 1:
            self.at(t, "start", w.rank)

    def on_start(self, t: float, rank: int) -> None:
        w = self.workers[rank]
        if not w.ready or w.free_at > t:
            return
        tid = w.ready.popleft()
        del w.jobs[tid]
        end = t + self.duration
        w.free_at = end
        self.at(end, "end", (rank, tid))

    def on_end(self, t: float, rank: int, tid: int) -> None:
        w = self.workers[rank]
        w.values[tid] = t
        self.done_at[tid] = (rank, t)
        for dest, job in self.waiters.pop(tid, ()):
            self.at(t if dest == rank else t + self.hop, "input", (dest, job, tid))
        self.report_end(t, rank, tid)
        self.finished += 1
        self.last_finish = t
        if w.ready:
            self.at(t, "start", rank)

    def report_end(self, t: float, rank: int, tid: int) -> None:
        """Tell rank 0 that ``tid`` ended on ``rank``."""
        self.to_rank0(t + self.latency, ev.TaskFinished(tid, rank, VALUE_BYTES, self.duration))

    def on_steal(self, t: float, ins: ev.Steal) -> None:
        w = self.workers[ins.rank]
        returned, kept = [], []
        for tid in ins.task_ids:
            job = w.jobs.get(tid)
            if job is not None and tid in w.ready:
                w.ready.remove(tid)
                del w.jobs[tid]
                returned.append((tid, job[1]))
            else:
                kept.append(tid)
        self.to_rank0(t + self.latency, ev.TasksReturned(ins.rank, tuple(returned), tuple(kept)))

    # ---------------------------------------------------------------- the run

    def join(self) -> None:
        """The workers join before the clock starts (as Task Bench times a graph on a
        started runtime; start-up is measured in ``benchmarks/many_ranks.py``)."""
        self.sched.handle_many([ev.WorkerJoined(r, 1, {"cpu": 1}) for r in self.workers])

    def loop(self, handlers: dict, finished, what: str) -> None:
        """Run events until ``finished()``: rank 0 runs whenever it is free and has mail;
        the workers' events interleave by time."""
        while not finished():
            t_worker = self.queue[0][0] if self.queue else math.inf
            t_rank0 = self.rank0_free if self.submits else \
                max(self.rank0_free, self.inbox[0][0]) if self.inbox else math.inf
            if t_rank0 <= t_worker:
                if t_rank0 == math.inf:
                    raise RuntimeError(f"the simulation stalled with {what} left")
                self.rank0_step(t_rank0)
            else:
                now, _, kind, payload = heapq.heappop(self.queue)
                handlers[kind](now, payload)

    def run(self, graph: list[tuple[int, tuple[int, ...]]]) -> float:
        """Simulate ``graph`` (``(task id, deps)`` in submission order); the makespan."""
        self.join()
        self.submits = [ev.TaskSubmitted(tid, "point", d, tid, 0, fn="point") for tid, d in graph]
        total = len(graph)
        handlers = {"exec": lambda t, p: self.on_exec(t, p), "input": lambda t, p: self.on_input(t, *p),
                    "start": lambda t, p: self.on_start(t, p), "end": lambda t, p: self.on_end(t, *p),
                    "steal": lambda t, p: self.on_steal(t, p)}
        self.loop(handlers, lambda: self.finished >= total, "tasks")
        return self.last_finish


class LaunchSimulation(Simulation):
    """The same graph as launches: one per step (see the module docstring)."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.launch_of: dict[int, int] = {}  # point task id -> launch id
        self.reports = {r: lc.Reports() for r in self.workers}  # the workers' report-tree state
        self.trees: dict[int, lc.ReportTree] = {}
        self.rank0_done_at = 0.0

    def handled(self, batch: list) -> None:
        if any(type(e) is ev.LaunchDone for e in batch):
            self.rank0_done_at = self.rank0_free

    def dispatch(self, ins: object) -> None:
        if type(ins) is ev.ExecuteLaunch:  # down the tree: each rank after its depth's hops
            tree = self.trees[ins.launch_id] = lc.ReportTree(ins.ranks)
            for r in ins.ranks:
                self.at(self.rank0_free + self.latency * (1 + tree.depth(r)), "lexec", (r, ins))

    def report(self, t: float, rank: int, launch_id: int, sent: Optional[tuple]) -> None:
        """Send a complete subtree's report up the tree (to rank 0 from the root)."""
        if sent is None:
            return
        parent = self.trees[launch_id].parent(rank)
        if parent is None:
            self.to_rank0(t + self.latency, ev.LaunchDone(launch_id, rank, sent[0], sent[0] * VALUE_BYTES,
                                                          sent[0] * self.duration, sent[1]))
        else:
            self.at(t + self.latency, "report", (parent, launch_id, sent))

    def on_report(self, t: float, rank: int, launch_id: int, sent: tuple) -> None:
        self.report(t, rank, launch_id, self.reports[rank].child(launch_id, *sent))

    def on_lexec(self, t: float, rank: int, ins: ev.ExecuteLaunch) -> None:
        w = self.workers[rank]
        t0 = time.perf_counter()
        jobs = lc.expand(ins.base, ins.layout, rank, ins.reads)  # the real worker-side code
        tree = self.trees[ins.launch_id]
        ripe = self.reports[rank].expect(ins.launch_id, len(jobs), len(tree.children(rank)))
        start = max(t, w.free_at) + (time.perf_counter() - t0)
        self.report(start, rank, ins.launch_id, ripe)
        for tid, inputs in jobs:
            self.launch_of[tid] = ins.launch_id
            missing = self.need(start, w, tid, inputs)
            w.jobs[tid] = [missing, ins.launch_id]
            if missing == 0:
                w.ready.append(tid)
        if w.ready:
            self.at(start, "start", w.rank)

    def report_end(self, t: float, rank: int, tid: int) -> None:
        lid = self.launch_of.pop(tid)  # (one report per subtree and launch, up the tree)
        self.report(t, rank, lid, self.reports[rank].own_done(lid))

    def run_launches(self, pattern: str, width: int, steps: int, total: int) -> float:
        ranks = range(1, len(self.workers) + 1)
        self.join()
        subs = []
        lid = 1 << 40
        prev = None
        for t in range(steps):
            n = active(pattern, t, width)
            reads = () if prev is None or pattern == "trivial" else ((prev[0], launch_projection(pattern, t, width)),)
            subs.append(ev.LaunchSubmitted(lid, lid + 1, n, "point", "point", lc.Layout.blocks(n, ranks), reads))
            prev = (lid, n)
            lid += n + 1
        self.submits = subs
        handlers = {"lexec": lambda t, p: self.on_lexec(t, *p), "input": lambda t, p: self.on_input(t, *p),
                    "start": lambda t, p: self.on_start(t, p), "end": lambda t, p: self.on_end(t, *p),
                    "report": lambda t, p: self.on_report(t, *p)}
        self.loop(handlers, lambda: self.finished >= total and self.sched.n_points_done >= total, "points")
        return max(self.last_finish, self.rank0_done_at)


def task_graph(pattern: str, width: int, steps: int) -> list[tuple[int, tuple[int, ...]]]:
    """Task Bench's graph as ``(task id, dependency ids)``; ids are ``step * width + point``."""
    out = []
    for t in range(steps):
        for i in range(active(pattern, t, width)):
            d = () if t == 0 else tuple((t - 1) * width + j for j in deps(pattern, t, i, width))
            out.append((t * width + i, d))
    return out


def efficiency(pattern: str, nworkers: int, steps: int, duration: float, ns: argparse.Namespace,
               launches: bool = False) -> dict:
    # (the simulations before left their schedulers' records as garbage in reference
    # cycles: collected now, or every collection of this run would scan them too, which
    # a real rank 0 never does; measured: 24 instead of 14 µs per task for nearest5
    # after a tree run)
    gc.collect()
    width = graph_width(pattern, nworkers)
    if pattern == "tree":  # its width doubles from 1: the filled steps must dominate the run
        steps += 3 * math.ceil(math.log2(width))
    graph = task_graph(pattern, width, steps)
    if launches:
        sim = LaunchSimulation(nworkers, ns.latency, ns.bandwidth, duration, ns.launch_cost)
        makespan = sim.run_launches(pattern, width, steps, len(graph))
    else:
        sim = Simulation(nworkers, ns.latency, ns.bandwidth, duration, ns.spawn_cost, ns.spawn_dep_cost)
        makespan = sim.run(graph)
    work = len(graph) * duration
    return {"duration": duration, "tasks": len(graph), "makespan": makespan,
            "efficiency": work / (nworkers * makespan), "rank0_cpu_per_task": sim.rank0_cpu / len(graph),
            "handle_calls": sim.handle_calls}


def metg(pattern: str, nworkers: int, ns: argparse.Namespace, launches: bool = False) -> dict:
    """Bisection (log scale) for the smallest duration with efficiency >= 0.5."""
    lo, hi = 1e-6, 10.0
    tried = []
    r = efficiency(pattern, nworkers, ns.steps, lo, ns, launches)
    tried.append(r)
    if r["efficiency"] >= 0.5:
        return {"metg": lo, "runs": tried}
    r = efficiency(pattern, nworkers, ns.steps, hi, ns, launches)
    tried.append(r)
    if r["efficiency"] < 0.5:
        return {"metg": None, "runs": tried}  # not reached even with 10 s tasks
    for _ in range(ns.iterations):
        mid = math.sqrt(lo * hi)
        r = efficiency(pattern, nworkers, ns.steps, mid, ns, launches)
        tried.append(r)
        if r["efficiency"] >= 0.5:
            hi = mid
        else:
            lo = mid
    return {"metg": hi, "runs": tried}


def fmt_s(x: Optional[float]) -> str:
    if x is None:
        return "not reached"
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.2f} ms"
    return f"{x * 1e6:.1f} µs"


def _noop(*args: object) -> int:
    return 0


def measure_spawn_cost(n: int = 4000, passes: int = 7) -> tuple[float, float, float]:
    """The driver's own cost of ``dagmpi.spawn`` (client side: options, pickling the
    arguments, the task handle, the queued message), without and per Task argument,
    and of ``dagmpi.spawn_many`` of a step reading the step before through a
    projection.

    In an embedded runtime whose loop does not run while a pass is timed (this thread
    holds the loop's lead, so the runtime thread stands aside: the scheduler's part is
    what the simulation measures): ``passes`` rounds of ``n`` spawns of each kind
    (``n // 8`` launches), interleaved, each from an empty queue (the runtime runs
    everything a pass spawned before the next), the best pass of each kind."""
    import dagmpi
    from dagmpi.runtime.context import current_client

    dagmpi.init(workers=1)
    try:
        driver = current_client()
        roots = [dagmpi.spawn(_noop) for _ in range(4)]
        prev = dagmpi.spawn_many(_noop, 4)
        proj = launch_projection("stencil_1d", 1, 4)
        dagmpi.wait(roots + [prev])
        keep = driver.drive_every
        lead = driver._lead
        best: dict = {}

        def timed(kind: Any, count: int, spawn: Any) -> None:
            gc.collect()
            with lead:  # (take the loop's lead, as a thread waiting in fetch does)
                driver._want_lead += 1
            driver.wakeup()
            with lead:
                while driver._leader:
                    lead.wait(0.01)
                driver._leader = True
            driver.drive_every = 0
            try:
                t0 = time.perf_counter()
                handles = [spawn() for _ in range(count)]
                secs = (time.perf_counter() - t0) / count
            finally:
                driver.drive_every = keep
                driver._give_lead()
                with lead:
                    driver._want_lead -= 1
                    lead.notify_all()
            dagmpi.wait(handles)  # (the queue runs empty before the next pass)
            best[kind] = min(best.get(kind, 1.0), secs)

        for _ in range(passes):
            timed(0, n, lambda: dagmpi.spawn(_noop))
            timed(4, n, lambda: dagmpi.spawn(_noop, *roots))
            timed("launch", n // 8, lambda: dagmpi.spawn_many(_noop, 4, reads=[(prev, proj)]))
    finally:
        dagmpi.shutdown()
    gc.collect()
    return best[0], max(0.0, (best[4] - best[0]) / 4), best["launch"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="32,512,4096", help="simulated worker counts, comma-separated")
    ap.add_argument("--patterns", default="stencil_1d,nearest5,tree,fft,trivial")
    ap.add_argument("--steps", type=int, default=6, help="Task Bench steps (graph height)")
    ap.add_argument("--latency", type=float, default=5e-6, help="seconds per message (5 µs: inter-node)")
    ap.add_argument("--bandwidth", type=float, default=10e9, help="bytes per second between ranks")
    ap.add_argument("--iterations", type=int, default=9, help="bisection steps of the METG search")
    ap.add_argument("--spawn-cost", type=float, default=None,
                    help="the driver's cost per spawn, charged to rank 0 (default: measured at the start)")
    ap.add_argument("--spawn-dep-cost", type=float, default=None,
                    help="... and per Task argument of the spawned task (default: measured)")
    ap.add_argument("--launches", action=argparse.BooleanOptionalAction, default=True,
                    help="also run every graph as launches (one per step)")
    ap.add_argument("--launch-cost", type=float, default=None,
                    help="the driver's cost per launch, charged to rank 0 (default: measured at the start)")
    ap.add_argument("--json", default=default_json("simulate"))
    ns = ap.parse_args()
    gc.set_threshold(10000, *gc.get_threshold()[1:])  # as dagmpi sets it on MPI ranks (gc_threshold)
    if ns.spawn_cost is None or ns.spawn_dep_cost is None or ns.launch_cost is None:
        base, per_dep, launch = measure_spawn_cost()
        ns.spawn_cost = base if ns.spawn_cost is None else ns.spawn_cost
        ns.spawn_dep_cost = per_dep if ns.spawn_dep_cost is None else ns.spawn_dep_cost
        ns.launch_cost = launch if ns.launch_cost is None else ns.launch_cost
    print(f"the driver's cost per spawn (charged to rank 0): {ns.spawn_cost * 1e6:.2f} µs + "
          f"{ns.spawn_dep_cost * 1e6:.2f} µs per Task argument; per launch {ns.launch_cost * 1e6:.2f} µs",
          flush=True)
    ws = [int(w) for w in ns.workers.split(",")]
    pats = ns.patterns.split(",")
    results: dict = {}
    for w in ws:
        # the scheduler's own cost per task at this scale (tasks that take no time, at
        # least 16k of them), then its memory (tracemalloc slows Python: a run of its own)
        base = efficiency("stencil_1d", w, max(ns.steps, 16384 // w), 1e-9, ns)
        tracemalloc.start()
        efficiency("stencil_1d", w, ns.steps, 1e-9, ns)
        mem = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results[w] = {"rank0_cpu_per_task": base["rank0_cpu_per_task"], "rank0_peak_bytes": mem}
        print(f"W={w}: rank 0 CPU {base['rank0_cpu_per_task'] * 1e6:.1f} µs per task (scheduler + "
              f"spawn, stencil_1d, {base['tasks']} tasks); peak Python memory of the simulated rank 0 "
              f"{mem / 2**20:.1f} MiB ({ns.steps} steps)", flush=True)
        for p in pats:
            m = metg(p, w, ns)
            results[w][p] = m
            line = f"  {p:<11} METG(50%) {fmt_s(m['metg'])}"
            if ns.launches:
                ml = metg(p, w, ns, launches=True)
                results[w][f"{p} launches"] = ml
                line += f"; as launches {fmt_s(ml['metg'])}"
            print(line, flush=True)
    print(f"\nTask Bench METG(50%) of plain spawns, simulated workers (1 slot each), {ns.steps} steps, "
          f"latency {ns.latency * 1e6:g} µs; rank 0 = the real scheduler, its measured CPU time charged")
    print(f"{'workers':>8} {'rank0 µs/task':>14}" + "".join(f"{p:>12}" for p in pats))
    for w in ws:
        r = results[w]
        print(f"{w:>8} {r['rank0_cpu_per_task'] * 1e6:>14.1f}" + "".join(f"{fmt_s(r[p]['metg']):>12}" for p in pats))
    if ns.launches:
        print("\nThe same graphs as launches (one per step, sent down and reported up a 16-ary tree of the ranks)")
        print(f"{'workers':>8} {'':>14}" + "".join(f"{p:>12}" for p in pats))
        for w in ws:
            r = results[w]
            print(f"{w:>8} {'':>14}" + "".join(f"{fmt_s(r[p + ' launches']['metg']):>12}" for p in pats))
    print(f"published (stencil): {PUBLISHED}")
    print("targets at 4,096 workers: plain spawns <= 30 ms; launches <= 0.5 ms")
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "simulate", "args": vars(ns), "results": results}, fh, indent=1)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
