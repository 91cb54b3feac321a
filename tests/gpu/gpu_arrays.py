"""DArrays on a real GPU against numpy (tests/gpu/test_gpu.py): run with
``mpiexec -n 3 python -m dagmpi``.  Each check prints ``OK <name>`` or
``FAIL <name>: <error>`` and the run goes on; ``ALL OK`` at the end if all passed."""

import sys
import traceback

import numpy as np

import dagmpi
import dagmpi.array as da
from dagmpi.kernels.gpu import stencil as gst

FAILED = []


def check(name, fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported, and the next check runs
        FAILED.append(name)
        print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        traceback.print_exc()
    else:
        print("OK", name, flush=True)


def kind(x):
    """'cupy' for a CuPy array, else the type's name."""
    import cupy

    return "cupy" if isinstance(x, cupy.ndarray) else type(x).__name__


def kinds(a):
    """The type of each block as a GPU task gets it without moving it (move=False):
    CuPy only if the block is in its owner's GPU memory."""
    opts = dagmpi.Options(scope=dagmpi.scope(gpu=True), move=False)
    return set(dagmpi.fetch([dagmpi.spawn(kind, t, options=opts) for t in a.tasks.ravel()]))


def spd(n, seed):
    r = np.random.default_rng(seed).random((n, n))
    return (r + r.T) / 2 + n * np.eye(n)


def heat(u, steps, alpha):
    for _ in range(steps):
        u = u + alpha * (np.roll(u, 1, 0) + np.roll(u, -1, 0) + np.roll(u, 1, 1) + np.roll(u, -1, 1) - 4 * u)
    return u


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((96, 80))
    A = da.from_numpy(x, blocks=(40, 48), device="gpu")  # 3 x 2 blocks, uneven

    def on_gpu():
        assert kinds(A) == {"cupy"}, kinds(A)
    check("blocks on the gpu", on_gpu)

    def elementwise():
        got = ((A * 2 + 1) ** 2).to_numpy()
        np.testing.assert_allclose(got, (x * 2 + 1) ** 2, rtol=1e-14)
    check("elementwise", elementwise)

    state = {}

    def stencil():
        u = A
        for _ in range(10):
            u = u.map_overlap(gst.heat5_step, 1, boundary="periodic", alpha=0.1)
        state["u"] = u
        got = u.to_numpy()
        assert type(got) is np.ndarray
        np.testing.assert_allclose(got, heat(x, 10, 0.1), rtol=1e-12, atol=1e-12)
    check("stencil heat5 periodic", stencil)

    def stencil_blocks():
        assert kinds(state["u"]) == {"cupy"}, kinds(state["u"])
    check("stencil blocks stay on the gpu", stencil_blocks)

    def matmul():
        y = rng.random((80, 72))
        B = da.from_numpy(y, blocks=(48, 40), device="gpu")
        a2 = da.from_numpy(x, blocks=(40, 48), device="gpu")
        np.testing.assert_allclose((a2 @ B).to_numpy(), x @ y, rtol=1e-12)
    check("matmul", matmul)

    s = spd(700, 1)

    def cholesky():
        S = da.from_numpy(s, blocks=128, device="gpu")  # 6 x 6 tiles, the last 60 wide
        L = da.linalg.cholesky(S)
        state["L"] = L
        got = L.to_numpy()
        np.testing.assert_allclose(got, np.linalg.cholesky(s), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got @ got.T, s, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(S.to_numpy(), s, rtol=0, atol=0)  # the input is kept
    check("cholesky", cholesky)

    def cholesky_tiles():
        L = state["L"]
        low = [L.tasks[i, j] for i in range(L.nblocks[0]) for j in range(i + 1)]
        opts = dagmpi.Options(scope=dagmpi.scope(gpu=True), move=False)
        got = set(dagmpi.fetch([dagmpi.spawn(kind, t, options=opts) for t in low]))
        assert got == {"cupy"}, got
    check("cholesky tiles on the gpu", cholesky_tiles)

    def not_spd():
        bad = s.copy()
        bad[300, 300] = -1e6
        try:
            da.linalg.cholesky(da.from_numpy(bad, blocks=128, device="gpu")).to_numpy()
        except np.linalg.LinAlgError as exc:
            assert "not positive definite" in str(exc), exc
        else:
            raise AssertionError("a matrix that is not positive definite was factored")
    check("cholesky not SPD", not_spd)

    if FAILED:
        print("FAILED:", ", ".join(FAILED), flush=True)
        sys.exit(1)
    print("ALL OK", flush=True)


if __name__ == "__main__":
    main()
