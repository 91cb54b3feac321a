"""Rank 0's side of tracing (``trace=`` / ``DAGMPI_TRACE``): it gathers the
workers' :class:`~dagmpi.runtime.messages.TraceBatch` records, adds the submit
times and the instants only rank 0 sees (failures, retries, restored tasks,
rank deaths, a preemption), and writes the Chrome trace at shut-down, or at a
preemption, with what it has by then.

Nothing here runs while tracing is off: the driver holds no collector then.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from ..trace.records import Instant, Trace

log = logging.getLogger(__name__)


class Collector:
    """The trace of one run, as rank 0 gathers it."""

    def __init__(self, path: str, start: float) -> None:
        self.path = os.path.abspath(path)
        self.trace = Trace(start=start)
        #: task id -> when rank 0 received its submission
        self.submits: dict[int, float] = {}
        self.written = False

    def submitted(self, task_id: int) -> None:
        self.submits[task_id] = time.time()

    def instant(self, kind: str, rank: int, **args: Any) -> None:
        self.trace.instants.append(Instant(kind, rank, time.time(), args))

    def add_batch(self, runs: list, instants: list) -> None:
        """A worker's records (their submit times are filled in when the trace is
        written, off the loop's busy path); a retry is marked."""
        self.trace.runs.extend(runs)
        for r in runs:
            if r.attempt > 0:
                self.trace.instants.append(Instant("retry", r.rank, r.start, {
                    "task_id": r.task_id, "name": r.name, "attempt": r.attempt}))
        self.trace.instants.extend(instants)

    def write(self, ranks: dict, meta: dict) -> str:
        """Write the Chrome trace file (again, if called again); return its path."""
        from ..trace import chrome

        t = self.trace
        submits = self.submits
        t.runs = [r if r.submit else r._replace(submit=submits.get(r.task_id, 0.0)) for r in t.runs]
        t.ranks = ranks
        t.end = time.time()
        t.meta = {"argv": list(sys.argv), **meta}
        chrome.write(t, self.path)
        self.written = True
        log.info("trace of %d task runs written to %s", len(t.runs), self.path)
        return self.path
