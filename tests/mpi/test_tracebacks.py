"""A task's traceback under real ``mpiexec`` points at the user's script: file, line, source text."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import SCRIPTS, run_dagmpi

SCRIPT = SCRIPTS / "tb_raise.py"


def raising_line(path):
    lines = path.read_text().splitlines()
    n = next(i for i, line in enumerate(lines, 1) if "# TB-RAISE-LINE" in line)
    return n, lines[n - 1].strip()


@pytest.mark.parametrize("where", ["readable", "deleted"])
def test_remote_traceback_shows_the_users_file_line_and_source(where, tmp_path):
    script = SCRIPT
    if where == "deleted":  # the script deletes itself: the worker shows the shipped source
        script = tmp_path / SCRIPT.name
        shutil.copy(SCRIPT, script)
    n, source = raising_line(script if script.exists() else SCRIPT)
    r = run_dagmpi(script, n=2, args=[where], timeout=120)
    assert r.returncode == 1, r
    assert "UNREACHABLE" not in r.stdout, r
    remote = re.search(r'raised on rank 1 .*?\n(.*?)"""', r.stderr, re.S)
    assert remote, r
    text = remote.group(1)
    assert f'File "{script}", line {n}, in inner' in text, r
    assert source in text, r
    assert f'File "{script}"' in text.splitlines()[1], r  # the user's frames come first
    assert "<dynamic-code>" not in r.stderr, r
    assert "running.py" not in text, r
    if where == "deleted":
        assert not script.exists()


@pytest.mark.parametrize("launch", ["module", "plain"])
def test_rank0_traceback_shows_the_users_frames_not_dagmpis(launch):
    """The re-raised error on rank 0 names the script's line; the launcher's, runpy's and
    dagmpi's own frames (fetch, the client, the error builder) are left out."""
    import os
    import subprocess
    import sys

    from conftest import ROOT, find_mpiexec, wait_or_kill

    if launch == "module":
        r = run_dagmpi(SCRIPT, n=2, args=["readable"], timeout=120)
    else:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen([find_mpiexec(), "-n", "2", sys.executable, str(SCRIPT), "readable"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                start_new_session=True, cwd=str(ROOT))
        r = wait_or_kill(proc, 120)
    assert r.returncode != 0, r
    local = r.stderr.split("direct cause of the following exception:", 1)[1]
    assert "dagmpi.fetch(dagmpi.spawn(outer, 1))" in local, r
    assert "ValueError: tb-script failure 2" in local, r
    for hidden in ("runpy", "cli.py", "client.py", "errors.py", "api.py"):
        assert hidden not in local, (hidden, r)
