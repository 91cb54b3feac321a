"""Task Bench on dagmpi, an SPMD mpi4py program and Dask distributed, in one run.

    python benchmarks/taskbench.py [--workers 2] [--patterns stencil_1d,nearest3,nearest5,fft,tree,trivial]
                                   [--peers dagmpi,launches,loops,mpi,dask] [--repeat 1] [--target 0.4]
                                   [--json bench-results/taskbench.json]

Our own code after Task Bench (Slaughter et al., SC20; StanfordLegion/task-bench is the
reference, none of it is used here).  A graph has ``width`` points (default: one per worker)
and ``steps`` time steps; task ``(t, i)`` reads the outputs of the tasks of step ``t - 1``
that its pattern names:

* ``stencil_1d``: ``i - 1, i, i + 1``;  ``nearest3``/``nearest5``: the 3/5 nearest points;
* ``fft``: ``i`` and ``i XOR 2^((t - 1) mod log2 width)`` (width rounded up to a power of 2);
* ``tree``: ``i // 2`` (the active width doubles every step up to ``width``);
* ``trivial``: nothing (independent tasks).

Every task runs the same compute-bound Numba kernel (``ITER_FLOPS`` flops per iteration
on 32 doubles, in registers) for N iterations and returns a 16-byte array that its
dependents read.  For each N (halved from tasks of ~30 ms down to tiny ones) a system
runs the graph; efficiency = achieved FLOP/s / peak FLOP/s (the kernel alone on one core,
times the workers), task granularity = wall time x workers / tasks, and METG(50%) = the
smallest granularity at which efficiency is still >= 50% (log-interpolated between the
two sweep points around it), as Task Bench reports it.  The *floor* is the granularity at
the smallest N: the core time each task costs the system when it does no work.

Systems, all with ``--workers`` processes for the tasks:

* ``dagmpi``: ``mpiexec -n workers+1 python -m dagmpi``, plain ``dagmpi.spawn`` of every
  task with its inputs as Task arguments (no placement hints), all steps submitted ahead;
* ``launches``: the same job, each step one ``dagmpi.spawn_many`` launch whose points read
  the points of the step before through a ``dagmpi.Projection`` (worker to worker);
* ``loops``: the same job, the graph as one ``dagmpi.spawn_loop`` (its steps run on the
  workers, each value pushed to the ranks that read it at the next step; tree: the
  steps while its width grows are launches, the loop the full-width ones);
* ``mpi``: the same graphs as an SPMD mpi4py program (``mpiexec -n workers``): each rank
  owns points ``i % workers``, exchanges outputs with ``Isend``/``Irecv`` between
  neighbours every step: the MPI limit for Python;
* ``dask``: ``LocalCluster(processes=True, threads_per_worker=1)``, ``client.submit`` of
  every task with futures as arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, mpiexec, open_json, print_result, run_system  # noqa: E402

HERE = os.path.abspath(__file__)
PATTERNS = ("stencil_1d", "nearest3", "nearest5", "fft", "tree", "trivial")
#: Flops per kernel iteration: 32 multiply-adds.
ITER_FLOPS = 64
#: Rough per-task floor of each system (s), only to size the graphs (steps) of a run.
FLOOR_GUESS = {"dagmpi": 1e-4, "launches": 1e-4, "loops": 5e-5, "mpi": 5e-6, "dask": 1.5e-3}

@numba.njit(cache=True, nogil=True)
def compute(iters, seed):
    """The compute-bound kernel: ``iters`` x 32 multiply-adds in registers."""
    a = np.empty(32)
    for j in range(32):
        a[j] = seed + j * 1e-3
    for _ in range(iters):
        for j in range(32):
            a[j] = a[j] * 0.999999 + 1e-6
    out = np.empty(2)
    out[0] = a[0]
    out[1] = a[31]
    return out


def tb_task(iters, *inputs):
    """One Task Bench task: the kernel, seeded by its inputs (a real data dependency)."""
    s = 0.0
    for x in inputs:
        s += x[0]
    return compute(iters, s * 1e-9)


# ------------------------------------------------------------------------- graphs

def tb_point(i, iters, *inputs):
    """A Task Bench task as a point of a launch (``dagmpi.spawn_many``)."""
    return tb_task(iters, *inputs)


def launch_projection(pattern: str, t: int, width: int):
    """The dependencies of step ``t`` as a ``dagmpi.Projection`` onto step ``t - 1``
    (the same points as :func:`deps`)."""
    from dagmpi.core.launches import Projection

    if pattern == "stencil_1d":
        return Projection("offsets", (-1, 0, 1))
    if pattern.startswith("nearest"):
        r = int(pattern[7:])
        return Projection("offsets", tuple(range(-((r - 1) // 2), r - (r - 1) // 2)))
    if pattern == "fft":
        levels = max(1, int(math.log2(width)))
        return Projection("xor", (1 << ((t - 1) % levels),))
    if pattern == "tree":
        return Projection("parent", (2,))
    raise ValueError(f"no projection for {pattern!r}")


def graph_width(pattern: str, width: int) -> int:
    return 1 << max(1, math.ceil(math.log2(width))) if pattern == "fft" else width


def deps(pattern: str, t: int, i: int, width: int) -> list[int]:
    """Points of step ``t - 1`` that task ``(t, i)`` reads (``t >= 1``)."""
    if pattern == "trivial":
        return []
    if pattern == "stencil_1d":
        return [j for j in (i - 1, i, i + 1) if 0 <= j < width]
    if pattern.startswith("nearest"):
        r = int(pattern[7:])
        lo = i - (r - 1) // 2
        return [j for j in range(lo, lo + r) if 0 <= j < width]
    if pattern == "fft":
        levels = max(1, int(math.log2(width)))
        return sorted({i, i ^ (1 << ((t - 1) % levels))})
    if pattern == "tree":
        return [i // 2] if i // 2 < active(pattern, t - 1, width) else []
    raise ValueError(f"unknown pattern {pattern!r}")


def active(pattern: str, t: int, width: int) -> int:
    """Points of step ``t`` (the tree grows from one point)."""
    return min(width, 1 << t) if pattern == "tree" else width


def n_tasks(pattern: str, steps: int, width: int) -> int:
    return sum(active(pattern, t, width) for t in range(steps))


# ----------------------------------------------------------------- runners (children)

def sweep(run_graph, system: str, workers: int, patterns: list[str], width: int, target: float,
          t_iter: float, max_log: int, min_log: int) -> dict:
    """Run every pattern at every N; ``run_graph(pattern, iters, steps, width) -> seconds``."""
    out: dict = {}
    floor = FLOOR_GUESS[system]
    for pattern in patterns:
        w = graph_width(pattern, width)
        rows = []
        for lg in range(max_log, min_log - 1, -1):
            iters = 1 << lg
            per_task = max(iters * t_iter, floor * 2 / max(1, workers))
            steps = int(min(4000, max(8, target / per_task / max(1, w / workers))))
            secs = run_graph(pattern, iters, steps, w)
            tasks = n_tasks(pattern, steps, w)
            rows.append({"iters": iters, "steps": steps, "tasks": tasks, "seconds": secs})
        out[pattern] = rows
    return out


def run_dagmpi(ns: argparse.Namespace) -> dict:
    import dagmpi

    workers = len(dagmpi.workers())
    dagmpi.fetch([dagmpi.spawn(tb_task, 1) for _ in range(4 * workers)])  # compile on every worker

    def run_graph(pattern: str, iters: int, steps: int, width: int) -> float:
        t0 = time.perf_counter()
        prev = [dagmpi.spawn(tb_task, iters) for _ in range(active(pattern, 0, width))]
        for t in range(1, steps):
            prev = [dagmpi.spawn(tb_task, iters, *[prev[j] for j in deps(pattern, t, i, width)])
                    for i in range(active(pattern, t, width))]
        dagmpi.wait(prev)
        secs = time.perf_counter() - t0
        for x in dagmpi.fetch(prev):
            assert x.shape == (2,)
        return secs

    return sweep(run_graph, "dagmpi", workers, ns.patterns.split(","), ns.width or workers,
                 ns.target, ns.t_iter, ns.max_log, ns.min_log)


def ended(waited: list, last, t0: float) -> float:
    """Seconds since ``t0`` once ``waited`` ended; the values of launch ``last`` checked after."""
    import dagmpi

    dagmpi.wait(waited)
    secs = time.perf_counter() - t0
    for x in last.fetch():
        assert x.shape == (2,)
    return secs


def run_launches(ns: argparse.Namespace) -> dict:
    import dagmpi

    workers = len(dagmpi.workers())
    dagmpi.spawn_many(tb_point, 4 * workers, 1).fetch()  # compile on every worker

    def run_graph(pattern: str, iters: int, steps: int, width: int) -> float:
        t0 = time.perf_counter()
        u = dagmpi.spawn_many(tb_point, active(pattern, 0, width), iters)
        every = [u]  # (trivial: every launch waited; otherwise the last one ends after all)
        for t in range(1, steps):
            reads = [] if pattern == "trivial" else [(u, launch_projection(pattern, t, width))]
            u = dagmpi.spawn_many(tb_point, active(pattern, t, width), iters, reads=reads)
            every = every + [u] if pattern == "trivial" else [u]
        return ended(every, u, t0)

    return sweep(run_graph, "launches", workers, ns.patterns.split(","), ns.width or workers,
                 ns.target, ns.t_iter, ns.max_log, ns.min_log)


def run_loops(ns: argparse.Namespace) -> dict:
    import dagmpi
    from dagmpi.core.launches import Projection

    workers = len(dagmpi.workers())
    dagmpi.spawn_loop(tb_point, 4 * workers, 2, 1, step_reads=Projection("same")).fetch()  # compile everywhere

    def run_graph(pattern: str, iters: int, steps: int, width: int) -> float:
        t0 = time.perf_counter()
        # graph steps 0 .. first-1 as launches (tree: while its width grows), the rest one loop
        first = 0
        while first < steps and active(pattern, first, width) < width:
            first += 1
        u, reads = None, []
        for t in range(first):
            u = dagmpi.spawn_many(tb_point, active(pattern, t, width), iters,
                                  reads=[(u, launch_projection(pattern, t, width))] if t else [])
        if u is not None:
            reads = [(u, launch_projection(pattern, first, width))]
        if pattern == "trivial":
            projs = [Projection("offsets", ())]  # (every point reads nothing)
        elif pattern == "fft":  # (its butterflies cycle through the levels)
            levels = max(1, int(math.log2(width)))
            projs = [launch_projection(pattern, first + 1 + k, width) for k in range(levels)]
        else:
            projs = [launch_projection(pattern, first + 1, width)]
        u = dagmpi.spawn_loop(tb_point, width, steps - first, iters, reads=reads, step_reads=projs)
        return ended([u], u, t0)

    return sweep(run_graph, "loops", workers, ns.patterns.split(","), ns.width or workers,
                 ns.target, ns.t_iter, ns.max_log, ns.min_log)


def run_mpi(ns: argparse.Namespace) -> dict:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    k = compute

    def run_graph(pattern: str, iters: int, steps: int, width: int) -> float:
        mine = [i for i in range(width) if i % size == rank]
        vals = {i: k(iters, 0.0) for i in mine if i < active(pattern, 0, width)}
        comm.Barrier()
        t0 = MPI.Wtime()
        sends: list = []
        for t in range(1, steps):
            # who needs my step t-1 outputs, and which outputs I need from others
            now = active(pattern, t, width)
            need: dict[int, np.ndarray] = {}
            reqs = []
            for i in mine:
                if i >= now:
                    continue
                for j in deps(pattern, t, i, width):
                    if j % size != rank and j not in need:
                        need[j] = buf = np.empty(2)
                        reqs.append(comm.Irecv([buf, MPI.DOUBLE], source=j % size, tag=j))
            for j, v in vals.items():
                targets = {i % size for i in range(now) if j in deps(pattern, t, i, width)} - {rank}
                for r in targets:
                    sends.append(comm.Isend([v, MPI.DOUBLE], dest=r, tag=j))
            MPI.Request.Waitall(reqs)
            new = {}
            for i in mine:
                if i < now:
                    ins = [vals[j] if j % size == rank else need[j] for j in deps(pattern, t, i, width)]
                    new[i] = tb_task(iters, *ins)
            MPI.Request.Waitall(sends)
            sends = []
            vals = new
        comm.Barrier()
        return MPI.Wtime() - t0

    res = sweep(run_graph, "mpi", size, ns.patterns.split(","), ns.width or size,
                ns.target, ns.t_iter, ns.max_log, ns.min_log)
    return res if rank == 0 else {}


def run_dask(ns: argparse.Namespace) -> dict:
    import logging

    import dask
    from dask.distributed import Client, LocalCluster, wait

    dask.config.set({"distributed.comm.timeouts.connect": "600s",
                     "distributed.comm.timeouts.tcp": "600s",
                     "distributed.scheduler.worker-ttl": None})
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=ns.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather([client.submit(tb_task, 1, pure=False) for _ in range(4 * ns.workers)])

        def run_graph(pattern: str, iters: int, steps: int, width: int) -> float:
            t0 = time.perf_counter()
            prev = [client.submit(tb_task, iters, pure=False) for _ in range(active(pattern, 0, width))]
            for t in range(1, steps):
                prev = [client.submit(tb_task, iters, *[prev[j] for j in deps(pattern, t, i, width)],
                                      pure=False) for i in range(active(pattern, t, width))]
            wait(prev)
            secs = time.perf_counter() - t0
            for x in client.gather(prev):
                assert x.shape == (2,)
            return secs

        return sweep(run_graph, "dask", ns.workers, ns.patterns.split(","), ns.width or ns.workers,
                     ns.target, ns.t_iter, ns.max_log, ns.min_log)


# ------------------------------------------------------------------------- parent

def peak_per_core() -> tuple[float, float]:
    """(seconds per kernel iteration, FLOP/s) of the kernel alone on one core."""
    k = compute
    iters = 1 << 22
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        k(iters, 0.0)
        best = min(best, time.perf_counter() - t0)
    return best / iters, ITER_FLOPS * iters / best


def child(peer: str, ns: argparse.Namespace, t_iter: float) -> dict:
    py = sys.executable
    args = ["--run", peer, "--workers", str(ns.workers), "--patterns", ns.patterns,
            "--width", str(ns.width), "--target", str(ns.target), "--t-iter", repr(t_iter),
            "--max-log", str(ns.max_log), "--min-log", str(ns.min_log)]
    cmd = {
        "dagmpi": [mpiexec(), "-n", str(ns.workers + 1), py, "-m", "dagmpi", HERE, *args],
        "launches": [mpiexec(), "-n", str(ns.workers + 1), py, "-m", "dagmpi", HERE, *args],
        "loops": [mpiexec(), "-n", str(ns.workers + 1), py, "-m", "dagmpi", HERE, *args],
        "mpi": [mpiexec(), "-n", str(ns.workers), py, HERE, *args],
        "dask": [py, HERE, *args],
    }[peer]
    return run_system(peer, cmd, ns.timeout)


def analyse(rows: list[dict], workers: int, flops_peak: float) -> dict:
    """Efficiency and granularity per run; METG(50%) and the floor."""
    pts = []
    for r in rows:
        flops = ITER_FLOPS * r["iters"] * r["tasks"]
        eff = flops / r["seconds"] / (flops_peak * workers)
        gran = r["seconds"] * workers / r["tasks"]
        r["efficiency"], r["granularity_us"] = eff, gran * 1e6
        pts.append((gran, eff))
    pts.sort(reverse=True)  # largest granularity first
    metg = None
    for (g1, e1), (g2, e2) in zip(pts, pts[1:]):
        if e1 >= 0.5 > e2:
            # log-linear interpolation of granularity where efficiency crosses 50%
            f = (e1 - 0.5) / (e1 - e2)
            metg = math.exp(math.log(g1) + f * (math.log(g2) - math.log(g1)))
            break
    else:
        if pts and all(e >= 0.5 for _, e in pts):
            metg = pts[-1][0]  # never below 50%: at most the smallest measured
    return {"metg_us": None if metg is None else metg * 1e6,
            "metg_bound": "upper" if metg is not None and all(e >= 0.5 for _, e in pts) else None,
            "floor_us": pts[-1][0] * 1e6 if pts else None,
            "best_efficiency": max((e for _, e in pts), default=None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="task processes of every system")
    ap.add_argument("--width", type=int, default=0, help="points per step (default: workers)")
    ap.add_argument("--patterns", default=",".join(PATTERNS))
    ap.add_argument("--peers", default="dagmpi,launches,loops,mpi,dask", help="from dagmpi,launches,loops,mpi,dask")
    ap.add_argument("--target", type=float, default=0.4, help="seconds each graph should take (sizes steps)")
    ap.add_argument("--max-log", type=int, default=22, help="largest N = 2^max_log iterations")
    ap.add_argument("--min-log", type=int, default=4, help="smallest N = 2^min_log iterations")
    ap.add_argument("--repeat", type=int, default=1, help="passes over the systems (interleaved); median METG")
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--json", default=default_json("taskbench"))
    ap.add_argument("--t-iter", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.run:
        res = {"dagmpi": run_dagmpi, "launches": run_launches, "loops": run_loops, "mpi": run_mpi,
               "dask": run_dask}[ns.run](ns)
        print_result(res)
        return

    t_iter, flops = peak_per_core()
    patterns = ns.patterns.split(",")
    peers = ns.peers.split(",")
    passes: dict = {p: [] for p in peers}
    for k in range(ns.repeat):
        for peer in peers:
            print(f"pass {k + 1}: running {peer} ...", file=sys.stderr, flush=True)
            res = child(peer, ns, t_iter)
            if "error" not in res and "skipped" not in res:
                res = {pat: {"runs": rows, **analyse(rows, ns.workers, flops)} for pat, rows in res.items()}
            passes[peer].append(res)

    def metg(peer: str, pat: str, key: str = "metg_us"):
        vals = [r[pat][key] for r in passes[peer] if pat in r and r[pat][key] is not None]
        return statistics.median(vals) if vals else None

    print(f"\nTask Bench, {ns.workers} workers, width {ns.width or ns.workers} (fft: a power of 2), "
          f"kernel peak {flops / 1e9:.2f} GFLOP/s per core; METG(50%) and floor in µs "
          f"(median of {ns.repeat} pass(es))\n")
    head = f"{'pattern':<12}" + "".join(f"{p + ' METG':>16}{p + ' floor':>16}" for p in peers)
    if "dagmpi" in peers:
        head += "".join(f"{'vs ' + p:>14}" for p in peers if p != "dagmpi")
    print(head)
    for pat in patterns:
        line = f"{pat:<12}"
        for p in peers:
            err = next((r.get("error") or r.get("skipped") for r in passes[p] if "error" in r or "skipped" in r), None)
            if err:
                line += f"{'error':>16}{'':>16}"
                continue
            m, f = metg(p, pat), metg(p, pat, "floor_us")
            line += f"{'—' if m is None else f'{m:,.1f}':>16}{'—' if f is None else f'{f:,.1f}':>16}"
        if "dagmpi" in peers:
            d = metg("dagmpi", pat)
            for p in peers:
                if p != "dagmpi":
                    o = metg(p, pat)
                    line += f"{(f'{o / d:.2f}x' if d and o else '—'):>14}"
        print(line)
    for p in peers:
        for r in passes[p]:
            if "error" in r or "skipped" in r:
                print(f"{p}: {r.get('error') or r.get('skipped')}")
    print("\n(vs X: X's METG / dagmpi's: > 1 means dagmpi runs smaller tasks efficiently)")
    print("targets (2 workers): dagmpi METG(50%) <= 100 µs for stencil_1d and fft, floor <= 50 µs "
          "('launches': one dagmpi.spawn_many launch per step; 'loops': one dagmpi.spawn_loop)")
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "taskbench", "workers": ns.workers, "width": ns.width or ns.workers,
                   "kernel_flops_per_core": flops, "iter_flops": ITER_FLOPS, "passes": passes}, fh, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
