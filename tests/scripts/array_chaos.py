"""A map_overlap time loop under ULFM, one worker killed (SIGKILL) inside a block at a
step chosen by the seed: the answer must be numpy's (``benchmarks/chaos.py``'s
``kill-array`` scenario, with launches or, ``DAGMPI_ARRAY_LAUNCHES=0``, one task per block).

    array_chaos.py --seed S [--steps 40] [--size 64] [--blocks 16] [--kill 1] [--json PATH]

Prints ``OK <seconds of the loop>``; the JSON has the seconds, the step killed at and
what rank 0 reported (values computed again).
"""
import argparse
import json
import os
import random
import signal
import tempfile
import time

import numpy as np

import dagmpi.array as da
from dagmpi.api import context


def smooth(u, marker, step, kill_at):
    """A 5-point average; the top-left block kills its rank at step ``kill_at``, once."""
    if step == kill_at and u[0, 0] == -1.0 and u[0, 1] == -1.0 and u[1, 0] == -1.0:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
    return (u[1:-1, 1:-1] + u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:]) / 5


def reference(size, steps):
    want = np.zeros((size, size))
    for _ in range(steps):
        p = np.pad(want, 1, constant_values=-1.0)
        want = (p[1:-1, 1:-1] + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]) / 5
    return want


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--kill", type=int, default=1)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    kill_at = random.Random(a.seed).randrange(1, a.steps - 1) if a.kill else -1
    marker = os.path.join(tempfile.mkdtemp(prefix="dagmpi-array-chaos-"), "died")
    t0 = time.perf_counter()
    A = da.zeros((a.size, a.size), blocks=a.blocks)
    for step in range(a.steps):
        A = A.map_overlap(smooth, 1, boundary=-1.0, marker=marker, step=step, kill_at=kill_at)
    got = A.to_numpy(timeout=300)
    seconds = time.perf_counter() - t0
    np.testing.assert_allclose(got, reference(a.size, a.steps), rtol=1e-12)
    assert os.path.exists(marker) == bool(a.kill), "the rank was to die once"
    failures = [{k: v for k, v in f.items() if k != "detected"} for f in context.current_client().failures]
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seconds": seconds, "kill_at": kill_at, "failures": failures}, f)
    print(f"OK {seconds:.3f}", flush=True)
