"""Processors, scopes and resources end to end (run with DAGMPI_RESOURCES=licence=1, >= 2 workers)."""
import time

import dagmpi
from dagmpi.runtime import context


def where(delay=0.0):
    t0 = time.time()
    time.sleep(delay)
    return context.current_client().rank, t0, time.time()


if __name__ == "__main__":
    procs = dagmpi.processors()
    ranks = [p["rank"] for p in procs]
    assert ranks == dagmpi.workers(), (ranks, dagmpi.workers())
    for p in procs:
        assert p["cpu_slots"] >= 1 and p["memory"] > 0 and p["resources"]["licence"] == 1.0, p
    checks = 0
    # rank scope honoured
    for r in ranks:
        got = dagmpi.fetch([dagmpi.spawn(where, options=dagmpi.Options(scope=dagmpi.scope(rank=r)))
                            for _ in range(4)])
        assert {g[0] for g in got} == {r}, got
    checks += 1
    # near=: runs where the given task's result lives
    anchor = dagmpi.spawn(where, options=dagmpi.Options(scope=dagmpi.scope(rank=ranks[-1])))
    dagmpi.wait([anchor])
    got = dagmpi.fetch([dagmpi.spawn(where, options=dagmpi.Options(scope=dagmpi.scope(near=anchor)))
                        for _ in range(4)])
    assert {g[0] for g in got} == {ranks[-1]}, got
    checks += 1
    # a custom resource every rank has once: tasks holding it never overlap on a rank
    lic = dagmpi.Options(resources={"licence": 1})
    got = dagmpi.fetch([dagmpi.spawn(where, 0.1, options=lic) for _ in range(3 * len(ranks))])
    for r in ranks:
        spans = sorted((a, b) for rr, a, b in got if rr == r)
        assert all(spans[i][1] <= spans[i + 1][0] + 1e-3 for i in range(len(spans) - 1)), spans
    checks += 1
    # impossible requests are refused at spawn with a clear message, and nothing is lost
    gpus = sum(len(p["gpus"]) for p in procs)
    impossible = [dagmpi.Options(resources={"licence": 2}),
                  dagmpi.Options(resources={"memory": "1000TiB"}),
                  dagmpi.Options(resources={"fpga": 1})]
    if gpus == 0:
        impossible.append(dagmpi.Options(scope=dagmpi.scope(gpu=True)))
    for opts in impossible:
        try:
            dagmpi.spawn(where, options=opts)
        except ValueError as exc:
            assert "impossible scope" in str(exc), str(exc)
            checks += 1
        else:
            raise AssertionError(f"{opts} was accepted")
    try:
        dagmpi.Options(resources={"memory": "lots"})
    except ValueError as exc:
        assert "memory" in str(exc)
        checks += 1
    assert dagmpi.fetch(dagmpi.spawn(where))[0] in ranks
    print(f"SCOPES-OK {checks}")
