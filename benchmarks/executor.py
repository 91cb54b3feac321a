"""concurrent.futures map throughput: dagmpi.Executor against mpi4py.futures and Dask, in one run.

    python benchmarks/executor.py [--workers 2] [--items 1000000] [--chunksize 1000]
                                  [--peers dagmpi,futures,dask] [--repeat 3]
                                  [--json bench-results/executor.json]

Every system gets ``--workers`` worker processes and maps a trivial function
(``inc(x) = x + 1``) over ``range(items)``, consuming the results in order:

* dagmpi: ``dagmpi.Executor().map(inc, range(N), chunksize=C)`` under
  ``mpiexec -n workers+1 python -m dagmpi``;
* mpi4py.futures: ``MPIPoolExecutor().map(inc, range(N), chunksize=C)`` under
  ``mpiexec -n workers+1 python -m mpi4py.futures`` (and with ``chunksize=100``,
  the figure the issue quotes);
* Dask distributed: ``Client.map(inc, range(N'))`` then ``gather``, one task per
  item (Dask's map has no chunks; ``N' = min(N, 20,000)``: at ~1 ms per task a
  million would take many minutes), ``LocalCluster`` of processes, one thread each.

The table shows items/s (median of ``--repeat`` runs, interleaved) and
dagmpi's ratio to each (> 1: dagmpi faster); JSON in bench-results/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, mpiexec, open_json, print_result, run_system, run_systems  # noqa: E402

HERE = os.path.abspath(__file__)
DASK_MAX = 20_000


def inc(x):
    return x + 1


def timed_map(ex_map, n: int, chunksize: int) -> float:
    t0 = time.perf_counter()
    total = 0
    for y in ex_map(inc, range(n), chunksize=chunksize):
        total += y
    dt = time.perf_counter() - t0
    assert total == n * (n + 1) // 2, total
    return n / dt


def run_dagmpi(n: int, chunksize: int, repeat: int) -> dict:
    import dagmpi

    with dagmpi.Executor() as ex:
        timed_map(ex.map, 10_000, chunksize)  # warm up (functions cached on the workers)
        rates = [timed_map(ex.map, n, chunksize) for _ in range(repeat)]
    return {"items_s": statistics.median(rates), "samples": rates}


def run_futures(n: int, chunksize: int, repeat: int) -> dict:
    from mpi4py.futures import MPIPoolExecutor

    out: dict = {}
    with MPIPoolExecutor() as ex:
        timed_map(ex.map, 10_000, chunksize)
        for c in dict.fromkeys([chunksize, 100]):
            rates = [timed_map(ex.map, n, c) for _ in range(repeat)]
            out[str(c)] = {"items_s": statistics.median(rates), "samples": rates}
    return out


def run_dask(n: int, workers: int, repeat: int) -> dict:
    import logging

    from dask.distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    n = min(n, DASK_MAX)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.gather(client.map(inc, range(100), pure=False))
        rates = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            total = sum(client.gather(client.map(inc, range(n), pure=False)))
            rates.append(n / (time.perf_counter() - t0))
            assert total == n * (n + 1) // 2
    return {"items_s": statistics.median(rates), "samples": rates, "items": n}


def child(peer: str, ns: argparse.Namespace) -> dict:
    py = sys.executable
    args = ["--run", peer, "--items", str(ns.items), "--chunksize", str(ns.chunksize),
            "--workers", str(ns.workers), "--repeat", str(ns.repeat)]
    n = str(ns.workers + 1)
    cmd = {
        "dagmpi": [mpiexec(), "-n", n, py, "-m", "dagmpi", HERE, *args],
        "futures": [mpiexec(), "-n", n, py, "-m", "mpi4py.futures", HERE, *args],
        "dask": [py, HERE, *args],
    }[peer]
    return run_system(peer, cmd, ns.timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes of every system")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--chunksize", type=int, default=1000)
    ap.add_argument("--peers", default="dagmpi,futures,dask", help="from dagmpi,futures,dask")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the table shows the median")
    ap.add_argument("--timeout", type=float, default=900, help="seconds each system may take")
    ap.add_argument("--json", default=default_json("executor"))
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.run:
        res = {"dagmpi": lambda: run_dagmpi(ns.items, ns.chunksize, ns.repeat),
               "futures": lambda: run_futures(ns.items, ns.chunksize, ns.repeat),
               "dask": lambda: run_dask(ns.items, ns.workers, ns.repeat)}[ns.run]()
        print_result(res)
        return

    results = run_systems(ns.peers, lambda peer: child(peer, ns))
    rows = []  # (system, items/s)
    for peer, r in results.items():
        if "error" in r or "skipped" in r:
            rows.append((peer, None, r.get("error") or r.get("skipped")))
        elif peer == "futures":
            for c, v in r.items():
                rows.append((f"mpi4py.futures map(chunksize={c})", v["items_s"], ""))
        elif peer == "dask":
            rows.append((f"Dask Client.map ({r['items']:,} items)", r["items_s"], ""))
        else:
            rows.append((f"dagmpi.Executor map(chunksize={ns.chunksize})", r["items_s"], ""))
    mine = results.get("dagmpi", {}).get("items_s")
    print(f"\n{ns.workers} worker processes, map of a trivial function over {ns.items:,} items; "
          f"median of {ns.repeat}\n")
    print(f"{'system':<44}{'items/s':>14}{'dagmpi / it':>14}")
    for name, rate, why in rows:
        if rate is None:
            print(f"{name:<44} {why}")
            continue
        ratio = f"{mine / rate:,.2f}" if mine else "-"
        print(f"{name:<44}{rate:>14,.0f}{ratio:>14}")
    print("\ntarget: dagmpi >= 200,000 items/s with 2 workers (chunksize=1000)")
    with open_json(ns.json) as f:
        json.dump({"workers": ns.workers, "items": ns.items, "chunksize": ns.chunksize,
                   "results": results}, f, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
