"""Tiled in-place Cholesky with data dependencies: tasks say which tiles they read and
write, dagmpi derives the DAG (the order of POTRF/TRSM/SYRK/GEMM) from that.

    python -m dagmpi examples/cholesky_datadeps.py [n] [tile]              # in-process
    mpiexec -n 3 python -m dagmpi examples/cholesky_datadeps.py [n] [tile]  # 2 worker ranks

The tiles are views of one numpy matrix; tiles of different rows and columns are
independent, so the updates of a step run at the same time.  At the end of the
``with`` block the factor is in the matrix's lower triangle.
"""

import sys
import time

import numpy as np
import scipy.linalg

import dagmpi
from dagmpi import In, InOut


def potrf(akk):             # A[k,k] = L[k,k]
    akk[:] = np.linalg.cholesky(akk)


def trsm(lkk, aik):         # A[i,k] = A[i,k] L[k,k]^-T
    aik[:] = scipy.linalg.solve_triangular(lkk, aik.T, lower=True).T


def syrk(lik, aii):         # A[i,i] -= L[i,k] L[i,k]^T
    aii -= lik @ lik.T


def gemm(lik, ljk, aij):    # A[i,j] -= L[i,k] L[j,k]^T
    aij -= lik @ ljk.T


def cholesky(A, b):
    """Factor ``A`` in place (lower triangle), in tiles of ``b`` x ``b``."""
    nt = A.shape[0] // b
    T = lambda i, j: A[i * b:(i + 1) * b, j * b:(j + 1) * b]  # noqa: E731 (a view: no copy)
    with dagmpi.datadeps():
        for k in range(nt):
            dagmpi.spawn(potrf, InOut(T(k, k)))
            for i in range(k + 1, nt):
                dagmpi.spawn(trsm, In(T(k, k)), InOut(T(i, k)))
            for i in range(k + 1, nt):
                dagmpi.spawn(syrk, In(T(i, k)), InOut(T(i, i)))
                for j in range(k + 1, i):
                    dagmpi.spawn(gemm, In(T(i, k)), In(T(j, k)), InOut(T(i, j)))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    b = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    if n % b:
        sys.exit(f"the tile size {b} must divide the matrix size {n}")
    rng = np.random.default_rng(0)
    M = rng.random((n, n))
    A0 = M @ M.T + n * np.eye(n)  # symmetric positive definite
    A = A0.copy()
    t0 = time.perf_counter()
    cholesky(A, b)
    dt = time.perf_counter() - t0
    ok = np.allclose(np.tril(A), np.linalg.cholesky(A0))
    print(f"tiled Cholesky {n}x{n}, tiles {b}x{b} ({(n // b) ** 2} tiles) on {len(dagmpi.workers())} "
          f"worker rank(s): {dt:.3f} s")
    print(f"np.allclose(np.tril(A), np.linalg.cholesky(A0)): {ok}")
    sys.exit(0 if ok else 1)
