"""Tiled linear algebra and stencils against numpy/LAPACK and dask.array, in one run.

    python benchmarks/linalg.py [--workers 2] [--sizes 4096,8192] [--tile 512] [--gemm-tiles 1024,2048]
                                [--grid 8192] [--steps 100] [--small-grid 1024] [--small-steps 1000]
                                [--peers numpy,dagmpi,dask] [--repeat 2]
                                [--json bench-results/linalg.json]

* Cholesky of an SPD float64 matrix (``(R + R.T)/2 + n I``), n = 4096 and 8192,
  tile 512: GFLOP/s (n^3/3 flops).  numpy: ``numpy.linalg.cholesky`` with
  LAPACK threads = workers; dagmpi: ``da.linalg.cholesky`` with one BLAS thread per
  worker rank; dask: ``dask.array.linalg.cholesky`` on a LocalCluster of as many
  single-threaded worker processes, same tile.
* GEMM ``A @ B``, n = 4096 and 8192: GFLOP/s (2 n^3), with the tile above and
  with ``--gemm-tiles`` (default 1024 and 2048, the latter dagmpi's ``blocks="auto"`` for
  float64: 32 MiB blocks; numpy's column is the same untiled call).
* 2-D 5-point heat stencil (``kernels/cpu/stencil.heat5_step``) on an 8192^2
  float64 grid, periodic, 100 steps: Mcell/s against (a) one process running the
  same Numba kernel on the whole (padded) grid, times the workers (the limit; also
  with glibc keeping freed memory, the setting dagmpi's workers run with), and
  (b) ``dask.array.map_overlap``; and the halo bytes a step moves against the grid.
  dagmpi runs it as a Python loop of ``map_overlap`` (two launches per step) and as
  one ``map_overlap_loop`` (one loop on the workers: blocks stay, halos pushed).
  The same on a ``--small-grid`` (1024^2, 1000 steps, blocks of a quarter side):
  steps short enough that the cost per step, not the kernel, decides.
* The stencil kernels' first-call compile time, and the call in a fresh process
  once ``cache=True`` has stored them.

Cholesky and GEMM are timed ``--repeat`` times (default 2) on every system, the
best kept.  Inputs are made and persisted, and the stencil kernel run once on every worker,
on each system before its clock starts; every system
runs in its own subprocess, one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

HERE = os.path.abspath(__file__)


def grid_auto_chunks(shape, itemsize, workers):
    """dagmpi's ``blocks="auto"`` for this shape (to label the GEMM row that uses them)."""
    from dagmpi.array.grid import auto_chunks

    return auto_chunks(shape, itemsize, workers)


def _sizes(args) -> list[int]:
    return [int(s) for s in args.sizes.split(",") if s]


def _gemm_tiles(args) -> list[int]:
    """The extra GEMM tile sizes (``--gemm-tiles``, other than ``--tile``)."""
    return sorted({int(t) for t in args.gemm_tiles.split(",") if t and int(t) != args.tile})


def best(args, run, *a) -> float:
    """The fastest of ``--repeat`` timed calls ``run(*a)`` (the same count for every
    system; the result of each call is dropped before the next)."""
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        run(*a)
        times.append(time.perf_counter() - t0)
    return min(times)


def child_numpy(args) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from dagmpi.kernels.cpu import stencil

    out: dict = {}
    with threadpool_limits(args.workers):
        for n in _sizes(args):
            r = np.random.default_rng(0).random((n, n))
            s = (r + r.T) / 2 + n * np.eye(n)
            out[f"chol_{n}"] = best(args, np.linalg.cholesky, s)
            b = np.random.default_rng(1).random((n, n))
            out[f"gemm_{n}"] = best(args, np.matmul, r, b)
            del r, s, b
    def kernel_loop(p, steps) -> float:
        """Seconds of ``steps`` calls of the stencil kernel on the padded grid ``p`` (after one)."""
        stencil.heat5_step(p, 0.1)
        t0 = time.perf_counter()
        for _ in range(steps):
            stencil.heat5_step(p, 0.1)
        return time.perf_counter() - t0

    with threadpool_limits(1):
        p = np.pad(np.random.default_rng(2).random((args.grid, args.grid)), 1, mode="wrap")
        out["stencil_kernel_s"] = kernel_loop(p, args.steps)
        # the same loop with the allocator setting dagmpi's workers use (freed memory
        # kept for reuse: the kernel's 512 MiB result is not page-faulted in every step)
        from dagmpi.runtime.context import _keep_freed_memory

        _keep_freed_memory()
        out["stencil_kernel_kept_s"] = kernel_loop(p, args.steps)
        # the small grid (with the workers' allocator setting)
        p = np.pad(np.random.default_rng(2).random((args.small_grid, args.small_grid)), 1, mode="wrap")
        out["small_kernel_s"] = kernel_loop(p, args.small_steps)
    return out


