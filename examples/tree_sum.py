"""The tree-sum demo: a task that spawns a tree of tasks and fetches the total.

    python examples/tree_sum.py                        # in-process
    mpiexec -n 5 python -m dagmpi examples/tree_sum.py # rank 0 drives, ranks 1-4 compute
"""

import numpy as np

import dagmpi


def load(i):
    return np.full(1_000_000, i, dtype=np.float64)


def add(a, b):
    return a + b


def total(x):
    return float(x.sum())


def tree_sum(n):  # a task that spawns and fetches tasks
    parts = [dagmpi.spawn(load, i) for i in range(n)]
    while len(parts) > 1:
        parts = [dagmpi.spawn(add, parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    return dagmpi.fetch(dagmpi.spawn(total, parts[0]))


if __name__ == "__main__":
    t = dagmpi.spawn(tree_sum, 16)
    print(dagmpi.fetch(t))
