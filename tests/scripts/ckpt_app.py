"""A checkpointed pipeline whose tasks log each run, for kill/preempt/resume tests.

    python -m dagmpi tests/scripts/ckpt_app.py CKPT_DIR LOG_FILE [N] [SLEEP]

Prints ``RESULT <sha256 of the final array>`` and ``RESTORED <n>``.
"""
import hashlib
import sys
import time

import numpy as np

import dagmpi


def log_run(log, what):
    with open(log, "a") as fh:
        fh.write(what + "\n")
        fh.flush()


def make(i, log, pause):
    log_run(log, f"make {i}")
    time.sleep(pause)
    rng = np.random.default_rng(i)
    return rng.standard_normal(50_000)


def combine(a, b, log, pause):
    log_run(log, "combine")
    time.sleep(pause)
    return np.sort(a + b)[::-1].copy()


def summary(x, log):
    log_run(log, "summary")
    return {"n": len(x), "head": x[:3].tolist()}


if __name__ == "__main__":
    ckpt, log = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 24
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
    dagmpi.init(checkpoint=ckpt, policy="all")
    parts = [dagmpi.spawn(make, i, log, pause) for i in range(n)]
    while len(parts) > 1:
        parts = [dagmpi.spawn(combine, parts[i], parts[i + 1], log, pause) if i + 1 < len(parts)
                 else parts[i] for i in range(0, len(parts), 2)]
    final = dagmpi.fetch(parts[0])
    info = dagmpi.fetch(dagmpi.spawn(summary, parts[0], log))
    assert info["n"] == len(final)
    print("RESULT", hashlib.sha256(final.tobytes()).hexdigest())
    print("RESTORED", dagmpi.runtime.context._runtime.driver.n_restored)
