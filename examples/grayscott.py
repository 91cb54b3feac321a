"""Gray-Scott reaction-diffusion on dagmpi: the flagship application.

    mpiexec -n 5 python -m dagmpi examples/grayscott.py --size 512 --steps 2000
    python examples/grayscott.py --size 128 --steps 200          # in-process, no MPI

Two chemical fields U and V on a periodic 2-D grid (3-D with ``--dims 3``)
react and diffuse (Pearson's model, the ADIOS2 tutorial mini-app)::

    dU/dt = Du lap(U) - U V^2 + F (1 - U)        dV/dt = Dv lap(V) + U V^2 - (F + k) V

What each dagmpi feature does here:

- **Distributed arrays**: the state is one DArray of shape ``(2, n, n)``: U and
  V are its two components (``state[0]``, ``state[1]``), each block holding
  both fields of one tile of the grid, so one halo exchange per step serves
  both.  Blocks live on the worker ranks; the driver never holds the field.
- **Stencils**: the steps between two outputs (analysis, HDF5, checkpoint) are one
  ``state.map_overlap_loop(grayscott.step, k, depth=(0, 1, 1), boundary="periodic")``
  with the Numba kernel of ``dagmpi.kernels.cpu``: a loop run by the workers, each
  block staying on its rank and receiving only its neighbours' halo slices, pushed
  straight from their ranks, with no step through rank 0 (``--per-step``: one
  ``map_overlap`` per step instead, two launches each; so it is under ULFM, where each
  step's launches are kept for their lineage).
- **Streaming**: the driver spawns loops ahead (at most ``--lag`` in flight) and
  older blocks are freed as soon as nothing needs them.
- **Analysis beside the simulation**: every ``--analysis-every`` steps, tasks
  compute mean/min/max of U and V and a histogram of U next to the data, and a
  worker writes a PNG frame of V; the time loop does not wait for them.
- **Output**: every ``--output-every`` steps the state goes to
  ``OUT/grayscott.h5`` (``da.to_hdf5``; dataset ``stepNNNNNN``, ``[0]`` U, ``[1]`` V).
- **Checkpoints and preemption**: every ``--checkpoint-every`` steps the state is
  saved (``da.checkpoint``).  SIGTERM/SIGUSR1 (Slurm's preemption, ``--signal``)
  stops dispatching, makes the saves durable and exits with status 75; running the
  same command again restores the newest complete save and continues.  The final
  state is bit-for-bit the one of an uninterrupted run (printed as a SHA-256).
- **Traces**: ``OUT/grayscott.trace.json`` (open it in ui.perfetto.dev), summarised
  at the end ("where the time went"); ``python -m dagmpi trace gantt`` draws it.

Prints a summary and ``RESULT sha256=<digest of the final state>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

import dagmpi
import dagmpi.array as da
from dagmpi.kernels.cpu import grayscott

#: Histogram bins of U (its values stay within [0, 1]).
BINS = np.linspace(0.0, 1.0, 41)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except for flags and options whose help says it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="grayscott.py",
        description="Gray-Scott reaction-diffusion (two fields U, V on a periodic grid) on dagmpi distributed "
                    "arrays: one map_overlap halo exchange and Numba kernel per step, analysis tasks and PNG frames "
                    "beside the loop, HDF5 output, checkpoints (SIGTERM: save, exit 75; rerun: continue). "
                    "Writes OUT/: frames/, stats.json, grayscott.h5, grayscott.trace.json, checkpoint/. "
                    "Run: mpiexec -n 5 python -m dagmpi examples/grayscott.py",
        formatter_class=_Help)
    p.add_argument("--size", type=int, default=512, help="grid points per side")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2, help="2-D or 3-D grid")
    p.add_argument("--steps", type=int, default=2000, help="time steps")
    p.add_argument("--blocks", type=int, default=0,
                   help="block side (0: split each axis into ceil(sqrt(workers)) blocks in 2-D, "
                        "ceil(cbrt(workers)) in 3-D)")
    p.add_argument("--Du", type=float, default=0.16, help="diffusion rate of U")
    p.add_argument("--Dv", type=float, default=0.08, help="diffusion rate of V")
    p.add_argument("--F", type=float, default=0.037, help="feed rate")
    p.add_argument("--k", type=float, default=0.060, help="kill rate")
    p.add_argument("--dt", type=float, default=1.0, help="time step")
    p.add_argument("--seed", type=int, default=7, help="where the initial V squares are")
    p.add_argument("--analysis-every", type=int, default=200, help="statistics and a PNG frame every N steps (0: never)")
    p.add_argument("--output-every", type=int, default=1000, help="the fields to HDF5 every N steps (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="save the state every N steps (0: never)")
    p.add_argument("--lag", type=int, default=4,
                   help="loops (steps with --per-step) the driver spawns ahead of the oldest unfinished one")
    p.add_argument("--per-step", action="store_true",
                   help="one map_overlap per step (two launches each), not one map_overlap_loop per stretch "
                        "of steps between outputs")
    p.add_argument("--out", default="grayscott-out", help="folder for frames, HDF5 output, trace and checkpoint")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: $DAGMPI_CHECKPOINT, else OUT/checkpoint)")
    p.add_argument("--no-checkpoint", action="store_true", help="run without checkpoints (not resumable)")
    p.add_argument("--fresh", action="store_true", help="start from step 0 even if the checkpoint holds saved steps")
    p.add_argument("--trace", default=None, help="Chrome trace file (default: $DAGMPI_TRACE, else OUT/grayscott.trace.json)")
    p.add_argument("--no-trace", action="store_true", help="do not record a trace")
    p.add_argument("--no-frames", action="store_true", help="skip the PNG frames")
    p.add_argument("--save-final", default=None, help="write the final state to this .npy file")
    p.add_argument("--gpu", action="store_true",
                   help="the state on the GPU ranks (CuPy blocks) and the numba.cuda kernel of dagmpi.kernels.gpu "
                        "(DAGMPI_GPU_SIM=1 NUMBA_ENABLE_CUDASIM=1: a simulated GPU, slow, for tests)")
    ns = p.parse_args(argv)
    if ns.size < 4:
        p.error(f"--size must be at least 4, not {ns.size}")
    if ns.steps < 0:
        p.error(f"--steps must be >= 0, not {ns.steps}")
    if ns.lag < 1:
        p.error(f"--lag must be >= 1, not {ns.lag}")
    for name in ("analysis_every", "output_every", "checkpoint_every"):
        if getattr(ns, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    return ns


# ------------------------------------------------------------ tasks (run on workers)

def initial(c: np.ndarray, *coords: np.ndarray, squares: tuple = ()) -> np.ndarray:
    """The initial state at global coordinates: U = 1, V = 0, except inside the seed
    squares (U = 0.5, V = 0.25)."""
    inside = np.zeros(c.shape, dtype=bool)
    for centre, half in squares:
        box = np.ones(c.shape, dtype=bool)
        for x, m in zip(coords, centre):
            box &= np.abs(x - m) <= half
        inside |= box
    return np.where(c == 0, np.where(inside, 0.5, 1.0), np.where(inside, 0.25, 0.0))


def block_stats(block: np.ndarray) -> dict:
    """Task: sums, extremes and the histogram of U of one block (both fields)."""
    u, v = block[0], block[1]
    return {"n": u.size, "sum_u": float(u.sum()), "sum_v": float(v.sum()),
            "min_u": float(u.min()), "max_u": float(u.max()), "min_v": float(v.min()), "max_v": float(v.max()),
            "hist_u": np.histogram(np.clip(u, 0.0, 1.0), bins=BINS)[0]}


def combine_stats(step: int, *parts: dict) -> dict:
    """Task: the whole field's statistics from the blocks'."""
    n = sum(p["n"] for p in parts)
    hist = sum(p["hist_u"] for p in parts)
    return {"step": step, "mean_u": sum(p["sum_u"] for p in parts) / n, "mean_v": sum(p["sum_v"] for p in parts) / n,
            "min_u": min(p["min_u"] for p in parts), "max_u": max(p["max_u"] for p in parts),
            "min_v": min(p["min_v"] for p in parts), "max_v": max(p["max_v"] for p in parts),
            "pdf_u": (hist / (n * (BINS[1] - BINS[0]))).tolist()}


def thumbnail(block: np.ndarray, stride: int) -> np.ndarray:
    """Task: V of a block, every ``stride``-th point (the middle slice in 3-D)."""
    v = block[1]
    if v.ndim == 3:
        v = v[v.shape[0] // 2]
    return np.ascontiguousarray(v[::stride, ::stride])


def write_frame(path: str, step: int, layout: tuple, *pieces: np.ndarray) -> str:
    """Task: assemble the thumbnails (a grid of ``layout`` blocks) and write a PNG of V."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [np.concatenate(pieces[r * layout[1]:(r + 1) * layout[1]], axis=1) for r in range(layout[0])]
    image = np.concatenate(rows, axis=0)
    fig = Figure(figsize=(5, 5.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.88))
    ax.imshow(image, cmap="viridis", vmin=0.0, vmax=max(0.4, float(image.max())), interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(f"Gray-Scott V, step {step}", fontsize=11)
    fig.savefig(path)
    return path


def block_digest(block: np.ndarray) -> bytes:
    """Task: the SHA-256 of a block's bytes."""
    return hashlib.sha256(np.ascontiguousarray(block).tobytes()).digest()


def combine_digests(*digests: bytes) -> str:
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return h.hexdigest()


# ------------------------------------------------------------ the driver

def seed_squares(ns: argparse.Namespace) -> tuple:
    """Where V starts: a centre square and a few seeded ones (centre, half width)."""
    n, d = ns.size, ns.dims
    rng = np.random.default_rng(ns.seed)
    half = max(1, n // 20)
    squares = [((n // 2,) * d, half)]
    for _ in range(4):
        squares.append((tuple(int(x) for x in rng.integers(half, n - half, size=d)), max(1, half // 2)))
    return tuple(squares)


def layout(ns: argparse.Namespace, nworkers: int) -> int:
    """The block side: each axis split into about the d-th root of the workers."""
    if ns.blocks:
        return min(ns.blocks, ns.size)
    per_axis = max(1, int(np.ceil(nworkers ** (1.0 / ns.dims) - 1e-9)))
    return -(-ns.size // per_axis)


def run_tag(ns: argparse.Namespace, side: int) -> str:
    """Checkpoint names depend on everything that changes the numbers."""
    params = (ns.size, ns.dims, side, ns.Du, ns.Dv, ns.F, ns.k, ns.dt, ns.seed)
    return "grayscott-" + hashlib.sha256(repr(params).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    os.makedirs(ns.out, exist_ok=True)
    ckpt = "" if ns.no_checkpoint else (ns.checkpoint or os.environ.get("DAGMPI_CHECKPOINT")
                                        or os.path.join(ns.out, "checkpoint"))
    trace = "" if ns.no_trace else (ns.trace or os.environ.get("DAGMPI_TRACE")
                                    or os.path.join(ns.out, "grayscott.trace.json"))
    dagmpi.init(checkpoint=ckpt, checkpoint_policy="marked")
    t_start = time.time()
    nworkers = len([p for p in dagmpi.processors() if p["gpus"]] if ns.gpu else dagmpi.workers())
    device = "gpu" if ns.gpu else "cpu"
    if ns.gpu:
        from dagmpi.kernels.gpu import grayscott as kernel
    else:
        kernel = grayscott
    side = layout(ns, nworkers)
    shape = (2,) + (ns.size,) * ns.dims
    blocks = (2,) + (side,) * ns.dims
    depth = (0,) + (1,) * ns.dims
    tag = run_tag(ns, side)
    kw = dict(du=ns.Du, dv=ns.Dv, f=ns.F, k=ns.k, dt=ns.dt)

    # -- start: the newest complete checkpoint, else the initial state
    start = 0
    if ckpt and ns.checkpoint_every and not ns.fresh:
        start = next((s for s in range(ns.steps - ns.steps % ns.checkpoint_every, 0, -ns.checkpoint_every)
                      if da.checkpointed(f"{tag}/step{s}", shape, blocks, np.float64)), 0)
    if trace and start < ns.steps:  # (a run with nothing left to do keeps the last real run's trace)
        dagmpi.init(trace=trace)
    if start:
        state = da.restore(f"{tag}/step{start}", shape, blocks, np.float64)
        if ns.gpu:
            state = state.to_device("gpu")
    else:
        state = da.fromfunction(initial, shape, blocks=blocks, dtype=np.float64, device=device,
                                squares=seed_squares(ns))
    print(f"Gray-Scott {'x'.join(map(str, shape[1:]))} grid, {ns.steps} steps, blocks of {side} "
          f"({np.prod(state.nblocks[1:])} blocks on {nworkers} worker rank{'s' if nworkers != 1 else ''})"
          + (f"; resuming from the checkpoint at step {start}" if start else ""), flush=True)
    if start == ns.steps and start:
        print(f"the checkpoint ({ckpt}) already holds the final step: nothing left to run "
              f"(pass --fresh, or delete that folder, to compute again)", flush=True)

    # -- the time loop
    frames = os.path.join(ns.out, "frames")
    if ns.analysis_every and not ns.no_frames:
        os.makedirs(frames, exist_ok=True)
    stride = max(1, ns.size // 256)
    stats, frame_tasks, inflight = [], [], []
    t_loop = time.time()
    bar = dagmpi.progress(total=ns.steps - start, desc="steps", unit="step")
    step = start
    while step < ns.steps:
        # the steps up to the next output (analysis, HDF5, checkpoint) or the end: one loop
        stop = step + 1 if ns.per_step else ns.steps
        for every in (ns.checkpoint_every if ckpt else 0, ns.analysis_every, ns.output_every):
            if every:
                stop = min(stop, (step // every + 1) * every)
        state = state.map_overlap_loop(kernel.step, stop - step, depth=depth, boundary="periodic", **kw)
        ran, step = stop - step, stop
        if ns.checkpoint_every and ckpt and step % ns.checkpoint_every == 0:
            state = da.checkpoint(state, f"{tag}/step{step}")
        if ns.analysis_every and step % ns.analysis_every == 0:
            bl = list(state.tasks.flat)
            parts = [dagmpi.spawn(block_stats, b, options=dagmpi.Options(name="stats", scope=dagmpi.scope(near=b)))
                     for b in bl]
            stats.append(dagmpi.spawn(combine_stats, step, *parts, options=dagmpi.Options(name="combine_stats")))
            if not ns.no_frames and ns.dims in (2, 3):
                thumbs = [dagmpi.spawn(thumbnail, b, stride, options=dagmpi.Options(
                    name="thumbnail", scope=dagmpi.scope(near=b))) for b in bl]
                grid = state.nblocks[1:3]
                frame_tasks.append(dagmpi.spawn(write_frame, os.path.abspath(os.path.join(frames, f"V_{step:06d}.png")),
                                                step, grid, *thumbs, options=dagmpi.Options(name="write_frame")))
        if ns.output_every and step % ns.output_every == 0:
            da.to_hdf5(os.path.join(ns.out, "grayscott.h5"), f"step{step:06d}", state, overwrite=True)
        inflight.append((ran, list(state.tasks.flat)))
        if len(inflight) > ns.lag:  # keep at most ``lag`` loops (or steps) ahead of the finished ones
            ran, done = inflight.pop(0)
            dagmpi.wait(done)
            bar.update(ran)
    for ran, done in inflight:
        dagmpi.wait(done)
        bar.update(ran)
    bar.close()
    t_sim = time.time() - t_loop

    # -- results
    digest = dagmpi.fetch(dagmpi.spawn(combine_digests, *[
        dagmpi.spawn(block_digest, b, options=dagmpi.Options(name="digest", scope=dagmpi.scope(near=b)))
        for b in state.tasks.flat]))
    if ns.save_final:
        np.save(ns.save_final, state.to_numpy())
    series = dagmpi.fetch(stats) if stats else []
    written = dagmpi.fetch(frame_tasks) if frame_tasks else []
    if series:
        with open(os.path.join(ns.out, "stats.json"), "w") as fh:
            json.dump(series, fh)
    wall = time.time() - t_start
    run_steps = ns.steps - start
    cells = ns.size ** ns.dims
    dagmpi.shutdown()  # waits for every task, writes the trace
    print(f"done: {run_steps} steps in {t_sim:.2f} s ({run_steps / t_sim if t_sim else 0:.1f} steps/s, "
          f"{cells * run_steps / t_sim / 1e6 if t_sim else 0:.1f} Mcell/s); wall time {wall:.2f} s")
    if series:
        last = series[-1]
        print(f"step {last['step']}: U mean {last['mean_u']:.4f} [{last['min_u']:.3f}, {last['max_u']:.3f}], "
              f"V mean {last['mean_v']:.4f} [{last['min_v']:.3f}, {last['max_v']:.3f}]; "
              f"statistics of {len(series)} analysis steps in {os.path.join(ns.out, 'stats.json')}")
    if written:
        print(f"{len(written)} frames of V in {frames}/ (last: {os.path.basename(written[-1])})")
    if ns.output_every and ns.steps >= ns.output_every:
        print(f"fields every {ns.output_every} steps in {os.path.join(ns.out, 'grayscott.h5')}")
    if trace and run_steps:
        _where_the_time_went(trace)
    print(f"RESULT sha256={digest}", flush=True)
    return 0


def _where_the_time_went(path: str) -> None:
    """The trace's summary: time per kind of task, utilisation, the critical path."""
    from dagmpi.trace import chrome, summary

    s = summary.summarize(chrome.load(path))
    print(f"where the time went (trace: {path}; open it in ui.perfetto.dev):")
    print(summary.format_summary(s))


if __name__ == "__main__":
    sys.exit(main())
