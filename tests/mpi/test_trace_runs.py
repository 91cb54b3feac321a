"""Traces of real runs (in-process and under mpiexec): one complete event per task run,
ranks and times consistent, transfers matched to their tasks, the summary's counts equal
to the run's, a Gantt PNG that decodes; progress bars and the INFO lines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, run_dagmpi

pytestmark = pytest.mark.mpi

RUNS, TASKS, FAILED_RUNS = 49, 48, 2


@pytest.mark.parametrize("n", [None, 3, 5], ids=["inproc", "n3", "n5"])
def test_trace_of_a_run_has_one_event_per_task_run_and_matched_transfers(tmp_path, n):
    path = tmp_path / "run.trace.json"
    r = run_dagmpi("traced.py", n=n, timeout=120, args=[tmp_path], launcher_args=["--trace", str(path)],
                   env={"DAGMPI_WORKERS": "2"})
    assert r.returncode == 0, r
    assert "RESULT 1400000.0 second attempt ok ValueError 30" in r.stdout, r
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    xs = [e for e in events if e["ph"] == "X"]
    assert len(xs) == RUNS
    assert len({e["args"]["task_id"] for e in xs}) == TASKS
    names = sorted(e["name"] for e in xs)
    assert names.count("load") == 8 and names.count("add") == 7 and names.count("flaky") == 2
    workers = {1, 2} if n is None else set(range(1, n))
    makespan_us = (doc["otherData"]["end"] - doc["otherData"]["start"]) * 1e6
    for e in xs:
        assert e["pid"] in workers, e
        assert 0 <= e["ts"] and e["dur"] >= 0 and e["ts"] + e["dur"] <= makespan_us + 1, e
        if e["args"]["submit"] is not None:
            assert e["args"]["submit"] * 1e6 <= e["ts"] + 1000, e  # submitted before it started (1 ms slack)
    failed = [e for e in xs if not e["args"]["ok"]]
    assert sorted(e["name"] for e in failed) == ["bad", "flaky"]
    # process and thread names for every rank that ran something
    procs = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert {e["pid"] for e in xs} <= procs
    # instants: two failures, one retry
    kinds = [e["cat"] for e in events if e["ph"] == "i"]
    assert kinds.count("failure") == 2 and kinds.count("retry") == 1, kinds
    # every input that came from another rank is a flow from its producer's slice to its consumer's
    by_task = {e["args"]["task_id"]: e for e in xs if e["args"]["ok"]}
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts.keys() == ends.keys()
    crossing = [(e, inp) for e in xs for inp in e["args"]["inputs"] if inp[1] >= 0 and inp[1] != e["pid"]]
    assert len(starts) == len(crossing)
    if n is not None and n >= 3:
        assert crossing, "a tree over several ranks moves data between them"
    for fid, s in starts.items():
        f = ends[fid]
        consumer = next(e for e in xs if e["pid"] == f["pid"] and e["tid"] == f["tid"] and e["ts"] == f["ts"])
        producer_id = next(inp[0] for inp in consumer["args"]["inputs"]
                           if inp[1] == s["pid"] and by_task[inp[0]]["pid"] == s["pid"])
        producer = by_task[producer_id]
        assert (s["pid"], s["tid"]) == (producer["pid"], producer["tid"])
        assert producer["ts"] <= s["ts"] <= producer["ts"] + producer["dur"]
        assert s["args"]["nbytes"] > 0 or n is None  # (in-process values move by reference)
    # the summary counts what ran
    out = subprocess.run([sys.executable, "-m", "dagmpi", "trace", "summary", str(path), "--json"],
                         capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert out.returncode == 0, out
    s = json.loads(out.stdout)
    assert (s["totals"]["runs"], s["totals"]["tasks"], s["totals"]["failed"], s["totals"]["retries"]) == \
        (RUNS, TASKS, FAILED_RUNS, 1), s["totals"]
    fn = {f["name"]: f for f in s["functions"]}
    assert fn["load"]["runs"] == 8 and fn["load"]["bytes_out"] >= 8 * 400_000
    # ... and the Gantt chart is a PNG that decodes
    png = tmp_path / "run.png"
    out = subprocess.run([sys.executable, "-m", "dagmpi", "trace", "gantt", str(path), "-o", str(png)],
                         capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert out.returncode == 0, out
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400


def test_progress_bar_and_info_lines(tmp_path):
    r = run_dagmpi("traced.py", n=3, timeout=120, args=[tmp_path, 0.12],
                   launcher_args=["--log-level", "INFO"], env={"DAGMPI_PROGRESS": "1"})
    assert r.returncode == 0, r
    err = r.stderr
    assert "dagmpi wait" in err and "30/30" in err, err  # the tqdm bar of dagmpi.wait on 30 tasks
    starts = [ln for ln in err.splitlines() if "dagmpi started:" in ln]
    assert len(starts) == 1 and "3 ranks" in starts[0] and "MPICH" in starts[0] and "slots per worker 1" in starts[0]
    ends = [ln for ln in err.splitlines() if "run summary:" in ln]
    assert len(ends) == 1, err
    assert "47 tasks run" in ends[0] and "1 retried" in ends[0] and "1 failed" in ends[0], ends[0]


def test_no_progress_bar_when_not_asked(tmp_path):
    r = run_dagmpi("traced.py", n=3, timeout=120, args=[tmp_path, 0.12])
    assert r.returncode == 0, r
    assert "dagmpi wait" not in r.stderr and "it/s" not in r.stderr, r  # stderr is not a terminal here
