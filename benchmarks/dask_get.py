"""The same dask.array workloads through ``dagmpi.get`` and through Dask's own schedulers.

    python benchmarks/dask_get.py [--workers 2] [--n 8000] [--chunk 1000] [--repeat 3]
                                  [--peers dagmpi,threads,processes,distributed]

Workloads (float64, ``--n`` x ``--n`` in ``--chunk`` blocks, built fresh each run):

* ``(x + x.T).mean(axis=0)``: a transpose (every block meets its mirror) and a reduction;
* ``x.map_overlap(5-point Laplacian, depth=1, boundary="periodic").sum()``: halos;
* ``(x @ x.T).sum()`` at a quarter of the size: tile products and a k-sum.

Every system gets ``--workers`` processes or threads on the same cores: dagmpi as
``mpiexec -n workers+1 python -m dagmpi`` (rank 0 drives), Dask's threaded scheduler
with ``num_workers``, its multiprocessing scheduler with as many processes, and
dask.distributed's ``LocalCluster(n_workers, threads_per_worker=1)``.  BLAS runs one
thread per worker everywhere.  Each system runs in its own subprocess after a warm-up
run; the table shows the median seconds and dagmpi's speed-up over each peer.
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
WORKLOADS = ("transpose_mean", "map_overlap", "matmul")


def laplacian(b):
    out = -4.0 * b
    out[1:-1, 1:-1] += b[:-2, 1:-1] + b[2:, 1:-1] + b[1:-1, :-2] + b[1:-1, 2:]
    return out


def build(name: str, n: int, chunk: int):
    import dask.array as da

    if name == "matmul":
        n //= 2
    x = da.random.default_rng(0).random((n, n), chunks=chunk)
    if name == "transpose_mean":
        return (x + x.T).mean(axis=0)
    if name == "map_overlap":
        return x.map_overlap(laplacian, depth=1, boundary="periodic").sum()
    return (x @ x.T).sum()


def run(peer: str, ns: argparse.Namespace) -> dict:
    import dask
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if peer == "dagmpi":
        import dagmpi

        scheduler: dict = {"scheduler": dagmpi.get}
        workers = len(dagmpi.workers())
    elif peer in ("threads", "processes"):
        scheduler = {"scheduler": peer, "num_workers": ns.workers}
        workers = ns.workers
    else:
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=ns.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        client = Client(cluster)
        scheduler = {"scheduler": client.get}
        workers = ns.workers
    out: dict = {"workers": workers}
    for name in WORKLOADS:
        dask.compute(build(name, ns.n // 4, ns.chunk // 4), **scheduler)  # warm-up (imports, pools)
        times = []
        for _ in range(ns.repeat):
            expr = build(name, ns.n, ns.chunk)
            t0 = time.perf_counter()
            dask.compute(expr, **scheduler)
            times.append(time.perf_counter() - t0)
        out[name] = {"median_s": statistics.median(times), "all_s": times}
    return out


def child(peer: str, ns: argparse.Namespace) -> dict:
    py = sys.executable
    args = ["--run", peer, "--workers", str(ns.workers), "--n", str(ns.n), "--chunk", str(ns.chunk),
            "--repeat", str(ns.repeat)]
    if peer == "dagmpi":
        cmd = [mpiexec(), "-n", str(ns.workers + 1), py, "-m", "dagmpi", HERE, *args]
    else:
        cmd = [py, HERE, *args]
    return run_system("dask" if peer == "distributed" else peer, cmd, ns.timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2, help="worker processes (or threads) of every system")
    ap.add_argument("--n", type=int, default=8000, help="matrix side (matmul: half of it)")
    ap.add_argument("--chunk", type=int, default=1000, help="block side (matmul: half of it)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per workload; the table shows the median")
    ap.add_argument("--peers", default="dagmpi,threads,processes,distributed",
                    help="systems, comma-separated, from dagmpi,threads,processes,distributed")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds each system may take")
    ap.add_argument("--json", default=default_json("dask_get"), help="where to write the results")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.run:
        print_result(run(ns.run, ns))
        return
    results = run_systems(ns.peers, lambda peer: child(peer, ns))
    print(f"\n{ns.workers} workers, {ns.n}^2 float64 in {ns.chunk}^2 blocks (matmul: {ns.n // 2}^2 in "
          f"{ns.chunk // 2}^2); median of {ns.repeat} runs, seconds; ratio = peer time / dagmpi time\n")
    print(f"{'system':<14}" + "".join(f"{w:>18}" for w in WORKLOADS))
    for peer, r in results.items():
        if "error" in r or "skipped" in r:
            print(f"{peer:<14} {r.get('error') or r.get('skipped')}")
            continue
        print(f"{peer:<14}" + "".join(f"{r[w]['median_s']:>18.3f}" for w in WORKLOADS))
    d = results.get("dagmpi", {})
    if "transpose_mean" in d:
        for peer, r in results.items():
            if peer == "dagmpi" or "transpose_mean" not in r:
                continue
            ratios = [r[w]["median_s"] / d[w]["median_s"] for w in WORKLOADS]
            r["ratio_vs_dagmpi"] = ratios
            print(f"{peer + ' / dagmpi':<14}" + "".join(f"{x:>17.2f}x" for x in ratios))
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "dask_get", "workers": ns.workers, "n": ns.n, "chunk": ns.chunk,
                   "results": results}, fh, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
