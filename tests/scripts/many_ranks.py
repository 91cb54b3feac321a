"""A DAG, an array operation and a checkpointed computation on many ranks.

    mpiexec -n 65 python -m dagmpi tests/scripts/many_ranks.py CKPT_DIR

Prints ``ok ...`` per check, ``RESTORED <n>`` and ``MANY-RANKS-OK``; run it twice with the
same folder and the second run completes the checkpointed tasks from it.
"""
import sys
import time

import numpy as np

import dagmpi
import dagmpi.array as da


def square(i):
    return np.full(1000, float(i * i))


def add(a, b):
    return a + b


def where():
    return dagmpi.info()["rank"]


if __name__ == "__main__":
    t0 = time.time()
    dagmpi.init(checkpoint=sys.argv[1], policy="marked")
    workers = dagmpi.workers()
    print(f"workers {len(workers)}", flush=True)
    # a DAG over every worker: one pinned task per rank, then a tree of sums
    ranks = dagmpi.fetch([dagmpi.spawn(where, options=dagmpi.Options(scope=dagmpi.scope(rank=r)))
                          for r in workers])
    assert ranks == workers, (ranks, workers)
    parts = [dagmpi.spawn(square, i) for i in range(2 * len(workers))]
    while len(parts) > 1:
        parts = [dagmpi.spawn(add, parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    n = 2 * len(workers)
    total = dagmpi.fetch(parts[0])
    assert np.allclose(total, sum(i * i for i in range(n))), total[0]
    print("ok dag over every worker", flush=True)
    # an array operation whose blocks cover the workers
    A = da.random.default_rng(5).random((64 * len(workers), 256), blocks=(64, 256))
    got = dagmpi.fetch(((A * 2 + 1) ** 2).sum(axis=1))
    ref = ((A.to_numpy() * 2 + 1) ** 2).sum(axis=1)
    assert np.allclose(got, ref)
    owners = set(A.owners().ravel().tolist())
    assert owners == set(workers), (sorted(owners), workers)
    print("ok array operation on every worker", flush=True)
    # checkpointed tasks: the second run restores them
    saved = [dagmpi.spawn(square, 1000 + i, options=dagmpi.Options(checkpoint=True)) for i in range(len(workers))]
    vals = dagmpi.fetch(saved)
    assert all(np.array_equal(v, square(1000 + i)) for i, v in enumerate(vals))
    print("ok checkpointed tasks", flush=True)
    from dagmpi.runtime import context

    print("RESTORED", context._runtime.driver.n_restored, flush=True)
    print(f"script seconds {time.time() - t0:.2f}", flush=True)
    print("MANY-RANKS-OK", flush=True)
