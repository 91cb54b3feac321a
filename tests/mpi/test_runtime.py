"""End-to-end tests under real ``mpiexec`` (and with no launcher), each a subprocess with a hard timeout."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT, find_mpiexec, run_dagmpi

# None = no launcher (embedded in-process runtime); 1 = the single rank also executes tasks.
RANKS = [None, 1, 2, 5]


def ids(n):
    return "no-launcher" if n is None else f"n{n}"


@pytest.mark.parametrize("n", RANKS, ids=ids)
def test_tree_sum_example(n):
    r = run_dagmpi(ROOT / "examples" / "tree_sum.py", n=n, timeout=90)
    assert r.returncode == 0, r
    assert r.stdout.strip().splitlines()[-1] == "120000000.0", r


@pytest.mark.parametrize("n", RANKS, ids=ids)
def test_errors_propagate(n):
    r = run_dagmpi("errors.py", n=n, timeout=90)
    assert r.returncode == 0, r
    assert "ERRORS-OK" in r.stdout, r


@pytest.mark.parametrize("n", RANKS, ids=ids)
def test_nested_dynamic_graphs(n):
    r = run_dagmpi("nested.py", n=n, timeout=90)
    assert r.returncode == 0, r
    assert "NESTED-OK" in r.stdout, r


@pytest.mark.parametrize("n", [None, 2], ids=ids)
def test_bad_input_is_refused_and_loses_nothing(n):
    r = run_dagmpi("bad_input.py", n=n, timeout=90)
    assert r.returncode == 0, r
    assert "BAD-INPUT-OK 9" in r.stdout, r


@pytest.mark.parametrize("n", [3, 5], ids=ids)
def test_data_moves_rank_to_rank_not_through_rank0(n):
    r = run_dagmpi("locality.py", n=n, timeout=90)
    assert r.returncode == 0, r
    assert "LOCALITY-OK" in r.stdout, r


@pytest.mark.parametrize("n", [None, 3], ids=ids)
def test_driver_exception_aborts_quickly(n):
    t0 = time.monotonic()
    r = run_dagmpi("raises.py", n=n, args=["driver"], timeout=60)
    assert r.returncode != 0, r
    assert "driver failure on purpose" in r.stderr, r
    assert "RuntimeError" in r.stderr, r
    # a worker is busy in a 30 s task: the abort must not wait for it
    assert time.monotonic() - t0 < 25, r


@pytest.mark.parametrize("n", [2, 3], ids=ids)
def test_dead_worker_ends_job(n):
    r = run_dagmpi("raises.py", n=n, args=["worker-dies"], timeout=60)
    assert r.returncode != 0, r
    assert "UNREACHABLE" not in r.stdout, r


def test_forked_child_of_a_task_exits_as_it_asked():
    """os._exit in a process a task forked ends that process only (not the job)."""
    r = run_dagmpi("raises.py", n=2, args=["fork-exit"], timeout=60)
    assert r.returncode == 0 and "child status 7" in r.stdout, r
    assert "called os._exit" not in r.stderr, r


@pytest.mark.parametrize("n", [None, 2], ids=ids)
def test_sys_exit_code_is_kept(n):
    r = run_dagmpi("raises.py", n=n, args=["exit"], timeout=60)
    assert r.returncode == 4, r


@pytest.mark.parametrize("n", [None, 2], ids=ids)
def test_missing_script(n):
    r = run_dagmpi(ROOT / "no_such_script.py", n=n, timeout=60)
    assert r.returncode == 2, r
    assert "no_such_script.py" in r.stderr and "no such file" in r.stderr, r


def test_info_reports_mpi_capabilities():
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    out = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "dagmpi", "info"],
                         capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out
    info = json.loads(out.stdout)  # printed once (rank 0 only), valid JSON
    assert info["launched_by_mpi"] is True
    assert info["mpi"]["cuda_aware"] in (True, False)
    if "MPICH" in info["mpi"]["library"]:
        assert info["mpi"]["ulfm"] is False


@pytest.mark.parametrize("n", [None, 3], ids=ids)
def test_processors_scopes_and_resources(n):
    env = {"DAGMPI_RESOURCES": "licence=1", "DAGMPI_GPUS": "none"}
    args = ["--workers", "2"] if n is None else []
    r = run_dagmpi("scopes.py", n=n, timeout=90, env=env, launcher_args=args)
    assert r.returncode == 0, r
    assert "SCOPES-OK 8" in r.stdout, r


@pytest.mark.parametrize("n", [None, 3], ids=ids)
def test_uneven_durations_keep_all_ranks_busy(n):
    args = ["--workers", "2", "--slots", "1"] if n is None else []
    r = run_dagmpi("stealing.py", n=n, timeout=90, launcher_args=args)
    assert r.returncode == 0, r
    assert "STEALING-OK" in r.stdout, r


@pytest.mark.parametrize("n", [None, 3], ids=ids)
def test_retries_and_timeouts(n):
    args = ["--workers", "2", "--slots", "1"] if n is None else []
    r = run_dagmpi("retries.py", n=n, timeout=120, launcher_args=args, env={"DAGMPI_RETRIES": "1"})
    assert r.returncode == 0, r
    assert "RETRIES-OK 6" in r.stdout, r


@pytest.mark.parametrize("n", [None, 3], ids=ids)
def test_spawn_bursts_drive_the_loop_and_hand_it_back(n):
    r = run_dagmpi("bursts.py", n=n, timeout=120)
    assert r.returncode == 0, r
    assert "BURSTS-OK" in r.stdout, r


# ------------------------------------------------------------ dependencies across ranks

@pytest.mark.parametrize("n", [2, 3, 5], ids=ids)
def test_cross_rank_stencil_runs_ahead_with_pushed_inputs(n):
    """Every step of a 1-D stencil reads its neighbours' values from other ranks:
    consumers are assigned ahead and their inputs pushed by the producers."""
    r = run_dagmpi("crossrank.py", n=n, args=["stencil", "300"], timeout=120)
    assert r.returncode == 0, r
    assert "CROSSRANK-STENCIL-OK" in r.stdout, r


def test_a_task_whose_input_was_pushed_to_a_busy_rank_is_stolen():
    r = run_dagmpi("crossrank.py", n=3, args=["steal"], timeout=90)
    assert r.returncode == 0, r
    assert "CROSSRANK-STEAL-OK" in r.stdout, r


def test_consumers_waiting_on_another_rank_for_a_failed_input_fail_upstream():
    r = run_dagmpi("crossrank.py", n=3, args=["fail"], timeout=90)
    assert r.returncode == 0, r
    assert "CROSSRANK-FAIL-OK" in r.stdout, r
