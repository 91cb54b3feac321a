"""``python -m dagmpi`` and the ``dagmpi`` command.

::

    mpiexec -n 5 python -m dagmpi app.py [args]   # rank 0 runs app.py, ranks 1..4 run tasks
    srun -n 5 python -m dagmpi app.py [args]
    python -m dagmpi app.py [args]                 # no launcher: in-process runtime
    python -m dagmpi -m package.module [args]
    dagmpi run app.py | dagmpi info | dagmpi ckpt ls DIR | dagmpi trace summary FILE

An uncaught exception in the script aborts every rank (``MPI_Abort``) with the
traceback printed once, like ``python -m mpi4py``; nothing is left hanging.
Under a launcher every rank runs this front end: help, usage errors and the
like are printed by rank 0 only, and every rank exits with the same status.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import os
import re
import runpy
import shutil
import sys
import textwrap
import time
import traceback
from typing import Optional

from .errors import format_user_traceback

from .config import LEVELS, Config
from .runtime import context

EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130

#: The subcommands, one line each in ``--help`` (``run`` is the default).
COMMANDS = (
    ("run SCRIPT [ARGS]", "run a script (the same as giving SCRIPT alone)"),
    ("info", "versions of dagmpi, Python and MPI, as JSON"),
    ("ckpt ls|info|gc DIR", "list or summarise checkpoints; gc removes unused"),
    ("trace summary|gantt FILE", "summarise a --trace file, or draw its Gantt chart"),
)
#: How a job is started, one line each in ``--help``.
LAUNCH_FORMS = (
    ("mpiexec -n 5 python -m dagmpi app.py", "rank 0: app.py; ranks 1-4: its tasks"),
    ("srun -n 64 python -m dagmpi app.py", "the same under Slurm"),
    ("python -m dagmpi app.py", "no launcher: in-process, no MPI needed"),
    ("python -m dagmpi -m package.module", "run a module as the script"),
)
#: ``DAGMPI_*`` variables users set that :class:`Config` does not hold: (name, meaning).
OTHER_USER_VARIABLES = (
    ("DAGMPI_GPUS", "GPU ids this rank may use, e.g. 0,1, or none (default: those detected)."),
    ("DAGMPI_CUDA_AWARE", "1|0: GPU buffers go to MPI directly (default: what MPI says it supports)."),
    ("DAGMPI_GPU_CHUNK", "bytes per chunk of a staged GPU transfer (default 4 MiB)."),
    ("DAGMPI_GPU_SIM", "1 (or a list of ranks): a simulated GPU on the CPU, to test GPU code paths."),
    ("DAGMPI_GPU_SIM_COUNT", "simulated GPUs per node (default 1)."),
    ("DAGMPI_GPU_SIM_MEMORY", "bytes of a simulated GPU (default 16 GiB)."),
)


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


def program_name(argv0: Optional[str] = None) -> str:
    """``dagmpi`` when started as the console script, else ``python -m dagmpi``
    (under ``-m``, ``sys.argv[0]`` is the path of ``dagmpi/__main__.py``)."""
    base = os.path.basename(sys.argv[0] if argv0 is None else argv0)
    if base != "__main__.py" and base.startswith("dagmpi"):  # also dagmpi.exe
        return "dagmpi"
    return "python -m dagmpi"


class _Parser(argparse.ArgumentParser):
    """An argument parser that speaks once per job and says a usage error in one line."""

    def _print_message(self, message: str, file=None) -> None:
        # every message argparse prints (help, --version, errors) comes through here;
        # under a launcher every rank parses the same arguments, so rank 0 alone prints
        if context.launcher_rank() == 0:
            super()._print_message(message, file)

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (try '{self.prog} --help')\n")


# --- the help text -----------------------------------------------------------------


def setting_docs() -> list[tuple[str, Optional[str], str]]:
    """(variable, default, one-line meaning) of every ``DAGMPI_*`` setting users set:
    those of :class:`Config`, whose meaning is the first sentence of the field's ``#:``
    comment (empty where the source cannot be read, as in a zipped install), then the
    few read elsewhere (default ``None``: their meaning says it)."""
    comments = _field_comments(Config)
    out = []
    for f in dataclasses.fields(Config):
        default = "" if f.default is dataclasses.MISSING else f.default
        shown = '""' if default == "" else str(default)
        out.append(("DAGMPI_" + f.name.upper(), shown, _first_sentence(comments.get(f.name, ""))))
    return out + [(name, None, meaning) for name, meaning in OTHER_USER_VARIABLES]


def _field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines above each field of a dataclass, joined."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        field = re.match(r"(\w+)\s*:[^=]*=", text)  # "name: type = default"
        if field and pending:
            out[field.group(1)] = " ".join(pending)
        pending = []
    return out


def _first_sentence(text: str) -> str:
    """Up to the first full stop outside parentheses (not that of "e.g.")."""
    text = text.replace("``", "")
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if (ch == "." and depth == 0 and (i + 1 == len(text) or text[i + 1] == " ")
                and not text[:i].endswith(("e.g", "i.e"))):
            return text[:i + 1]
    return text


def _rows(rows, width: int, max_left: int = 40) -> list[str]:
    """Two columns, like argparse's options; a long left cell puts its text below."""
    left = min(max(len(a) for a, _ in rows) + 4, max_left)
    out = []
    for a, text in rows:
        lines = textwrap.wrap(text, max(width - left, 30), break_on_hyphens=False) or [""]
        if len(a) + 4 > left:
            out.append(f"  {a}")
        else:
            out.append(f"  {a:<{left - 2}}{lines.pop(0)}")
        out.extend(" " * left + line for line in lines)
    return out


