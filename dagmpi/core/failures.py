"""Error payloads the scheduler attaches to tasks that did not produce a value.

The scheduler never raises for a task: it stores one of these (or the opaque
payload a worker sent) and delivers it; :func:`dagmpi.errors.build_exception`
turns it into the exception a user sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """Error payload of a task that did not run because an input failed."""

    upstream_id: int
    upstream_name: str
    cause: Any  # the error payload of the task that really raised


@dataclass(frozen=True, slots=True)
class ImpossibleScope:
    """Error payload of a task that no worker rank can ever run."""

    reason: str


@dataclass(frozen=True, slots=True)
class RankLost:
    """Error payload of a task that cannot go on because worker rank ``rank`` died."""

    rank: int
    reason: str


@dataclass(frozen=True, slots=True)
class UnknownDependency:
    """Error payload of a task whose input id the scheduler never saw."""

    dep_id: int


def root_error(error: Any) -> Any:
    """The error of the task that really raised, under any UpstreamFailure wrapping."""
    while isinstance(error, UpstreamFailure):
        error = error.cause
    return error
