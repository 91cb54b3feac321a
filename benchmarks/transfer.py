"""Worker-to-worker transfer: dagmpi tasks against raw mpi4py Send/Recv, in one run.

    mpiexec -n 3 python benchmarks/transfer.py [--sizes 1,16,64,256] [--reps 5] [--json bench-results/transfer.json]

Rank 0 is dagmpi's driver; ranks 1 and 2 are workers. For each size (MiB):

* raw, fresh:  rank 2 sends a 1-byte request, rank 1 answers with ``Send`` of the
  array, rank 2 ``Recv``s into a newly allocated ``np.empty`` (what a consumer
  that keeps the value needs), and times request -> array received.
* raw, prealloc: the same into a buffer allocated once (the MPI ceiling).
* dagmpi: a task scoped to rank 1 made the array (finished beforehand); the
  timed part is ``fetch(spawn(consume, t, scope=rank 2))``: scheduling the
  consumer, rank 2 pulling the array straight from rank 1, running it and
  returning a small result to rank 0. Each repetition uses a fresh producer so
  nothing is cached.

Prints best-of-reps times, bandwidths and the ratio raw time / dagmpi time (1.0: as fast as raw
mpi4py; <1: dagmpi slower), and writes JSON under bench-results/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

MiB = 1 << 20


def idle_barrier(comm) -> None:
    """A barrier that sleeps instead of spinning (ranks share 2 cores)."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(1e-4)


def raw_transfer(comm, sizes: list[int], reps: int) -> dict:
    rank = comm.Get_rank()
    out: dict = {}
    for mib in sizes:
        n = mib * MiB // 8
        if rank == 1:
            a = np.full(n, 1.0)
            for _ in range(2 * reps):
                comm.Recv(bytearray(1), source=2, tag=7)
                comm.Send(a, dest=2, tag=8)
        elif rank == 2:
            fresh, pre = [], []
            buf = np.empty(n)
            for mode, times in (("fresh", fresh), ("prealloc", pre)):
                for _ in range(reps):
                    t0 = time.perf_counter()
                    comm.Send(bytearray(1), dest=1, tag=7)
                    target = np.empty(n) if mode == "fresh" else buf
                    comm.Recv(target, source=1, tag=8)
                    times.append(time.perf_counter() - t0)
                    assert target[-1] == 1.0
            out[mib] = {"raw_fresh": min(fresh), "raw_prealloc": min(pre)}
        idle_barrier(comm)
    return out


def make(n: int) -> np.ndarray:
    return np.full(n, 2.0)


def consume(a: np.ndarray) -> int:
    assert a[-1] == 2.0
    return a.nbytes


def dagmpi_transfer(sizes: list[int], reps: int) -> dict:
    import dagmpi

    on1 = dagmpi.Options(scope=dagmpi.scope(rank=1))
    on2 = dagmpi.Options(scope=dagmpi.scope(rank=2))
    dagmpi.fetch(dagmpi.spawn(consume, dagmpi.spawn(make, 8), options=on2))  # warm up: ship functions
    out: dict = {}
    for mib in sizes:
        n = mib * MiB // 8
        times = []
        for _ in range(reps):
            src = dagmpi.spawn(make, n, options=on1)
            dagmpi.wait([src])
            t0 = time.perf_counter()
            assert dagmpi.fetch(dagmpi.spawn(consume, src, options=on2)) == n * 8
            times.append(time.perf_counter() - t0)
            del src
        out[mib] = min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,16,64,256", help="array sizes in MiB, comma-separated")
    ap.add_argument("--reps", type=int, default=5, help="repetitions per size (the best is shown)")
    ap.add_argument("--json", default=default_json("transfer"),
                    help="where to write the results (default: bench-results/transfer.json)")
    ns = ap.parse_args()
    sizes = [int(s) for s in ns.sizes.split(",")]
    comm = MPI.COMM_WORLD
    if comm.Get_size() != 3:
        raise SystemExit("run with exactly 3 ranks: mpiexec -n 3 python benchmarks/transfer.py")
    raw = raw_transfer(comm, sizes, ns.reps)
    # rank 2 holds the raw timings; hand them to rank 0 with a sleeping wait
    if comm.Get_rank() == 2:
        comm.send(raw, dest=0, tag=9)
    elif comm.Get_rank() == 0:
        req = comm.irecv(source=2, tag=9)
        while True:
            done, raw = req.test()
            if done:
                break
            time.sleep(1e-4)

    import dagmpi

    dagmpi.init(transport="mpi")  # ranks 1 and 2 serve tasks here and exit
    dag = dagmpi_transfer(sizes, ns.reps)
    rows = []
    print(f"{'MiB':>5} {'raw fresh ms':>13} {'raw prealloc ms':>16} {'dagmpi ms':>10} "
          f"{'dagmpi GB/s':>12} {'raw/dagmpi (fresh)':>19} {'raw/dagmpi (prealloc)':>22}")
    for mib in sizes:
        rf, rp, d = raw[mib]["raw_fresh"], raw[mib]["raw_prealloc"], dag[mib]
        nbytes = mib * MiB
        row = {"MiB": mib, "raw_fresh_s": rf, "raw_prealloc_s": rp, "dagmpi_s": d,
               "dagmpi_GBps": nbytes / d / 1e9, "raw_fresh_GBps": nbytes / rf / 1e9,
               "raw_prealloc_GBps": nbytes / rp / 1e9,
               "ratio_vs_fresh": rf / d, "ratio_vs_prealloc": rp / d}
        rows.append(row)
        print(f"{mib:>5} {rf * 1e3:>13.2f} {rp * 1e3:>16.2f} {d * 1e3:>10.2f} {row['dagmpi_GBps']:>12.2f} "
              f"{row['ratio_vs_fresh']:>19.2f} {row['ratio_vs_prealloc']:>22.2f}")
    print("ratio = raw time / dagmpi time (1.0 = as fast as raw mpi4py; target >= 0.9 at >= 64 MiB)")
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "transfer", "ranks": 3, "mpi": MPI.Get_library_version().splitlines()[0],
                   "reps": ns.reps, "rows": rows}, fh, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
