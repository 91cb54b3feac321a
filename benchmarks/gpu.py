"""GPU transfers, a GPU stencil and a GPU Cholesky against their peers, in one run.

    python benchmarks/gpu.py [--workers 2] [--sizes 1,4,16,64,256,1024] [--grid 16384]
                             [--steps 100] [--split 2] [--n 32768] [--tile 4096]
                             [--parts transfer,stencil,cholesky] [--budget 600]
                             [--quick] [--sim] [--json bench-results/gpu.json]

For one machine with one NVIDIA GPU that all worker ranks share (CuPy; an MPI
without CUDA, such as the mpich wheel: GPU values move staged through pinned
host memory):

* transfer: a GPU value from rank 1 to rank 2, 1 MiB .. 1 GiB, GB/s.  dagmpi: a
  GPU task on rank 1 makes a CuPy array and is waited for; the clock covers
  spawning a GPU task on rank 2 that takes it and returns its ``nbytes``, and
  fetching that, less the same round trip with an 8-byte array.  Peer: mpi4py +
  CuPy by hand on 2 ranks (D2H into pinned memory, Send; Recv into pinned
  memory, H2D), timed on the receiver from a barrier.  Target >= 0.9x.
* stencil: the 2-D 5-point heat step (``kernels/gpu/stencil.heat5_step``) on a
  float64 grid (16384^2, 100 steps, periodic) as a DArray on the GPU
  (``device="gpu"``, ``--split`` row blocks) stepped with ``map_overlap``; GB/s
  counts 16 bytes per cell per step.  Peers: the device's device-to-device copy
  (``xp.copyto``, read + write bytes), target >= 0.7x; the same kernel on the
  whole padded grid in one process.
* cholesky: ``da.linalg.cholesky`` of an SPD float64 matrix on the GPU (n =
  32768, tile 4096), TFLOP/s (n^3/3), the residual checked on sampled rows.
  Peer: ``cupy.linalg.cholesky`` of a whole matrix that size.  Target >= 0.7x.

``--sim``: the same code on the simulated GPU (``DAGMPI_GPU_SIM=1``, numpy for
CuPy, numba.cuda under ``NUMBA_ENABLE_CUDASIM=1``); with ``--quick`` all is
tiny: a check that the script works on a machine without a GPU.

Each system runs in its own subprocess (an ``mpiexec`` job for the MPI ones),
one after the other, in a process group killed whole at its timeout; the
timeouts come out of ``--budget`` seconds, so the script ends in time whatever
hangs.  Inputs are made and on the GPU, and the kernels run once on every rank,
before a clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, mpiexec, open_json, print_result  # noqa: E402

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
MiB = 1 << 20
ALPHA = 0.1  # the heat step's diffusion number
ROUND_TRIP_BYTES = 8
TARGETS = {"transfer": 0.9, "stencil": 0.7, "cholesky": 0.7}
#: Seconds each child may take at most (less when --budget has less left).
CAPS = {"ref": 120, "mpi4py": 90, "transfer": 120, "stencil": 120, "cholesky": 180}

# --------------------------------------------------------------------- helpers


def _sizes(args) -> list[int]:
    return [int(float(s) * MiB) for s in args.sizes.split(",") if s]


def _reps(nbytes: int) -> int:
    """Timed repetitions per transfer size (each after one untimed warm-up)."""
    return 5 if nbytes <= 64 * MiB else 3


def _guard(fn: Callable[[], dict]) -> dict:
    """``fn()``, or ``{"error": ...}`` saying why not: one failed measure keeps the others."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
        return {"error": f"{type(exc).__name__}: {exc}"[:1500]}


def device_name(b: Any) -> str:
    if b.name != "cupy":
        return f"simulated GPU ({b.name}: numpy in host memory)"
    props = b.cp.cuda.runtime.getDeviceProperties(b.device)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def spd_host(n: int, tile: int, seed: int = 0) -> np.ndarray:
    """A symmetric positive-definite float64 matrix, ``(R + R^T)/2 + n I`` made tile
    by tile (random tiles below the diagonal, their transposes above)."""
    rng = np.random.default_rng(seed)
    s = np.empty((n, n))
    edges = list(range(0, n, tile)) + [n]
    for i in range(len(edges) - 1):
        r0, r1 = edges[i], edges[i + 1]
        for j in range(i + 1):
            c0, c1 = edges[j], edges[j + 1]
            t = rng.random((r1 - r0, c1 - c0))
            if i == j:
                t = (t + t.T) / 2
                t[np.diag_indices_from(t)] += n
            else:
                s[c0:c1, r0:r1] = t.T
            s[r0:r1, c0:c1] = t
    return s


