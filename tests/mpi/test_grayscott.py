"""The Gray-Scott application (examples/grayscott.py) end to end: its fields against a
plain numpy implementation of the same equations, its outputs (statistics, PNG frames,
HDF5, trace), and a SIGTERM mid-run then a rerun that continues from the checkpoint to
a bit-identical final state.  Every run is a subprocess with a hard timeout."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, find_mpiexec, run_dagmpi, wait_or_kill

pytestmark = pytest.mark.mpi
APP = ROOT / "examples" / "grayscott.py"


def _app():
    spec = importlib.util.spec_from_file_location("grayscott_app", APP)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def numpy_reference(args: list[str]) -> np.ndarray:
    """The same run in plain numpy (the app's own initial state and parameters)."""
    from dagmpi.kernels.cpu.grayscott import step_numpy

    app = _app()
    ns = app.parse_args(args)
    shape = (2,) + (ns.size,) * ns.dims
    coords = np.indices(shape, dtype=np.float64)
    state = app.initial(*coords, squares=app.seed_squares(ns))
    for _ in range(ns.steps):
        state = step_numpy(state, ns.Du, ns.Dv, ns.F, ns.k, ns.dt)
    return state


def digest_of(state: np.ndarray, side: int) -> str:
    """The app's RESULT: SHA-256 over the SHA-256 of each block, in block order."""
    h = hashlib.sha256()
    n = state.shape[1] // side
    for i in range(n):
        for j in range(n):
            block = np.ascontiguousarray(state[:, i * side:(i + 1) * side, j * side:(j + 1) * side])
            h.update(hashlib.sha256(block.tobytes()).digest())
    return h.hexdigest()


def result_of(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT sha256=")]
    assert lines, out
    return lines[-1].split("=", 1)[1]


@pytest.mark.parametrize("n", [None, 2, 4], ids=["inproc", "1-worker", "3-workers"])
def test_grayscott_matches_numpy_and_writes_its_outputs(tmp_path, n):
    out = tmp_path / "out"
    args = ["--size", "64", "--steps", "200", "--analysis-every", "100", "--output-every", "100",
            "--checkpoint-every", "50", "--out", str(out), "--save-final", str(tmp_path / "final.npy")]
    r = run_dagmpi(APP, n=n, timeout=240, args=args)
    assert r.returncode == 0, r
    final = np.load(tmp_path / "final.npy")
    ref = numpy_reference(args)
    assert final.shape == (2, 64, 64)
    np.testing.assert_allclose(final, ref, rtol=0, atol=1e-12)
    assert np.abs(final[1]).max() > 0.05  # the pattern did not die out: the comparison means something
    side = 64 if n in (None, 2) else 32  # the app's default layout: ceil(sqrt(workers)) blocks per axis
    assert result_of(r.stdout) == digest_of(final, side)
    # statistics: two analysis steps, means equal numpy's
    stats = json.loads((out / "stats.json").read_text())
    assert [s["step"] for s in stats] == [100, 200]
    assert stats[-1]["mean_u"] == pytest.approx(ref[0].mean(), abs=1e-12)
    assert stats[-1]["max_v"] == pytest.approx(ref[1].max(), abs=1e-12)
    pdf = np.array(stats[-1]["pdf_u"])
    assert pdf.sum() * (1 / 40) == pytest.approx(1.0)
    # frames written by workers, decodable PNGs
    import matplotlib.image as mpimg

    frames = sorted(os.listdir(out / "frames"))
    assert frames == ["V_000100.png", "V_000200.png"]
    img = mpimg.imread(out / "frames" / frames[-1])
    assert img.ndim == 3 and img.shape[0] > 100
    # HDF5 output read back with plain h5py
    import h5py

    with h5py.File(out / "grayscott.h5", "r") as f:
        np.testing.assert_array_equal(f["step000200"][...], final)
    # the trace: one complete event per task run, summary printed
    trace = json.loads((out / "grayscott.trace.json").read_text())
    steps = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e["name"] == "step"]
    assert len(steps) == 200 * (64 // side) ** 2  # one run per block and step
    assert len({e["args"]["task_id"] for e in steps}) == len(steps)
    from dagmpi.trace import chrome, summary

    summed = summary.summarize(chrome.load(str(out / "grayscott.trace.json")))
    assert summed["totals"]["tasks"] >= len(steps)  # (every step of a loop counted)
    if n == 4:  # (halos pushed between the ranks of a loop: counted, with their bytes)
        assert summed["transfers"]["count"] > 0 and summed["transfers"]["bytes"] > 0, summed["transfers"]
    assert "where the time went" in r.stdout and "Mcell/s" in r.stdout


def test_grayscott_3d_matches_numpy(tmp_path):
    args = ["--dims", "3", "--size", "16", "--steps", "30", "--analysis-every", "0", "--output-every", "0",
            "--no-checkpoint", "--no-trace", "--out", str(tmp_path / "o"), "--save-final", str(tmp_path / "f.npy"),
            "--blocks", "8"]
    r = run_dagmpi(APP, n=3, timeout=240, args=args)
    assert r.returncode == 0, r
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), numpy_reference(args), rtol=0, atol=1e-12)