def neighbour_reads(chunks, itemsize: int) -> int:
    """Bytes a periodic depth-1 map_overlap step of ``heat5_step`` reads from other
    blocks: each block's task reads the whole ``halos`` tuple of each neighbour block
    (every face that block cuts for any of its neighbours; no corners: the faces form),
    not only its own face."""
    import itertools
    import math

    from dagmpi.array import overlap

    depth, bounds = (1,) * len(chunks), ("periodic",) * len(chunks)
    plans = {}
    for idx in itertools.product(*(range(len(c)) for c in chunks)):
        pieces, where, pads, trim, _ = overlap._plan_block(chunks, idx, depth, bounds)
        # heat5_step has a faces form: no corner pieces (see dagmpi.array.overlap)
        plans[idx] = [p for p, dest in zip(pieces, where) if sum(s != 1 for s in overlap._sides(dest, pads, trim)) <= 1]
    cut: dict = {}
    for idx, pieces in plans.items():
        for nidx, key in pieces:
            if nidx != idx:
                cut.setdefault(nidx, {})[tuple((k.start, k.stop) for k in key)] = key
    size = {n: sum(math.prod(k.stop - k.start for k in key) for key in keys.values()) * itemsize
            for n, keys in cut.items()}
    return sum(size[n] for idx, pieces in plans.items() for n in {nidx for nidx, _ in pieces if nidx != idx})


def child_dagmpi(args) -> dict:
    import dagmpi
    import dagmpi.array as da
    from dagmpi.kernels.cpu import stencil

    def ready(x):
        x.compute()
        dagmpi.wait(list(x.tasks.ravel()))
        return x

    out: dict = {}
    T = args.tile
    for n in _sizes(args):
        r = ready(da.random.default_rng(0).random((n, n), blocks=T))
        s = ready((r + r.T) / 2 + da.eye(n, blocks=T) * n)
        out[f"chol_{n}"] = best(args, lambda x: ready(da.linalg.cholesky(x)), s)
        b = ready(da.random.default_rng(1).random((n, n), blocks=T))
        out[f"gemm_{n}"] = best(args, lambda x, y: ready(x @ y), r, b)
        del r, s, b
        for tg in _gemm_tiles(args):
            r = ready(da.random.default_rng(0).random((n, n), blocks=tg))
            b = ready(da.random.default_rng(1).random((n, n), blocks=tg))
            out[f"gemm_{n}_t{tg}"] = best(args, lambda x, y: ready(x @ y), r, b)
            del r, b
    for label, grid, steps in (("stencil", args.grid, args.steps), ("small", args.small_grid, args.small_steps)):
        u0 = ready(da.random.default_rng(2).random((grid, grid), blocks=grid // 4))
        ready(u0.map_overlap(stencil.heat5_step, 1, boundary="periodic", alpha=0.1))  # kernels loaded everywhere
        t0 = time.perf_counter()
        u = u0
        for _ in range(steps):
            u = u.map_overlap(stencil.heat5_step, 1, boundary="periodic", alpha=0.1)
        ready(u)
        out[f"{label}_s"] = time.perf_counter() - t0
        del u
        t0 = time.perf_counter()
        ready(u0.map_overlap_loop(stencil.heat5_step, steps, 1, boundary="periodic", alpha=0.1))
        out[f"{label}_loop_s"] = time.perf_counter() - t0
        if label == "stencil":  # (the halo figures of the main grid)
            out["halo_bytes_per_step"] = sum((a + 2) * (b + 2) - a * b for a in u0.chunks[0] for b in u0.chunks[1]) * 8
            out["read_bytes_per_step"] = neighbour_reads(u0.chunks, 8)
            out["grid_bytes"] = u0.nbytes
    return out


def child_dask(args) -> dict:
    import dask.array as dka
    from distributed import Client, LocalCluster, wait

    from dagmpi.kernels.cpu import stencil

    def fresh(op, *inputs) -> float:
        """:func:`best` for dask: each repetition on inputs of new names (``x + rep``,
        persisted before the clock starts), or dask would hand back the result it
        still holds from the last repetition (same graph, same keys)."""
        times = []
        for rep in range(args.repeat):
            xs = [(x + rep).persist() for x in inputs]  # (an SPD matrix + rep stays SPD)
            wait(xs)
            t0 = time.perf_counter()
            wait(op(*xs).persist())
            times.append(time.perf_counter() - t0)
            del xs
        return min(times)

    out: dict = {}
    T = args.tile
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as lc, Client(lc):
        for n in _sizes(args):
            r = dka.random.default_rng(0).random((n, n), chunks=T).persist()
            s = ((r + r.T) / 2 + dka.eye(n, chunks=T) * n).persist()
            wait([r, s])
            out[f"chol_{n}"] = fresh(lambda x: dka.linalg.cholesky(x, lower=True), s)
            b = dka.random.default_rng(1).random((n, n), chunks=T).persist()
            wait(b)
            out[f"gemm_{n}"] = fresh(lambda x, y: x @ y, r, b)
            del r, s, b
            for tg in _gemm_tiles(args):
                r = dka.random.default_rng(0).random((n, n), chunks=tg).persist()
                b = dka.random.default_rng(1).random((n, n), chunks=tg).persist()
                wait([r, b])
                out[f"gemm_{n}_t{tg}"] = fresh(lambda x, y: x @ y, r, b)
                del r, b
        for label, grid, steps in (("stencil", args.grid, args.steps), ("small", args.small_grid, args.small_steps)):
            u = dka.random.default_rng(2).random((grid, grid), chunks=grid // 4).persist()
            wait(u)
            wait(u.map_overlap(stencil.heat5_step, depth=1, boundary="periodic", trim=False, alpha=0.1,
                               dtype=u.dtype).persist())  # kernels loaded on every worker
            t0 = time.perf_counter()
            for _ in range(steps):
                u = u.map_overlap(stencil.heat5_step, depth=1, boundary="periodic", trim=False, alpha=0.1,
                                  dtype=u.dtype)
            wait(u.persist())
            out[f"{label}_s"] = time.perf_counter() - t0
    return out


def compile_times(env: dict) -> dict:
    """First call of the stencil kernels in a process with an empty Numba cache, then
    the same in a second process (loaded from the cache)."""
    code = ("import time, numpy as np; t0 = time.perf_counter(); "
            "from dagmpi.kernels.cpu import stencil as s; u = np.zeros((6, 6)); o = np.zeros((4, 4)); "
            "s.laplace5(u, o); s.laplace9(u, o); s.heat5_step(u, 0.1); s.laplace7(np.zeros((4, 4, 4)), "
            "np.zeros((2, 2, 2))); s.weighted2d(u, np.ones((3, 3)), o); print(time.perf_counter() - t0)")
    d = tempfile.mkdtemp(prefix="dagmpi-numba-cache-")
    try:
        e = dict(env, NUMBA_CACHE_DIR=d)
        first = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                                     check=True).stdout)
        second = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                                      check=True).stdout)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"first_call_s": first, "cached_call_s": second}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    root = os.path.dirname(os.path.dirname(HERE))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    return env


