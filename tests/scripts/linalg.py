"""Tiled linear algebra against numpy/scipy with ragged edge tiles."""

import numpy as np
import scipy.linalg

import dagmpi
import dagmpi.array as da

rng = np.random.default_rng(11)


def spd(n):
    m = rng.standard_normal((n, n))
    return m @ m.T + n * np.eye(n)


def close(name, got, want, tol=1e-12):
    got = got.to_numpy() if isinstance(got, da.DArray) else np.asarray(got)
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)
    assert got.shape == np.shape(want) and err < tol, f"{name}: relative error {err:.2e} (shape {got.shape})"
    print(f"ok {name} ({err:.1e})", flush=True)


if __name__ == "__main__":
    X, Y = rng.standard_normal((37, 29)), rng.standard_normal((29, 41))
    A, B = da.from_numpy(X, blocks=(10, 8)), da.from_numpy(Y, blocks=(7, 12))
    close("matmul", A @ B, X @ Y)
    close("np.matmul", np.matmul(A, B), X @ Y)
    close("matmul vector", A @ da.from_numpy(Y[:, 0], blocks=8), X @ Y[:, 0])
    close("matmul numpy operand", A @ Y, X @ Y)
    from dagmpi.array import linalg as _la
    flops = _la.GEMM_TASK_FLOPS
    for group in (1, 3):  # the k-sum in runs of 1 and of 3 (+ 1) tile products per task
        _la.GEMM_TASK_FLOPS = group * 2 * 10 * 12 * 8
        C = A @ B
        assert C.tasks[0, 0].name == "gemm", C.tasks[0, 0].name
        close(f"matmul k runs of {group}", C, X @ Y)
    _la.GEMM_TASK_FLOPS = flops
    nbytes = _la.GEMM_TASK_BYTES
    _la.GEMM_TASK_BYTES = 2 * 8 * 8 * (10 + 12)  # runs of 2 products by their input bytes
    close("matmul k runs by bytes", A @ B, X @ Y)
    _la.GEMM_TASK_BYTES = nbytes
    for n, tile in [(50, 12), (64, 16), (7, 3), (33, 33)]:
        S = spd(n)
        L = da.linalg.cholesky(da.from_numpy(S, blocks=tile))
        Ln = L.to_numpy()
        assert np.allclose(np.triu(Ln, 1), 0), "L must be lower triangular"
        close(f"cholesky n={n} tile={tile}: L L^T = A", Ln @ Ln.T, S)
        close(f"cholesky n={n} = numpy", L, np.linalg.cholesky(S))
        U = da.linalg.cholesky(da.from_numpy(S, blocks=tile), lower=False)
        close(f"cholesky upper n={n}", U, np.linalg.cholesky(S).T)
    S = spd(45)
    SA = da.from_numpy(S, blocks=10)
    Ld = da.linalg.cholesky(SA)
    bvec = rng.standard_normal(45)
    bmat = rng.standard_normal((45, 7))
    Lnp = np.linalg.cholesky(S)
    Ld.compute()
    dagmpi.wait(list(Ld.tasks.ravel()))
    np.testing.assert_array_equal(SA.to_numpy(), S)  # the input's tiles are not overwritten
    print("ok input kept", flush=True)
    close("solve_triangular lower", da.linalg.solve_triangular(Ld, bmat, lower=True),
          scipy.linalg.solve_triangular(Lnp, bmat, lower=True))
    close("solve_triangular trans", da.linalg.solve_triangular(Ld, bmat, lower=True, trans=1),
          scipy.linalg.solve_triangular(Lnp, bmat, lower=True, trans=1))
    close("solve_triangular upper", da.linalg.solve_triangular(Ld.T, bvec, lower=False),
          scipy.linalg.solve_triangular(Lnp.T, bvec, lower=False))
    close("cho_solve", da.linalg.cho_solve((Ld, True), bmat), scipy.linalg.cho_solve((Lnp, True), bmat))
    close("solve pos", da.linalg.solve(SA, da.from_numpy(bvec, blocks=10)), np.linalg.solve(S, bvec), 1e-10)
    T = rng.standard_normal((103, 9))
    Q, R = da.linalg.qr(da.from_numpy(T, blocks=(20, 9)))
    Qn, Rn = Q.to_numpy(), R.to_numpy()
    close("tsqr Q R = A", Qn @ Rn, T)
    close("tsqr Q orthogonal", Qn.T @ Qn, np.eye(9))
    assert np.allclose(np.tril(Rn, -1), 0)
    print("ok tsqr R upper", flush=True)
    bad = S.copy()
    bad[30, 30] = -1e6
    try:
        dagmpi.fetch(da.linalg.cholesky(da.from_numpy(bad, blocks=10)))
    except np.linalg.LinAlgError as exc:
        assert "not positive definite" in str(exc) and "tile (3, 3)" in str(exc) and "step 3" in str(exc), exc
        print("ok not SPD:", exc, flush=True)
    else:
        raise AssertionError("a matrix that is not SPD must raise LinAlgError")
    for call, msg in [(lambda: A @ A, "not aligned"), (lambda: da.linalg.cholesky(A), "square"),
                      (lambda: da.linalg.solve(SA, bmat[:40]), "do not agree"),
                      (lambda: da.linalg.solve(SA, bvec, assume_a="gen"), "positive-definite")]:
        try:
            call()
        except ValueError as exc:
            assert msg in str(exc), (msg, exc)
        else:
            raise AssertionError(msg)
    print("ok errors", flush=True)
    print("ALL OK", flush=True)
