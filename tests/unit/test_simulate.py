"""benchmarks/simulate.py charges rank 0 the driver's own cost of each spawn (a base
cost and one per Task argument) and of each launch, measured in this process."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))

import simulate  # noqa: E402


def test_spawn_cost_is_charged_per_spawn_and_per_task_argument():
    graph = simulate.task_graph("stencil_1d", 8, 4)
    deps = sum(len(d) for _, d in graph)
    runs = {}
    for base, per in ((0.0, 0.0), (1e-3, 0.0), (0.0, 1e-3)):
        sim = simulate.Simulation(8, 5e-6, 10e9, 1e-3, base, per)
        sim.run(graph)
        assert sim.finished == len(graph)
        runs[base, per] = sim.rank0_cpu
    # (the scheduler's own time varies a little from run to run: well under 1 ms per task)
    assert abs(runs[1e-3, 0.0] - runs[0.0, 0.0] - len(graph) * 1e-3) < 0.2 * len(graph) * 1e-3
    assert abs(runs[0.0, 1e-3] - runs[0.0, 0.0] - deps * 1e-3) < 0.2 * deps * 1e-3


def test_the_spawn_cost_is_measured_in_an_embedded_runtime():
    from dagmpi.runtime import context

    base, per_dep, launch = simulate.measure_spawn_cost(n=400, passes=2)
    assert 0 < base < 1e-3 and 0 <= per_dep < 1e-3 and 0 < launch < 1e-2
    assert context._runtime is None  # (the embedded runtime is shut down again)
