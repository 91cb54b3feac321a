"""GPU code paths on the simulated GPU (``DAGMPI_GPU_SIM``): run with 4 ranks,
ranks 1 and 2 with a (simulated) GPU, rank 3 CPU-only.  Prints ``OK`` lines."""

import sys

import numpy as np

import dagmpi
from dagmpi.gpu import backend


def on(rank, gpu=False, **kw):
    return dagmpi.Options(scope=dagmpi.scope(rank=rank, gpu=gpu), **kw)


def make(n, scale):
    """A GPU task's result: device arrays of odd sizes, F order, empty, in a dict."""
    b = backend.get()
    a = b.to_device(np.arange(n, dtype=np.float64) * scale)
    f = b.to_device(np.asfortranarray(np.arange(35, dtype=np.int32).reshape(5, 7)))
    return {"a": a, "f": f, "empty": b.to_device(np.zeros(0)), "small": b.to_device(np.ones(3, np.float32)),
            "host": np.full(4, 7.0)}


def describe(v):
    """Where each array of ``v`` lives on the rank that runs this: 'gpu' or 'cpu'."""
    b = backend.get()
    def where(x):
        return "gpu" if b is not None and b.is_device(x) else "cpu"
    return {k: (where(x), x.shape, bool(x.flags.f_contiguous), float(np.asarray(x).sum()) if x.size else 0.0)
            for k, x in v.items()}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_007
    src = dagmpi.spawn(make, n, 2.0, options=on(1, gpu=True))
    want = {"a": 2.0 * n * (n - 1) / 2, "f": float(sum(range(35))), "empty": 0.0, "small": 3.0, "host": 28.0}
    for name, opts, space in [("gpu task on rank 2", on(2, gpu=True), "gpu"),
                              ("cpu task on rank 3", on(3), "cpu"),
                              ("cpu task on rank 1 (same rank)", on(1), "cpu"),
                              ("move=False task on rank 1", on(1, move=False), "gpu"),
                              ("gpu task on rank 1 (same rank)", on(1, gpu=True), "gpu")]:
        d = dagmpi.fetch(dagmpi.spawn(describe, src, options=opts))
        for k, (where, shape, fortran, total) in d.items():
            exp_space = "cpu" if k == "host" and space == "cpu" else space
            if k == "host" and space == "gpu" and "move" not in name:
                exp_space = "gpu"
            if k == "host" and "move" in name:
                exp_space = "cpu"
            assert where == exp_space, (name, k, where, exp_space)
            assert total == want[k], (name, k, total, want[k])
            if k == "f":
                assert fortran and shape == (5, 7), (name, shape, fortran)
        print("OK", name, flush=True)
    v = dagmpi.fetch(src)
    assert type(v["a"]) is np.ndarray and v["a"].sum() == want["a"], type(v["a"])
    print("OK driver gets numpy", flush=True)
    # a CPU result (numpy) given to a GPU task arrives on the GPU
    host = dagmpi.spawn(np.arange, 5.0, options=on(3))
    d = dagmpi.fetch(dagmpi.spawn(lambda x: describe({"x": x}), host, options=on(2, gpu=True)))
    assert d["x"][0] == "gpu" and d["x"][3] == 10.0, d
    print("OK numpy input to a gpu task", flush=True)
    # gpu_memory: offered by GPU ranks only; a request no rank meets is refused at spawn
    t = dagmpi.spawn(lambda: backend.get() is not None, options=dagmpi.Options(resources={"gpu_memory": "1GiB"}))
    assert dagmpi.fetch(t) is True
    try:
        dagmpi.spawn(lambda: 1, options=dagmpi.Options(resources={"gpu_memory": "1PiB"}))
    except ValueError as exc:
        assert "gpu_memory" in str(exc), exc
        print("OK gpu_memory", flush=True)
    else:
        raise AssertionError("a gpu_memory request no rank offers was accepted")


def made(directory, n):
    """A checkpointed GPU task: leaves a mark each time it really runs."""
    import os

    with open(os.path.join(directory, "ran"), "a") as fh:
        fh.write("x")
    return make(n, 3.0)


def checkpointed(directory: str) -> None:
    """Run twice: the second run restores the GPU value from the checkpoint, and
    it arrives on the GPU of a GPU task, in host memory for a CPU task."""
    import os

    dagmpi.init(checkpoint=os.path.join(directory, "ckpt"))
    src = dagmpi.spawn(made, directory, 1001, options=on(1, gpu=True, checkpoint=True, key="gpu-src"))
    on_gpu = dagmpi.fetch(dagmpi.spawn(describe, src, options=on(2, gpu=True)))
    on_cpu = dagmpi.fetch(dagmpi.spawn(describe, src, options=on(3)))
    assert {v[0] for k, v in on_gpu.items()} == {"gpu"}, on_gpu
    assert {v[0] for v in on_cpu.values()} == {"cpu"}, on_cpu
    assert on_gpu["a"][3] == on_cpu["a"][3] == 3.0 * 1001 * 1000 / 2
    with open(os.path.join(directory, "ran")) as fh:
        print("OK checkpoint, runs of the producer:", len(fh.read()), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "ckpt":
        checkpointed(sys.argv[2])
    else:
        main()
