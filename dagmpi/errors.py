"""Exceptions of dagmpi, and how a remote failure comes back to the caller.

A task that raises on a worker is caught there and turned into an
:class:`ErrorInfo` (the pickled exception when it pickles, its text always,
the formatted traceback, rank and host).  ``fetch`` on the caller's side calls
:func:`raise_error`, which re-raises the *original* exception type with
``__cause__`` set to a :class:`RemoteTraceback` holding the remote traceback,
the way ``mpi4py.futures`` does, plus a note naming the task, rank and host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, Optional


class DagmpiError(Exception):
    """Base class of dagmpi's own errors."""


class TaskError(DagmpiError):
    """A task failed and its original exception could not be rebuilt."""


class UpstreamError(TaskError):
    """A task did not run because a task it depends on failed."""

    def __init__(self, message: str, upstream_id: int = 0, upstream_name: str = "") -> None:
        super().__init__(message)
        self.upstream_id = upstream_id
        self.upstream_name = upstream_name


class WorkerLostError(DagmpiError):
    """A task could not complete because a worker rank died (see ``rank``)."""

    def __init__(self, message: str, rank: int = -1) -> None:
        super().__init__(message)
        self.rank = rank


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised on another rank."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class SerializationError(DagmpiError, TypeError):
    """A function, argument or result cannot be pickled (or unpickled)."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What a worker sends back when a task raises."""

    task_id: int
    task_name: str
    type_name: str
    message: str
    traceback: str
    rank: int
    host: str
    exc_bytes: Optional[bytes] = None  # the exception, cloudpickled, when it pickles
    attempt: int = 1  # which run of the task raised (retries run it again)
    attempts: int = 1  # how many runs it was allowed

    def summary(self) -> str:
        return f"{self.type_name}: {self.message}"


def build_exception(info: Any) -> BaseException:
    """Turn an error payload (as the scheduler delivers it) into an exception."""
    from .core.failures import ImpossibleScope, RankLost, UnknownDependency, UpstreamFailure

    if isinstance(info, ErrorInfo):
        exc: Optional[BaseException] = None
        if info.exc_bytes is not None:
            try:
                import cloudpickle

                exc = cloudpickle.loads(info.exc_bytes)
            except Exception:  # the type may not exist here; fall back to text
                exc = None
        if not isinstance(exc, BaseException):
            exc = TaskError(f"{info.type_name}: {info.message}")
        exc.__cause__ = RemoteTraceback(
            f"\n\"\"\"\nTask {info.task_name!r} ({info.task_id:#x}) raised on rank {info.rank} "
            f"({info.host}):\n{info.traceback}\"\"\"")
        if hasattr(exc, "add_note"):
            tries = f", attempt {info.attempt} of {info.attempts}" if info.attempts > 1 else ""
            exc.add_note(f"dagmpi: raised by task {info.task_name!r} on rank {info.rank} ({info.host}){tries}")
        return exc
    if isinstance(info, UpstreamFailure):
        root = info.cause
        what = root.summary() if isinstance(root, ErrorInfo) else str(build_exception(root))
        exc = UpstreamError(
            f"not run: upstream task {info.upstream_name!r} ({info.upstream_id:#x}) failed: {what}",
            info.upstream_id, info.upstream_name)
        exc.__cause__ = build_exception(root)
        return exc
    if isinstance(info, ImpossibleScope):
        return ValueError(f"impossible scope: no worker rank can ever run this task: {info.reason}")
    if isinstance(info, RankLost):
        return WorkerLostError(f"worker rank {info.rank} died and the task cannot go on: {info.reason}",
                               info.rank)
    if isinstance(info, UnknownDependency):
        return TaskError(f"not run: depends on task {info.dep_id:#x}, which the scheduler does not "
                         "know (was its handle pickled and freed before use?)")
    if isinstance(info, BaseException):
        return info
    return TaskError(str(info))


def raise_error(info: Any) -> NoReturn:
    """Raise the exception that the error payload ``info`` describes."""
    raise build_exception(info)
