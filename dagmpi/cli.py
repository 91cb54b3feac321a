"""``python -m dagmpi`` and the ``dagmpi`` command.

::

    mpiexec -n 5 python -m dagmpi app.py [args]   # rank 0 runs app.py, ranks 1..4 run tasks
    srun -n 5 python -m dagmpi app.py [args]
    python -m dagmpi app.py [args]                 # no launcher: in-process runtime
    python -m dagmpi -m package.module [args]
    dagmpi run app.py | dagmpi info

An uncaught exception in the script aborts every rank (``MPI_Abort``) with the
traceback printed once, like ``python -m mpi4py``; nothing is left hanging.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import runpy
import sys
import time
import traceback
from typing import Optional

from .errors import format_user_traceback

from .config import LEVELS
from .runtime import context

EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130


class RankFilter(logging.Filter):
    """Adds ``%(rank)s`` to log records."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def setup_logging(level: str, rank: int) -> None:
    """Log dagmpi's messages to stderr with the rank in each line (launcher only)."""
    handler = logging.StreamHandler()
    handler.addFilter(RankFilter(rank))
    handler.setFormatter(logging.Formatter(
        "%(asctime)s [rank %(rank)s] %(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("dagmpi")
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dagmpi",
        description="Run a Python script on dagmpi: rank 0 runs the script, the other ranks run its tasks.")
    p.add_argument("--transport", choices=["auto", "mpi", "inproc"], default=None)
    p.add_argument("--workers", type=int, default=None, help="in-process worker ranks (no MPI)")
    p.add_argument("--slots", type=int, default=None, help="task slots per worker rank")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default: $DAGMPI_LOG_LEVEL)")
    p.add_argument("-m", dest="module", default=None, help="run a module as the script")
    p.add_argument("script", nargs="?", help="the script to run (or 'info')")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        argv = argv[1:]
    if argv and argv[0] == "ckpt":
        return ckpt_main(argv[1:])
    ns = _parser().parse_args(argv)
    rank = context.launcher_rank()
    if ns.script == "info" and ns.module is None:
        return _info()
    if ns.module is None and ns.script is None:
        _parser().print_usage(sys.stderr)
        return EXIT_USAGE
    if ns.module is not None and ns.script is not None:
        ns.args = [ns.script] + ns.args
    if ns.module is None:
        path = ns.script
        if not os.path.isfile(path):
            if rank == 0:
                what = "is a directory" if os.path.isdir(path) else "no such file"
                sys.stderr.write(f"dagmpi: cannot run {path!r}: {what} "
                                 f"(current directory: {os.getcwd()})\n")
            return EXIT_USAGE
    level = ns.log_level or os.environ.get("DAGMPI_LOG_LEVEL")
    if level and level.upper() in LEVELS:  # (a bad one is reported by init, once)
        setup_logging(level, rank)
    config = {k: v for k, v in (("transport", ns.transport), ("workers", ns.workers),
                                ("slots", ns.slots), ("log_level", ns.log_level)) if v is not None}
    try:
        context.init(**config)  # worker ranks serve here, then exit 0
    except context.StartupError as exc:
        if exc.report:
            sys.stderr.write(f"{exc}\n" if str(exc).startswith("dagmpi") else f"dagmpi: {exc}\n")
        return EXIT_USAGE
    except (TypeError, ValueError, RuntimeError) as exc:
        sys.stderr.write(f"dagmpi: {exc}\n")
        return EXIT_USAGE
    return _run_driver(ns)


