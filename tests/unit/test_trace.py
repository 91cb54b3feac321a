"""Trace exporters: the Chrome trace file and its loader, the summary, the Gantt chart and
``python -m dagmpi trace`` (synthetic traces: no MPI, no runtime)."""

from __future__ import annotations

import json
import os
import random

import matplotlib.image
import pytest

from dagmpi.trace import chrome, cli, gantt, summary
from dagmpi.trace.records import FROM_CHECKPOINT, Input, Instant, TaskRun, Trace

T0 = 1_700_000_000.0
A, B, C, D, RESTORED = 1, 2, 3, 4, 99


def run(task_id, name, rank, track, start, end, inputs=(), ok=True, attempt=0, submit=0.0) -> TaskRun:
    """A run with times in seconds after T0."""
    return TaskRun(task_id=task_id, name=name, rank=rank, track=track, start=T0 + start, end=T0 + end,
                   bytes_in=sum(i.nbytes for i in inputs), bytes_out=0 if not ok else 100 * task_id,
                   attempt=attempt, ok=ok, inputs=tuple(inputs), submit=T0 + submit if submit else 0.0)


def moved(dep, src, nbytes, asked, arrived) -> Input:
    return Input(dep=dep, src=src, nbytes=nbytes, asked=T0 + asked, arrived=T0 + arrived)


def near(seconds: float):
    """Equal to within a microsecond (an epoch time's float is only good to ~0.2 us)."""
    return pytest.approx(seconds, abs=1e-6)


def local(dep, rank) -> Input:
    return Input(dep=dep, src=rank, nbytes=0, asked=0.0, arrived=0.0)


def diamond() -> Trace:
    """a -> (b, c) -> d, with c failing once, d also reading a restored value from a checkpoint file.

    rank 1 (1 slot):  a [0, 1] on slot 1, b [1, 3] on slot 1
    rank 2 (2 slots): c#0 [1.0, 1.2] fails, c#1 [1.5, 2.5] on slot 1; d [3.5, 4] inline (track 0)
    """
    runs = [
        run(A, "a", 1, 1, 0.0, 1.0, submit=0.05),
        run(B, "b", 1, 1, 1.0, 3.0, [local(A, 1)]),
        run(C, "c", 2, 1, 1.0, 1.2, [moved(A, 1, 1000, 0.9, 1.0)], ok=False),
        run(C, "c", 2, 1, 1.5, 2.5, [moved(A, 1, 1000, 1.2, 1.5)], attempt=1),
        run(D, "d", 2, 0, 3.5, 4.0, [moved(B, 1, 500, 3.1, 3.4), local(C, 2),
                                     Input(RESTORED, FROM_CHECKPOINT, 300, T0 + 3.0, T0 + 3.05)]),
    ]
    instants = [
        Instant("restored", 0, T0 + 0.1, {"task_id": RESTORED}),
        Instant("failure", 2, T0 + 1.2, {"name": "c", "task_id": C}),
        Instant("retry", 0, T0 + 1.25, {"name": "c", "task_id": C, "attempt": 1}),
    ]
    ranks = {0: {"host": "n0", "slots": 0, "gpus": []}, 1: {"host": "n1", "slots": 1, "gpus": []},
             2: {"host": "n2", "slots": 2, "gpus": [0]}}
    return Trace(runs=runs, instants=instants, ranks=ranks, start=T0, end=T0 + 4.5,
                 meta={"argv": ["app.py", "--n", "3"], "nranks": 3})


