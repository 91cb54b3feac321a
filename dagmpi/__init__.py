"""dagmpi: an MPI-native task-parallel runtime for Python.

    t = dagmpi.spawn(f, x)          # a Task; Task arguments are dependency edges
    u = dagmpi.spawn(g, t)
    dagmpi.fetch(u)                 # the value, or the remote exception re-raised

Run a script with ``mpiexec -n 5 python -m dagmpi app.py`` (rank 0 runs the
script, ranks 1..4 run tasks) or plainly with ``python app.py`` (in-process).
"""

from .api import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    DoneAndNotDone,
    TaskFunction,
    as_completed,
    fetch,
    info,
    init,
    processors,
    progress,
    progress_enabled,
    saved,
    shutdown,
    spawn,
    spawn_loop,
    spawn_many,
    task,
    wait,
    workers,
)
from .config import Config
from .dask import get
from .datadeps import In, InOut, Out, datadeps
from .executor import Executor, Future
from .errors import (DagmpiError, RemoteTraceback, SerializationError, TaskError, UpstreamError,
                     WorkerLostError)
from .options import Options, Scope, scope
from .core.launches import Layout, Projection
from .task import Launch, Point, Task

__version__ = "0.1.0"

__all__ = [
    "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "Config", "DagmpiError",
    "DoneAndNotDone", "Executor", "Future", "In", "InOut", "Launch", "Layout", "Options", "Out", "Point", "Projection", "RemoteTraceback", "Scope", "SerializationError", "Task",
    "TaskError", "TaskFunction", "UpstreamError", "WorkerLostError", "as_completed", "datadeps", "fetch", "get", "info", "init", "progress", "progress_enabled", "saved",
    "processors", "scope", "shutdown", "spawn", "spawn_loop", "spawn_many", "task", "wait", "workers", "__version__",
]
