"""dagmpi.spawn_loop: many steps of a launch run on the workers (values pushed rank to
rank), in-process and under mpiexec -n 2, 3, 5."""

import pytest

from conftest import run_dagmpi

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("n", [None, 2, 3, 5], ids=["inproc", "n2", "n3", "n5"])
def test_loops_match_plain_python(n):
    res = run_dagmpi("loops.py", n=n, timeout=180)
    assert res.returncode == 0 and "ALL OK" in res.stdout, res
    for name in ["n=1 steps=7 cyclic", "steps=7 blocks", "xor cycled table", "parent cyclic",
                 "grid with empty inputs", "as a chain of launches", "read by a later launch",
                 "one launch on rank 0", "carry form", "errors", "the job goes on", "retried points", "bad input"]:
        assert f"ok {name}" in res.stdout or f"{name}\n" in res.stdout, (name, res)


@pytest.mark.parametrize("n", [None, 3], ids=["inproc", "n3"])
def test_a_loop_is_read_back_from_the_checkpoint(tmp_path, n):
    """A loop whose last values are saved: the rerun reads all of them back, no step runs."""
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    first = run_dagmpi("loops.py", n=n, args=[ckpt, log], timeout=90)
    assert first.returncode == 0 and "RUNS 60" in first.stdout, first  # (3 loops x 5 points x 4 steps)
    result = [line for line in first.stdout.splitlines() if line.startswith("RESULT")]
    second = run_dagmpi("loops.py", n=n, args=[ckpt, log], timeout=90)
    assert second.returncode == 0 and result[0] in second.stdout, second
    assert "RUNS 60" in second.stdout, second  # (none of the points ran again: each loop read back its own)