def synthetic(nranks=3, tracks=2, ntasks=300, nnames=4, seed=0) -> Trace:
    """A random DAG run greedily on ``nranks`` x ``tracks``, with some failures and their retries."""
    rng = random.Random(seed)
    free = {(r, t): 0.0 for r in range(1, nranks + 1) for t in range(tracks)}
    done: dict[int, tuple[float, int]] = {}
    runs, instants = [], []
    for tid in range(ntasks):
        name = f"f{tid % nnames}"
        deps = rng.sample(sorted(done), k=min(len(done), rng.randint(0, 2)))
        ready = max((done[d][0] for d in deps), default=0.0)
        key = min(free, key=lambda k: max(free[k], ready))
        start, dur = max(free[key], ready) + 0.01, rng.uniform(0.01, 0.2)
        inputs = [local(d, key[0]) if done[d][1] == key[0] else moved(d, done[d][1], 800, start - 0.004, start)
                  for d in deps]
        if rng.random() < 0.03:
            runs.append(run(tid, name, key[0], key[1], start, start + dur, inputs, ok=False))
            instants.append(Instant("failure", key[0], T0 + start + dur, {"name": name}))
            start += dur + 0.01
            runs.append(run(tid, name, key[0], key[1], start, start + dur, inputs, attempt=1))
        else:
            runs.append(run(tid, name, key[0], key[1], start, start + dur, inputs))
        free[key] = start + dur
        done[tid] = (free[key], key[0])
    ranks = {r: {"host": f"n{r}", "slots": tracks - 1, "gpus": []} for r in range(1, nranks + 1)}
    return Trace(runs=runs, instants=instants, ranks={0: {"host": "n0", "slots": 0, "gpus": []}, **ranks},
                 start=T0, end=T0 + max(free.values()) + 0.1)


# ---------------------------------------------------------------------------- chrome


def events(doc, ph):
    return [e for e in doc["traceEvents"] if e["ph"] == ph]


def test_chrome_json_has_one_complete_event_per_run_on_its_rank_and_track():
    trace = diamond()
    doc = json.loads(json.dumps(chrome.to_chrome(trace)))  # valid JSON, nothing unserialisable
    assert doc["displayTimeUnit"] == "ms"
    xs = events(doc, "X")
    assert len(xs) == len(trace.runs)
    for r, ev in zip(trace.runs, xs):
        assert (ev["name"], ev["pid"], ev["tid"]) == (r.name, r.rank, r.track)
        assert ev["args"]["task_id"] == r.task_id and ev["args"]["attempt"] == r.attempt
        assert ev["ts"] == pytest.approx((r.start - T0) * 1e6, abs=0.5)
        assert ev["dur"] == pytest.approx((r.end - r.start) * 1e6, abs=0.5)
        assert ev["cat"] == ("task" if r.ok else "task,failed")
        assert ev["args"]["deps"] == [i.dep for i in r.inputs]
    d = xs[-1]["args"]
    assert d["inputs"][0] == [B, 1, 500, near(3.1), near(3.4)]
    assert d["inputs"][1] == [C, 2, 0, None, None]  # local: no times
    assert xs[0]["args"]["submit"] == near(0.05) and xs[1]["args"]["submit"] is None


def test_chrome_metadata_names_ranks_and_tracks():
    doc = chrome.to_chrome(diamond())
    meta = {(e["name"], e["pid"], e["tid"]): e["args"] for e in events(doc, "M")}
    assert meta[("process_name", 0, 0)] == {"name": "rank 0 (driver, n0)"}
    assert meta[("process_name", 1, 0)] == {"name": "rank 1 (n1)"}
    assert meta[("process_name", 2, 0)] == {"name": "rank 2 (n2)"}
    assert meta[("process_sort_index", 2, 0)] == {"sort_index": 2}
    assert meta[("thread_name", 2, 0)] == {"name": "comm thread (inline tasks)"}
    assert meta[("thread_name", 1, 1)] == {"name": "slot 1"}
    assert meta[("thread_name", 2, 1)] == {"name": "slot 1"}
    other = doc["otherData"]
    assert other["start"] == T0 and other["end"] == T0 + 4.5 and other["version"] == chrome.VERSION
    assert other["meta"] == {"argv": ["app.py", "--n", "3"], "nranks": 3}
    assert other["ranks"]["2"] == {"host": "n2", "slots": 2, "gpus": [0]}


