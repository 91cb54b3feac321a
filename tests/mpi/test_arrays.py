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
                 "argmax axis=1 keepdims=True", "launched argmax axis=1 keepdims=True", "launched var axis=None keepdims=False",
                 "reshape 1d->2d", "stack", "norm", "errors"]:
        assert f"ok {name}" in res.stdout, (name, res)


def test_a_checkpointed_array_loop_resumes_after_preemption(tmp_path):
    """Block tasks have stable keys: a SIGTERMed loop over a DArray reruns from its
    saved blocks and ends with the bit-identical array."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT, SCRIPTS, find_mpiexec, wait_or_kill

    sys.path.insert(0, str(SCRIPTS))
    from array_ckpt import expected

    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    ckpt, log, steps = tmp_path / "ckpt", tmp_path / "log", 12
    cmd = [mpiexec, "-n", "3", sys.executable, "-m", "dagmpi", str(SCRIPTS / "array_ckpt.py"), str(ckpt),
           str(log), str(steps), "0.05"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, cwd=str(ROOT))
    t0 = time.monotonic()
    while not log.exists() or log.read_text().count("step") < 16 * 4:  # 4 of 12 steps done
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 60, "no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    first = wait_or_kill(proc, 60)
    assert first.returncode == 75, first
    ran_before = log.read_text().count("step")
    assert ran_before < 16 * steps, first
    second = run_dagmpi("array_ckpt.py", n=3, args=[ckpt, log, steps, 0.05], timeout=120)
    assert second.returncode == 0, second
    assert f"RESULT {expected(steps)}" in second.stdout, second
    restored = int(second.stdout.split("RESTORED")[1].split()[0])
    assert restored > 0, second
    assert log.read_text().count("step") - ran_before < 16 * steps, "the rerun recomputed everything"
