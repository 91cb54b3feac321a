"""Per-task overhead: dagmpi against Dask distributed, mpi4py.futures and raw mpi4py, in one run.

    python benchmarks/overhead.py [--workers 2] [--sizes 10000,100000] [--chain 2000]
                                  [--big 1000000] [--peers dagmpi,dagmpi-traced,futures,raw,dask]
                                  [--json bench-results/overhead.json]
                                  [--repeat 3] [--dask-repeat 1]

Every system gets the same number of worker processes (``--workers``) and trivial
tasks (``inc(x) = x + 1``):

* independent: submit N tasks, wait for all (tasks/s);
* chain: a chain of ``--chain`` dependent tasks, each consuming the previous
  result (µs per chained task; for mpi4py.futures and raw mpi4py, which have no
  dependencies, the driver waits for each result and submits the next);
* big graph (dagmpi only): ``--big`` tasks as chains of 1,000, with rank 0's
  RSS growth per task and the throughput ratio to a 10k-task run of the same
  shape (10 chains of 1,000) and to the 10k independent tasks.

Peers: dagmpi (``mpiexec -n workers+1 python -m dagmpi``), dagmpi-traced (the same
with ``--trace``: every task recorded and written as a Chrome trace; the table adds
what tracing costs per task), mpi4py.futures
(``MPIPoolExecutor.submit`` under ``mpiexec -n workers+1 python -m mpi4py.futures``),
raw mpi4py (rank 0 pickles ``(fn, arg)`` and sends it, a worker unpickles, runs
it and sends the pickled result back; 64 in flight per worker: the round-trip
limit of Python over MPI), and Dask distributed (``LocalCluster`` with
``processes=True``, one thread per worker).  Each runs in its own subprocess;
the table shows tasks/s, µs per chained task and dagmpi's ratio to each peer:
the median of ``--repeat`` runs of each measurement, interleaved (the speed of
a shared VM drifts over minutes), with every sample in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, mpiexec, open_json, print_result, run_system, run_systems  # noqa: E402

HERE = os.path.abspath(__file__)


def inc(x):
    return x + 1


def settle() -> None:
    """Every system gets the same pause between the throughput and the latency phase."""
    time.sleep(1.0)


def measure(out: dict, repeat: int, sizes: list[int], independent, chain_us) -> None:
    """Run each measurement ``repeat`` times, interleaved (this VM's speed drifts by
    minutes); ``out`` gets the median and every sample."""
    samples: dict = {n: [] for n in sizes}
    chains: list = []
    for _ in range(repeat):
        for n in sizes:
            samples[n].append(independent(n))
        settle()  # let the releases of the 100k handles drain before timing latency
        chains.append(chain_us())
    out["independent"] = {n: statistics.median(v) for n, v in samples.items()}
    out["independent_all"] = samples
    out["chain_us"] = statistics.median(chains)
    out["chain_us_all"] = chains


def rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ----------------------------------------------------------------- runners (children)

def run_dagmpi(sizes: list[int], chain: int, big: int, repeat: int) -> dict:
    import dagmpi

    dagmpi.fetch(dagmpi.spawn(inc, 0))  # warm up

    def independent(n: int) -> float:
        t0 = time.perf_counter()
        ts = [dagmpi.spawn(inc, i) for i in range(n)]
        dagmpi.wait(ts)
        return n / (time.perf_counter() - t0)

    def chain_us() -> float:
        t0 = time.perf_counter()
        t = dagmpi.spawn(inc, 0)
        for _ in range(chain - 1):
            t = dagmpi.spawn(inc, t)
        assert dagmpi.fetch(t) == chain
        return (time.perf_counter() - t0) / chain * 1e6

    out: dict = {}
    measure(out, repeat, sizes, independent, chain_us)
    if big:
        import gc

        # the same shape at 10k tasks (10 chains of 1,000): the reference for the big run
        refs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            heads = []
            for c in range(10):
                t = dagmpi.spawn(inc, 0)
                for _ in range(999):
                    t = dagmpi.spawn(inc, t)
                heads.append(t)
            assert dagmpi.fetch(heads) == [1000] * 10
            refs.append(10_000 / (time.perf_counter() - t0))
            del heads, t
        out["chains_10k_per_s"] = statistics.median(refs)
        out["chains_10k_all"] = refs
        settle()
        gc.collect()
        r0 = rss_kib()
        peak = r0
        t0 = time.perf_counter()
        length = 1000
        heads = []
        for c in range(big // length):
            t = dagmpi.spawn(inc, 0)
            for _ in range(length - 1):
                t = dagmpi.spawn(inc, t)
            heads.append(t)
            if c % 50 == 0:
                peak = max(peak, rss_kib())
        values = dagmpi.fetch(heads)
        assert all(v == length for v in values)
        secs = time.perf_counter() - t0
        peak = max(peak, rss_kib())
        out["big"] = {"tasks": big, "tasks_per_s": big / secs, "seconds": secs,
                      "rss_growth_bytes_per_task": (peak - r0) * 1024 / big}
    return out


def run_futures(sizes: list[int], chain: int, repeat: int) -> dict:
    from mpi4py.futures import MPIPoolExecutor

    out: dict = {}
    with MPIPoolExecutor() as ex:
        ex.submit(inc, 0).result()

        def independent(n: int) -> float:
            t0 = time.perf_counter()
            fs = [ex.submit(inc, i) for i in range(n)]
            for f in fs:
                f.result()
            return n / (time.perf_counter() - t0)

        def chain_us() -> float:
            t0 = time.perf_counter()
            x = 0
            for _ in range(chain):
                x = ex.submit(inc, x).result()
            return (time.perf_counter() - t0) / chain * 1e6

        measure(out, repeat, sizes, independent, chain_us)
    return out


def run_raw(sizes: list[int], chain: int, repeat: int) -> dict:
    import pickle

    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if rank != 0:
        st = MPI.Status()
        while True:
            msg = comm.recv(source=0, tag=MPI.ANY_TAG, status=st)
            if st.Get_tag() == 1:
                return {}
            fn, arg = pickle.loads(msg)
            comm.send(pickle.dumps(fn(arg)), dest=0, tag=0)
    workers = list(range(1, size))
    payload = lambda i: pickle.dumps((inc, i))  # noqa: E731

    def independent(n: int) -> float:
        t0 = time.perf_counter()
        window = 64
        sent = 0
        got = 0
        inflight = {w: 0 for w in workers}
        while got < n:
            for w in workers:
                while inflight[w] < window and sent < n:
                    comm.send(payload(sent), dest=w, tag=0)
                    inflight[w] += 1
                    sent += 1
            st = MPI.Status()
            pickle.loads(comm.recv(source=MPI.ANY_SOURCE, tag=0, status=st))
            inflight[st.Get_source()] -= 1
            got += 1
        return n / (time.perf_counter() - t0)

    def chain_us() -> float:
        t0 = time.perf_counter()
        x = 0
        for i in range(chain):
            comm.send(payload(x), dest=workers[i % len(workers)], tag=0)
            x = pickle.loads(comm.recv(source=MPI.ANY_SOURCE, tag=0))
        return (time.perf_counter() - t0) / chain * 1e6

    out: dict = {}
    measure(out, repeat, sizes, independent, chain_us)
    for w in workers:
        comm.send(None, dest=w, tag=1)
    return out


def run_dask(sizes: list[int], chain: int, workers: int, repeat: int) -> dict:
    import logging

    import dask
    from dask.distributed import Client, LocalCluster, wait

    # 100k futures on 2 cores starve Dask's event loop: without long timeouts the client
    # loses its scheduler connection (CommClosedError) before the run ends
    dask.config.set({"distributed.comm.timeouts.connect": "600s",
                     "distributed.comm.timeouts.tcp": "600s",
                     "distributed.scheduler.worker-ttl": None})

    logging.getLogger("distributed").setLevel(logging.ERROR)
    out: dict = {}
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(inc, 0, pure=False).result()

        def independent(n: int) -> float:
            t0 = time.perf_counter()
            fs = [client.submit(inc, i, pure=False) for i in range(n)]
            wait(fs)
            return n / (time.perf_counter() - t0)

        def chain_us() -> float:
            t0 = time.perf_counter()
            f = client.submit(inc, 0, pure=False)
            for _ in range(chain - 1):
                f = client.submit(inc, f, pure=False)
            assert f.result() == chain
            return (time.perf_counter() - t0) / chain * 1e6

        measure(out, repeat, sizes, independent, chain_us)
    return out


# ------------------------------------------------------------------------- parent

def child(peer: str, ns: argparse.Namespace) -> dict:
    py = sys.executable
    args = ["--run", peer, "--sizes", ns.sizes, "--chain", str(ns.chain), "--big", str(ns.big),
            "--workers", str(ns.workers), "--repeat", str(ns.repeat), "--dask-repeat", str(ns.dask_repeat)]
    n = str(ns.workers + 1)
    trace = ""
    if peer == "dagmpi-traced":  # dagmpi recording a trace of every task (no --big: its file would be huge)
        trace = os.path.join(tempfile.mkdtemp(prefix="dagmpi-overhead-"), "overhead.trace.json")
        args[1], args[args.index("--big") + 1] = "dagmpi", "0"
    cmd = {
        "dagmpi": [mpiexec(), "-n", n, py, "-m", "dagmpi", HERE, *args],
        "dagmpi-traced": [mpiexec(), "-n", n, py, "-m", "dagmpi", "--trace", trace, HERE, *args],
        "futures": [mpiexec(), "-n", n, py, "-m", "mpi4py.futures", HERE, *args],
        "raw": [mpiexec(), "-n", n, py, HERE, *args],
        "dask": [py, HERE, *args],
    }[peer]
    t0 = time.perf_counter()
    res = run_system(peer, cmd, ns.timeout)
    if "error" not in res and "skipped" not in res:
        res["wall_s"] = time.perf_counter() - t0
    if trace:
        if os.path.exists(trace):
            res["trace_bytes"] = os.path.getsize(trace)
        shutil.rmtree(os.path.dirname(trace), ignore_errors=True)
    return res


def fmt(x, spec=",.0f"):
    return "—" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of every system")
    ap.add_argument("--sizes", default="10000,100000", help="independent-task counts, comma-separated")
    ap.add_argument("--chain", type=int, default=2000, help="length of the chain of dependent tasks")
    ap.add_argument("--big", type=int, default=1_000_000, help="dagmpi-only graph size (0: skip)")
    ap.add_argument("--peers", default="dagmpi,dagmpi-traced,futures,raw,dask",
                    help="systems to run, comma-separated, from dagmpi,dagmpi-traced (dagmpi with "
                         "trace= on),futures,raw,dask")
    ap.add_argument("--timeout", type=float, default=900, help="seconds each system may take")
    ap.add_argument("--json", default=default_json("overhead"),
                    help="where to write the results (default: bench-results/overhead.json)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement (interleaved); the table shows the median")
    ap.add_argument("--dask-repeat", type=int, default=1,
                    help="the same for Dask (100k Dask tasks take ~5 minutes here)")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    sizes = [int(s) for s in ns.sizes.split(",")]

    if ns.run:
        res = {"dagmpi": lambda: run_dagmpi(sizes, ns.chain, ns.big, ns.repeat),
               "futures": lambda: run_futures(sizes, ns.chain, ns.repeat),
               "raw": lambda: run_raw(sizes, ns.chain, ns.repeat),
               "dask": lambda: run_dask(sizes, ns.chain, ns.workers, ns.dask_repeat)}[ns.run]()
        print_result(res)
        return

    results = run_systems(ns.peers, lambda peer: child(peer, ns))
    d = results.get("dagmpi", {})
    cols = [f"{n:,} indep tasks/s" for n in sizes] + ["chain µs/task"]
    print(f"\n{ns.workers} worker processes, trivial tasks; median of {ns.repeat} runs (Dask: "
          f"{ns.dask_repeat}); ratio = dagmpi's advantage (>1: dagmpi faster)\n")
    print(f"{'system':<16}" + "".join(f"{c:>22}" for c in cols))
    for peer, r in results.items():
        if "skipped" in r:
            print(f"{peer:<16} skipped: {r['skipped']}")
            continue
        if "error" in r:
            print(f"{peer:<16} error: {r['error']}")
            continue
        cells = [fmt(r["independent"].get(str(n), r["independent"].get(n))) for n in sizes]
        cells.append(fmt(r["chain_us"], ",.1f"))
        print(f"{peer:<16}" + "".join(f"{c:>22}" for c in cells))
    if "error" not in d and d:
        for peer, r in results.items():
            if peer == "dagmpi" or "error" in r or "skipped" in r:
                continue
            ratios = [d["independent"][str(n)] / r["independent"][str(n)] for n in sizes]
            ratios.append(r["chain_us"] / d["chain_us"])
            r["dagmpi_ratio"] = ratios
            print(f"{'dagmpi / ' + peer:<16}" + "".join(f"{x:>21.2f}x" for x in ratios))
        if "big" in d:
            b = d["big"]
            ref = d["independent"].get(str(sizes[0]))
            same = d.get("chains_10k_per_s")
            print(f"\ndagmpi {b['tasks']:,}-task graph (chains of 1,000): {b['tasks_per_s']:,.0f} tasks/s "
                  f"in {b['seconds']:.1f} s; {b['tasks_per_s'] / same:.2f} of the same shape at 10k tasks "
                  f"(10 chains of 1,000: {same:,.0f} tasks/s), {b['tasks_per_s'] / ref:.2f} of the "
                  f"{sizes[0]:,} independent-task rate; rank-0 RSS growth "
                  f"{b['rss_growth_bytes_per_task']:.0f} B/task (target <= 2048)")
    t = results.get("dagmpi-traced", {})
    if d and t and "independent" in t and "independent" in d:
        cost = [(1 / t["independent"][str(n)] - 1 / d["independent"][str(n)]) * 1e6 for n in sizes]
        t["trace_cost_us_per_task"] = cost
        print("tracing on: " + ", ".join(f"{c:+.2f} µs per task at {n:,} tasks" for c, n in zip(cost, sizes))
              + f", {t['chain_us'] - d['chain_us']:+.1f} µs per chained task; trace file "
              f"{t.get('trace_bytes', 0) / (1 << 20):.1f} MiB")
    if "independent_all" in d:
        runs = "; ".join(f"{n:,}: " + ", ".join(f"{x:,.0f}" for x in d["independent_all"][str(n)])
                         for n in sizes)
        print(f"dagmpi runs, tasks/s: {runs}; chain µs: "
              + ", ".join(f"{x:.1f}" for x in d["chain_us_all"]))
    print("targets (2 workers): >= 50,000 independent tasks/s, <= 50 µs per chained task")
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "overhead", "workers": ns.workers, "sizes": sizes,
                   "chain": ns.chain, "results": results}, fh, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