def test_flows_go_from_the_producer_slice_to_the_consumer_start():
    trace = diamond()
    doc = chrome.to_chrome(trace)
    starts = {e["id"]: e for e in events(doc, "s")}
    ends = {e["id"]: e for e in events(doc, "f")}
    assert len(starts) == len(events(doc, "s")) == 3  # a->c#0, a->c#1, b->d; not the checkpoint read
    assert starts.keys() == ends.keys()
    us = lambda t: (t - T0) * 1e6  # noqa: E731
    expected = {  # consumer (pid, tid, ts) -> producer run
        (2, 1, us(T0 + 1.0)): trace.runs[0], (2, 1, us(T0 + 1.5)): trace.runs[0], (2, 0, us(T0 + 3.5)): trace.runs[1],
    }
    seen = set()
    for fid, f in ends.items():
        s = starts[fid]
        assert f["bp"] == "e" and s["cat"] == f["cat"] == "transfer" and s["name"] == f["name"] == "transfer"
        key = next(k for k in expected if k[:2] == (f["pid"], f["tid"]) and k[2] == pytest.approx(f["ts"], abs=0.5))
        prod = expected[key]
        seen.add(key)
        assert (s["pid"], s["tid"]) == (prod.rank, prod.track)
        assert us(prod.start) <= s["ts"] < us(prod.end)  # enclosed by the producer's slice
        assert s["ts"] == pytest.approx(us(prod.end), abs=0.5)
    assert seen == set(expected)
    b_to_d = next(s for s in starts.values() if s["args"]["dep"] == B)
    assert b_to_d["args"]["nbytes"] == 500 and b_to_d["args"]["seconds"] == near(0.3)


def test_instants_are_process_scoped_with_readable_names():
    doc = chrome.to_chrome(diamond())
    inst = events(doc, "i")
    assert [(e["name"], e["pid"], e["tid"], e["s"]) for e in inst] == [
        ("restored: task 99", 0, 0, "p"), ("failure: c", 2, 0, "p"), ("retry: c", 0, 0, "p")]
    assert inst[1]["ts"] == pytest.approx(1.2e6, abs=0.5) and inst[1]["args"] == {"name": "c", "task_id": C}


def assert_same_trace(got: Trace, want: Trace) -> None:
    assert (got.start, got.end, got.meta, got.ranks) == (want.start, want.end, want.meta, want.ranks)
    assert len(got.runs) == len(want.runs)
    for g, w in zip(got.runs, want.runs):
        for field in TaskRun._fields:
            gv, wv = getattr(g, field), getattr(w, field)
            if field in ("start", "end", "submit"):
                assert gv == pytest.approx(wv, abs=1e-6), field
            elif field == "inputs":
                assert len(gv) == len(wv)
                for gi, wi in zip(gv, wv):
                    assert gi[:3] == wi[:3]
                    assert gi.asked == pytest.approx(wi.asked, abs=1e-6)
                    assert gi.arrived == pytest.approx(wi.arrived, abs=1e-6)
                    assert (gi.asked == 0.0) == (wi.asked == 0.0)
            else:
                assert gv == wv, field
    assert len(got.instants) == len(want.instants)
    for g, w in zip(got.instants, want.instants):
        assert (g.kind, g.rank, g.args) == (w.kind, w.rank, w.args)
        assert g.time == pytest.approx(w.time, abs=1e-6)


@pytest.mark.parametrize("make", [diamond, synthetic])
def test_write_then_load_gives_the_trace_back(tmp_path, make):
    trace = make()
    path = str(tmp_path / "run.trace.json")
    chrome.write(trace, path)
    assert os.listdir(tmp_path) == ["run.trace.json"]  # the .tmp was renamed
    back = chrome.load(path)
    assert_same_trace(back, trace)
    assert summary.summarize(back)["totals"] == summary.summarize(trace)["totals"]


def test_a_trace_without_a_start_time_counts_from_its_first_event():
    trace = diamond()
    trace.start = 0.0
    doc = chrome.to_chrome(trace)
    assert min(e["ts"] for e in events(doc, "X")) == 0.0
    assert_same_trace(chrome.from_chrome(json.loads(json.dumps(doc))), trace)


