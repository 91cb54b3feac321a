"""dagmpi.array against numpy: every operation, in-process and under mpiexec -n 1, 2, 3, 5."""

import pytest

from conftest import run_dagmpi

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("n", [None, 1, 2, 3, 5], ids=["inproc", "n1", "n2", "n3", "n5"])
def test_every_array_operation_matches_numpy(n):
    res = run_dagmpi("arrays.py", n=n, timeout=240)
    assert res.returncode == 0, res
    assert "ALL OK" in res.stdout, res
    for name in ["fused chain", "setitem", "from_hdf5", "to_hdf5", "owner computes", "bounded live tasks",
                 "argmax axis=1 keepdims=True", "reshape 1d->2d", "stack", "norm", "errors"]:
        assert f"ok {name}" in res.stdout, (name, res)
