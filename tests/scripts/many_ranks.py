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


def seed(i):
    return float(i)


def stencil(i, *ins):
    return sum(ins) + i


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
    # launches over every worker (more ranks than a tree node has children: each launch
    # goes down its tree of ranks and its reports come back up it), then freed
    m = 3 * len(workers)
    proj = dagmpi.Projection("offsets", (-1, 0, 1))
    u, ref = dagmpi.spawn_many(seed, m), [float(i) for i in range(m)]
    for _ in range(6):
        u = dagmpi.spawn_many(stencil, m, reads=[(u, proj)])
        ref = [sum(ref[j] for j in proj.points(i, m)) + i for i in range(m)]
    assert u.fetch() == ref
    del u
    print("ok launches down trees", flush=True)
    # checkpointed tasks: the second run restores them
    saved = [dagmpi.spawn(square, 1000 + i, options=dagmpi.Options(checkpoint=True)) for i in range(len(workers))]
    vals = dagmpi.fetch(saved)
    assert all(np.array_equal(v, square(1000 + i)) for i, v in enumerate(vals))
    print("ok checkpointed tasks", flush=True)
    from dagmpi.runtime import context

    print("RESTORED", context._runtime.driver.n_restored, flush=True)
    print(f"script seconds {time.time() - t0:.2f}", flush=True)
    print("MANY-RANKS-OK", flush=True)
