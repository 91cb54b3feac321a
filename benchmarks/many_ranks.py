"""Start-up and shut-down of real jobs with many ranks.

    python benchmarks/many_ranks.py [--ranks 3,9,17,33,65]

Runs ``mpiexec -n N python -m dagmpi --log-level INFO examples/tree_sum.py`` for each N
(oversubscribed on a small machine: the figures say how rank 0's start-up and
shut-down grow with the ranks, not what a cluster would take) and reports, from the
INFO lines' timestamps and the process's own clock: start-up (launch to "dagmpi
started", every worker having said hello), the run itself, shut-down (the run summary
to the end of the job), and the whole job.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, mpiexec, open_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stamp(line: str) -> float:
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run(n: int, timeout: float) -> dict:
    cmd = [mpiexec(), "-n", str(n), sys.executable, "-m", "dagmpi", "--log-level", "INFO",
           os.path.join(ROOT, "examples", "tree_sum.py")]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    t_end = time.time()
    if p.returncode != 0:
        return {"error": p.stderr[-1500:]}
    started = [stamp(ln) for ln in p.stderr.splitlines() if "dagmpi started:" in ln]
    summary = [stamp(ln) for ln in p.stderr.splitlines() if "run summary:" in ln]
    if not started or not summary:
        return {"error": "no INFO lines: " + p.stderr[-800:]}
    return {"startup_s": started[0] - t0, "run_s": summary[0] - started[0], "shutdown_s": t_end - summary[0],
            "total_s": t_end - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="3,9,17,33,65")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", default=default_json("many_ranks"))
    ns = ap.parse_args()
    results = {}
    for n in (int(x) for x in ns.ranks.split(",")):
        print(f"running {n} ranks ...", file=sys.stderr, flush=True)
        results[n] = run(n, ns.timeout)
    print(f"\n{'ranks':>6} {'start-up s':>11} {'run s':>8} {'shut-down s':>12} {'job s':>8}")
    for n, r in results.items():
        if "error" in r:
            print(f"{n:>6} error: {r['error']}")
            continue
        print(f"{n:>6} {r['startup_s']:>11.2f} {r['run_s']:>8.2f} {r['shutdown_s']:>12.2f} {r['total_s']:>8.2f}")
    print(f"(start-up: launch to every worker's hello, including each rank's Python, numpy and mpi4py "
          f"imports on {os.cpu_count()} cores; shut-down: the run summary to the end of mpiexec)")
    with open_json(ns.json) as fh:
        json.dump({"benchmark": "many_ranks", "results": results}, fh, indent=1)
    print(f"wrote {ns.json}")


if __name__ == "__main__":
    main()