def test_load_refuses_what_is_not_a_dagmpi_trace(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"traceEvents": [], "otherData": {}}))
    with pytest.raises(chrome.TraceFormatError, match="not one dagmpi wrote"):
        chrome.load(str(other))
    other.write_text("[1, 2]")
    with pytest.raises(chrome.TraceFormatError, match="no traceEvents"):
        chrome.load(str(other))


# ---------------------------------------------------------------------------- summary


def test_summary_of_the_diamond_matches_hand_computed_numbers():
    s = summary.summarize(diamond())
    assert s["makespan_s"] == near(4.0) and s["wall_s"] == near(4.5)
    assert s["totals"] == {"tasks": 4, "runs": 5, "failed": 1, "retries": 1, "restored": 1,
                           "bytes_moved": 2500, "bytes_from_checkpoint": 300}
    cp = s["critical_path"]  # a (1 s) -> b (2 s) -> d (0.5 s); c's chain is a -> c -> d = 2.5 s
    assert cp["seconds"] == near(3.5) and cp["tasks"] == 3 and cp["chain"] == [A, B, D]
    assert cp["makespan_ratio"] == near(4.0 / 3.5)
    fc = next(f for f in s["functions"] if f["name"] == "c")
    assert (fc["runs"], fc["failed"], fc["bytes_in"], fc["bytes_out"]) == (2, 1, 2000, 300)
    assert fc["total_s"] == near(1.2) and fc["mean_s"] == near(0.6)
    assert fc["p95_s"] == near(0.2 + 0.95 * (1.0 - 0.2))
    assert [f["name"] for f in s["functions"]] == ["b", "c", "a", "d"]  # by total time
    ranks = {r["rank"]: r for r in s["ranks"]}
    assert ranks[1]["busy_s"] == near(3.0) and ranks[1]["utilisation"] == near(3.0 / 4.0)
    assert ranks[2]["busy_s"] == near(1.7) and ranks[2]["utilisation"] == near(1.7 / 8.0)
    assert (ranks[1]["runs"], ranks[2]["runs"], ranks[2]["tasks"]) == (2, 3, 2)
    assert ranks[0]["runs"] == 0 and ranks[0]["utilisation"] is None  # the driver has no slots
    tr = s["transfers"]
    assert (tr["count"], tr["bytes"]) == (3, 2500)
    assert tr["mean_s"] == near((0.1 + 0.3 + 0.3) / 3) and tr["p95_s"] == near(0.3)
    json.dumps(s)  # JSON-ready


def test_format_summary_lays_out_the_numbers():
    text = summary.format_summary(summary.summarize(diamond()))
    assert "critical path 3.500 s (3 tasks)" in text and "makespan / critical path 1.14" in text
    assert "tasks 4   runs 5   failed 1   retries 1   restored 1" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("function"))
    assert header.split() == ["function", "runs", "failed", "total", "mean", "p95", "bytes", "in", "bytes", "out"]
    row_c = next(line for line in lines if line.startswith("c "))
    assert row_c.split()[:3] == ["c", "2", "1"]
    assert any(line.split()[:2] == ["1", "n1"] and line.endswith("75.0%") for line in lines)


def test_critical_path_of_a_deep_chain_and_of_missing_deps():
    chain = [run(k, "step", 1, 1, k, k + 1.0, [local(k - 1, 1)] if k else []) for k in range(5000)]
    seconds, ids = summary.critical_path(Trace(runs=chain))
    assert seconds == pytest.approx(5000.0) and ids == list(range(5000))
    # A dependency restored from a checkpoint (no run in the trace) weighs nothing; failed runs are not on it.
    runs = [run(2, "x", 1, 1, 0, 2, [Input(1, FROM_CHECKPOINT, 8, T0, T0)]), run(3, "y", 1, 1, 2, 9, ok=False)]
    assert summary.critical_path(Trace(runs=runs)) == (pytest.approx(2.0), [2])
    assert summary.critical_path(Trace()) == (0.0, [])


