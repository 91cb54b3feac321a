"""Tiled linear algebra and map_overlap stencils against numpy/scipy, in-process and
under mpiexec -n 1, 2, 3, 5."""

import pytest

from conftest import run_dagmpi

pytestmark = pytest.mark.mpi
LAUNCH = pytest.mark.parametrize("n", [None, 1, 2, 3, 5], ids=["inproc", "n1", "n2", "n3", "n5"])


@LAUNCH
def test_linear_algebra_matches_numpy_and_scipy(n):
    res = run_dagmpi("linalg.py", n=n, timeout=240)
    assert res.returncode == 0 and "ALL OK" in res.stdout, res
    for name in ["matmul", "matmul k runs of 1", "matmul k runs of 3", "matmul k runs by bytes", "cholesky n=50 tile=12: L L^T = A", "cholesky n=7 tile=3", "input kept",
                 "solve_triangular trans", "cho_solve", "solve pos", "tsqr Q orthogonal", "not SPD", "errors"]:
        assert f"ok {name}" in res.stdout, (name, res)


@pytest.mark.parametrize("mode,n", [("tasks", None), ("tasks", 1), ("tasks", 2), ("tasks", 3), ("tasks", 5),
                                    ("launches", None), ("launches", 2), ("launches", 5)],
                         ids=["inproc", "n1", "n2", "n3", "n5", "launches-inproc", "launches-n2", "launches-n5"])
def test_stencils_match_numpy_for_every_boundary(mode, n):
    """Every map_overlap of an array of plain tasks, and (``launches``) of a launched
    array: each step two launches, the halos then the blocks."""
    res = run_dagmpi("stencils.py", n=n, timeout=240, args=[mode])
    assert res.returncode == 0 and "ALL OK" in res.stdout, res
    for dims in (1, 2, 3):
        for b in ("periodic", "reflect", "nearest", "2.5", "none"):
            assert f"ok smooth {dims}-D boundary={b}" in res.stdout, (dims, b, res)
    for name in ["numba laplacian 3-D boundary=periodic", "user njit", "weighted", "laplace9", "heat loop 300",
                 "bounded", "errors", "faces form used at depth 1", "plain form at depth 2",
                 "plain form on every block with an axis of boundary none",
                 "faces form casts to the declared dtype as the padded block does",
                 "faces form with an axis of depth 0 (gray-scott)",
                 "faces (7, 5) (7, 1) boundary=reflect", "faces (1, 6) (1, 3) boundary=2.5",
                 "heat map_overlap_loop 300", "loop plain form depth 2 boundary none", "loop plain form depth 2 reflect",
                 "loop faces form gray-scott 20", "loop converting its dtype at the first step", "loop of one step",
                 "loop of a lazy array"]:
        assert f"ok {name}" in res.stdout, (name, res)
    if mode == "launches":  # (map_overlap_loop: one spawn_loop, carry form)
        assert "ok a loop is two launches" in res.stdout, res


def test_worker_blas_threads_match_their_slots():
    """numpy's and scipy's OpenBLAS (the latter loaded only inside a task) run one
    thread per slot on each worker, not one per core."""
    res = run_dagmpi("blas_threads.py", n=3, timeout=60, env={"DAGMPI_SLOTS": "1"})
    assert res.returncode == 0, res
    pools = eval(res.stdout.strip().splitlines()[-1])
    assert pools and all(p and all(n == 1 for _, n in p) for p in pools), res
