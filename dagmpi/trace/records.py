"""What a traced run records: one :class:`TaskRun` per task attempt, one
:class:`Instant` per notable moment, gathered on rank 0 into a :class:`Trace`.

Workers build ``TaskRun`` tuples as their tasks end (only when tracing is on:
with it off nothing here is touched) and send them to rank 0 in batches
(:class:`dagmpi.runtime.messages.TraceBatch`); rank 0 adds the submit times it
saw, its own instants, and writes the Chrome trace (:mod:`.chrome`).

Times are ``time.time()`` seconds (comparable across the processes of a node,
and across nodes as far as their clocks agree).  This module imports nothing
of dagmpi: the runtime, the exporters and the command line all speak it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

#: ``Input.src`` of an input read from a checkpoint file rather than a rank.
FROM_CHECKPOINT = -1


class Input(NamedTuple):
    """One input of a task run: where its value came from and what it cost."""

    dep: int  #: the producing task's id
    src: int  #: the rank it came from (the run's own rank: local; FROM_CHECKPOINT: a file)
    nbytes: int  #: bytes that moved (0 when local)
    asked: float  #: when the consumer's rank asked for it (0.0 when local)
    arrived: float  #: when it arrived (0.0 when local)


class TaskRun(NamedTuple):
    """One run (attempt) of a task on a worker rank."""

    task_id: int
    name: str
    rank: int
    track: int  #: the thread within the rank: 0 the comm thread (inline runs), 1.. executor threads
    start: float
    end: float
    bytes_in: int  #: bytes of inputs that came from other ranks or files
    bytes_out: int  #: the result's pickled size (0 when it failed)
    attempt: int  #: 0 for the first run, 1 for the first retry, ...
    ok: bool  #: False: it raised (or timed out)
    inputs: tuple  #: of :class:`Input`
    submit: float = 0.0  #: when rank 0's scheduler received it (0.0: not known)


#: ``Instant.kind`` values.
KINDS = ("failure", "retry", "rank-death", "checkpoint-write", "restored", "preempted", "spill")


class Instant(NamedTuple):
    """A moment worth marking: a failure, a retry, a rank's death, a checkpoint file written..."""

    kind: str
    rank: int
    time: float
    args: dict


@dataclass
class Trace:
    """Everything a traced run recorded (rank 0 assembles it)."""

    runs: list = field(default_factory=list)  #: of :class:`TaskRun`
    instants: list = field(default_factory=list)  #: of :class:`Instant`
    #: rank -> ``{"host": str, "slots": int, "gpus": list}`` (rank 0: the driver)
    ranks: dict = field(default_factory=dict)
    start: float = 0.0  #: when the runtime started (time zero of the trace)
    end: float = 0.0  #: when the trace was written
    meta: dict[str, Any] = field(default_factory=dict)  #: argv, nranks, preempted, ...
