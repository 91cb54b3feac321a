"""Under ``mpiexec`` every rank runs the command line: a usage problem or ``--help`` is said
once (by rank 0), and every rank exits at once with the same status, without MPI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT, find_mpiexec, wait_or_kill

pytestmark = pytest.mark.mpi


def mpiexec_dagmpi(n: int, *args: str):
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([mpiexec, "-n", str(n), sys.executable, "-m", "dagmpi", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, cwd=str(ROOT))
    return wait_or_kill(proc, 60)


def test_no_script_is_said_once():
    r = mpiexec_dagmpi(3)
    assert r.returncode == 2, r
    assert r.stderr.count("dagmpi: no script given") == 1, r
    assert "try 'python -m dagmpi --help'" in r.stderr, r


def test_a_bad_option_is_said_once():
    r = mpiexec_dagmpi(3, "--bogus", "app.py")
    assert r.returncode == 2, r
    assert r.stderr.count("unrecognized arguments: --bogus") == 1, r


def test_help_is_printed_once():
    r = mpiexec_dagmpi(3, "--help")
    assert r.returncode == 0, r
    assert r.stdout.count("usage: python -m dagmpi") == 1 and "DAGMPI_TRACE" in r.stdout, r
