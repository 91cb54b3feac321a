"""Checkpoint costs, measured against raw h5py in the same run.

    python benchmarks/checkpoint.py [--dir /tmp/dagmpi-ckpt-bench] [--json bench-results/checkpoint.json]
                                    [--big-mib 256] [--big-count 4] [--small 10000] [--resume 100000]

(a) write throughput: dagmpi's checkpoint writer saving ``--big-count`` arrays of
    ``--big-mib`` MiB (queue, HDF5 dataset, flush, fsync, atomic rename) against raw
    h5py ``create_dataset`` + ``flush`` + ``os.fsync`` of the same bytes.  Target >= 0.7.
(b) overhead on a graph of ``--small`` trivial tasks: dagmpi without checkpoints vs
    ``policy="all"`` (every result saved), same process, same workers (embedded runtime).
(c) resume: a ``--resume``-task run fully checkpointed, then run again: time until the
    rerun has completed every task from the checkpoint.  Target <= 5 s for 100k.

Runs (b) and (c) as subprocesses of ``python -m dagmpi`` (embedded, 2 worker threads) so
each starts from a clean runtime.  Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

HERE = os.path.abspath(__file__)


def inc(x):
    return x + 1


def write_throughput(directory: str, mib: int, count: int) -> dict:
    import h5py

    from dagmpi.checkpoint.hdf5 import Writer

    arrays = [np.random.default_rng(i).standard_normal(mib * (1 << 20) // 8) for i in range(count)]
    nbytes = sum(a.nbytes for a in arrays)
    out = {}
    for label in ("raw", "dagmpi", "raw2", "dagmpi2"):  # interleaved, best of two
        d = os.path.join(directory, label)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        t0 = time.perf_counter()
        if label.startswith("raw"):
            with h5py.File(os.path.join(d, "raw.h5"), "w") as f:
                for i, a in enumerate(arrays):
                    f.create_dataset(f"a{i}", data=a)
                f.flush()
                os.fsync(f.id.get_vfd_handle())
        else:
            w = Writer(d, rank=0, roll_seconds=3600, roll_entries=10**9, roll_bytes=1 << 62)
            for i, a in enumerate(arrays):
                w.add(f"k{i}", "big", a)
            w.close(timeout=600)
        secs = time.perf_counter() - t0
        key = label.rstrip("2")
        out[key] = min(out.get(key, float("inf")), secs)
        shutil.rmtree(d, ignore_errors=True)
    return {"bytes": nbytes, "raw_s": out["raw"], "dagmpi_s": out["dagmpi"],
            "raw_GBps": nbytes / out["raw"] / 1e9, "dagmpi_GBps": nbytes / out["dagmpi"] / 1e9,
            "ratio": out["raw"] / out["dagmpi"]}


def run_graph(n: int, ckpt: str) -> dict:
    import dagmpi

    if ckpt:
        dagmpi.init(checkpoint=ckpt, policy="all")
    dagmpi.fetch(dagmpi.spawn(inc, -1))
    t0 = time.perf_counter()
    ts = [dagmpi.spawn(inc, i) for i in range(n)]
    dagmpi.wait(ts)
    secs = time.perf_counter() - t0
    drv = dagmpi.runtime.context._runtime.driver
    return {"tasks": n, "seconds": secs, "tasks_per_s": n / secs, "restored": drv.n_restored}


def child(n: int, ckpt: str) -> dict:
    cmd = [sys.executable, "-m", "dagmpi", "--workers", "2", "--slots", "1", HERE, "--run", str(n),
           "--ckpt", ckpt]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            r["wall_s"] = wall
            return r
    raise SystemExit(f"child failed ({p.returncode}): {p.stderr[-2000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/dagmpi-ckpt-bench")
    ap.add_argument("--big-mib", type=int, default=256)
    ap.add_argument("--big-count", type=int, default=4)
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--resume", type=int, default=100_000)
    ap.add_argument("--json", default=default_json("checkpoint"),
                    help="where to write the results (default: bench-results/checkpoint.json)")
    ap.add_argument("--run", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", default="", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.run is not None:
        print("RESULT " + json.dumps(run_graph(ns.run, ns.ckpt)), flush=True)
        return
    os.makedirs(ns.dir, exist_ok=True)
    res: dict = {}
    res["write"] = w = write_throughput(ns.dir, ns.big_mib, ns.big_count)
    plain = child(ns.small, "")
    d = os.path.join(ns.dir, "small")
    shutil.rmtree(d, ignore_errors=True)
    saved = child(ns.small, d)
    res["small"] = {"plain": plain, "checkpointed": saved,
                    "overhead": plain["tasks_per_s"] / saved["tasks_per_s"]}
    d = os.path.join(ns.dir, "resume")
    shutil.rmtree(d, ignore_errors=True)
    first = child(ns.resume, d)
    again = child(ns.resume, d)
    res["resume"] = {"first": first, "again": again}
    shutil.rmtree(ns.dir, ignore_errors=True)

    print(f"(a) write {ns.big_count} x {ns.big_mib} MiB: raw h5py+fsync {w['raw_GBps']:.2f} GB/s, "
          f"dagmpi checkpoint {w['dagmpi_GBps']:.2f} GB/s, ratio {w['ratio']:.2f} (target >= 0.7)")
    print(f"(b) {ns.small:,} trivial tasks: {plain['tasks_per_s']:,.0f} tasks/s without checkpoint, "
          f"{saved['tasks_per_s']:,.0f} tasks/s saving every result "
          f"({res['small']['overhead']:.2f}x slower); whole process incl. start-up and the final "
          f"fsync: {plain['wall_s']:.1f} s vs {saved['wall_s']:.1f} s")
    print(f"(c) {ns.resume:,}-task run: first run {first['seconds']:.1f} s; rerun restored "
          f"{again['restored']:,} tasks in {again['seconds']:.2f} s (process wall {again['wall_s']:.1f} s; "
          "target <= 5 s)")
    with open_json(ns.json) as fh:
        json.dump(res, fh, indent=2)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
