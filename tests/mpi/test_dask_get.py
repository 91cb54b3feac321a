"""``dagmpi.get`` as Dask's scheduler: dask.delayed, array, bag (and dataframe where
pandas is installed) against Dask's own synchronous scheduler, and parts of Dask's own
test suite (dask/tests/test_delayed.py, dask/array/tests/test_array_core.py) with every
computation routed to dagmpi, in-process and under mpiexec -n 3."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, SCRIPTS, find_mpiexec, run_dagmpi, wait_or_kill

pytestmark = pytest.mark.mpi
pytest.importorskip("dask.array", reason="Dask is not installed (pip install -e '.[test]')")


@pytest.mark.parametrize("n", [None, 3], ids=["inproc", "n3"])
def test_dask_collections_on_dagmpi_match_dasks_own_scheduler(n):
    r = run_dagmpi("dask_get.py", n=n, timeout=180)
    assert r.returncode == 0 and "ALL OK" in r.stdout, r
    for what in ["delayed", "array (x + x.T).mean(axis=0)", "array map_overlap", "array matmul",
                 "blocks computed on worker ranks", "bag", "dataframe groupby mean", "tuple graph", "exception type"]:
        assert f"ok {what}" in r.stdout, (what, r)


@pytest.mark.parametrize("n", [None, 3], ids=["inproc", "n3"])
def test_dasks_own_tests_pass_with_dagmpi_as_the_scheduler(n, tmp_path):
    """Every test passes except those marked (with the reason) in tests/scripts/dask_on_dagmpi.py:
    tests of side effects in the driver process, thread locks and h5py objects."""
    cmd = [sys.executable, "-m", "dagmpi", "-m", "pytest", "-p", "dask_on_dagmpi", "-p", "no:cacheprovider",
           "-q", "-rfE", "--pyargs", "dask.tests.test_delayed", "dask.array.tests.test_array_core"]
    if n is not None:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            pytest.skip("no mpiexec found (pip install mpich)")
        cmd = [mpiexec, "-n", str(n), *cmd]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SCRIPTS), str(ROOT)]))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, cwd=str(tmp_path))
    r = wait_or_kill(proc, 600)
    assert r.returncode == 0, r
    summary = [ln for ln in r.stdout.splitlines() if re.search(r"\d+ passed", ln)][-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed > 550 and not re.search(r"\d+ (failed|errors?)\b", summary), summary
    tasks = int(re.search(r"DAGMPI-TASKS (\d+)", r.stdout).group(1))
    assert tasks > 10_000, r.stdout[-2000:]  # the computations really ran on dagmpi
