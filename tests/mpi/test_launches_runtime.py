"""dagmpi.spawn_many: launches of many point tasks, in-process and under mpiexec -n 2, 3, 5."""

import pytest

from conftest import run_dagmpi

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("n", [None, 2, 3, 5], ids=["inproc", "n2", "n3", "n5"])
def test_launches_match_plain_python(n):
    res = run_dagmpi("launches.py", n=n, timeout=180)
    assert res.returncode == 0 and "ALL OK" in res.stdout, res
    for name in ["first launch", "reads offsets layout blocks", "reads offsets layout cyclic",
                 "reads xor layout table", "reads parent layout blocks", "reads same layout cyclic",
                 "reads all layout blocks", "200 launches", "released", "empty and plain", "the job goes on",
                 "points are tasks", "retried points", "retries", "errors"]:
        assert f"ok {name}" in res.stdout, (name, res)
