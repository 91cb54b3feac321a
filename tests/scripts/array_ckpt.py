"""A checkpointed time loop over a DArray, for the preempt-and-resume test.

    python -m dagmpi tests/scripts/array_ckpt.py CKPT_DIR LOG_FILE STEPS PAUSE

Prints ``RESULT <sha256 of the final array>`` and ``RESTORED <n>``.
"""
import hashlib
import sys
import time

import numpy as np

import dagmpi
import dagmpi.array as da


def relax(block, log, pause):
    with open(log, "a") as fh:
        fh.write("step\n")
    time.sleep(pause)
    return np.sqrt(block) + 0.25


def expected(steps):
    a = np.empty((32, 32))
    for i in range(4):  # da.random's per-block streams
        for j in range(4):
            rng = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(i, j)))
            a[8 * i:8 * i + 8, 8 * j:8 * j + 8] = rng.random((8, 8))
    for _ in range(steps):
        a = relax_np(a)
    return hashlib.sha256(a.tobytes()).hexdigest()


def relax_np(a):
    return (np.sqrt(a) + 0.25) * 0.5 + 1


if __name__ == "__main__":
    ckpt, log, steps, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    dagmpi.init(checkpoint=ckpt, policy="all")
    A = da.random.default_rng(3).random((32, 32), blocks=8)
    for step in range(steps):
        A = (da.map_blocks(relax, A, log, pause, dtype=np.float64) * 0.5 + 1).compute()
    final = A.to_numpy()
    print("RESULT", hashlib.sha256(final.tobytes()).hexdigest())
    print("RESTORED", dagmpi.runtime.context._runtime.driver.n_restored)