def _epilog(prog: str) -> str:
    width = max(60, min(shutil.get_terminal_size().columns, 100) - 2)
    variables = [(name if default is None else f"{name}={default}", meaning)
                 for name, default, meaning in setting_docs()]
    return "\n".join([
        f"commands ('{prog} COMMAND --help' for more):", *_rows(COMMANDS, width), "",
        "launching (what follows app.py is app.py's own arguments):", *_rows(LAUNCH_FORMS, width),
        "  or, with dagmpi.init() in app.py: mpiexec -n 5 python app.py", "",
        "environment variables, with their defaults (an option above, or a keyword to",
        "dagmpi.init(), wins over the variable):",
        *_rows(variables, width, max_left=36),
    ])


def _parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    import dagmpi

    prog = program_name() if prog is None else prog
    p = _Parser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_epilog(prog),
        description="Run a Python script on dagmpi: rank 0 runs the script and the scheduler, "
                    "the other ranks\nrun its tasks.  Options go before the script; what follows "
                    "the script is its own.")
    p.add_argument("--version", action="version", version=f"dagmpi {dagmpi.__version__}")
    p.add_argument("--transport", choices=["auto", "mpi", "inproc"], default=None,
                   help="MPI or in-process (default: $DAGMPI_TRANSPORT, else auto)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="in-process worker ranks (no MPI)")
    p.add_argument("--slots", type=int, default=None, metavar="N", help="task slots per worker rank")
    p.add_argument("--log-level", type=str.upper, choices=LEVELS, default=None, metavar="LEVEL",
                   help=f"{', '.join(LEVELS)} (default: $DAGMPI_LOG_LEVEL, else WARNING)")
    p.add_argument("--trace", default=None, metavar="FILE",
                   help=f"write a Chrome/Perfetto trace of the run to FILE (see '{prog} trace')")
    p.add_argument("--progress", choices=["auto", "1", "0"], default=None,
                   help="progress bars for long waits: auto (when stderr is a terminal), 1 or 0")
    p.add_argument("-m", dest="module", default=None, metavar="MODULE", help="run a module as the script")
    p.add_argument("script", nargs="?", metavar="SCRIPT", help="the script to run (or a command below)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's arguments")
    return p


def _no_script(prog: str, rank: int) -> int:
    if rank == 0:  # under a launcher every rank gets here: say it once
        sys.stderr.write(f"dagmpi: no script given; usage: {prog} [options] SCRIPT [ARGS] "
                         f"(or {prog} run|info|ckpt|trace ...); try '{prog} --help'\n")
    return EXIT_USAGE


#: Options of ``python -m dagmpi`` that take a value (the word after them is not the script).
_VALUED_OPTIONS = frozenset({"--transport", "--workers", "--slots", "--log-level", "--trace", "--progress"})


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = program_name()
    if argv and argv[0] == "run":
        argv = argv[1:]
    elif argv and argv[0] == "ckpt":
        return ckpt_main(argv[1:], prog=f"{prog} ckpt")
    elif argv and argv[0] == "trace":
        from .trace.cli import main as trace_main  # only this command needs it

        return trace_main(argv[1:]) or 0
    rank = context.launcher_rank()
    if not argv:
        return _no_script(prog, rank)
    rest: Optional[list[str]] = None
    i = 0
    while i < len(argv):  # ``-m MODULE ARGS...``: everything after MODULE is the module's
        a = argv[i]
        if a == "-m" and i + 1 < len(argv):
            argv, rest = argv[:i + 2], argv[i + 2:]
            break
        if not a.startswith("-"):
            break  # a script: argparse hands it the rest (REMAINDER)
        i += 2 if a in _VALUED_OPTIONS else 1
    ns = _parser(prog).parse_args(argv)
    if rest is not None:
        ns.args = rest
    if ns.script == "info" and ns.module is None:
        _Parser(prog=f"{prog} info", description="Print the versions of dagmpi, Python and the MPI "
                "library as JSON (under a launcher: rank 0's, once).").parse_args(ns.args)
        return _info()
    if ns.module is None and ns.script is None:
        return _no_script(prog, rank)
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
    config = {k: v for k, v in (("transport", ns.transport), ("workers", ns.workers), ("slots", ns.slots),
                                ("log_level", ns.log_level), ("trace", ns.trace),
                                ("progress", ns.progress)) if v is not None}
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
        sys.stderr.write("dagmpi: interrupted (Ctrl-C); ending the job\n")
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


def ckpt_main(argv: list[str], prog: str = "python -m dagmpi ckpt") -> int:
    """``python -m dagmpi ckpt ls|info|gc DIR``: what a checkpoint directory holds; clean it up."""
    p = _Parser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Inspect a dagmpi checkpoint directory, or remove what a rerun would not use.",
        epilog="\n".join([
            "commands:",
            "  ls     list the entries: key, task, kind, bytes, when saved, file (read-only)",
            "  info   a summary as JSON: files, entries, bytes, tasks by name (read-only)",
            "  gc     remove damaged entries, files cut off by a kill, and entries the newest",
            "         completed run did not use; DELETES FILES (try --dry-run first, and run",
            "         it while no job writes to DIR)",
        ]))
    p.add_argument("command", choices=["ls", "info", "gc"], metavar="{ls,info,gc}",
                   help="what to do (see below)")
    p.add_argument("path", metavar="DIR", help="the checkpoint directory (DAGMPI_CHECKPOINT of the run)")
    p.add_argument("--dry-run", action="store_true",
                   help="gc: report what would be removed, and remove nothing")
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
