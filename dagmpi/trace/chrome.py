"""A :class:`~.records.Trace` as a Chrome trace event file, and back.

The file is the JSON object format of the Trace Event Format, which
https://ui.perfetto.dev and ``chrome://tracing`` open::

    {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}

Layout: one process per rank (``pid`` = rank), one thread per
``TaskRun.track`` (``tid`` = track: 0 is the comm thread that runs inline
tasks, 1.. the executor slots).  Each run is a complete event (``"ph": "X"``)
whose ``args`` hold everything needed to rebuild it, so :func:`load` gives the
same :class:`Trace` back; inputs that crossed ranks are flow arrows from the
producer's slice to the consumer's; instants are process-scoped ``"i"``
events.  Timestamps are microseconds since ``Trace.start``; times inside
``args`` are seconds since ``Trace.start`` (``null``: not known).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .records import Input, Instant, TaskRun, Trace

#: ``otherData["format"]`` of files written here, and the version :func:`load` reads.
FORMAT = "dagmpi-trace"
VERSION = 1

#: How far before its producer's end a flow arrow starts (µs), so that the slice encloses it.
_FLOW_EPSILON_US = 0.001

#: Keys of ``Instant.args`` whose value makes a readable suffix of the event's name, in order.
_DETAIL_KEYS = ("name", "task", "func", "signal", "reason", "path", "file", "error")


class TraceFormatError(ValueError):
    """The file is JSON but not a trace written by :func:`write`."""


def time_origin(trace: Trace) -> float:
    """Time zero of the exported trace: ``trace.start``, or the earliest time in it when that is unset."""
    if trace.start:
        return trace.start
    times = [r.start for r in trace.runs] + [i.time for i in trace.instants]
    return min(times, default=0.0)


def to_chrome(trace: Trace) -> dict:
    """The trace as a Chrome trace event JSON object (a dict ready for :func:`json.dump`)."""
    t0 = time_origin(trace)
    events: list[dict] = []
    events += _metadata(trace)
    events += [_run_event(run, t0) for run in trace.runs]
    events += _flow_events(trace, t0)
    events += [_instant_event(inst, t0) for inst in trace.instants]
    other = {
        "format": FORMAT,
        "version": VERSION,
        "start": trace.start,
        "end": trace.end,
        "time_origin": t0,
        "ranks": {str(rank): info for rank, info in sorted(trace.ranks.items())},
        "meta": trace.meta,
    }
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}


def write(trace: Trace, path: str) -> None:
    """Write the trace to ``path`` as Chrome trace JSON, atomically (``path.tmp``, then a rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(to_chrome(trace), f, separators=(",", ":"), default=str)
    os.replace(tmp, path)


def load(path: str) -> Trace:
    """Read a file written by :func:`write` back into a :class:`Trace`.

    Raises :class:`OSError` when it cannot be read, :class:`json.JSONDecodeError`
    when it is not JSON, and :class:`TraceFormatError` when it is not such a trace.
    """
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return from_chrome(doc)


def from_chrome(doc: Any) -> Trace:
    """The :class:`Trace` that :func:`to_chrome` turned into ``doc``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        raise TraceFormatError("not a Chrome trace (no traceEvents list)")
    other = doc.get("otherData")
    if not isinstance(other, dict) or other.get("format") != FORMAT:
        raise TraceFormatError("a Chrome trace, but not one dagmpi wrote (otherData.format is not "
                               f"{FORMAT!r})")
    if other.get("version") != VERSION:
        raise TraceFormatError(f"dagmpi trace format version {other.get('version')!r}; "
                               f"this dagmpi reads version {VERSION}")
    t0 = float(other.get("time_origin", other.get("start", 0.0)))
    trace = Trace(start=float(other.get("start", 0.0)), end=float(other.get("end", 0.0)),
                  meta=dict(other.get("meta") or {}),
                  ranks={int(rank): info for rank, info in (other.get("ranks") or {}).items()})
    try:
        for ev in doc["traceEvents"]:
            if ev.get("ph") == "X" and str(ev.get("cat", "")).startswith("task"):
                trace.runs.append(_run_from_event(ev, t0))
            elif ev.get("ph") == "i":
                trace.instants.append(Instant(kind=ev["cat"], rank=int(ev["pid"]),
                                              time=t0 + ev["ts"] / 1e6, args=dict(ev.get("args") or {})))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TraceFormatError(f"a malformed event ({type(exc).__name__}: {exc})") from None
    return trace


# ---------------------------------------------------------------------------- events


def _us(t: float, t0: float) -> float:
    """Microseconds since ``t0``, to the nanosecond."""
    return round((t - t0) * 1e6, 3)


def _rel(t: float, t0: float) -> float | None:
    """Seconds since ``t0``; ``None`` for an unknown (0.0) time."""
    return None if not t else t - t0


def _abs(rel: float | None, t0: float) -> float:
    """Inverse of :func:`_rel`."""
    return 0.0 if rel is None else t0 + rel


def _metadata(trace: Trace) -> list[dict]:
    """process_name / process_sort_index per rank, thread_name / thread_sort_index per track."""
    tracks: dict[int, set[int]] = {rank: set() for rank in trace.ranks}
    for run in trace.runs:
        tracks.setdefault(run.rank, set()).add(run.track)
    for inst in trace.instants:
        tracks.setdefault(inst.rank, set()).add(0)
    events: list[dict] = []
    for rank in sorted(tracks):
        host = (trace.ranks.get(rank) or {}).get("host")
        about = (["driver"] if rank == 0 else []) + ([str(host)] if host else [])
        label = f"rank {rank} ({', '.join(about)})" if about else f"rank {rank}"
        events.append({"ph": "M", "name": "process_name", "pid": rank, "tid": 0, "args": {"name": label}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": rank, "tid": 0,
                       "args": {"sort_index": rank}})
        for track in sorted(tracks[rank]):
            name = "comm thread (inline tasks)" if track == 0 else f"slot {track}"
            events.append({"ph": "M", "name": "thread_name", "pid": rank, "tid": track, "args": {"name": name}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": rank, "tid": track,
                           "args": {"sort_index": track}})
    return events


def _run_event(run: TaskRun, t0: float) -> dict:
    """The complete event of one run."""
    ts = _us(run.start, t0)
    return {
        "ph": "X", "name": run.name, "cat": "task" if run.ok else "task,failed",
        "pid": run.rank, "tid": run.track, "ts": ts, "dur": round(_us(run.end, t0) - ts, 3),
        "args": {
            "task_id": run.task_id, "attempt": run.attempt, "ok": run.ok,
            "bytes_in": run.bytes_in, "bytes_out": run.bytes_out,
            "deps": [i.dep for i in run.inputs],
            "submit": _rel(run.submit, t0),
            "inputs": [[i.dep, i.src, i.nbytes, _rel(i.asked, t0), _rel(i.arrived, t0)] for i in run.inputs],
        },
    }


def _run_from_event(ev: dict, t0: float) -> TaskRun:
    """Inverse of :func:`_run_event`."""
    a = ev["args"]
    inputs = tuple(Input(dep=int(dep), src=int(src), nbytes=int(nbytes), asked=_abs(asked, t0),
                         arrived=_abs(arrived, t0)) for dep, src, nbytes, asked, arrived in a["inputs"])
    return TaskRun(task_id=int(a["task_id"]), name=ev["name"], rank=int(ev["pid"]), track=int(ev["tid"]),
                   start=t0 + ev["ts"] / 1e6, end=t0 + (ev["ts"] + ev["dur"]) / 1e6,
                   bytes_in=int(a["bytes_in"]), bytes_out=int(a["bytes_out"]), attempt=int(a["attempt"]),
                   ok=bool(a["ok"]), inputs=inputs, submit=_abs(a.get("submit"), t0))


def _producers(trace: Trace) -> dict[int, list[TaskRun]]:
    """task id -> its successful runs, latest end last."""
    out: dict[int, list[TaskRun]] = {}
    for run in trace.runs:
        if run.ok:
            out.setdefault(run.task_id, []).append(run)
    for runs in out.values():
        runs.sort(key=lambda r: r.end)
    return out


def _flow_events(trace: Trace, t0: float) -> list[dict]:
    """An arrow per input that crossed ranks, from the producing run's end to the consumer's start.

    The producing run is the last successful run of the input's task, preferring
    one on the rank the input came from (a task recomputed after a rank's death
    has several).
    """
    made = _producers(trace)
    events: list[dict] = []
    flow_id = 0
    for run in trace.runs:
        for inp in run.inputs:
            if inp.src < 0 or inp.src == run.rank or inp.dep not in made:
                continue
            cands = made[inp.dep]
            prod = next((p for p in reversed(cands) if p.rank == inp.src), cands[-1])
            start_us, end_us = _us(prod.start, t0), _us(prod.end, t0)
            flow_id += 1
            args = {"dep": inp.dep, "nbytes": inp.nbytes,
                    "seconds": inp.arrived - inp.asked if inp.asked and inp.arrived else None}
            events.append({"ph": "s", "cat": "transfer", "name": "transfer", "id": flow_id,
                           "pid": prod.rank, "tid": prod.track, "ts": max(start_us, end_us - _FLOW_EPSILON_US),
                           "args": args})
            events.append({"ph": "f", "bp": "e", "cat": "transfer", "name": "transfer", "id": flow_id,
                           "pid": run.rank, "tid": run.track, "ts": _us(run.start, t0), "args": args})
    return events


def instant_label(inst: Instant) -> str:
    """``kind`` and, when its args have one, a readable detail: ``"failure: load"``, ``"restored: task 7"``."""
    for key in _DETAIL_KEYS:
        value = inst.args.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
            return f"{inst.kind}: {value}"
    for key in ("task_id", "rank"):
        if isinstance(inst.args.get(key), int):
            return f"{inst.kind}: {key.partition('_')[0]} {inst.args[key]}"
    return inst.kind


def _instant_event(inst: Instant, t0: float) -> dict:
    """A process-scoped instant event (``cat`` holds the kind, for :func:`load`)."""
    return {"ph": "i", "s": "p", "name": instant_label(inst), "cat": inst.kind, "pid": inst.rank, "tid": 0,
            "ts": _us(inst.time, t0), "args": inst.args}