def heat_numpy(u: np.ndarray, steps: int) -> np.ndarray:
    """The periodic heat steps in numpy (the reference of a small run)."""
    for _ in range(steps):
        u = u + ALPHA * (np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1) - 4 * u)
    return u


# ------------------------------------------------ one process: the device's own limits


def copy_bandwidth(b: Any, nbytes: int) -> dict:
    """Device-to-device copy of an ``nbytes`` float64 array: bytes read + written per second."""
    xp = b.xp
    x = xp.ones(max(1, nbytes // 8))
    y = xp.empty_like(x)
    xp.copyto(y, x)
    b.synchronize()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        xp.copyto(y, x)
        b.synchronize()
        times.append(time.perf_counter() - t0)
    return {"bytes": int(x.nbytes), "s": min(times), "GBps": 2 * x.nbytes / min(times) / 1e9}


def stencil_alone(b: Any, grid: int, steps: int) -> dict:
    """The GPU heat kernel on the whole periodic grid, padded once, in one process."""
    from dagmpi.kernels.gpu import stencil as gst

    xp = b.xp
    u = b.to_device(np.random.default_rng(2).random((grid, grid)))
    p = xp.pad(u, 1, mode="wrap")
    gst.heat5_step(p, ALPHA)
    b.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        gst.heat5_step(p, ALPHA)
    b.synchronize()
    s = time.perf_counter() - t0
    return {"s": s, "GBps": 16 * grid * grid * steps / s / 1e9}


def whole_cholesky(b: Any, n: int, tile: int) -> dict:
    """``xp.linalg.cholesky`` of a whole n x n SPD matrix made on the GPU (best of 2)."""
    xp = b.xp
    r = b.to_device(xp.random.RandomState(0).random_sample((n, n)))
    s = r + r.T
    del r
    s *= 0.5
    s.reshape(-1)[:: n + 1] += n
    w = min(n, tile)
    xp.linalg.cholesky(xp.ascontiguousarray(s[:w, :w]))  # loads the solver
    b.synchronize()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        low = xp.linalg.cholesky(s)
        b.synchronize()
        times.append(time.perf_counter() - t0)
        rows = np.random.default_rng(1).choice(n, min(n, 64), replace=False)
        idx = b.to_device(rows) if b.name == "cupy" else rows
        res = float(xp.linalg.norm(low[idx] @ low.T - s[idx]) / xp.linalg.norm(s[idx]))
        del low
    return {"s": min(times), "TFLOPs": n ** 3 / 3 / min(times) / 1e12, "residual": res}


def _free(b: Any) -> None:
    if b.name == "cupy":
        b.cp.get_default_memory_pool().free_all_blocks()


def child_ref(args) -> dict:
    from dagmpi.gpu import backend

    b = backend.activate(0)
    out: dict = {"device": device_name(b), "backend": b.name}
    parts = args.parts.split(",")
    if "stencil" in parts:
        out["copy"] = _guard(lambda: copy_bandwidth(b, args.grid * args.grid * 8))
        _free(b)
        print_result(out)  # so far
        out["stencil_kernel"] = _guard(lambda: stencil_alone(b, args.grid, args.steps))
        _free(b)
        print_result(out)
    if "cholesky" in parts:
        out["cholesky"] = _guard(lambda: whole_cholesky(b, args.n, args.tile))
        _free(b)
    return out


# ------------------------------------ the hand-written peer: mpi4py + CuPy, 2 ranks


def child_mpi4py(args) -> dict:
    """Host-staged GPU -> GPU transfers between 2 ranks: D2H into pinned memory,
    Send; Recv into pinned memory, H2D (the receiver's time from a barrier)."""
    from mpi4py import MPI

    from dagmpi.gpu import backend

    comm = MPI.COMM_WORLD
    me = comm.Get_rank()
    b = backend.activate(0)
    out: dict = {"device": device_name(b), "times": {}}
    for size in _sizes(args):
        host = b.pinned(size)
        buf = b.empty(size, np.uint8)
        buf.fill(1 if me == 0 else 0)
        b.synchronize()
        times = []
        for _ in range(_reps(size) + 1):
            comm.Barrier()
            t0 = time.perf_counter()
            if me == 0:
                b.copy_to_host(host, buf)
                b.synchronize()
                comm.Send([host, MPI.BYTE], 1, 7)
            else:
                comm.Recv([host, MPI.BYTE], 0, 7)
                b.copy_to_device(buf, host)
                b.synchronize()
            times.append(time.perf_counter() - t0)
        if me == 1:
            assert int(b.to_host(buf[-1:])[0]) == 1 and int(b.to_host(buf[:1])[0]) == 1, "wrong bytes arrived"
        out["times"][str(size)] = times[1:]
        del host, buf
        if me == 1:
            print_result(out)  # so far
    comm.Barrier()
    return out if me == 1 else {}


# --------------------------------------------------------------- dagmpi: transfers


def _gpu_task(rank: int) -> Any:
    import dagmpi

    return dagmpi.Options(scope=dagmpi.scope(rank=rank, gpu=True))


def _produce(nbytes: int) -> Any:
    """A GPU task's value: ``nbytes`` ones in this rank's GPU memory."""
    from dagmpi.gpu import backend

    b = backend.get()
    x = b.empty(nbytes, np.uint8)
    x.fill(1)
    return x


def _consume(x: Any) -> int:
    """A GPU task that takes a GPU value: its size (it must have arrived on the GPU)."""
    from dagmpi.gpu import backend

    b = backend.get()
    if not b.is_device(x):
        raise TypeError(f"a GPU task got a {type(x).__module__}.{type(x).__name__}, not a device array")
    return int(x.nbytes)


def child_transfer(args) -> dict:
    import dagmpi

    ranks = [p["rank"] for p in dagmpi.processors() if p.get("gpus")]
    if len(ranks) < 2:
        return {"error": f"transfers need 2 worker ranks with a GPU; the ranks with one: {ranks}"}
    src, dst = ranks[:2]

    def once(nbytes: int) -> float:
        p = dagmpi.spawn(_produce, nbytes, options=_gpu_task(src))
        dagmpi.wait([p])
        exc = p.exception()
        if exc is not None:
            raise exc
        t0 = time.perf_counter()
        got = dagmpi.fetch(dagmpi.spawn(_consume, p, options=_gpu_task(dst)))
        t = time.perf_counter() - t0
        if got != nbytes:
            raise AssertionError(f"{got} bytes arrived, not {nbytes}")
        return t

    rt = [once(ROUND_TRIP_BYTES) for _ in range(12)][2:]
    out: dict = {"ranks": [src, dst], "round_trip": rt, "times": {}}
    for size in _sizes(args):
        out["times"][str(size)] = [once(size) for _ in range(_reps(size) + 1)][1:]
        print_result(out)  # so far
    return out


# ---------------------------------------------------- dagmpi: GPU arrays (stencil, Cholesky)


def _gpu_arrays() -> str | None:
    """Why DArrays on the GPU cannot run here, or ``None``."""
    import inspect

    import dagmpi.array as da

    if "device" not in inspect.signature(da.from_numpy).parameters:
        return "dagmpi.array has no device= (DArrays on the GPU) in this tree"
    return None


def _ready(x: Any) -> Any:
    """``x`` computed and every block task finished; a block's error is raised."""
    import dagmpi

    x.compute()
    tasks = list(x.tasks.ravel())
    dagmpi.wait(tasks)
    for t in tasks:
        exc = t.exception()
        if exc is not None:
            raise exc
    return x


def _kind(x: Any) -> str:
    return f"{type(x).__module__}.{type(x).__name__}"


def _block_kind(a: Any) -> str:
    """The type of a block as a GPU task gets it without moving it (``move=False``):
    a device array only if it is one in its owner's GPU memory."""
    import dagmpi

    opts = dagmpi.Options(scope=dagmpi.scope(gpu=True), move=False)
    return dagmpi.fetch(dagmpi.spawn(_kind, a.tasks.ravel()[0], options=opts))


def child_stencil(args) -> dict:
    why = _gpu_arrays()
    if why:
        return {"skipped": why}
    import dagmpi.array as da
    from dagmpi.kernels.gpu import stencil as gst

    g = args.grid
    rows = -(-g // args.split)
    u0 = np.random.default_rng(2).random((g, g))
    u = _ready(da.from_numpy(u0, blocks=(rows, g), device="gpu"))
    _ready(u.map_overlap(gst.heat5_step, 1, boundary="periodic", alpha=ALPHA))  # compiled on every rank
    t0 = time.perf_counter()
    for _ in range(args.steps):
        u = u.map_overlap(gst.heat5_step, 1, boundary="periodic", alpha=ALPHA)
    _ready(u)
    s = time.perf_counter() - t0
    out: dict = {"s": s, "GBps": 16 * g * g * args.steps / s / 1e9, "blocks": [list(c) for c in u.chunks],
                 "block_type": _block_kind(u)}
    got = u.to_numpy()
    out["sum_rel_change"] = float(abs(got.sum() - u0.sum()) / abs(u0.sum()))  # heat is conserved
    if g <= 1024:
        out["max_err"] = float(np.max(np.abs(got - heat_numpy(u0, args.steps))))
    return out


def _tile_residual(low: Any, s: np.ndarray) -> float:
    """Relative residual of ``S = L L^T`` on 64 sampled rows of the last block row,
    in two tiles: the diagonal one and the first one (``low``: the factor's DArray)."""
    import dagmpi

    edges = np.cumsum([0, *low.chunks[0]])
    i = len(edges) - 2  # the last block row
    lrow = np.concatenate(dagmpi.fetch(list(low.tasks[i, :i + 1])), axis=1)  # (Ti, n)
    pick = np.random.default_rng(1).choice(lrow.shape[0], min(lrow.shape[0], 64), replace=False)
    ls, want = lrow[pick], s[edges[i] + pick]
    got = np.hstack([ls[:, : edges[1]] @ dagmpi.fetch(low.tasks[0, 0]).T, ls @ lrow.T])  # blocks 0, i
    want = np.hstack([want[:, : edges[1]], want[:, edges[i]:]])
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def child_cholesky(args) -> dict:
    why = _gpu_arrays()
    if why:
        return {"skipped": why}
    import dagmpi.array as da

    n, T = args.n, args.tile
    tw = max(16, min(T, 256))  # warm-up: a 4 x 4 tile grid, every rank loads its solvers
    sw = spd_host(4 * tw, tw, seed=3)
    lw = _ready(da.linalg.cholesky(_ready(da.from_numpy(sw, blocks=tw, device="gpu")))).to_numpy()
    warm_err = float(np.max(np.abs(lw - np.linalg.cholesky(sw))))
    s = spd_host(n, T)
    a = _ready(da.from_numpy(s, blocks=T, device="gpu"))
    t0 = time.perf_counter()
    low = _ready(da.linalg.cholesky(a))
    t = time.perf_counter() - t0
    return {"s": t, "TFLOPs": n ** 3 / 3 / t / 1e12, "residual": _tile_residual(low, s),
            "warmup_max_err": warm_err, "block_type": _block_kind(low)}


# ------------------------------------------------------------------- the parent


def _env(args) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    if args.sim:
        env.update(DAGMPI_GPU_SIM="1", NUMBA_ENABLE_CUDASIM="1")
    else:
        env.pop("DAGMPI_GPU_SIM", None)
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


def _results_in(stdout: str) -> dict:
    """The child's ``RESULT`` lines merged, later keys over earlier ones."""
    res: dict = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            res.update(json.loads(line[7:]))
    return res


def run_group(cmd: list[str], timeout: float, env: dict) -> dict:
    """``_results.run_child``, but the child leads its own process group and the
    whole group is killed at the timeout (ranks left behind would hold the GPU);
    children print a ``RESULT`` line after each measure, so what a failed one
    measured is kept, with ``error`` added."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True, cwd=ROOT)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return {**_results_in(out), "error": f"timed out after {timeout:.0f} s: {err.strip()[-800:]}"}
    res = _results_in(out)
    if p.returncode == 0 and res:
        return res
    err = err.strip()
    res["error"] = (f"exit {p.returncode}: {err[:600]} ... {err[-900:]}" if len(err) > 1600
                    else f"exit {p.returncode}: {err}")
    return res


def _child_args(args) -> list[str]:
    return ["--workers", str(args.workers), "--sizes", args.sizes, "--grid", str(args.grid),
            "--steps", str(args.steps), "--split", str(args.split), "--n", str(args.n), "--tile", str(args.tile),
            "--parts", args.parts] + (["--sim"] if args.sim else [])


def run_children(args) -> dict:
    deadline = time.monotonic() + args.budget
    env = _env(args)
    common = _child_args(args)
    parts = args.parts.split(",")
    plan = []
    if "transfer" in parts:
        plan += [("mpi4py", [mpiexec(), "-n", "2", sys.executable, HERE, "--child", "mpi4py"]),
                 ("transfer", None)]
    if "stencil" in parts or "cholesky" in parts:
        plan.append(("ref", [sys.executable, HERE, "--child", "ref"]))
    plan += [(p, None) for p in ("stencil", "cholesky") if p in parts]
    results: dict = {}
    for name, cmd in plan:
        if cmd is None:
            cmd = [mpiexec(), "-n", str(args.workers + 1), sys.executable, "-m", "dagmpi", HERE, "--child", name]
        left = deadline - time.monotonic()
        if left < 15:
            results[name] = {"skipped": f"the time budget (--budget {args.budget:.0f} s) is spent"}
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        results[name] = run_group(cmd + common, min(CAPS[name], left), env)
        results[name]["wall_s"] = round(time.monotonic() - t0, 1)
    return results


def _num(x: Any) -> str:
    if not isinstance(x, (int, float)):
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def summarize(args, results: dict) -> list[dict]:
    """The table's rows: measure, dagmpi, peer, ratio, target (and why a cell is empty)."""
    rows: list[dict] = []

    def why(*rs: dict) -> str:
        """The first child's reason for an empty cell: its last lines (a traceback's end)."""
        for r in rs:
            for k in ("skipped", "error"):
                if k in r:
                    tail = [ln for ln in str(r[k]).strip().splitlines() if ln.strip()][-4:]
                    return f"{k}: " + " | ".join(ln.strip() for ln in tail)[-500:]
        return ""

    def add(measure: str, mine: Any, peer: Any, target: Any, note: str = "") -> None:
        ok = isinstance(mine, float) and isinstance(peer, float) and peer > 0
        rows.append({"measure": measure, "dagmpi": mine, "peer": peer, "ratio": mine / peer if ok else None,
                     "target": target, "note": note})

    if "transfer" in args.parts:
        dg, mp = results.get("transfer", {}), results.get("mpi4py", {})
        rt = min(dg["round_trip"]) if "round_trip" in dg else None
        for size in _sizes(args):
            key = str(size)
            mine = peer = None
            note = ""
            if rt is not None and key in dg.get("times", {}):
                if min(dg["times"][key]) > rt:
                    mine = size / (min(dg["times"][key]) - rt) / 1e9
                else:
                    note = "dagmpi: no slower than the empty round trip (too small to measure this way)"
            if key in mp.get("times", {}):
                peer = size / min(mp["times"][key]) / 1e9
            label = f"{size / MiB:g} MiB" if size >= MiB else f"{size // 1024} KiB"
            add(f"transfer {label} GB/s", mine, peer, TARGETS["transfer"], note or why(dg, mp))
    ref = results.get("ref", {})
    if "stencil" in args.parts:
        st = results.get("stencil", {})
        cp, alone = ref.get("copy", {}), ref.get("stencil_kernel", {})
        mine = st.get("GBps")
        label = f"stencil {args.grid}^2 x{args.steps} GB/s"
        add(f"{label} vs D2D copy", mine, cp.get("GBps"), TARGETS["stencil"], why(st, ref, cp))
        add(f"{label} vs kernel alone", mine, alone.get("GBps"), None, why(st, ref, alone))
    if "cholesky" in args.parts:
        ch, whole = results.get("cholesky", {}), ref.get("cholesky", {})
        add(f"cholesky n={args.n} tile {args.tile} TFLOP/s", ch.get("TFLOPs"), whole.get("TFLOPs"),
            TARGETS["cholesky"], why(ch, ref, whole))
    return rows


def print_table(args, results: dict, rows: list[dict]) -> None:
    ref = results.get("ref", {})
    dev = ref.get("device") or results.get("mpi4py", {}).get("device") or "?"
    print(f"\nGPU benchmarks on {dev}: dagmpi with {args.workers} worker ranks sharing it"
          f"{' (simulated GPU, --quick: not a measurement)' if args.sim else ''}")
    print(f"{'measure':<44}{'dagmpi':>11}{'peer':>11}{'ratio':>11}{'target':>8}")
    for r in rows:
        ratio = _num(r["ratio"]) + "x" if r["ratio"] is not None else "-"
        target = f">={r['target']}x" if r["target"] else ""
        line = f"{r['measure']:<44}{_num(r['dagmpi']):>11}{_num(r['peer']):>11}{ratio:>11}{target:>8}"
        if r["ratio"] is not None and r["target"]:
            line += "  ok" if r["ratio"] >= r["target"] else "  below target"
        print(line)
        if r["note"]:
            print(f"    {r['note']}")
    print("    peers: transfer: mpi4py + CuPy, 2 ranks, D2H/Send/Recv/H2D through pinned memory; stencil: the "
          "device's D2D copy, the same kernel on the whole grid in one process; cholesky: "
          f"{'numpy' if args.sim else 'cupy'}.linalg.cholesky of the whole matrix")
    dg = results.get("transfer", {})
    if "round_trip" in dg:
        print(f"    transfer: dagmpi's empty round trip (an {ROUND_TRIP_BYTES}-byte GPU value, spawn + fetch) "
              f"{min(dg['round_trip']) * 1e6:.0f} us, subtracted; ranks {dg['ranks']}")
    st = results.get("stencil", {})
    if "s" in st:
        extra = f", max error vs numpy {st['max_err']:.1e}" if "max_err" in st else ""
        print(f"    stencil: blocks {st['blocks']}, {st['block_type']} blocks, heat sum changed by "
              f"{st['sum_rel_change']:.1e} (relative){extra}")
    ch, whole = results.get("cholesky", {}), ref.get("cholesky", {})
    if "s" in ch:
        print(f"    cholesky: {ch['s']:.2f} s, residual |S - L L^T|/|S| on sampled rows {ch['residual']:.1e} "
              f"(warm-up max error {ch['warmup_max_err']:.1e}), {ch['block_type']} tiles")
    if "s" in whole:
        print(f"    whole-matrix cholesky: {whole['s']:.2f} s, residual on sampled rows {whole['residual']:.1e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2, help="worker ranks of the dagmpi runs (all share the GPU)")
    p.add_argument("--sizes", default=None, help="transfer sizes in MiB, comma-separated")
    p.add_argument("--grid", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--split", type=int, default=2, help="row blocks of the stencil's grid")
    p.add_argument("--n", type=int, default=None, help="Cholesky matrix size")
    p.add_argument("--tile", type=int, default=None, help="Cholesky tile size")
    p.add_argument("--parts", default="transfer,stencil,cholesky")
    p.add_argument("--budget", type=float, default=600, help="seconds for all children together")
    p.add_argument("--quick", action="store_true", help="tiny sizes: does the script work?")
    p.add_argument("--sim", action="store_true", help="the simulated GPU (DAGMPI_GPU_SIM=1, numba's CUDA simulator)")
    p.add_argument("--json", default=default_json("gpu"))
    p.add_argument("--child", default=None)
    args = p.parse_args()
    args.sim = args.sim or os.environ.get("DAGMPI_GPU_SIM", "").strip() not in ("", "0")
    # sizes: the real run; --quick on a GPU; --quick --sim (numba's CUDA simulator is slow)
    quick = {True: ("0.0625,1", 32, 3, 128, 32), False: ("1,16,64", 2048, 20, 4096, 1024)}[args.sim]
    full = ("1,4,16,64,256,1024", 16384, 100, 32768, 4096)
    defaults = quick if args.quick else full
    for name, value in zip(("sizes", "grid", "steps", "n", "tile"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.child:
        fn = {"ref": child_ref, "mpi4py": child_mpi4py, "transfer": child_transfer, "stencil": child_stencil,
              "cholesky": child_cholesky}[args.child]
        print_result(_guard(lambda: fn(args)) or {})
        return
    results = run_children(args)
    rows = summarize(args, results)
    print_table(args, results, rows)
    with open_json(args.json) as f:
        json.dump({"args": {k: v for k, v in vars(args).items() if k != "child"}, "results": results,
                   "summary": rows}, f, indent=1)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
