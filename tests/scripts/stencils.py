"""map_overlap against numpy for every boundary mode in 1, 2 and 3-D; Numba kernels."""

import sys

import numba
import numpy as np

import dagmpi
import dagmpi.array as da
from dagmpi.kernels.cpu import stencil

MODES = {"periodic": "wrap", "reflect": "symmetric", "nearest": "edge", 2.5: "constant", "none": None}
rng = np.random.default_rng(5)


def smooth(x):
    """Average with both neighbours along every axis (edges unchanged): keeps its shape."""
    y = x.copy()
    for a in range(x.ndim):
        inner = [slice(None)] * x.ndim
        lo, mid, hi = list(inner), list(inner), list(inner)
        lo[a], mid[a], hi[a] = slice(None, -2), slice(1, -1), slice(2, None)
        z = y.copy()
        z[tuple(mid)] = (y[tuple(lo)] + y[tuple(mid)] + y[tuple(hi)]) / 3
        y = z
    return y


def reference(fn, x, depth, mode):
    if mode is None:
        return fn(x)
    kw = {"constant_values": 2.5} if mode == "constant" else {}
    p = np.pad(x, depth, mode=mode, **kw)
    out = fn(p)
    if out.shape == p.shape:
        out = out[tuple(slice(depth, -depth) for _ in x.shape)]
    return out


@numba.njit
def user_kernel(u):
    out = np.empty((u.shape[0] - 2, u.shape[1] - 2))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = max(u[i, j + 1], u[i + 2, j + 1], u[i + 1, j], u[i + 1, j + 2])
    return out


def tagged(u):
    """Zeros on the plain path; its faces form gives ones (which path ran)."""
    return np.zeros((u.shape[0] - 2, u.shape[1] - 2))


tagged.dagmpi_faces = lambda c, up, down, left, right: np.ones(c.shape)


def padded_zeros(u):
    """Zeros of the padded block's shape (trimmed by map_overlap); faces form: ones."""
    return np.zeros(u.shape)


padded_zeros.dagmpi_faces = lambda c, *faces: np.ones(c.shape)


LAUNCHES = len(sys.argv) > 1 and sys.argv[1] == "launches"


def make(x, blocks):
    """``x`` as a DArray: its blocks plain tasks, or (``launches``) the points of one
    launch, so that every map_overlap below runs as launches."""
    if not LAUNCHES:
        return da.from_numpy(x, blocks=blocks)
    out = da.fromfunction(lambda *c: x[tuple(ci.astype(np.intp) for ci in c)], x.shape, blocks=blocks, dtype=x.dtype)
    assert out._launch is not None
    return out


def check(name, got, want):
    if LAUNCHES:
        assert got._launch is not None, f"{name}: not launched"
    np.testing.assert_allclose(got.to_numpy(), want, rtol=1e-13, atol=1e-13, err_msg=name)
    print("ok", name, flush=True)


