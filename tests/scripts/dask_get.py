"""Dask collections on dagmpi.get against Dask's own synchronous scheduler.

    python -m dagmpi tests/scripts/dask_get.py        (in-process or under mpiexec)

Prints ``ok <what>`` per check and ``ALL OK``.
"""
import operator

import dask
import dask.array as da
import dask.bag as db
import numpy as np
from dask import delayed

import dagmpi


def check(what, got, want):
    if isinstance(want, np.ndarray):
        assert np.allclose(got, want), (what, got, want)
    else:
        assert got == want, (what, got, want)
    print("ok", what, flush=True)


def where_am_i(x):
    return dagmpi.info()["rank"]


class Boom(Exception):
    pass


def explode(x):
    raise Boom(f"boom {x}")


if __name__ == "__main__":
    sync = "sync"
    # dask.delayed, including a shared dependency and nested keys
    a = delayed(operator.add)(1, 2)
    b = delayed(operator.mul)(a, 10)
    c = delayed(sum)([a, b, 4])
    check("delayed", dask.compute(c, b, scheduler=dagmpi.get), (37, 30))
    check("delayed list", dask.compute([delayed(pow)(i, 2) for i in range(6)], scheduler=dagmpi.get)[0],
          [0, 1, 4, 9, 16, 25])
    # dask.array: transpose + reduction, map_overlap, matmul, in a config context
    x = da.random.default_rng(1).random((600, 600), chunks=150)
    with dask.config.set(scheduler=dagmpi.get):
        check("array (x + x.T).mean(axis=0)", (x + x.T).mean(axis=0).compute(),
              (x + x.T).mean(axis=0).compute(scheduler=sync))
        y = x.map_overlap(lambda blk: blk * 2 + 1, depth=2, boundary="reflect")
        check("array map_overlap", y.compute(), y.compute(scheduler=sync))
        check("array matmul", (x @ x.T).sum().compute(), (x @ x.T).sum().compute(scheduler=sync))
    # the tasks ran on the worker ranks (under MPI), not on the driver
    ranks = set(da.map_blocks(lambda blk: np.full((1, 1), where_am_i(0)), x, chunks=(1, 1))
                .compute(scheduler=dagmpi.get).ravel().tolist())
    assert ranks <= set(dagmpi.workers()), ranks
    check("blocks computed on worker ranks", bool(ranks), True)
    # dask.bag
    bag = db.from_sequence(range(100), npartitions=7)
    check("bag", bag.map(lambda v: v * 3).filter(lambda v: v % 2 == 0).sum().compute(scheduler=dagmpi.get),
          bag.map(lambda v: v * 3).filter(lambda v: v % 2 == 0).sum().compute(scheduler=sync))
    # dask.dataframe, where pandas is installed
    try:
        import dask.dataframe as dd
        import pandas as pd
    except ImportError:
        print("ok dataframe skipped (no pandas)")
    else:
        pdf = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.arange(1000.0)})
        ddf = dd.from_pandas(pdf, npartitions=5)
        got = ddf.groupby("k").v.mean().compute(scheduler=dagmpi.get).sort_index()
        check("dataframe groupby mean", got.to_numpy(), pdf.groupby("k").v.mean().sort_index().to_numpy())
    # the older tuple form, called directly
    dsk = {"x": 1, "y": (operator.add, "x", 10), "z": (sum, ["x", "y"]), "w": "z"}
    check("tuple graph", dagmpi.get(dsk, ["w", ["y", "x"]]), (12, (11, 1)))
    # an exception keeps its type
    try:
        delayed(explode)(1).compute(scheduler=dagmpi.get)
    except Boom as exc:
        check("exception type", "boom 1" in str(exc), True)
    else:
        raise AssertionError("no exception")
    try:
        dagmpi.get({"a": 1}, "missing")
    except KeyError as exc:
        check("missing key", "missing" in str(exc), True)
    print("ALL OK")
