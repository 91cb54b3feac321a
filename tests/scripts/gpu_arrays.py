"""DArrays on the (simulated) GPU: blocks made on the GPU ranks stay in GPU memory
through elementwise operations, reductions, map_overlap, matmul and cholesky,
and the values match numpy's.  Prints ``GPU-ARRAYS-OK``."""

import numpy as np

import dagmpi
import dagmpi.array as da
from dagmpi.gpu import backend


def where(x):
    b = backend.get()
    return "gpu" if b is not None and b.is_device(x) else "cpu"


def spaces(A):
    """Where each block of ``A`` is, asked on its own rank."""
    opts = [dagmpi.Options(scope=dagmpi.scope(near=t), move=False) for t in A.tasks.flat]
    return set(dagmpi.fetch([dagmpi.spawn(where, t, options=o) for t, o in zip(A.tasks.flat, opts)]))


def heat(b):
    return b[1:-1, 1:-1] + 0.1 * (b[:-2, 1:-1] + b[2:, 1:-1] + b[1:-1, :-2] + b[1:-1, 2:] - 4 * b[1:-1, 1:-1])


def main() -> None:
    rng = np.random.default_rng(0)
    A = da.ones((50, 40), blocks=(20, 15), device="gpu")
    B = (A * 2 + 1) ** 2
    assert spaces(A) == spaces(B) == {"gpu"}
    assert float(B.sum()) == 50 * 40 * 9
    x = rng.random((37, 29))
    X = da.from_numpy(x, blocks=(10, 10), device="gpu")
    assert np.isclose(float(X.mean()), x.mean()) and np.isclose(float(X.std()), x.std())
    assert np.isclose(float(X.max(axis=0).sum()), x.max(axis=0).sum())
    got = X.to_numpy()
    assert type(got) is np.ndarray and np.array_equal(got, x)
    for boundary, mode in [("periodic", "wrap"), ("reflect", "symmetric"), ("nearest", "edge")]:
        Y = X.map_overlap(heat, depth=1, boundary=boundary)
        assert spaces(Y) == {"gpu"}, boundary
        assert np.allclose(Y.to_numpy(), heat(np.pad(x, 1, mode=mode))), boundary
    s = x @ x.T + 40 * np.eye(37)
    S = da.from_numpy(s, blocks=(10, 10), device="gpu")
    L = da.linalg.cholesky(S)
    assert spaces(L) == {"gpu"}
    lh = L.to_numpy()
    assert np.abs(lh @ lh.T - s).max() / np.abs(s).max() < 1e-12
    C = S @ S
    assert spaces(C) == {"gpu"} and np.allclose(C.to_numpy(), s @ s)
    # pieces, rechunk, setitem, astype, var and HDF5 output of GPU blocks
    P = X[3:20, 5:17]
    assert spaces(P) == {"gpu"} and np.array_equal(P.to_numpy(), x[3:20, 5:17])
    R = X.rechunk((7, 7))
    assert spaces(R) == {"gpu"} and np.array_equal(R.to_numpy(), x)
    X2 = da.from_numpy(x, blocks=(10, 10), device="gpu")
    X2[2:13, 4:9] = 5.0
    ref = x.copy()
    ref[2:13, 4:9] = 5.0
    assert spaces(X2) == {"gpu"} and np.array_equal(X2.to_numpy(), ref)
    F32 = X.astype(np.float32)
    assert spaces(F32) == {"gpu"} and F32.to_numpy().dtype == np.float32
    assert np.isclose(float(X.var(axis=0).sum()), x.var(axis=0).sum())
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        da.to_hdf5(os.path.join(d, "x.h5"), "x", X)
        import h5py

        with h5py.File(os.path.join(d, "x.h5"), "r") as f:
            assert np.array_equal(f["x"][...], x)
    H = X.to_device("cpu")
    assert spaces(H) == {"cpu"} and H.device == "cpu" and np.array_equal(H.to_numpy(), x)
    G = H.to_device("gpu")
    assert spaces(G) == {"gpu"} and G.device == "gpu" and np.array_equal(G.to_numpy(), x)
    assert (G + 1).device == "gpu"  # asked of its blocks
    F = da.fromfunction(lambda i, j: i * 100 + j, (12, 9), blocks=(5, 5), device="gpu")
    assert spaces(F) == {"gpu"} and np.array_equal(F.to_numpy(), np.fromfunction(lambda i, j: i * 100 + j, (12, 9)))
    Z = da.zeros((5, 5), device="cpu")
    assert spaces(Z) == {"cpu"}
    try:
        da.zeros((4, 4), device="tpu")
    except ValueError as exc:
        assert "device must be 'cpu' or 'gpu'" in str(exc)
    else:
        raise AssertionError("device='tpu' was accepted")
    print("GPU-ARRAYS-OK", flush=True)


if __name__ == "__main__":
    main()
