"""Distributed arrays against numpy and dask.array, on the same cores, in one run.

    python benchmarks/arrays.py [--workers 2] [--log2-elements 28] [--h5-gib 8]
                                [--peers numpy,dagmpi,dask] [--repeat 3] [--json bench-results/arrays.json]

(a) fused elementwise ``((A*2+1)**2).sum()`` on 2^28 float64 elements (2 GiB) in
    blocks of 2048 x 2048: GB/s of A read.  Peers: numpy on one process (the
    expression as written, and the very block kernel dagmpi's tasks run, the
    Numba-compiled fused loop: the no-overhead limit of one core), numpy in ``--workers`` processes at once
    on a share each (``numpy-procs``: what the same cores' memory allows),
    dask.array on a LocalCluster with as many single-threaded worker processes.
(b) ``A.sum(axis=0)`` and ``A.sum(axis=1)`` (the result fetched): GB/s.
(c) HDF5 write and read of ``--h5-gib`` GiB: raw h5py from one process (a
    regular dataset, written block by block and fsynced; read back whole) against
    ``da.to_hdf5`` (part files per worker + a virtual dataset) and ``da.from_hdf5``.
    Reads follow ``echo 3 > /proc/sys/vm/drop_caches`` where that is allowed.
(d) rank 0's CPU seconds and peak RSS during (a).

Every system runs in its own subprocess, one after the other; the best of
``--repeat`` timings is reported.  Targets (2 workers): (a) >= 0.8 x numpy's
single-process bandwidth x 2 and >= 2x dask.array; (c) >= 0.7x raw h5py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

HERE = os.path.abspath(__file__)
BLOCK = 2048


def _shape(log2: int) -> tuple[int, int]:
    rows = 1 << (log2 // 2)
    return rows, (1 << log2) // rows


def _drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ------------------------------------------------------------------ children

def child_numpy(args) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from dagmpi.array import blockops as ops

    shape = _shape(args.log2_elements)
    A = np.random.default_rng(0).random(shape)
    out = {}
    if args.start_at:  # one of several processes started together: begin at the same moment
        time.sleep(max(0.0, args.start_at - time.time()))
    expr = lambda: float(((A * 2 + 1) ** 2).sum())  # noqa: E731
    out["fused_s"] = _best(expr, args.repeat)
    prog = ("ufunc", np.power, (), ("ufunc", np.add, (), ("ufunc", np.multiply, (), ("leaf", 0), ("const", 2)),
                                    ("const", 1)), ("const", 2))
    info = (np.dtype(np.float64), np.dtype(np.float64))
    strip = lambda: float(ops.partial("sum", None, info, prog, shape, "<f8", A)[0].sum())  # noqa: E731
    out["fused_strip_s"] = _best(strip, args.repeat)
    assert np.isclose(expr(), strip())
    out["sum0_s"] = _best(lambda: A.sum(axis=0), args.repeat)
    out["sum1_s"] = _best(lambda: A.sum(axis=1), args.repeat)
    out["nbytes"] = A.nbytes
    del A
    if args.h5_gib and not args.start_at:
        import h5py

        d = tempfile.mkdtemp(dir=args.tmp)
        try:
            path = os.path.join(d, "raw.h5")
            rows = int(args.h5_gib * (1 << 30) / 8 / (BLOCK * 4))
            rows -= rows % BLOCK
            hshape = (rows, BLOCK * 4)
            block = np.random.default_rng(1).random((BLOCK, hshape[1]))
            t0 = time.perf_counter()
            with h5py.File(path, "w") as f:
                ds = f.create_dataset("x", shape=hshape, dtype="f8")
                for r in range(0, rows, BLOCK):
                    ds[r:r + BLOCK] = block
                f.flush()
                os.fsync(f.id.get_vfd_handle())
            out["h5_write_s"] = time.perf_counter() - t0
            out["h5_bytes"] = rows * hshape[1] * 8
            del block
            out["h5_cold"] = _drop_caches()
            t0 = time.perf_counter()
            with h5py.File(path, "r") as f:
                whole = f["x"][...]
            out["h5_read_s"] = time.perf_counter() - t0
            del whole
            shutil.move(path, os.path.join(args.tmp, "raw-for-dagmpi.h5"))
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out


def child_dagmpi(args) -> dict:
    import numpy as np

    import dagmpi
    import dagmpi.array as da

    shape = _shape(args.log2_elements)
    A = da.random.default_rng(0).random(shape, blocks=BLOCK).compute()
    dagmpi.wait(list(A.tasks.ravel()))
    out = {}
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t_fused = _best(lambda: dagmpi.fetch(((A * 2 + 1) ** 2).sum()), args.repeat)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out["fused_s"] = t_fused
    out["rank0_cpu_s"] = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / args.repeat
    out["rank0_maxrss_mib"] = r1.ru_maxrss / 1024
    out["sum0_s"] = _best(lambda: A.sum(axis=0).to_numpy(), args.repeat)
    out["sum1_s"] = _best(lambda: A.sum(axis=1).to_numpy(), args.repeat)
    out["nbytes"] = A.nbytes
    out["nblocks"] = int(np.prod(A.nblocks))
    del A
    raw = os.path.join(args.tmp, "raw-for-dagmpi.h5")
    if args.h5_gib and os.path.exists(raw):
        import h5py

        with h5py.File(raw, "r") as f:
            hshape = f["x"].shape
        B = da.random.default_rng(1).random(hshape, blocks=(BLOCK, hshape[1])).compute()
        dagmpi.wait(list(B.tasks.ravel()))
        d = tempfile.mkdtemp(dir=args.tmp)
        try:
            t0 = time.perf_counter()
            da.to_hdf5(os.path.join(d, "out.h5"), "x", B)
            out["h5_write_s"] = time.perf_counter() - t0
            out["h5_bytes"] = B.nbytes
            del B
            out["h5_cold"] = _drop_caches()
            t0 = time.perf_counter()
            C = da.from_hdf5(raw, "x", blocks=(BLOCK, hshape[1])).compute()
            dagmpi.wait(list(C.tasks.ravel()))
            out["h5_read_s"] = time.perf_counter() - t0
            del C
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return out


def child_dask(args) -> dict:
    import dask.array as dka
    from distributed import Client, LocalCluster, wait

    shape = _shape(args.log2_elements)
    out = {}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as lc, Client(lc) as client:
        A = dka.random.default_rng(0).random(shape, chunks=BLOCK).persist()
        wait(A)
        out["fused_s"] = _best(lambda: float(((A * 2 + 1) ** 2).sum().compute()), args.repeat)
        out["sum0_s"] = _best(lambda: A.sum(axis=0).compute(), args.repeat)
        out["sum1_s"] = _best(lambda: A.sum(axis=1).compute(), args.repeat)
        out["nbytes"] = A.nbytes
        del A
        client.close()
    return out


# ------------------------------------------------------------------ parent

def run_numpy_processes(args) -> dict:
    """numpy in ``workers`` processes at once, each on 1/workers of the elements (the
    same cores' memory-bound limit for what dagmpi's workers do): aggregate GB/s as
    total bytes / the slowest process's time."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    per = args.log2_elements - (args.workers - 1).bit_length()
    start = time.time() + 4 + (1 << per) * 8 / 2**30 * 3
    cmd = [sys.executable, HERE, "--child", "numpy", "--log2-elements", str(per), "--h5-gib", "0",
           "--repeat", str(args.repeat), "--start-at", str(start)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(args.workers)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=args.timeout)
        lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"numpy process failed: {err[-2000:]}")
        outs.append(json.loads(lines[0][7:]))
    agg = {"nbytes": sum(o["nbytes"] for o in outs)}
    for k in ("fused_s", "fused_strip_s", "sum0_s", "sum1_s"):
        agg[k] = max(o[k] for o in outs)
    return agg


