r"""Task states, declared once.

Every task tracked by the scheduler is in exactly one of these states.  The
allowed moves are listed in :data:`TRANSITIONS`; :func:`check_transition` is
the only place that decides whether a move is legal, and the scheduler calls
it for every change (see ``Scheduler._set_state``).

::

    WAITING --(all inputs finished)--> READY --(placed)--> ASSIGNED
       |  \                              |                 ^  |
       |   +--(inputs still running, all on one rank: run ahead there)--+
       |                                 |                    |
       +--(an input failed)--> ERRORED <-+                    +--> FINISHED
                                         ^                    +--> ERRORED
                                         +---(stolen back)----+

``FINISHED`` and ``ERRORED`` are final: a final task is forgotten by the
scheduler once no handle and no pending consumer refers to it.  One way back
exists, for fault tolerance: when a worker rank dies, the values it held are
lost; a FINISHED task whose value is still needed goes back to WAITING and
runs again (lineage recomputation), and READY/ASSIGNED tasks whose inputs
were lost go back to WAITING.
"""

from __future__ import annotations

import enum


class TaskState(enum.IntEnum):
    """Lifecycle of one task as the scheduler sees it."""

    WAITING = 0  #: submitted; some input is not finished yet
    READY = 1  #: every input finished; waiting for a processor
    ASSIGNED = 2  #: sent to a worker (queued there, running, or blocked in fetch)
    FINISHED = 3  #: the value exists on its owner rank
    ERRORED = 4  #: the task (or an input of it) raised


FINAL_STATES = frozenset({TaskState.FINISHED, TaskState.ERRORED})
#: ``state >= FIRST_FINAL`` is the fast test for a final state (enum hashing is slow).
FIRST_FINAL = TaskState.FINISHED

TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.WAITING: frozenset({TaskState.READY, TaskState.ERRORED, TaskState.ASSIGNED,
                                  TaskState.FINISHED}),  # FINISHED: restored from a checkpoint
    # READY -> WAITING, ASSIGNED -> WAITING: an input's value died with its rank
    TaskState.READY: frozenset({TaskState.ASSIGNED, TaskState.ERRORED, TaskState.WAITING}),
    TaskState.ASSIGNED: frozenset({TaskState.FINISHED, TaskState.ERRORED, TaskState.READY,
                                   TaskState.WAITING}),
    # FINISHED -> WAITING: the value died with its rank and is computed again
    TaskState.FINISHED: frozenset({TaskState.WAITING}),
    TaskState.ERRORED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A state change that :data:`TRANSITIONS` does not allow (a scheduler bug)."""


#: ``old * 8 + new`` for each allowed move: a set of small ints is the cheapest check.
LEGAL_MOVES = frozenset(int(o) * 8 + int(n) for o, targets in TRANSITIONS.items() for n in targets)


def check_transition(task_id: int, old: TaskState, new: TaskState) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is allowed."""
    if old * 8 + new not in LEGAL_MOVES:
        raise InvalidTransition(f"task {task_id:#x}: illegal transition {old.name} -> {new.name}")