if __name__ == "__main__":
    for shape, blocks in [((29,), 6), ((19, 23), (5, 7)), ((9, 10, 11), (4, 5, 3))]:
        X = rng.standard_normal(shape)
        A = make(X, blocks=blocks)
        for b, mode in MODES.items():
            check(f"smooth {len(shape)}-D boundary={b}", A.map_overlap(smooth, 1, boundary=b),
                  reference(smooth, X, 1, mode))
        if len(shape) in (2, 3):
            for b, mode in MODES.items():
                if mode is None:
                    continue
                check(f"numba laplacian {len(shape)}-D boundary={b}", A.map_overlap(stencil.laplacian, 1, boundary=b),
                      reference(lambda p: stencil.laplacian(p), X, 1, mode))
    # the faces form (no padded copy) with blocks of one row or column, every boundary
    for shape, blocks in [((7, 5), (7, 1)), ((1, 6), (1, 3))]:
        X = rng.standard_normal(shape)
        A = make(X, blocks=blocks)
        for b, mode in MODES.items():
            if mode is not None:
                check(f"faces {shape} {blocks} boundary={b}",
                      A.map_overlap(stencil.heat5_step, 1, boundary=b, alpha=0.3),
                      reference(lambda p: stencil.heat5_step(p, 0.3), X, 1, mode))
    X = rng.standard_normal((40, 36))
    A = make(X, blocks=(10, 9))
    check("faces form used at depth 1", A.map_overlap(tagged, 1, boundary="nearest"), np.ones(X.shape))
    check("plain form on every block with an axis of boundary none",
          A.map_overlap(padded_zeros, 1, boundary={0: "none", 1: "periodic"}), np.zeros(X.shape))
    B = A.map_overlap(stencil.laplacian, 1, boundary="nearest", dtype=np.float32)  # (blocks stay float64)
    check("faces form casts to the declared dtype as the padded block does",
          B.map_overlap(stencil.laplacian, 1, boundary="nearest"),
          B.map_overlap(lambda u: stencil.laplacian(u), 1, boundary="nearest").to_numpy())
    from dagmpi.kernels.cpu import grayscott
    G = rng.random((2, 19, 23))
    gkw = dict(du=0.16, dv=0.08, f=0.035, k=0.065, dt=1.0)
    check("faces form with an axis of depth 0 (gray-scott)",
          make(G, blocks=(2, 5, 7)).map_overlap(grayscott.step, depth=(0, 1, 1), boundary="periodic", **gkw),
          grayscott.step_numpy(G, **gkw))
    check("plain form at depth 2", A.map_overlap(lambda u: tagged(u[1:-1, 1:-1]), 2, boundary="nearest"),
          np.zeros(X.shape))
    check("depth 2 periodic", A.map_overlap(smooth, 2, boundary="periodic"), reference(smooth, X, 2, "wrap"))
    check("user njit", A.map_overlap(user_kernel, 1, boundary="nearest"),
          reference(lambda p: user_kernel(p), X, 1, "edge"))
    w = np.arange(9.0).reshape(3, 3)
    check("weighted", A.map_overlap(lambda u: stencil.weighted2d(u, w, np.empty((u.shape[0] - 2, u.shape[1] - 2))),
                                    1, boundary="reflect"),
          reference(lambda p: stencil.weighted2d(p, w, np.empty((p.shape[0] - 2, p.shape[1] - 2))), X, 1, "symmetric"))
    check("laplace9", A.map_overlap(lambda u: stencil.laplace9(u, np.empty((u.shape[0] - 2, u.shape[1] - 2))),
                                    1, boundary="periodic"),
          reference(lambda p: stencil.laplace9(p, np.empty((p.shape[0] - 2, p.shape[1] - 2))), X, 1, "wrap"))
    # a time loop streams: spawned ahead, older steps freed
    U = make(X, blocks=(10, 9))
    want = X.copy()
    for step in range(300):
        U = U.map_overlap(stencil.heat5_step, 1, boundary="periodic", alpha=0.1)
        want = stencil.heat5_step(np.pad(want, 1, mode="wrap"), 0.1)
    check("heat loop 300", U, want)
    from dagmpi.runtime import context
    sched = context._runtime.driver.scheduler
    # the same as one loop (map_overlap_loop): launched, rank 0 handles two launches
    U = make(X, blocks=(10, 9))
    dagmpi.wait(U._launch if LAUNCHES else list(U.tasks.flat))
    before = sched.n_launches
    V = U.map_overlap_loop(stencil.heat5_step, 300, 1, boundary="periodic", alpha=0.1)
    check("heat map_overlap_loop 300", V, want)
    if LAUNCHES:
        assert sched.n_launches - before == 2, (sched.n_launches, before)
        print("ok a loop is two launches", flush=True)
    Y = rng.standard_normal((29,))
    want1 = Y.copy()
    for _ in range(7):
        want1 = reference(smooth, want1, 2, None)
    check("loop plain form depth 2 boundary none", make(Y, 6).map_overlap_loop(smooth, 7, 2), want1)
    want2 = X.copy()
    for _ in range(5):
        want2 = reference(smooth, want2, 2, "symmetric")
    check("loop plain form depth 2 reflect", A.map_overlap_loop(smooth, 5, 2, boundary="reflect"), want2)
    want3 = G.copy()
    for _ in range(20):
        want3 = grayscott.step_numpy(want3, **gkw)
    check("loop faces form gray-scott 20", make(G, blocks=(2, 5, 7)).map_overlap_loop(
        grayscott.step, 20, depth=(0, 1, 1), boundary="periodic", **gkw), want3)
    C = A.map_overlap_loop(stencil.laplacian, 3, 1, boundary="nearest", dtype=np.float32)
    D = A.map_overlap(stencil.laplacian, 1, boundary="nearest", dtype=np.float32)
    D = D.map_overlap(stencil.laplacian, 1, boundary="nearest").map_overlap(stencil.laplacian, 1, boundary="nearest")
    assert C.dtype == np.float32
    check("loop converting its dtype at the first step", C, D.to_numpy())
    before = sched.n_launches  # (a lazy array: computed first, then one loop)
    L = (A + 1.0).map_overlap_loop(smooth, 4, 1, boundary="periodic")
    want4 = X + 1.0
    for _ in range(4):
        want4 = reference(smooth, want4, 1, "wrap")
    check("loop of a lazy array", L, want4)
    if LAUNCHES:
        assert sched.n_launches - before == 3, (sched.n_launches, before)  # (+1.0, halos, the loop)
    assert A.map_overlap_loop(smooth, 0) is A
    check("loop of one step", A.map_overlap_loop(smooth, 1, 1, boundary="periodic"), reference(smooth, X, 1, "wrap"))
    live = len(context._runtime.driver.scheduler.tasks) + len(context._runtime.driver.scheduler.launches)
    assert live < 16 * 20, f"{live} tasks and launches alive after the loop"
    print("ok bounded", live, flush=True)
    try:
        make(X, blocks=(2, 9)).map_overlap(smooth, 3)
    except ValueError as exc:
        assert "larger than its smallest block" in str(exc), exc
    else:
        raise AssertionError("depth > block must fail")
    for bad, words in [(lambda: A.map_overlap_loop(smooth, -1), "steps >= 0"),
                       (lambda: A.map_overlap_loop(smooth, 2.5), "steps >= 0"),
                       (lambda: A.map_overlap_loop(None, 3), "needs a function"),
                       (lambda: make(X, blocks=(2, 9)).map_overlap_loop(smooth, 4, 3), "larger than its smallest")]:
        try:
            bad()
        except (ValueError, TypeError) as exc:
            assert words in str(exc), (words, exc)
        else:
            raise AssertionError(words)
    try:
        A.map_overlap(smooth, 1, boundary="mirror")
    except ValueError as exc:
        assert "boundary must be" in str(exc)
    print("ok errors", flush=True)
    print("ALL OK", flush=True)
