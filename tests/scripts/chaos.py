"""Kill worker ranks with SIGKILL while a 10k-task graph with data dependencies runs.

Run under ``mpiexec --with-ft ulfm`` (Open MPI) to check that the job finishes
with the right answer; under MPICH, to check that it ends quickly and clearly.

    chaos.py [--tasks N] [--kill K] [--mode random|holder] [--seed S] [--json FILE]

``random``: each of K kills hits a random worker when a random share (10-80%)
of the graph has finished.  ``holder``: one big value that every task of the
middle layers reads lives on one rank, which is killed half-way.  The graph:
``layers`` of ``width`` tasks, each reading two tasks of the layer before (and
the big value in ``holder`` mode), then a tree reduction; the expected result
is computed here without dagmpi.
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time

import numpy as np

import dagmpi
from dagmpi.runtime import context

M = 1_000_003


def leaf(i):
    return (i * 7919) % M


WORK = 0.0


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def mix(a, b, k, work=0.0):
    if work:
        spin(work)
    return (a * 31 + b * 17 + k) % M


def mix_big(a, b, k, big):
    return (a * 31 + b * 17 + k + int(big[k % len(big)])) % M


def add(*xs):
    return sum(xs) % M


def make_big(n):
    return np.arange(n, dtype=np.int64) % 97


def expected(width, layers, big):
    prev = [leaf(i) for i in range(width)]
    for layer in range(1, layers):
        cur = []
        for i in range(width):
            k = layer * width + i
            a, b = prev[i], prev[(i * 7 + layer) % width]
            cur.append(mix_big(a, b, k, big) if big is not None else mix(a, b, k))
        prev = cur
    while len(prev) > 1:
        prev = [add(*prev[i:i + 8]) for i in range(0, len(prev), 8)]
    return prev[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--kill", type=int, default=1)
    ap.add_argument("--mode", choices=("random", "holder", "none"), default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    ap.add_argument("--at", type=float, default=0.0, help="kill when this share of the graph is done")
    ap.add_argument("--work", type=float, default=0.0, help="seconds of CPU work per task")
    ap.add_argument("--checkpoint", default="", help="save every result there (policy all)")
    args = ap.parse_args()
    if args.checkpoint:
        dagmpi.init(checkpoint=args.checkpoint, checkpoint_policy="all")
    rng = random.Random(args.seed)
    width = 200
    layers = max(2, args.tasks // width)
    procs = dagmpi.processors()
    driver = context.current_client()
    ranks = [p["rank"] for p in procs]
    pids = {p["rank"]: p["pid"] for p in procs}
    n_total = width * layers
    victims = []
    holder = None
    big = bigv = None
    if args.mode == "holder":
        bigv = make_big(1 << 16)
        big = dagmpi.spawn(make_big, 1 << 16, options=dagmpi.Options(name="big"))
        dagmpi.wait([big])
        holder = big._owner  # the rank that holds it: killed half-way, it is computed again
        victims = [(0.5, holder)]
    elif args.mode == "random":
        order = rng.sample(ranks, min(args.kill, len(ranks) - 1))
        victims = sorted((args.at or rng.uniform(0.1, 0.8), r) for r in order)
    killed = []
    regained = []  # when the finished count got back to where it was at each kill

    def killer():
        for share, rank in victims:
            while driver.scheduler.n_finished < share * n_total:
                time.sleep(0.001)
            done_at_kill = driver.scheduler.n_finished
            os.kill(pids[rank], signal.SIGKILL)
            killed.append((rank, time.time(), done_at_kill))
            print(f"chaos: killed rank {rank} (pid {pids[rank]}) at {driver.scheduler.n_finished}"
                  f"/{n_total} finished", file=sys.stderr, flush=True)

    def watch_recovery():
        seen = 0
        while len(regained) < len(victims):
            time.sleep(0.0005)
            fails = driver.failures
            if len(fails) > seen and len(killed) > seen:
                # the rank's death was handled: the finished count dropped by what is
                # recomputed; recovered when it is back where it was at the kill
                n = len(regained)
                target = killed[n][2]
                while driver.scheduler.n_finished < target:
                    time.sleep(0.0005)
                regained.append(time.time())
                seen += 1

    t0 = time.perf_counter()
    threading.Thread(target=killer, daemon=True).start()
    if victims:
        threading.Thread(target=watch_recovery, daemon=True).start()
    prev = [dagmpi.spawn(leaf, i) for i in range(width)]
    for layer in range(1, layers):
        cur = []
        for i in range(width):
            k = layer * width + i
            a, b = prev[i], prev[(i * 7 + layer) % width]
            cur.append(dagmpi.spawn(mix_big, a, b, k, big) if big is not None
                       else dagmpi.spawn(mix, a, b, k, args.work))
        prev = cur
    while len(prev) > 1:
        prev = [dagmpi.spawn(add, *prev[i:i + 8]) for i in range(0, len(prev), 8)]
    got = dagmpi.fetch(prev[0])
    seconds = time.perf_counter() - t0
    want = expected(width, layers, bigv)
    sched = driver.scheduler
    report = {"result": got, "expected": want, "seconds": seconds, "tasks": sched.n_submitted,
              "killed": [r for r, _, _ in killed], "failures": driver.failures,
              "rescheduled": sched.n_rescheduled, "recomputed": sched.n_recomputed,
              "reloaded": sched.n_reloaded,
              "kill_times": [t for _, t, _ in killed], "regained": regained,
              "detect_s": [f["detected"] - t for f, (_, t, _) in zip(driver.failures, killed)],
              "recover_s": [g - f["detected"] for f, g in zip(driver.failures, regained)]}
    print(f"result {got} expected {want} in {seconds:.2f} s; killed {report['killed']}; "
          f"rescheduled {sched.n_rescheduled}, recomputed {sched.n_recomputed}, "
          f"read back {sched.n_reloaded}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f)
    assert got == want, (got, want)
    assert len(killed) == len(victims), (killed, victims)
    print("OK")


if __name__ == "__main__":
    main()