def test_percentile_interpolates_like_numpy():
    assert summary.percentile([], 95) == 0.0
    assert summary.percentile([3.0], 95) == 3.0
    assert summary.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert summary.percentile([4.0, 1.0, 3.0, 2.0], 95) == pytest.approx(3.85)


# ---------------------------------------------------------------------------- gantt


def png_shape(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    return img.shape[0], img.shape[1]


def expected_pixels(nrows: int, nlegend: int) -> tuple[int, int]:
    w, h = gantt.figure_size(nrows, nlegend)
    return round(h * gantt.DPI), round(w * gantt.DPI)


def test_gantt_of_the_diamond_is_a_png_of_the_expected_size(tmp_path):
    path = str(tmp_path / "d.png")
    gantt.plot(diamond(), path, title="diamond")
    # rows: (1, 1), (2, 0), (2, 1); legend: a b c d, failed run, failure restored retry
    assert png_shape(path) == expected_pixels(3, 4 + 1 + 3)


def test_gantt_of_many_functions_and_rows(tmp_path):
    trace = synthetic(nranks=3, tracks=2, ntasks=300, nnames=15)
    path = str(tmp_path / "s.png")
    gantt.plot(trace, path)
    kinds = {i.kind for i in trace.instants}
    failed = any(not r.ok for r in trace.runs)
    assert png_shape(path) == expected_pixels(6, gantt.TOP_NAMES + 1 + failed + len(kinds))  # 12 + "other"
    big = synthetic(nranks=35, tracks=2, ntasks=700, nnames=3, seed=1)
    gantt.plot(big, path)
    h, w = png_shape(path)
    assert (h, w) == expected_pixels(70, 3 + 1 + 1)
    assert h < 3000  # 70 rows stay a sensible picture


# ---------------------------------------------------------------------------- cli


@pytest.fixture
def trace_file(tmp_path):
    path = str(tmp_path / "run.trace.json")
    chrome.write(diamond(), path)
    return path


def test_cli_summary_prints_the_tables_and_json(trace_file, capsys):
    assert cli.main(["summary", trace_file]) == 0
    out = capsys.readouterr().out
    assert "critical path 3.500 s (3 tasks)" in out and out.count("\n") > 10
    assert cli.main(["summary", trace_file, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["totals"]["runs"] == 5 and got["critical_path"]["chain"] == [A, B, D]


def test_cli_gantt_writes_next_to_the_trace_by_default(trace_file, tmp_path, capsys):
    assert cli.main(["gantt", trace_file]) == 0
    png = str(tmp_path / "run.trace.png")
    assert capsys.readouterr().out.strip() == f"wrote {png}"
    assert png_shape(png)[0] > 0
    out = str(tmp_path / "chart.png")
    assert cli.main(["gantt", trace_file, "-o", out, "--title", "t"]) == 0 and os.path.getsize(out) > 0


@pytest.mark.parametrize("content, why", [(None, "no such file"), ("{not json", "invalid JSON at line 1"),
                                          ('{"traceEvents": []}', "not a dagmpi trace file")])
@pytest.mark.parametrize("command", ["summary", "gantt"])
def test_cli_bad_file_is_one_line_and_status_2(tmp_path, capsys, content, why, command):
    path = str(tmp_path / "bad.json")
    if content is not None:
        with open(path, "w") as f:
            f.write(content)
    assert cli.main([command, path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dagmpi trace: ") and path in err and why in err
    assert not os.path.exists(str(tmp_path / "bad.png"))


def test_cli_help_and_usage_errors(capsys):
    assert cli.main(["--help"]) == 0
    assert "dagmpi trace" in capsys.readouterr().out
    assert cli.main(["gantt", "--help"]) == 0
    assert "OUT.png" in capsys.readouterr().out
    assert cli.main([]) == 2
    assert "dagmpi trace" in capsys.readouterr().err
