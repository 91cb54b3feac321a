"""Shared helpers: run a script under dagmpi in a subprocess with a hard timeout."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def find_mpiexec() -> str | None:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


class Result(str):
    """A finished run: ``returncode``, ``stdout``, ``stderr``.

    It is also the str of the whole run, so ``assert r.returncode == 0, r`` shows
    all of both streams in a failure (pytest shortens the repr of a non-str
    assertion message to 240 characters, which hid the traceback in CI).
    """

    returncode: int
    stdout: str
    stderr: str

    def __new__(cls, rc: int, out: str, err: str) -> "Result":
        self = super().__new__(cls, f"<rc={rc}\n--- stdout\n{out}\n--- stderr\n{err}>")
        self.returncode, self.stdout, self.stderr = rc, out, err
        return self


def run_dagmpi(script: str | Path, n: int | None = None, timeout: float = 60, args=(),
               env: dict | None = None, launcher_args=()) -> Result:
    """Run ``python -m dagmpi script`` (``n=None``: no MPI launcher) with a hard timeout.

    The whole process group is killed on timeout, so a hang fails the test
    instead of blocking CI or leaving spinning ranks behind.
    """
    script = str(SCRIPTS / script) if not os.path.isabs(str(script)) else str(script)
    cmd = [sys.executable, "-m", "dagmpi", *launcher_args, script, *map(str, args)]
    if n is not None:
        mpiexec = find_mpiexec()
        if mpiexec is None:
            pytest.skip("no mpiexec found (pip install mpich)")
        cmd = [mpiexec, "-n", str(n), *cmd]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env, start_new_session=True, cwd=str(ROOT))
    return wait_or_kill(proc, timeout)


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> Result:
    """Wait for a job started in its own session; on timeout kill the whole group and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout} s (hang): {proc.args}\n{Result(-9, out, err)}")
    return Result(proc.returncode, out, err)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--chaos", type=int, default=0, metavar="N",
                     help="run the rank-killing chaos tests N times each (default: a quick subset)")
