"""Uneven task durations: short tasks queued behind a long one are taken by an idle rank."""
import time

import dagmpi
from dagmpi.runtime import context


def work(i, seconds):
    t0 = time.time()
    time.sleep(seconds)
    return i, context.current_client().rank, t0, time.time()


if __name__ == "__main__":
    ws = dagmpi.workers()
    # short tasks first: the scheduler learns they are short and queues deeply...
    dagmpi.fetch([dagmpi.spawn(work, -1, 0.001) for _ in range(100)])
    # ...then one long task followed by short ones: the rank that got the long
    # task also got short ones queued behind it, which the other ranks must take.
    n = 40
    durations = [1.0] + [0.005] * (n - 1)
    tasks = [dagmpi.spawn(work, i, d) for i, d in enumerate(durations)]
    res = dagmpi.fetch(tasks)
    assert [r[0] for r in res] == list(range(n))
    _, long_rank, _, long_end = res[0]
    stuck = [r for r in res[1:] if r[1] == long_rank and r[2] >= long_end - 1e-3]
    stolen = context._runtime.driver.scheduler.n_stolen
    per_rank = {r: sum(1 for x in res if x[1] == r) for r in ws}
    assert all(per_rank[r] > 0 for r in ws), per_rank
    assert not stuck, f"{len(stuck)} short task(s) waited for the long one on rank {long_rank}"
    assert stolen > 0, "nothing was stolen"
    print(f"STEALING-OK per_rank={per_rank} stolen={stolen}")
