"""Real Slurm: a checkpointed dagmpi job is preempted (or requeued), restarts and resumes.

Starts the one-node cluster of ``slurm/cluster.sh`` (Debian's slurmctld, slurmd, munge; .ci/run
installs them).  Skips, saying why, only where those packages are not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mpi"))
from test_preemption import N_TASKS, N_PARTS, expected_hash  # noqa: E402

CLUSTER = ROOT / "slurm" / "cluster.sh"
SBATCH = ROOT / "slurm" / "dagmpi.sbatch"


def sh(*cmd, timeout=60, check=True):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=check)


SLURM_DIR = os.environ.get("DAGMPI_SLURM_DIR", "/tmp/dagmpi-slurm")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def _system_conf() -> Optional[tuple[bytes, float]]:
    return (SYSTEM_CONF.read_bytes(), SYSTEM_CONF.stat().st_mtime) if SYSTEM_CONF.exists() else None


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("slurmctld") is None and not os.path.exists("/usr/sbin/slurmctld"):
        pytest.skip("Slurm is not installed (apt-get install -y --no-install-recommends "
                    "slurmctld slurmd slurm-client munge); .ci/run installs it")
    if os.geteuid() != 0:
        pytest.skip("the one-node test cluster needs root (it starts munged, slurmctld and slurmd)")
    before = _system_conf()
    r = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=120)
    if r.returncode == 3:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, r.stderr
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = os.path.join(SLURM_DIR, "slurm.conf")  # sbatch, scontrol, ... find it
    try:
        yield before
    finally:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, text=True, timeout=120)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def test_the_cluster_keeps_to_its_own_folder(cluster):
    """Rule 7 of #11: the helper's config, state, logs and pid files are under its folder;
    a system /etc/slurm/slurm.conf is left exactly as it was (or still absent)."""
    assert _system_conf() == cluster
    conf = Path(SLURM_DIR) / "slurm.conf"
    assert conf.exists() and f"StateSaveLocation={SLURM_DIR}/state" in conf.read_text()
    assert f"SlurmctldPidFile={SLURM_DIR}/run/slurmctld.pid" in conf.read_text()
    assert sh("bash", str(CLUSTER), "env").stdout.strip() == f"export SLURM_CONF={conf}"
    assert "localhost" in sh("sinfo", "-h", "-N", "-o", "%N").stdout


def job_state(job: str) -> tuple[str, int]:
    out = sh("scontrol", "show", "job", job).stdout
    state = re.search(r"JobState=(\S+)", out).group(1)
    restarts = int(re.search(r"Restarts=(\d+)", out).group(1))
    return state, restarts


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def submit(workdir: Path, ntasks: int, pause: float) -> str:
    env = dict(os.environ, DAGMPI_PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    r = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-n", str(ntasks), "-D", str(workdir),
                        "--export=ALL", str(SBATCH), str(ROOT / "tests" / "scripts" / "ckpt_app.py"),
                        str(workdir / "ckpt"), str(workdir / "runs.log"), str(N_PARTS), str(pause)],
                       capture_output=True, text=True, timeout=60, env=env,
                       cwd=workdir)  # the batch script's default paths are under the submit folder
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def wait_until(pred, limit, what):
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < limit, f"timed out waiting for {what}"
        time.sleep(0.3)


def finish(job: str, workdir: Path, log: str = "dagmpi-{job}.out") -> str:
    try:
        wait_until(lambda: job_state(job)[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 150,
                   f"job {job} to end")
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=30)
    out = (workdir / log.format(job=job)).read_text()
    state, restarts = job_state(job)
    assert state == "COMPLETED", out[-3000:]
    assert restarts >= 1, out[-3000:]
    return out


def check_result(out: str, workdir: Path) -> None:
    results = re.findall(r"^RESULT (\S+)", out, re.M)
    assert results == [expected_hash()], out[-3000:]
    restored = int(re.findall(r"^RESTORED (\d+)", out, re.M)[-1])
    assert restored > 0, out[-3000:]
    assert "restart 1" in out, out[-3000:]
    # the restart skipped what was saved: far fewer than two full runs
    assert runs(workdir / "runs.log") <= N_TASKS + 4, runs(workdir / "runs.log")


def test_preempted_job_is_requeued_and_resumes(cluster, tmp_path):
    job = submit(tmp_path, 2, 0.3)
    wait_until(lambda: runs(tmp_path / "runs.log") >= 4, 90, "the job to make progress")
    urgent = sh("sbatch", "--parsable", "-p", "urgent", "-n", "4", "-D", str(tmp_path),
                "-o", str(tmp_path / "urgent-%j.out"), "--wrap", "sleep 3").stdout.strip()
    try:
        out = finish(job, tmp_path)
    finally:
        subprocess.run(["scancel", urgent], capture_output=True, timeout=30)
    assert "DUE TO PREEMPTION" in out and "preempted by SIGTERM" in out, out[-3000:]
    check_result(out, tmp_path)


def test_scontrol_requeue_restarts_and_resumes(cluster, tmp_path):
    job = submit(tmp_path, 2, 0.3)
    wait_until(lambda: runs(tmp_path / "runs.log") >= 4, 90, "the job to make progress")
    sh("scontrol", "requeue", job)
    out = finish(job, tmp_path)
    check_result(out, tmp_path)


GRAYSCOTT = ROOT / "slurm" / "grayscott.sbatch"


def test_grayscott_job_is_preempted_requeued_and_ends_bit_identical(cluster, tmp_path):
    """The flagship application as a batch job: preempted mid-run by a job of a higher
    partition, requeued, continued from its newest saved step; the final state equals an
    uninterrupted run's, bit for bit."""
    args = ["--size", "96", "--steps", "4000", "--blocks", "48", "--analysis-every", "0",
            "--output-every", "0", "--checkpoint-every", "40", "--no-trace"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), DAGMPI_PYTHON=sys.executable, DAGMPI_HOME=str(ROOT),
               DAGMPI_CHECKPOINT_INTERVAL="0.2")
    ref = subprocess.run([sys.executable, str(ROOT / "examples" / "grayscott.py"), *args, "--no-checkpoint",
                          "--out", str(tmp_path / "ref")], capture_output=True, text=True, timeout=300, env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = re.findall(r"^RESULT (\S+)", ref.stdout, re.M)
    r = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-n", "3", "-D", str(tmp_path), "--export=ALL",
                        str(GRAYSCOTT), *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job = r.stdout.strip().split(";")[0]
    ckpt = tmp_path / f"grayscott-{job}" / "checkpoint"
    wait_until(lambda: ckpt.is_dir() and any(p.suffix == ".h5" for p in ckpt.iterdir()), 120,
               "the first checkpoint file")
    urgent = sh("sbatch", "--parsable", "-p", "urgent", "-n", "4", "-D", str(tmp_path),
                "-o", str(tmp_path / "urgent-%j.out"), "--wrap", "sleep 3").stdout.strip()
    try:
        out = finish(job, tmp_path, log="grayscott-{job}.out")
    finally:
        subprocess.run(["scancel", urgent], capture_output=True, timeout=30)
    assert "preempted by SIGTERM" in out, out[-3000:]
    assert "resuming from the checkpoint at step" in out, out[-3000:]
    assert re.findall(r"^RESULT (\S+)", out, re.M) == expected, out[-3000:]
