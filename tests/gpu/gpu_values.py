"""CuPy values between GPU ranks on a real GPU (tests/gpu/test_gpu.py): run with
``mpiexec -n 3 python -m dagmpi``; ranks 1 and 2 share the machine's GPU.  A GPU
task on rank 1 makes CuPy arrays; GPU tasks get them as CuPy arrays with the same
bytes, CPU tasks and the driver as numpy arrays.  Prints ``OK`` lines."""

import time

import numpy as np

import dagmpi
from dagmpi.gpu import backend


def on(rank, gpu):
    return dagmpi.Options(scope=dagmpi.scope(rank=rank, gpu=gpu))


def expected():
    """The value, on the host: odd sizes, F order, empty, several 4 MiB chunks."""
    return {"a": np.arange(10_007, dtype=np.float64) * 0.5,
            "f": np.asfortranarray(np.arange(35, dtype=np.int32).reshape(5, 7)),
            "big": (np.arange(3 * (1 << 20) + 5) % 251).astype(np.uint8),
            "large": np.arange(9 * (1 << 20) + 3, dtype=np.float32),
            "c64": (np.arange(12) + 1j).astype(np.complex64),
            "empty": np.zeros(0),
            "host": np.full(4, 7.0)}


def make():
    """A GPU task's value: CuPy arrays (and one numpy array)."""
    import cupy

    v = {k: (x if k == "host" else cupy.asarray(x)) for k, x in expected().items()}
    v["f"] = cupy.asfortranarray(v["f"])
    return v


def check(v):
    """Run in a task: where each array is ('cupy'/'numpy') and that its bytes are right."""
    import cupy

    b = backend.get()
    want = expected()
    out = {}
    for k, x in v.items():
        space = "cupy" if isinstance(x, cupy.ndarray) else "numpy" if isinstance(x, np.ndarray) else type(x).__name__
        host = cupy.asnumpy(x) if space == "cupy" else x
        if space == "cupy" and x.size:
            assert x.device.id == b.device, (k, x.device.id, b.device)
        assert host.dtype == want[k].dtype and host.shape == want[k].shape, (k, host.dtype, host.shape)
        assert np.array_equal(host, want[k]), k
        if k == "f":
            assert host.flags.f_contiguous or x.flags.f_contiguous, "F order lost"
        out[k] = space
    return out


def kind(x):
    """'cupy' for a CuPy array, else the type's name."""
    import cupy

    return "cupy" if isinstance(x, cupy.ndarray) else type(x).__name__


def doubled(v):
    """A GPU task: its arrays (all CuPy: moved to its GPU) times 2, a new GPU value."""
    import cupy

    return {k: x * 2 for k, x in v.items() if isinstance(x, cupy.ndarray)}


def check_doubled(v):
    import cupy

    want = expected()
    for k, x in v.items():
        assert isinstance(x, cupy.ndarray), (k, type(x))
        assert np.array_equal(cupy.asnumpy(x), want[k] * 2), k
    return sorted(v)


def used_bytes():
    import cupy

    backend.get().synchronize()
    return int(cupy.get_default_memory_pool().used_bytes())


def big_value(nbytes):
    import cupy

    return cupy.ones(nbytes, cupy.uint8)


def main() -> None:
    src = dagmpi.spawn(make, options=on(1, True))
    device_keys = {k for k in expected() if k != "host"}
    for name, opts, space in [("gpu task on rank 2", on(2, True), "cupy"),
                              ("gpu task on rank 1 (same rank)", on(1, True), "cupy"),
                              ("cpu task on rank 2", on(2, False), "numpy"),
                              ("cpu task on rank 1", on(1, False), "numpy")]:
        kinds = dagmpi.fetch(dagmpi.spawn(check, src, options=opts))
        for k, where in kinds.items():
            # a GPU task gets host arrays moved to its GPU too (Options.move)
            assert where == space, (name, k, where, space)
        assert device_keys <= set(kinds), (name, kinds)
        print("OK", name, flush=True)
    v = dagmpi.fetch(src)
    want = expected()
    for k, x in v.items():
        assert type(x) is np.ndarray and np.array_equal(x, want[k]), (k, type(x))
    print("OK driver gets numpy", flush=True)
    d = dagmpi.spawn(doubled, src, options=on(2, True))
    keys = dagmpi.fetch(dagmpi.spawn(check_doubled, d, options=on(1, True)))
    assert set(keys) == set(expected()), keys  # "host" too: moved to the GPU of the task
    print("OK gpu -> gpu -> gpu", flush=True)
    host = dagmpi.spawn(np.arange, 5.0, options=on(2, False))
    got = dagmpi.fetch(dagmpi.spawn(kind, host, options=on(1, True)))
    assert got == "cupy", got
    print("OK numpy input to a gpu task", flush=True)
    # a 256 MiB value, moved to rank 2, is freed on both ranks once no handle needs it
    before = dagmpi.fetch([dagmpi.spawn(used_bytes, options=on(r, True)) for r in (1, 2)])
    big = dagmpi.spawn(big_value, 256 << 20, options=on(1, True))
    assert dagmpi.fetch(dagmpi.spawn(lambda x: int(x.sum()), big, options=on(2, True))) == 256 << 20
    del big
    deadline = time.monotonic() + 30
    while True:
        now = dagmpi.fetch([dagmpi.spawn(used_bytes, options=on(r, True)) for r in (1, 2)])
        if all(a <= b + (16 << 20) for a, b in zip(now, before)):
            break
        assert time.monotonic() < deadline, f"GPU memory in use on ranks 1, 2: {before} before, {now} after"
        time.sleep(0.2)
    print("OK released", flush=True)


if __name__ == "__main__":
    main()
