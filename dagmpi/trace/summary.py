"""What a :class:`~.records.Trace` says in numbers: per function, per rank, the
critical path and the transfers.

:func:`summarize` returns a plain dict (JSON-ready: ``dagmpi trace summary
--json`` prints it); :func:`format_summary` lays it out as text tables.

Definitions:

* **makespan**: the last run's end minus the first run's start; **wall**:
  ``Trace.end - Trace.start`` (the runtime's whole life, start-up included).
* **utilisation** of a rank: the seconds its runs took, over makespan times
  its slots (``Trace.ranks[rank]["slots"]``, 1 when unknown).  Inline runs on
  the comm thread count too, so it can pass 1.
* **critical path**: the longest chain through the graph that the runs'
  inputs describe, each task weighted by its last successful run's duration
  (a dependency with no successful run in the trace, e.g. one restored from a
  checkpoint, weighs 0).  makespan / critical path near 1 means the graph,
  not the number of ranks, bounds the run.
* **transfers**: inputs that came from another rank (not local, not read
  from a checkpoint file); their seconds are ``arrived - asked``.
* **p95**: linearly interpolated between the closest ranks, as numpy's
  default ``percentile``.
"""

from __future__ import annotations

from typing import Any

from .records import FROM_CHECKPOINT, TaskRun, Trace


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated; 0.0 for none."""
    if not values:
        return 0.0
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def last_ok_runs(trace: Trace) -> dict[int, TaskRun]:
    """task id -> its successful run that ended last."""
    out: dict[int, TaskRun] = {}
    for run in trace.runs:
        if run.ok and (run.task_id not in out or run.end >= out[run.task_id].end):
            out[run.task_id] = run
    return out


def critical_path(trace: Trace) -> tuple[float, list[int]]:
    """The longest duration-weighted dependency chain: (its seconds, its task ids, first to last)."""
    runs = last_ok_runs(trace)
    best: dict[int, tuple[float, int | None]] = {}  # task id -> (chain seconds ending here, previous task)
    for root in runs:
        # Iterative depth-first walk (chains can be deeper than Python's recursion limit).
        stack: list[tuple[int, bool]] = [(root, False)]
        on_stack: set[int] = set()
        while stack:
            tid, expanded = stack.pop()
            if tid in best or (not expanded and tid in on_stack):
                continue
            deps = [i.dep for i in runs[tid].inputs if i.dep in runs and i.dep != tid]
            if not expanded:
                on_stack.add(tid)
                stack.append((tid, True))
                # A cycle cannot come from a real run; if a hand-made trace has one, its back edge is ignored.
                stack += [(d, False) for d in deps if d not in best and d not in on_stack]
                continue
            on_stack.discard(tid)
            prev = max((d for d in deps if d in best), key=lambda d: best[d][0], default=None)
            base = best[prev][0] if prev is not None else 0.0
            best[tid] = (base + runs[tid].end - runs[tid].start, prev)
    if not best:
        return 0.0, []
    tail = max(best, key=lambda t: best[t][0])
    chain: list[int] = []
    node: int | None = tail
    while node is not None:
        chain.append(node)
        node = best[node][1]
    return best[tail][0], chain[::-1]


def _is_transfer(run: TaskRun, src: int) -> bool:
    return src >= 0 and src != run.rank


def summarize(trace: Trace) -> dict[str, Any]:
    """The numbers of a trace, as a JSON-ready dict (see the module docstring for definitions)."""
    runs = trace.runs
    first = min((r.start for r in runs), default=0.0)
    last = max((r.end for r in runs), default=0.0)
    makespan = last - first
    cp_seconds, chain = critical_path(trace)

    by_name: dict[str, list[TaskRun]] = {}
    for run in runs:
        by_name.setdefault(run.name, []).append(run)
    functions = []
    for name, rs in by_name.items():
        durs = [r.end - r.start for r in rs]
        functions.append({
            "name": name, "runs": len(rs), "failed": sum(not r.ok for r in rs),
            "total_s": sum(durs), "mean_s": sum(durs) / len(durs), "p95_s": percentile(durs, 95),
            "bytes_in": sum(r.bytes_in for r in rs), "bytes_out": sum(r.bytes_out for r in rs),
        })
    functions.sort(key=lambda f: (-f["total_s"], f["name"]))

    ranks = []
    for rank in sorted(set(trace.ranks) | {r.rank for r in runs}):
        info = trace.ranks.get(rank) or {}
        slots = info.get("slots", 1)
        slots = 1 if slots is None else int(slots)
        mine = [r for r in runs if r.rank == rank]
        busy = sum(r.end - r.start for r in mine)
        capacity = makespan * slots
        ranks.append({"rank": rank, "host": info.get("host"), "slots": slots, "runs": len(mine),
                      "tasks": len({r.task_id for r in mine}), "busy_s": busy,
                      "utilisation": busy / capacity if capacity > 0 else None})

    moved = [(r, i) for r in runs for i in r.inputs if _is_transfer(r, i.src)]
    seconds = [i.arrived - i.asked for _, i in moved if i.asked and i.arrived]
    transfers = {"count": len(moved), "bytes": sum(i.nbytes for _, i in moved),
                 "mean_s": sum(seconds) / len(seconds) if seconds else None,
                 "p95_s": percentile(seconds, 95) if seconds else None}

    totals = {
        "tasks": len({r.task_id for r in runs}),
        "runs": len(runs),
        "failed": sum(not r.ok for r in runs),
        "retries": sum(r.attempt > 0 for r in runs),
        "restored": sum(i.kind == "restored" for i in trace.instants),
        "bytes_moved": transfers["bytes"],
        "bytes_from_checkpoint": sum(i.nbytes for r in runs for i in r.inputs if i.src == FROM_CHECKPOINT),
    }
    return {
        "wall_s": trace.end - trace.start if trace.start and trace.end else None,
        "makespan_s": makespan,
        "totals": totals,
        "critical_path": {"seconds": cp_seconds, "tasks": len(chain),
                          "makespan_ratio": makespan / cp_seconds if cp_seconds > 0 else None,
                          "chain": chain},
        "functions": functions,
        "ranks": ranks,
        "transfers": transfers,
    }


# ---------------------------------------------------------------------------- text


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_seconds(s: float | None) -> str:
    """Seconds with a unit that keeps three significant figures readable; ``-`` for unknown."""
    if s is None:
        return "-"
    if s == 0:
        return "0 s"
    if abs(s) >= 1:
        return f"{s:.3f} s"
    if abs(s) >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the rest right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if k == 0 else str(c).rjust(w)
                         for k, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]


def format_summary(summary: dict[str, Any]) -> str:
    """The dict of :func:`summarize` as plain-text tables."""
    t, cp, tr = summary["totals"], summary["critical_path"], summary["transfers"]
    ratio = "-" if cp["makespan_ratio"] is None else f"{cp['makespan_ratio']:.2f}"
    out = [
        f"makespan {format_seconds(summary['makespan_s'])}   wall {format_seconds(summary['wall_s'])}   "
        f"critical path {format_seconds(cp['seconds'])} ({cp['tasks']} tasks)   "
        f"makespan / critical path {ratio}",
        f"tasks {t['tasks']}   runs {t['runs']}   failed {t['failed']}   retries {t['retries']}   "
        f"restored {t['restored']}",
        f"moved between ranks {format_bytes(t['bytes_moved'])} in {tr['count']} transfers "
        f"(mean {format_seconds(tr['mean_s'])}, p95 {format_seconds(tr['p95_s'])})   "
        f"read from checkpoints {format_bytes(t['bytes_from_checkpoint'])}",
        "",
    ]
    out += _table(["function", "runs", "failed", "total", "mean", "p95", "bytes in", "bytes out"],
                  [[f["name"], f["runs"], f["failed"], format_seconds(f["total_s"]), format_seconds(f["mean_s"]),
                    format_seconds(f["p95_s"]), format_bytes(f["bytes_in"]), format_bytes(f["bytes_out"])]
                   for f in summary["functions"]])
    out.append("")
    out += _table(["rank", "host", "slots", "runs", "busy", "utilisation"],
                  [[r["rank"], r["host"] or "-", r["slots"], r["runs"], format_seconds(r["busy_s"]),
                    "-" if r["utilisation"] is None else f"{100 * r['utilisation']:.1f}%"]
                   for r in summary["ranks"]])
    return "\n".join(out)
