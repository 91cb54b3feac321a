"""Exceptions of dagmpi, and how a remote failure comes back to the caller.

A task that raises on a worker is caught there and turned into an
:class:`ErrorInfo` (the pickled exception when it pickles, its text always,
the formatted traceback, rank and host).  ``fetch`` on the caller's side calls
:func:`raise_error`, which re-raises the *original* exception type with
``__cause__`` set to a :class:`RemoteTraceback` holding the remote traceback,
the way ``mpi4py.futures`` does, plus a note naming the task, rank and host.
The remote traceback starts at the task's own function
(:func:`from_task_function`): the frames by which dagmpi called it are left out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _in_dagmpi(tb: TracebackType) -> bool:
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR)


def from_task_function(tb: Optional[TracebackType], runner: str) -> Optional[TracebackType]:
    """The traceback ``tb`` of a task's exception, from the task's function on.

    Its leading frames of the dagmpi package are dropped when the last of them is
    in the file ``runner`` (the code that calls task functions), so the user's
    own frames come first.  When dagmpi raised before or after it called the
    task's function (loading the function or its arguments, pickling its
    result), or when no frame is the user's, ``tb`` is returned whole: those
    frames then say what failed.
    """
    last_ours, first = None, tb
    while first is not None and _in_dagmpi(first):
        last_ours, first = first, first.tb_next
    if first is None or last_ours is None or \
            os.path.abspath(last_ours.tb_frame.f_code.co_filename) != os.path.abspath(runner):
        return tb
    return first


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


def is_task_failure(exc: BaseException) -> bool:
    """``exc`` is a task's failure as :func:`build_exception` made it (it carries the
    remote traceback, or says an upstream task failed)."""
    return isinstance(exc.__cause__, RemoteTraceback) or isinstance(exc, UpstreamError)


def _hidden(filename: str) -> bool:
    return filename.startswith("<frozen runpy") or os.path.abspath(filename).startswith(_PACKAGE_DIR)


def format_user_traceback(exc: BaseException) -> str:
    """``exc`` formatted as Python does, with dagmpi's own frames (and runpy's) left
    out of every traceback in its chain, so the user's code is what shows.  A
    traceback with no frame of the user's (a failure inside dagmpi) stays whole."""
    import traceback

    top = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    todo = [top]
    while todo:
        te = todo.pop()
        if te is None or id(te) in seen:
            continue
        seen.add(id(te))
        kept = [f for f in te.stack if not _hidden(f.filename)]
        if kept and len(kept) < len(te.stack):
            te.stack = traceback.StackSummary.from_list(kept)
        todo += [te.__cause__, te.__context__]
    return "".join(top.format())


def raise_error(info: Any) -> NoReturn:
    """Raise the exception that the error payload ``info`` describes."""
    raise build_exception(info)
