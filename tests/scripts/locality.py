"""Worker-to-worker data: a 64 MiB value moves from rank 1 to rank 2 without touching rank 0."""
import numpy as np

import dagmpi
from dagmpi.runtime import context


def make(n):
    return np.arange(n, dtype=np.float64)


def consume(a):
    return float(a[-1]), a.nbytes


def store_size():
    return len(context.current_client().store)


if __name__ == "__main__":
    ws = dagmpi.workers()
    assert len(ws) >= 2, ws
    n = 8 << 20
    a = dagmpi.spawn(make, n, options=dagmpi.Options(scope=dagmpi.scope(rank=ws[0])))
    b = dagmpi.spawn(consume, a, options=dagmpi.Options(scope=dagmpi.scope(rank=ws[1])))
    assert dagmpi.fetch(b) == (n - 1.0, n * 8)
    tr = context._runtime.transport
    assert tr.bytes_received < 1 << 20, f"rank 0 received {tr.bytes_received} bytes"
    # reference counting: a long pipeline leaves nothing behind on the workers
    for i in range(50):
        x = dagmpi.spawn(make, 1 << 17)
        y = dagmpi.spawn(consume, x)
        del x
        dagmpi.fetch(y)
        del y
    del a, b
    import time
    for _ in range(200):
        sizes = [dagmpi.fetch(dagmpi.spawn(store_size, options=dagmpi.Options(scope=dagmpi.scope(rank=r))))
                 for r in ws]
        if sum(sizes) <= len(ws):  # only the store_size results that are still referenced
            break
        time.sleep(0.05)
    assert sum(sizes) <= len(ws), sizes
    print("LOCALITY-OK", tr.bytes_received)