def _run_driver(ns: argparse.Namespace) -> int:
    rt = context._runtime
    if ns.module is not None:
        sys.argv = [ns.module] + ns.args
        target = lambda: runpy.run_module(ns.module, run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        sys.argv = [ns.script] + ns.args
        sys.path.insert(0, os.path.dirname(os.path.abspath(ns.script)))
        target = lambda: runpy.run_path(ns.script, run_name="__main__")  # noqa: E731
    code = 0
    try:
        target()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            sys.stderr.write(f"{exc.code}\n")
    except KeyboardInterrupt:
        sys.stderr.write(f"dagmpi: interrupted (Ctrl-C); ending the job\n")
        sys.stderr.flush()
        if rt is not None and rt.mode == "mpi":
            rt.transport.abort(EXIT_INTERRUPTED)
        context.abandon()
        return EXIT_INTERRUPTED
    except BaseException as exc:
        # the user's frames: the launcher's, runpy's and dagmpi's own are left out
        # (DAGMPI_LOG_LEVEL=DEBUG shows them)
        debug = os.environ.get("DAGMPI_LOG_LEVEL", "").upper() == "DEBUG"
        sys.stderr.write(traceback.format_exc() if debug else format_user_traceback(exc))
        sys.stderr.write("dagmpi: the script raised on rank 0; aborting all ranks\n")
        sys.stderr.flush()
        if rt is not None and rt.mode == "mpi":
            rt.transport.abort(1)
        context.abandon()
        return 1
    if code != 0:
        if rt is not None and rt.mode == "mpi":
            sys.stderr.write(f"dagmpi: the script exited with status {code}; aborting all ranks\n")
            rt.transport.abort(code)
        context.abandon()
        return code
    context.shutdown()
    return 0


def ckpt_main(argv: list[str]) -> int:
    """``python -m dagmpi ckpt ls|info PATH``: what a checkpoint directory holds."""
    p = argparse.ArgumentParser(prog="python -m dagmpi ckpt",
                                description="Inspect a dagmpi checkpoint directory (read-only).")
    p.add_argument("command", choices=["ls", "info", "gc"],
                   help="ls: entries; info: summary; gc: remove entries the newest completed run did not use")
    p.add_argument("path")
    p.add_argument("--dry-run", action="store_true", help="gc: say what would be removed")
    ns = p.parse_args(argv)
    if not os.path.isdir(ns.path):
        sys.stderr.write(f"dagmpi ckpt: {ns.path!r} is not a directory\n")
        return EXIT_USAGE
    from .checkpoint import CheckpointError
    from .checkpoint.hdf5 import gc, scan

    if ns.command == "gc":
        try:
            report = gc(ns.path, dry_run=ns.dry_run)
        except CheckpointError as exc:
            sys.stderr.write(f"dagmpi ckpt gc: {exc}\n")
            return 1
        print(json.dumps(report, indent=2))
        return 0
    try:
        idx = scan(ns.path)
    except CheckpointError as exc:
        sys.stderr.write(f"dagmpi ckpt: {exc}\n")
        return 1
    for w in idx.warnings:
        sys.stderr.write(f"warning: {w}\n")
    if ns.command == "ls":
        print(f"{'key':<41} {'task':<28} {'kind':<6} {'bytes':>12}  {'saved (UTC)':<19}  file")
        for loc in sorted(idx.entries.values(), key=lambda e: e.time):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(loc.time))
            print(f"{loc.key:<41} {loc.name[:28]:<28} {loc.kind:<6} {loc.nbytes:>12,}  {when}  "
                  f"{os.path.basename(loc.path)}")
    else:
        total = sum(e.nbytes for e in idx.entries.values())
        names: dict[str, int] = {}
        for e in idx.entries.values():
            names[e.name] = names.get(e.name, 0) + 1
        print(json.dumps({"directory": idx.directory, "files": len(idx.files), "entries": len(idx),
                          "bytes": total, "tasks_by_name": names, "warnings": idx.warnings}, indent=2))
    return 0


def _info() -> int:
    import platform

    import dagmpi

    out: dict = {"dagmpi": dagmpi.__version__, "python": platform.python_version(),
                 "launched_by_mpi": context.launched_by_mpi()}
    try:
        from .transport.mpi import library_info, world_rank

        out["mpi"] = library_info()
    except ImportError as exc:
        out["mpi"] = {"error": str(exc)}
    else:
        if world_rank() != 0:  # one report per job, not one per rank
            return 0
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
