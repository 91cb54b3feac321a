"""Traces of dagmpi runs: the records the runtime gathers (:mod:`.records`), the
Chrome/Perfetto trace file (:mod:`.chrome`), the numbers (:mod:`.summary`), the
Gantt chart (:mod:`.gantt`) and ``python -m dagmpi trace`` (:mod:`.cli`)."""

from .chrome import TraceFormatError, load, to_chrome, write
from .gantt import plot as plot_gantt
from .records import FROM_CHECKPOINT, KINDS, Input, Instant, TaskRun, Trace
from .summary import critical_path, format_summary, summarize

__all__ = [
    "FROM_CHECKPOINT", "KINDS", "Input", "Instant", "TaskRun", "Trace", "TraceFormatError",
    "critical_path", "format_summary", "load", "plot_gantt", "summarize", "to_chrome", "write",
]