def run_child(system: str, args) -> dict:
    env = _env()
    if system != "numpy":  # one BLAS thread per worker process
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    common = ["--child", system, "--workers", str(args.workers), "--sizes", args.sizes, "--tile", str(args.tile),
              "--gemm-tiles", args.gemm_tiles,
              "--grid", str(args.grid), "--steps", str(args.steps), "--small-grid", str(args.small_grid),
              "--small-steps", str(args.small_steps), "--repeat", str(args.repeat)]
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


def _stencil_rows(results: dict, systems: list, label: str, key: str, cells: int, kernel_s, w: int) -> dict:
    """Print a stencil's Mcell/s rows (a Python loop of map_overlap, and dagmpi's
    map_overlap_loop) with dagmpi's ratios; the first row's figures."""
    mc: dict = {}
    for suffix, name in (("", ""), ("_loop", ", loop")):
        row = {s: cells / r[f"{key}{suffix}_s"] / 1e6 for s, r in results.items() if f"{key}{suffix}_s" in r}
        if suffix and "dagmpi" not in row:
            continue
        for s, r in results.items():  # (the others have no loop form: their loop of map_overlap)
            if suffix and s != "dagmpi" and f"{key}_s" in r:
                row[s] = cells / r[f"{key}_s"] / 1e6
        if kernel_s:
            row["numpy"] = w * cells / kernel_s / 1e6
        line = f"{label + name + ' Mcell/s':<30}" + "".join(f"{row.get(s, float('nan')):>12.0f}" for s in systems)
        if "dagmpi" in row:
            parts = [f"{row['dagmpi'] / row[s]:.2f}x " + ("the limit" if s == "numpy" else s)
                     for s in ("numpy", "dask") if s in row]
            line += "   " + ", ".join(parts)
        print(line)
        if not suffix:
            mc = row
    return mc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--sizes", default="4096,8192")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--gemm-tiles", default="1024,2048", help="GEMM also with these tiles (dagmpi and dask)")
    p.add_argument("--grid", type=int, default=8192)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--small-grid", type=int, default=1024, help="the stencil again on this grid ...")
    p.add_argument("--small-steps", type=int, default=1000, help="... for this many steps")
    p.add_argument("--peers", default="numpy,dagmpi,dask")
    p.add_argument("--repeat", type=int, default=2, help="time Cholesky and GEMM this many times, keep the best")
    p.add_argument("--json", default=default_json("linalg"))
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--child", default=None)
    args = p.parse_args()
    if args.child:
        fn = {"numpy": child_numpy, "dagmpi": child_dagmpi, "dask": child_dask}[args.child]
        print("RESULT " + json.dumps(fn(args)), flush=True)
        return
    results = {}
    for s in args.peers.split(","):
        print(f"running {s} ...", flush=True)
        try:
            results[s] = run_child(s, args)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{s}: {exc}", flush=True)
    comp = compile_times(_env())
    w = args.workers
    systems = list(results)
    print(f"\nTiled linear algebra and stencils, {w} workers (numpy: {w} LAPACK threads), tile {args.tile}")
    print(f"{'measure':<30}" + "".join(f"{s:>12}" for s in systems) + "   dagmpi vs")
    np_r, dg = results.get("numpy", {}), results.get("dagmpi", {})
    for kind, flops, label in [("chol", lambda n: n ** 3 / 3, "Cholesky"), ("gemm", lambda n: 2 * n ** 3, "GEMM")]:
        for n in _sizes(args):
            key = f"{kind}_{n}"
            gf = {s: flops(n) / r[key] / 1e9 for s, r in results.items() if key in r}
            line = f"{label + f' n={n} GFLOP/s':<30}" + "".join(f"{gf.get(s, float('nan')):>12.1f}" for s in systems)
            if "dagmpi" in gf:
                parts = [f"{gf['dagmpi'] / gf[s]:.2f}x {s}" for s in ("numpy", "dask") if s in gf]
                line += "   " + ", ".join(parts)
            print(line)
            if kind != "gemm":
                continue
            for tg in _gemm_tiles(args):
                gt = {s: flops(n) / r[f"{key}_t{tg}"] / 1e9 for s, r in results.items() if f"{key}_t{tg}" in r}
                if "numpy" in gf:
                    gt["numpy"] = gf["numpy"]
                auto = max(grid_auto_chunks((n, n), 8, w)[0]) == tg
                line = f"{f'  tile {tg}' + (' (auto blocks)' if auto else ''):<30}" + "".join(f"{gt.get(s, float('nan')):>12.1f}" for s in systems)
                if "dagmpi" in gt:
                    line += "   " + ", ".join(f"{gt['dagmpi'] / gt[s]:.2f}x {s}" for s in ("numpy", "dask") if s in gt)
                print(line)
    cells = args.grid ** 2 * args.steps
    mc = _stencil_rows(results, systems, f"stencil {args.grid}^2", "stencil", cells, np_r.get("stencil_kernel_s"), w)
    kept_row = np_r.get("stencil_kernel_kept_s") and "dagmpi" in mc
    if kept_row:
        kept = w * cells / np_r["stencil_kernel_kept_s"] / 1e6
        print(f"{'  limit, workers malloc':<30}"
              + "".join(f"{kept:>12.0f}" if s == "numpy" else " " * 12 for s in systems)
              + f"   {mc['dagmpi'] / kept:.2f}x this limit")
    small = args.small_grid ** 2 * args.small_steps
    _stencil_rows(results, systems, f"stencil {args.small_grid}^2", "small", small, np_r.get("small_kernel_s"), w)
    print(f"    stencil 'numpy' column: the limit = one process's Numba kernel on the whole grid x {w}; "
          f"'loop': map_overlap_loop (dagmpi; the others' column repeats their loop)")
    if kept_row:
        print("    'limit, workers malloc': the same with glibc keeping freed memory for reuse, as dagmpi's "
              "workers do (its result is then not page-faulted in each step)")
    if dg:
        print(f"    halo bytes per step: {dg['halo_bytes_per_step'] / 2**20:.2f} MiB of a "
              f"{dg['grid_bytes'] / 2**20:.0f} MiB grid ({dg['halo_bytes_per_step'] / dg['grid_bytes'] * 100:.2f}%); "
              f"read from neighbour blocks (whole halos tuples): {dg['read_bytes_per_step'] / 2**20:.2f} MiB "
              f"({dg['read_bytes_per_step'] / dg['grid_bytes'] * 100:.2f}%)")
    print(f"stencil kernels: first call (compile) {comp['first_call_s']:.2f} s, "
          f"in a new process with cache=True {comp['cached_call_s']:.2f} s")
    with open_json(args.json) as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if k != "child"}, "results": results,
                   "compile": comp}, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
