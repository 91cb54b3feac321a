"""``python -m dagmpi trace``: read a trace file that a traced run wrote.

::

    python -m dagmpi trace summary run.trace.json          # tables: functions, ranks, critical path
    python -m dagmpi trace summary run.trace.json --json   # the same numbers as JSON
    python -m dagmpi trace gantt run.trace.json [-o run.trace.png]

Exit status 0 on success, 2 on a bad command line or a file that cannot be
read as a dagmpi trace (one line on stderr says which file and why).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import chrome, gantt, summary
from .records import Trace

PROG = "dagmpi trace"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Summarise or draw a trace file written by a traced dagmpi run "
        "(Chrome trace JSON: it also opens in https://ui.perfetto.dev).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    s = sub.add_parser("summary", help="per-function and per-rank tables, critical path, transfers",
                       description="Print per-function and per-rank tables, the critical path and the "
                       "transfers between ranks of a trace.")
    s.add_argument("file", metavar="FILE", help="the trace file (JSON)")
    s.add_argument("--json", action="store_true", help="print the numbers as JSON instead of tables")
    g = sub.add_parser("gantt", help="draw a Gantt chart (PNG): a row per rank and slot, a bar per run",
                       description="Draw a Gantt chart of a trace as a PNG: a row per rank and slot, a bar "
                       "per task run coloured by function, failed runs hatched in red, instants as lines.")
    g.add_argument("file", metavar="FILE", help="the trace file (JSON)")
    g.add_argument("-o", "--output", metavar="OUT.png",
                   help="where to write the PNG (default: FILE with .json replaced by .png)")
    g.add_argument("--title", help="the chart's title (default: runs, tasks, ranks and makespan)")
    return p


def _load(path: str) -> Trace | str:
    """The trace in ``path``, or the one line that says why it cannot be read."""
    try:
        return chrome.load(path)
    except FileNotFoundError:
        return f"{path}: no such file"
    except IsADirectoryError:
        return f"{path}: is a directory, not a trace file"
    except OSError as exc:
        return f"{path}: cannot read it ({exc.strerror or exc})"
    except UnicodeDecodeError:
        return f"{path}: not a trace file (not UTF-8 text)"
    except json.JSONDecodeError as exc:
        return f"{path}: not a trace file (invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg})"
    except chrome.TraceFormatError as exc:
        return f"{path}: not a dagmpi trace file: {exc}"


def default_output(path: str) -> str:
    """``run.json`` -> ``run.png``; any other name gets ``.png`` appended."""
    return (path[:-len(".json")] if path.endswith(".json") else path) + ".png"


def main(argv: list[str] | None = None) -> int:
    """Run ``dagmpi trace`` with ``argv`` (the arguments after ``trace``); returns the exit status."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # --help (0) or a usage error (2): argparse has printed why
        return exc.code if isinstance(exc.code, int) else 2
    trace = _load(args.file)
    if isinstance(trace, str):
        sys.stderr.write(f"{PROG}: {trace}\n")
        return 2
    if args.command == "summary":
        numbers = summary.summarize(trace)
        print(json.dumps(numbers, indent=2) if args.json else summary.format_summary(numbers))
        return 0
    out = args.output or default_output(args.file)
    try:
        gantt.plot(trace, out, title=args.title)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: {out}: cannot write the chart ({exc.strerror or exc})\n")
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
