"""A launch spawned by a task on a worker, checkpointed: the rerun reads its points back.

    python -m dagmpi tests/scripts/nested_launch_ckpt.py CKPT_DIR LOG_FILE

Prints ``RESULT <sum>`` and ``RUNS <points run so far, both runs>``.
"""
import sys

import dagmpi


def square(i, log):
    with open(log, "a") as fh:
        fh.write("point\n")
    return i * i


def outer(log):
    """On a worker: a launch of its own, whose points are saved (checkpoint=True)."""
    return sum(dagmpi.spawn_many(square, 6, log, checkpoint=True).fetch())


if __name__ == "__main__":
    ckpt, log = sys.argv[1], sys.argv[2]
    dagmpi.init(checkpoint=ckpt)
    print("RESULT", dagmpi.spawn(outer, log).fetch(timeout=60), flush=True)
    dagmpi.shutdown()
    with open(log) as fh:
        print("RUNS", fh.read().count("point"), flush=True)
