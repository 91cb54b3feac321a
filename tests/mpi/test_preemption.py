"""Checkpoint, preemption and resume end to end: SIGTERM/SIGUSR1, SIGKILL at random moments,
a different rank count on restart.  Every run is a subprocess with a hard timeout."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, SCRIPTS, find_mpiexec, run_dagmpi, wait_or_kill

N_PARTS = 16
N_TASKS = 2 * N_PARTS  # 16 make + 15 combine + 1 summary


def expected_hash(n: int = N_PARTS) -> str:
    """The result of ckpt_app.py computed without dagmpi."""
    parts = [np.random.default_rng(i).standard_normal(50_000) for i in range(n)]
    while len(parts) > 1:
        parts = [np.sort(parts[i] + parts[i + 1])[::-1].copy() if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return hashlib.sha256(parts[0].tobytes()).hexdigest()


def command(n, ckpt, log, pause):
    cmd = [sys.executable, "-m", "dagmpi", str(SCRIPTS / "ckpt_app.py"), str(ckpt), str(log),
           str(N_PARTS), str(pause)]
    if n is not None:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            pytest.skip("no mpiexec found (pip install mpich)")
        cmd = [mpiexec, "-n", str(n), *cmd]
    return cmd


def start(n, ckpt, log, pause):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(command(n, ckpt, log, pause), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True, cwd=str(ROOT))


def runs(log) -> int:
    try:
        with open(log) as fh:
            return len(fh.read().split("\n")) - 1
    except FileNotFoundError:
        return 0


def wait_for_runs(log, k, proc, limit=60.0):
    t0 = time.monotonic()
    while runs(log) < k:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit, "the run made no progress"
        time.sleep(0.05)


def finish(proc, timeout=90):
    r = wait_or_kill(proc, timeout)
    return r.returncode, r.stdout, r.stderr


def result_of(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert lines, out
    return lines[-1].split()[1]


@pytest.mark.parametrize("first,second,sig", [(None, 3, signal.SIGTERM), (3, 2, signal.SIGUSR1),
                                              (5, None, signal.SIGTERM)],
                         ids=["embedded-then-n3", "n3-then-n2-usr1", "n5-then-embedded"])
def test_preempted_run_exits_resumable_and_resume_skips_finished_tasks(tmp_path, first, second, sig):
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    proc = start(first, ckpt, log, pause=0.1)
    wait_for_runs(log, 6, proc)
    os.kill(proc.pid, sig)  # the launcher (mpiexec forwards it) or the embedded process
    rc, out, err = finish(proc)
    assert rc == 75, (rc, err[-3000:])
    assert "preempted by" in err and "resumable" in err, err[-2000:]
    n1 = runs(log)
    assert 0 < n1 < N_TASKS
    r = run_dagmpi(SCRIPTS / "ckpt_app.py", n=second, timeout=90,
                   args=[ckpt, log, N_PARTS, 0.1])  # same arguments, same task keys
    assert r.returncode == 0, r
    assert result_of(r.stdout) == expected_hash()
    # every task ran exactly once over both attempts: the resume skipped all saved ones
    assert runs(log) == N_TASKS, (n1, runs(log))
    assert f"RESTORED {n1}" in r.stdout, r.stdout


@pytest.mark.parametrize("n", [None, 3], ids=["embedded", "n3"])
def test_sigkill_at_random_moments_then_resume_gives_the_same_result(tmp_path, n):
    rng = random.Random(1234 if n is None else 4321)
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    kills = int(os.environ.get("DAGMPI_CHAOS_KILLS", "4"))
    for _ in range(kills):
        proc = start(n, ckpt, log, pause=0.05)
        time.sleep(rng.uniform(0.3, 2.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole job, mid-task or mid-write
        proc.communicate(timeout=30)
    r = run_dagmpi(SCRIPTS / "ckpt_app.py", n=n, timeout=90, args=[ckpt, log, N_PARTS, 0.05])
    assert r.returncode == 0, r
    assert result_of(r.stdout) == expected_hash()
    # the restart never trusted a cut-off file: only complete .h5 files were read
    from dagmpi.checkpoint.hdf5 import scan

    idx = scan(str(ckpt))
    assert all(p.endswith(".h5") for p in idx.files)


def test_ckpt_cli_lists_entries(tmp_path):
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    r = run_dagmpi(SCRIPTS / "ckpt_app.py", n=None, timeout=90, args=[ckpt, log, 4, 0.0])
    assert r.returncode == 0, r
    ls = subprocess.run([sys.executable, "-m", "dagmpi", "ckpt", "ls", str(ckpt)], capture_output=True,
                        text=True, timeout=60, cwd=str(ROOT))
    assert ls.returncode == 0 and ls.stdout.count("make") == 4 and "combine" in ls.stdout, ls
    info = subprocess.run([sys.executable, "-m", "dagmpi", "ckpt", "info", str(ckpt)], capture_output=True,
                          text=True, timeout=60, cwd=str(ROOT))
    assert '"entries": 8' in info.stdout, info.stdout
    (ckpt / "junk.h5").write_bytes(b"garbage")
    ls = subprocess.run([sys.executable, "-m", "dagmpi", "ckpt", "ls", str(ckpt)], capture_output=True,
                        text=True, timeout=60, cwd=str(ROOT))
    assert ls.returncode == 0 and "junk.h5" in ls.stderr and (ckpt / "junk.h5").exists()


def test_ckpt_gc_keeps_only_what_the_last_run_used(tmp_path):
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    r = run_dagmpi(SCRIPTS / "ckpt_app.py", n=None, timeout=90, args=[ckpt, log, 4, 0.0])
    assert r.returncode == 0, r
    r = run_dagmpi(SCRIPTS / "ckpt_app.py", n=None, timeout=90, args=[ckpt, log, 2, 0.0])
    assert r.returncode == 0 and "RESTORED 3" in r.stdout, r  # make 0, make 1, combine(0, 1)
    gc = subprocess.run([sys.executable, "-m", "dagmpi", "ckpt", "gc", str(ckpt)], capture_output=True,
                        text=True, timeout=60, cwd=str(ROOT))
    assert gc.returncode == 0, gc
    import json

    report = json.loads(gc.stdout)
    assert report["kept"] == 4 and report["removed"] == 5, report
    before = runs(log)
    r = run_dagmpi(SCRIPTS / "ckpt_app.py", n=None, timeout=90, args=[ckpt, log, 2, 0.0])
    assert r.returncode == 0 and "RESTORED 4" in r.stdout and runs(log) == before, r


@pytest.mark.parametrize("target", ["make", "final"])
def test_a_damaged_checkpoint_value_is_recomputed_never_restored(tmp_path, target):
    """Issue #11 rule 2: 16 bytes overwritten inside a saved value (a leaf's array, or the
    final sorted array) of an otherwise valid file: the rerun warns once, computes that
    value again and prints the right result; ``ckpt gc`` then removes the damaged entry."""
    ckpt, log = tmp_path / "ckpt", tmp_path / "runs.log"
    first = wait_or_kill(start(3, ckpt, log, 0.0), 90)
    assert first.returncode == 0 and result_of(first.stdout) == expected_hash(), first
    if target == "make":
        value = np.random.default_rng(5).standard_normal(50_000)
    else:
        parts = [np.random.default_rng(i).standard_normal(50_000) for i in range(N_PARTS)]
        while len(parts) > 1:
            parts = [np.sort(parts[i] + parts[i + 1])[::-1].copy() for i in range(0, len(parts), 2)]
        value = parts[0]
    pattern = value.tobytes()[8000:8064]
    hits = [p for p in ckpt.glob("*.h5") if pattern in p.read_bytes()]
    assert len(hits) == 1, hits
    data = bytearray(hits[0].read_bytes())
    at = data.find(pattern) + 24
    data[at:at + 16] = bytes(b ^ 0xFF for b in data[at:at + 16])
    hits[0].write_bytes(data)

    second = wait_or_kill(start(3, ckpt, log, 0.0), 90)
    assert second.returncode == 0, second
    assert result_of(second.stdout) == expected_hash(), second
    assert second.stderr.count("saved values are damaged") == 1, second
    assert "ckpt gc" in second.stderr, second
    gc = subprocess.run([sys.executable, "-m", "dagmpi", "ckpt", "gc", str(ckpt)], capture_output=True,
                        text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert gc.returncode == 0 and '"damaged": 1' in gc.stdout, gc
    third = wait_or_kill(start(3, ckpt, log, 0.0), 90)
    assert third.returncode == 0 and result_of(third.stdout) == expected_hash(), third
    assert "damaged" not in third.stderr, third