def test_grayscott_preempted_then_resumed_is_bit_identical(tmp_path):
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    # (long enough that the signal comes while it runs: ~800 steps/s here)
    base = ["--size", "96", "--steps", "3000", "--analysis-every", "0", "--output-every", "0",
            "--checkpoint-every", "40", "--no-trace"]
    env = {"DAGMPI_CHECKPOINT_INTERVAL": "0.2"}
    whole = run_dagmpi(APP, n=3, timeout=240, args=base + ["--out", str(tmp_path / "whole")], env=env)
    assert whole.returncode == 0, whole
    expected = result_of(whole.stdout)

    out = tmp_path / "cut"
    ckpt = out / "checkpoint"
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    traced = [a for a in base if a != "--no-trace"]  # the cut run leaves its trace too
    cmd = [mpiexec, "-n", "3", sys.executable, "-m", "dagmpi", str(APP), *traced, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
                            start_new_session=True, cwd=str(ROOT))
    t0 = time.monotonic()
    while not (ckpt.is_dir() and any(p.endswith(".h5") for p in os.listdir(ckpt))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 120, "no checkpoint file appeared"
        time.sleep(0.02)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGTERM)  # as Slurm's preemption does (mpiexec forwards it)
    cut = wait_or_kill(proc, 120)
    assert cut.returncode == 75, cut
    assert "preempted by SIGTERM" in cut.stderr, cut
    trace = json.loads((out / "grayscott.trace.json").read_text())
    assert trace["otherData"]["meta"]["preempted"] is True
    assert any(e["ph"] == "i" and e["cat"] == "preempted" for e in trace["traceEvents"])
    assert any(e["ph"] == "i" and e["cat"] == "checkpoint-write" for e in trace["traceEvents"])
    assert sum(e["ph"] == "X" and e["name"] == "step" for e in trace["traceEvents"]) > 0

    again = run_dagmpi(APP, n=3, timeout=240, args=base + ["--out", str(out)], env=env)
    assert again.returncode == 0, again
    assert "resuming from the checkpoint at step" in again.stdout, again
    step = int(again.stdout.split("resuming from the checkpoint at step")[1].split()[0].rstrip(";"))
    assert 0 < step < 3000
    assert result_of(again.stdout) == expected
    # a third run finds the final step saved: nothing to compute, the same answer
    third = run_dagmpi(APP, n=3, timeout=240, args=base + ["--out", str(out)], env=env)
    assert third.returncode == 0 and "nothing left to run" in third.stdout, third
    assert result_of(third.stdout) == expected


def test_grayscott_on_the_simulated_gpu_matches_numpy(tmp_path):
    """--gpu: the state on the GPU ranks (DAGMPI_GPU_SIM) and the numba.cuda kernel
    (under Numba's CUDA simulator), with checkpoints, statistics and HDF5 output."""
    out = tmp_path / "out"
    args = ["--gpu", "--size", "24", "--steps", "6", "--analysis-every", "3", "--output-every", "3",
            "--checkpoint-every", "3", "--out", str(out), "--save-final", str(tmp_path / "final.npy")]
    r = run_dagmpi(APP, n=3, timeout=240, args=args, env={"DAGMPI_GPU_SIM": "1", "NUMBA_ENABLE_CUDASIM": "1"})
    assert r.returncode == 0, r
    final = np.load(tmp_path / "final.npy")
    np.testing.assert_allclose(final, numpy_reference(args[1:]), rtol=0, atol=1e-12)
    assert result_of(r.stdout) == digest_of(final, 12)
    assert [s["step"] for s in json.loads((out / "stats.json").read_text())] == [3, 6]
