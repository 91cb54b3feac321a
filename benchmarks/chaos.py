"""Chaos at volume: kill, preempt and corrupt at random, and check every answer.

    python benchmarks/chaos.py [--runs 100] [--scenarios kill,preempt,corrupt]
                               [--venv build/venv-ompi] [--seed 0] [--json bench-results/chaos.json]

Each run uses ``tests/scripts/chaos.py`` (10k tasks: 50 layers of 200, each task
reading two of the layer before, then a tree reduction; it computes the expected
result without dagmpi and fails unless they agree):

* ``kill``: under ``mpiexec --with-ft ulfm`` (Open MPI with ULFM, the venv that
  ``tests/ulfm`` builds), 4 ranks, kill -9 a random worker at a random moment;
  the job must finish with the right result (recovery time: death detected until
  the graph is back to as many finished tasks as at the kill).
* ``preempt``: under MPICH, 4 ranks, every result checkpointed (a file every 0.2 s,
  so signals often land during a write): SIGTERM every rank at a random moment,
  then rerun the same command; the rerun must finish with the right result.
* ``corrupt``: a completed checkpointed run; then 16 random bytes of a random
  checkpoint file are overwritten (anywhere: data, metadata or the superblock),
  and the rerun must still give the right result (damaged entries recomputed).
* ``array``: ``tests/scripts/array_chaos.py`` under ULFM, 4 ranks: a ``map_overlap``
  time loop (256 x 256, 16 blocks, 60 steps) whose top-left block kills its rank at a
  step chosen by the seed; numpy's answer is checked.  Run with the array layer's
  launches (the default: the lost points computed again from the launches' lineage)
  and with one task per block (``DAGMPI_ARRAY_LAUNCHES=0``), each also without a kill:
  the loop's seconds side by side.

It prints successes / runs for each scenario and the slowest recovery, and
writes every run to the JSON file.  Not part of CI (100 runs take ~20 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _results import default_json, open_json  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAOS = os.path.join(ROOT, "tests", "scripts", "chaos.py")
MPICH = os.path.join(os.path.dirname(sys.executable), "mpiexec")


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.update(extra or {})
    return env


def _run(cmd: list[str], env: dict, timeout: float, term_after: float | None = None) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, cwd=ROOT)
    if term_after is not None:
        try:
            proc.wait(term_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # every rank, as Slurm's preemption does
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = "hang"
    return {"rc": rc, "seconds": time.monotonic() - t0, "ok": rc == 0 and "\nOK" in "\n" + out,
            "tail": (out + err)[-1500:]}


def _ulfm_env(venv: str, extra: dict | None = None) -> dict:
    """The environment of a run with the Open MPI + ULFM of ``venv``."""
    env = _env({"PATH": f"{venv}/bin{os.pathsep}{os.environ.get('PATH', '')}", "OPAL_PREFIX": venv,
                "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe", **(extra or {})})
    env.pop("VIRTUAL_ENV", None)
    return env


def kill_run(venv: str, seed: int, workdir: str) -> dict:
    env = _ulfm_env(venv)
    report = os.path.join(workdir, f"kill-{seed}.json")
    cmd = [f"{venv}/bin/mpiexec", "--with-ft", "ulfm", "-n", "4", f"{venv}/bin/python", "-m", "dagmpi",
           CHAOS, "--kill", "1", "--seed", str(seed), "--json", report]
    res = _run(cmd, env, 120)
    if os.path.exists(report):
        with open(report) as f:
            rep = json.load(f)
        res["recovery_s"] = max([a + b for a, b in zip(rep["detect_s"], rep["recover_s"])], default=None)
        res["ok"] = res["ok"] and rep["result"] == rep["expected"]
    return res


ARRAY = os.path.join(ROOT, "tests", "scripts", "array_chaos.py")


def array_run(venv: str, seed: int, workdir: str) -> dict:
    """The array loop four ways: launches / one task per block, with / without a kill."""
    out: dict = {"ok": True}
    for mode, launches in (("launches", "1"), ("blocks", "0")):
        env = _ulfm_env(venv, {"DAGMPI_ARRAY_LAUNCHES": launches})
        for kill in (0, 1):
            report = os.path.join(workdir, f"array-{seed}-{mode}-{kill}.json")
            cmd = [f"{venv}/bin/mpiexec", "--with-ft", "ulfm", "-n", "4", f"{venv}/bin/python", "-m", "dagmpi",
                   ARRAY, "--seed", str(seed), "--kill", str(kill), "--size", "256", "--blocks", "64",
                   "--steps", "60", "--json", report]
            res = _run(cmd, env, 180)
            key = f"{mode}{'-kill' if kill else ''}"
            if os.path.exists(report):
                with open(report) as f:
                    rep = json.load(f)
                out[key + "_s"] = rep["seconds"]
                out[key + "_recomputed"] = sum(x["recomputed"] for x in rep["failures"])
            if not res["ok"]:
                out["ok"] = False
                out["tail"] = f"{key}: " + res["tail"]
    out["recovery_s"] = out.get("launches-kill_s")
    return out


def _mpich(ckpt: str) -> list[str]:
    return [MPICH, "-n", "4", sys.executable, "-m", "dagmpi", CHAOS, "--mode", "none", "--checkpoint", ckpt]


def preempt_run(seed: int, workdir: str, full: float) -> dict:
    rng = random.Random(seed)
    ckpt = os.path.join(workdir, f"pre-{seed}")
    env = _env({"DAGMPI_CHECKPOINT_INTERVAL": "0.2"})
    when = rng.uniform(0.3, max(0.5, full))
    first = _run(_mpich(ckpt), env, 120, term_after=when)
    second = _run(_mpich(ckpt), env, 120)
    shutil.rmtree(ckpt, ignore_errors=True)
    # 75: preempted and saved; 0: it finished first; 15/143: the signal came before dagmpi had
    # started (Python still importing): nothing ran, nothing to save
    ok = first["rc"] in (0, 75, 15, 143, -15) and second["ok"]
    return {"ok": ok, "signal_at_s": when, "first_rc": first["rc"], "rc": second["rc"],
            "recovery_s": second["seconds"], "tail": second["tail"] if not ok else first["tail"][-300:]}


def corrupt_run(seed: int, workdir: str) -> dict:
    rng = random.Random(seed)
    ckpt = os.path.join(workdir, f"bad-{seed}")
    env = _env({"DAGMPI_CHECKPOINT_INTERVAL": "0.5"})
    first = _run(_mpich(ckpt), env, 120)
    files = sorted(f for f in os.listdir(ckpt) if f.endswith(".h5")) if os.path.isdir(ckpt) else []
    if not first["ok"] or not files:
        return {"ok": False, "why": "the first run failed or saved nothing", "tail": first["tail"]}
    victim = os.path.join(ckpt, rng.choice(files))
    size = os.path.getsize(victim)
    offset = rng.randrange(0, max(1, size - 16))
    with open(victim, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(16))
    second = _run(_mpich(ckpt), env, 120)
    shutil.rmtree(ckpt, ignore_errors=True)
    return {"ok": second["ok"], "file": os.path.basename(victim), "offset": offset, "size": size,
            "rc": second["rc"], "recovery_s": second["seconds"],
            "warned": "checkpoint" in second["tail"], "tail": "" if second["ok"] else second["tail"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--scenarios", default="kill,preempt,corrupt")
    p.add_argument("--venv", default=os.path.join(ROOT, "build", "venv-ompi"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=default_json("chaos"))
    a = p.parse_args()
    scenarios = a.scenarios.split(",")
    for ulfm in ("kill", "array"):
        if ulfm in scenarios and not os.path.exists(os.path.join(a.venv, "bin", "mpiexec")):
            print(f"{ulfm}: no Open MPI venv at {a.venv} (run tests/ulfm once to build it); skipped")
            scenarios.remove(ulfm)
    results: dict[str, list] = {s: [] for s in scenarios}
    work = tempfile.mkdtemp(prefix="dagmpi-chaos-")
    full = 3.0
    if "preempt" in scenarios:  # how long an uninterrupted run takes: signals land inside it
        probe = _run(_mpich(os.path.join(work, "probe")), _env({"DAGMPI_CHECKPOINT_INTERVAL": "0.2"}), 120)
        full = probe["seconds"]
        shutil.rmtree(os.path.join(work, "probe"), ignore_errors=True)
    try:
        for i in range(a.runs):
            seed = a.seed + i
            for s in scenarios:
                r = {"kill": lambda: kill_run(a.venv, seed, work),
                     "preempt": lambda: preempt_run(seed, work, full),
                     "corrupt": lambda: corrupt_run(seed, work),
                     "array": lambda: array_run(a.venv, seed, work)}[s]()
                r["seed"] = seed
                results[s].append(r)
                if not r["ok"]:
                    print(f"{s} seed {seed}: FAILED\n{r.get('tail', '')}", flush=True)
            done = ", ".join(f"{s} {sum(r['ok'] for r in rs)}/{len(rs)}" for s, rs in results.items())
            print(f"[{i + 1}/{a.runs}] {done}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nChaos: {a.runs} runs per scenario (every success is the exact expected result)")
    print(f"{'scenario':<10} {'successes':>12} {'slowest recovery':>18} {'median':>8}")
    summary = {}
    for s, rs in results.items():
        rec = sorted(r["recovery_s"] for r in rs if r.get("recovery_s") is not None)
        ok = sum(r["ok"] for r in rs)
        slow = f"{rec[-1]:.2f} s" if rec else "-"
        med = f"{rec[len(rec) // 2]:.2f} s" if rec else "-"
        print(f"{s:<10} {f'{ok}/{len(rs)}':>12} {slow:>18} {med:>8}")
        summary[s] = {"ok": ok, "runs": len(rs), "slowest_recovery_s": rec[-1] if rec else None}
    print("(kill: death detected -> finished count regained; preempt, corrupt: the whole rerun; "
          "array: the loop with launches and a kill)")
    if "array" in results:
        rs = results["array"]
        print("\narray loop under ULFM (256 x 256, 16 blocks, 60 steps), median seconds of the loop "
              "[values computed again]:")
        print(f"{'':<22} {'no kill':>9} {'one rank killed':>16} {'ratio':>7}")
        for mode, label in (("launches", "launches (default)"), ("blocks", "one task per block")):
            def med(key: str) -> Optional[float]:
                v = sorted(r[key] for r in rs if r.get(key) is not None)
                return v[len(v) // 2] if v else None
            a0, a1, rc = med(f"{mode}_s"), med(f"{mode}-kill_s"), med(f"{mode}-kill_recomputed")
            ratio = f"{a1 / a0:.2f}" if a0 and a1 else "-"
            print(f"{label:<22} {a0 or 0:>8.3f}s {a1 or 0:>9.3f}s [{rc or 0:>4}] {ratio:>7}")
            summary[f"array {mode}"] = {"no_kill_s": a0, "kill_s": a1, "recomputed": rc}
    if "preempt" in results:
        codes: dict = {}
        for r in results["preempt"]:
            codes[r["first_rc"]] = codes.get(r["first_rc"], 0) + 1
        print(f"preempt: exit status of the signalled run -> count: {codes}")
    with open_json(a.json) as f:
        json.dump({"summary": summary, "runs": results}, f, indent=2)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
