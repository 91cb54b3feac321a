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


@pytest.mark.parametrize("n", [None, 3], ids=["inproc", "n3"])
def test_a_launch_spawned_on_a_worker_is_read_back_from_the_checkpoint(tmp_path, n):
    """Rank 0 looks up the keys of a launch a worker spawns (it holds the index): the
    rerun reads every point back instead of running it."""
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    first = run_dagmpi("nested_launch_ckpt.py", n=n, args=[ckpt, log], timeout=90)
    assert first.returncode == 0 and "RESULT 55" in first.stdout and "RUNS 6" in first.stdout, first
    second = run_dagmpi("nested_launch_ckpt.py", n=n, args=[ckpt, log], timeout=90)
    assert second.returncode == 0 and "RESULT 55" in second.stdout, second
    assert "RUNS 6" in second.stdout, second  # (none of the 6 points ran again)
