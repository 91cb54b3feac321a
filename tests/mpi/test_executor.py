"""dagmpi.Executor: the concurrent.futures contract, in-process and under mpiexec."""

import pytest

from conftest import run_dagmpi


@pytest.mark.parametrize("n", [None, 3], ids=["inproc", "n3"])
def test_executor_keeps_the_concurrent_futures_contract(n):
    r = run_dagmpi("executor.py", n=n, timeout=180)
    assert r.returncode == 0, r
    assert "EXECUTOR-OK" in r.stdout, r
