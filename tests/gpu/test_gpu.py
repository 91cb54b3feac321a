"""Real-GPU tests: CuPy values between GPU ranks, the numba.cuda kernels on device
arrays, DArrays on the GPU.  Skipped, with the reason, where CuPy or a usable GPU
is missing (CI, laptops); the simulated-GPU twins of these run everywhere
(tests/mpi/test_gpu_sim.py, tests/unit/test_gpu_*.py).

Every rank of a job shares the machine's GPU(s) (more ranks than GPUs: round
robin), so a job of 3 ranks has two GPU workers that move values through MPI
like two GPUs of a node.  The jobs force the real GPU: ``DAGMPI_GPU_SIM`` and
numba's CUDA simulator are switched off in them.
"""

import inspect
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import run_dagmpi

HERE = Path(__file__).resolve().parent
#: The jobs use the real GPU, whatever the environment of the test run says.
REAL = {"DAGMPI_GPU_SIM": "", "NUMBA_ENABLE_CUDASIM": "0"}


def _no_gpu() -> str:
    """Why this process cannot use a GPU ("" when it can); never raises."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0"):
        return "NUMBA_ENABLE_CUDASIM is set: numba.cuda would not run on the GPU"
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - ImportError, or a CUDA library that fails to load
        return f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
        if n < 1:
            return "CUDA sees no device"
        if int(cupy.arange(4).sum()) != 6:  # a kernel really runs
            return "CuPy's first kernel returned a wrong value"
    except Exception as exc:  # noqa: BLE001 - no driver, no device, a broken install
        return f"CUDA is not usable ({type(exc).__name__}: {exc})"
    return ""


_WHY = _no_gpu()
# every test is reported skipped with the reason (a module-level pytest.skip would
# make `pytest tests/gpu` exit 5, "no tests collected", where there is no GPU)
pytestmark = pytest.mark.skipif(bool(_WHY), reason=f"no GPU: {_WHY}")


def _gpu_darrays() -> None:
    import dagmpi.array as da

    if "device" not in inspect.signature(da.from_numpy).parameters:
        pytest.skip("dagmpi.array has no device= (DArrays on the GPU) yet")


# --- values between GPU ranks ---------------------------------------------------------

VALUE_STEPS = ["gpu task on rank 2", "gpu task on rank 1 (same rank)", "cpu task on rank 2", "cpu task on rank 1",
               "driver gets numpy", "gpu -> gpu -> gpu", "numpy input to a gpu task", "released"]


@pytest.mark.mpi
@pytest.mark.parametrize("env", [{}, {"DAGMPI_CUDA_AWARE": "0", "DAGMPI_GPU_CHUNK": str(1 << 20)}],
                         ids=["default", "staged-forced-1MiB-chunks"])
def test_cupy_values_between_gpu_ranks(env):
    """CuPy arrays (odd sizes, F order, empty, several chunks) from a GPU task on
    rank 1 arrive as CuPy arrays with the same bytes in GPU tasks on ranks 1 and 2,
    as numpy arrays in CPU tasks and at the driver."""
    r = run_dagmpi(HERE / "gpu_values.py", n=3, timeout=120, env={**REAL, **env})
    assert r.returncode == 0, r
    for step in VALUE_STEPS:
        assert f"OK {step}" in r.stdout, (step, r)


# --- numba.cuda kernels against the CPU kernels ------------------------------------------


def _same(got, want, rtol=1e-12):
    import cupy

    assert isinstance(got, cupy.ndarray), type(got)
    host = cupy.asnumpy(got)
    assert host.shape == want.shape and host.dtype == want.dtype, (host.shape, host.dtype, want.shape, want.dtype)
    np.testing.assert_allclose(host, want, rtol=rtol, atol=rtol)


def test_numba_cuda_stencils_match_the_cpu_kernels():
    import cupy

    from dagmpi.kernels.cpu import stencil as cs
    from dagmpi.kernels.gpu import stencil as gs

    rng = np.random.default_rng(7)
    for n, m in [(37, 53), (256, 300), (1, 1)]:
        u = rng.standard_normal((n + 2, m + 2))
        d = cupy.asarray(u)
        _same(gs.heat5_step(d, 0.2), cs.heat5_step(u, 0.2))
        _same(gs.laplacian(d), cs.laplacian(u))
        for name in ("laplace5", "laplace9"):
            out = cupy.empty((n, m))
            assert getattr(gs, name)(d, out) is out
            _same(out, getattr(cs, name)(u, np.empty((n, m))))
        w = rng.standard_normal((3, 5))
        uw = rng.standard_normal((n + 2, m + 4))
        out = cupy.empty((n, m))
        gs.weighted2d(cupy.asarray(uw), cupy.asarray(w), out)
        _same(out, cs.weighted2d(uw, w, np.empty((n, m))))
    u3 = rng.standard_normal((13, 15, 9))
    out = cupy.empty((11, 13, 7))
    gs.laplace7(cupy.asarray(u3), out)
    _same(out, cs.laplace7(u3, np.empty((11, 13, 7))))
    _same(gs.laplacian(cupy.asarray(u3)), cs.laplacian(u3))
    u32 = rng.standard_normal((66, 70)).astype(np.float32)
    _same(gs.heat5_step(cupy.asarray(u32), 0.2), cs.heat5_step(u32, 0.2), rtol=1e-5)
    # on a non-default CuPy stream the kernel is ordered with the CuPy work around it
    with cupy.cuda.Stream(non_blocking=True):
        d = cupy.asarray(u) * 1.0
        got = gs.heat5_step(d, 0.2) + 0.0
        cupy.cuda.get_current_stream().synchronize()
    _same(got, cs.heat5_step(u, 0.2))


def test_numba_cuda_grayscott_matches_the_cpu_kernels():
    import cupy

    from dagmpi.kernels.cpu import grayscott as cg
    from dagmpi.kernels.gpu import grayscott as gg

    rng = np.random.default_rng(8)
    params = (0.16, 0.08, 0.035, 0.065, 1.0)
    x2 = rng.random((2, 66, 83))
    _same(gg.step2d(cupy.asarray(x2), *params), cg.step2d(x2, *params))
    _same(gg.step(cupy.asarray(x2), *params), cg.step(x2, *params))
    x3 = rng.random((2, 18, 13, 21))
    _same(gg.step3d(cupy.asarray(x3), *params), cg.step3d(x3, *params))
    _same(gg.step(cupy.asarray(x3), *params), cg.step(x3, *params))


# --- DArrays on the GPU --------------------------------------------------------------------

ARRAY_STEPS = ["blocks on the gpu", "elementwise", "stencil heat5 periodic", "stencil blocks stay on the gpu",
               "matmul", "cholesky", "cholesky tiles on the gpu", "cholesky not SPD"]


@pytest.mark.mpi
def test_gpu_darrays_match_numpy():
    """A DArray on the GPU: elementwise, a map_overlap stencil with the numba.cuda
    kernel, matmul and the tiled Cholesky, against numpy; its blocks stay CuPy."""
    _gpu_darrays()
    r = run_dagmpi(HERE / "gpu_arrays.py", n=3, timeout=180, env=REAL)
    for step in ARRAY_STEPS:
        assert f"OK {step}" in r.stdout, (step, r)
    assert r.returncode == 0 and "ALL OK" in r.stdout, r