def run_child(system: str, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    root = os.path.dirname(os.path.dirname(HERE))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    common = ["--child", system, "--log2-elements", str(args.log2_elements), "--h5-gib", str(args.h5_gib),
              "--repeat", str(args.repeat), "--workers", str(args.workers), "--tmp", args.tmp]
    if system == "numpy-procs":
        return run_numpy_processes(args)
    if system == "dagmpi":
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
        cmd = [mpiexec, "-n", str(args.workers + 1), sys.executable, "-m", "dagmpi", HERE, *common]
    else:
        cmd = [sys.executable, HERE, *common]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{system} failed (status {res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log2-elements", type=int, default=28)
    p.add_argument("--h5-gib", type=float, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--peers", default="numpy,numpy-procs,dagmpi,dask")
    p.add_argument("--json", default=default_json("arrays"))
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--child", default=None)
    p.add_argument("--tmp", default=None)
    p.add_argument("--start-at", type=float, default=0.0)
    args = p.parse_args()
    if args.child:
        fn = {"numpy": child_numpy, "dagmpi": child_dagmpi, "dask": child_dask}[args.child]
        print("RESULT " + json.dumps(fn(args)), flush=True)
        return
    systems = args.peers.split(",")
    if "dagmpi" in systems and "numpy" in systems:  # numpy writes the file dagmpi reads
        systems = ["numpy"] + [s for s in systems if s != "numpy"]
    results = {}
    args.tmp = tempfile.mkdtemp(prefix="dagmpi-bench-arrays-")
    try:
        for s in systems:
            print(f"running {s} ...", flush=True)
            try:
                results[s] = run_child(s, args)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"{s}: {exc}", flush=True)
    finally:
        shutil.rmtree(args.tmp, ignore_errors=True)
    gb = lambda r, k, b="nbytes": r[b] / r[k] / 1e9 if k in r else float("nan")  # noqa: E731
    w = args.workers
    print(f"\nArrays: 2^{args.log2_elements} float64 ({(1 << args.log2_elements) * 8 / 2**30:.1f} GiB) in "
          f"{BLOCK}x{BLOCK} blocks, {w} workers; best of {args.repeat}; GB/s of input")
    print(f"{'measure':<34}" + "".join(f"{s:>12}" for s in results) + "   dagmpi vs")
    np_r, dg, dk = results.get("numpy", {}), results.get("dagmpi", {}), results.get("dask", {})
    npp = results.get("numpy-procs", {})
    rows = [("(a) ((A*2+1)**2).sum()", "fused_s"), ("(b) A.sum(axis=0)", "sum0_s"), ("(b) A.sum(axis=1)", "sum1_s")]
    for label, key in rows:
        line = f"{label:<34}" + "".join(f"{gb(r, key):>12.2f}" for r in results.values())
        if dg and key in dg:
            parts = []
            if np_r:
                parts.append(f"{gb(dg, key) / (w * gb(np_r, key)):.2f}x numpy*{w}")
            if npp:
                parts.append(f"{gb(dg, key) / gb(npp, key):.2f}x numpy-procs")
            if dk:
                parts.append(f"{gb(dg, key) / gb(dk, key):.2f}x dask")
            line += "   " + ", ".join(parts)
        print(line)
    if np_r.get("fused_strip_s"):
        print(f"{'(a) the block kernel alone':<34}{gb(np_r, 'fused_strip_s'):>12.2f}"
              + (f"{gb(npp, 'fused_strip_s'):>12.2f}" if npp else "")
              + (f"   dagmpi {gb(dg, 'fused_s') / (w * gb(np_r, 'fused_strip_s')):.2f}x of it *{w}" if dg else "")
              + (f", {gb(dg, 'fused_s') / gb(npp, 'fused_strip_s'):.2f}x of numpy-procs'" if dg and npp else ""))
    if npp:
        print(f"    numpy-procs: {w} numpy processes at once, each on 1/{w} of the elements")
    if "h5_write_s" in np_r and "h5_write_s" in dg:
        for label, key in [("(c) HDF5 write", "h5_write_s"), ("(c) HDF5 read", "h5_read_s")]:
            a, b = gb(np_r, key, "h5_bytes"), gb(dg, key, "h5_bytes")
            print(f"{label + ' (raw h5py | dagmpi)':<34}{a:>12.2f}{b:>12.2f}   {b / a:.2f}x raw h5py")
        print(f"    {np_r['h5_bytes'] / 2**30:.1f} GiB; page cache dropped before reads: {np_r.get('h5_cold')}")
    if dg:
        print(f"(d) rank 0 during (a): {dg['rank0_cpu_s'] * 1000:.0f} ms CPU per run, "
              f"peak RSS {dg['rank0_maxrss_mib']:.0f} MiB ({dg['nblocks']} blocks)")
    with open_json(args.json) as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if k not in ("child", "tmp")}, "results": results}, f,
                  indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
