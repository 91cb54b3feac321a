"""Nested tasks: recursive fib(n), each call spawning and fetching two children.

    python benchmarks/nested.py [--workers 2] [--ns 10,12,14,15,16] [--dask-ns 10,12,14]
                                [--peers dagmpi,dask] [--json bench-results/nested.json]

A task that fetches blocks; its rank must go on running other tasks (the
children) meanwhile, so the number of blocked tasks per rank grows with n.
The figure of merit is the cost per task as n grows: fib(16) has 3,193 tasks and
hundreds blocked at once per worker; its µs per task should be within 2x of
fib(10)'s (177 tasks).  Peer: Dask distributed with ``worker_client`` (the
documented way to submit and gather from inside a Dask task; it secedes the
thread while waiting), one thread per worker process, the same worker count.
Each system runs in its own subprocess; the table gives wall time, µs per task
and the ratio of each n's per-task cost to the smallest n's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

HERE = os.path.abspath(__file__)


def n_tasks(n: int) -> int:
    """Calls of the naive recursive fib(n) (each one a task)."""
    a, b = 1, 1
    for _ in range(n):
        a, b = b, a + b + 1
    return a


def fib_dagmpi(n):
    import dagmpi

    if n < 2:
        return n
    a = dagmpi.spawn(fib_dagmpi, n - 1)
    b = dagmpi.spawn(fib_dagmpi, n - 2)
    return dagmpi.fetch(a) + dagmpi.fetch(b)


def fib_dask(n):
    from distributed import worker_client

    if n < 2:
        return n
    with worker_client() as c:
        a = c.submit(fib_dask, n - 1, pure=False)
        b = c.submit(fib_dask, n - 2, pure=False)
        return a.result() + b.result()


def child_dagmpi(ns: list[int]) -> dict:
    import dagmpi

    dagmpi.fetch(dagmpi.spawn(fib_dagmpi, 6))  # warm up: functions shipped, threads made
    out = {}
    for n in ns:
        t0 = time.perf_counter()
        v = dagmpi.fetch(dagmpi.spawn(fib_dagmpi, n))
        out[n] = time.perf_counter() - t0
        assert v == _fib(n), (n, v)
    return out


def child_dask(ns: list[int], workers: int) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            Client(lc) as c:
        c.submit(fib_dask, 6, pure=False).result()
        out = {}
        for n in ns:
            t0 = time.perf_counter()
            v = c.submit(fib_dask, n, pure=False).result()
            out[n] = time.perf_counter() - t0
            assert v == _fib(n), (n, v)
    return out


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def run_child(system: str, workers: int, ns: list[int], timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(HERE)),
                                                       os.environ.get("PYTHONPATH", "")]))
    args = ["--child", system, "--ns", ",".join(map(str, ns)), "--workers", str(workers)]
    if system == "dagmpi":
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        cmd = [mpiexec, "-n", str(workers + 1), sys.executable, "-m", "dagmpi", HERE, *args]
    else:
        cmd = [sys.executable, HERE, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{system} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return {int(k): v for k, v in json.loads(line[7:]).items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ns", default="10,12,14,15,16")
    p.add_argument("--dask-ns", default="10,12,14")
    p.add_argument("--peers", default="dagmpi,dask")
    p.add_argument("--json", default=default_json("nested"))
    p.add_argument("--child", default=None)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args()
    ns = [int(x) for x in a.ns.split(",")]
    if a.child == "dagmpi":
        print("RESULT " + json.dumps(child_dagmpi(ns)), flush=True)
        return
    if a.child == "dask":
        print("RESULT " + json.dumps(child_dask(ns, a.workers)), flush=True)
        return
    results: dict = {}
    for system in a.peers.split(","):
        sys_ns = ns if system == "dagmpi" else [int(x) for x in a.dask_ns.split(",")]
        if system == "dask":
            try:
                import distributed  # noqa: F401
            except ImportError:
                print("dask: distributed is not installed (pip install -e '.[bench]'); skipped")
                continue
        try:
            results[system] = run_child(system, a.workers, sys_ns, a.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{system}: {exc}")
    print(f"\nNested fib(n), {a.workers} workers: wall time, µs per task, per-task cost / smallest n's")
    print(f"{'n':>4} {'tasks':>7} | " + " | ".join(f"{s + ' s':>10} {'µs/task':>9} {'x n0':>6}" for s in results))
    rows = []
    for n in sorted({n for r in results.values() for n in r}):
        cells, row = [], {"n": n, "tasks": n_tasks(n)}
        for s, r in results.items():
            if n in r:
                base_n = min(r)
                us = r[n] / n_tasks(n) * 1e6
                ratio = us / (r[base_n] / n_tasks(base_n) * 1e6)
                cells.append(f"{r[n]:>10.2f} {us:>9.0f} {ratio:>6.2f}")
                row[s] = {"seconds": r[n], "us_per_task": us, "vs_smallest": ratio}
            else:
                cells.append(f"{'-':>10} {'-':>9} {'-':>6}")
        rows.append(row)
        print(f"{n:>4} {n_tasks(n):>7} | " + " | ".join(cells))
    for n in sorted({n for r in results.values() for n in r}):
        if "dagmpi" in results and "dask" in results and n in results["dask"] and n in results["dagmpi"]:
            print(f"fib({n}): dagmpi is {results['dask'][n] / results['dagmpi'][n]:.1f}x faster than Dask")
    with open_json(a.json) as f:
        json.dump({"workers": a.workers, "rows": rows}, f, indent=2)
    print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
