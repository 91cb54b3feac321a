"""One typed configuration: keyword argument > ``DAGMPI_*`` environment variable > default.

Read when the runtime starts (``dagmpi.init()``), never at import time.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional


@dataclass(frozen=True)
class Config:
    """Runtime settings; each can be set by keyword or by ``DAGMPI_<NAME>``."""

    #: "auto" (MPI when started by an MPI launcher, else in-process), "mpi" or "inproc".
    transport: str = "auto"
    #: Number of in-process worker ranks when running without MPI.
    workers: int = 1
    #: Concurrent task slots per worker rank (default: 1 under MPI, CPU count in-process).
    slots: int = 0
    #: Tasks a worker may hold queued beyond its slots (runs ahead without waiting for rank 0).
    prefetch: int = 2
    #: Longest sleep (seconds) of an idle rank between checks for messages.
    poll_max: float = 1e-3
    #: Seconds a waiting rank keeps testing for the next message before it sleeps
    #: (-1: 3 ms; 0 on rank 0 where the node has fewer cores than ranks).
    spin_time: float = -1.0
    #: Checkpoint directory ("" = no checkpoints); results of checkpointed tasks are saved there.
    checkpoint: str = ""
    #: "marked": only tasks with ``checkpoint=True``; "all": every task.
    checkpoint_policy: str = "marked"
    #: Seconds between a worker's checkpoint files (each is flushed, fsynced and renamed
    #: into place): results younger than this are lost with a killed rank.
    checkpoint_interval: float = 2.0
    #: Seconds running tasks may go on after SIGTERM/SIGUSR1 before they are abandoned.
    grace: float = 10.0
    #: Retries of a task that sets no ``retries=`` option.
    retries: int = 0
    #: 1: the array layer runs an operation over all blocks of an array (creation,
    #: elementwise, map_blocks, reductions, each map_overlap step) as launches of point
    #: tasks (``dagmpi.spawn_many``: rank 0 handles each once, not per block); 0: one
    #: task per block (always under ULFM, where those are computed again after a death).
    array_launches: int = 1
    #: Custom resources each worker rank offers, e.g. ``"licence=2,scratch=100GB"``.
    resources: str = ""
    #: Python's first-generation garbage-collection threshold on MPI ranks (0: leave
    #: Python's own, 700).  Rank 0 keeps a few objects per live task; with Python's
    #: default, collections cost about 40% of its time per task on large graphs.
    gc_threshold: int = 10000
    #: Memory a worker rank may use for the task values it holds before it spills the
    #: coldest to local disk: "auto" (its share of the node's memory), "0" (no limit),
    #: or a size such as "4GiB".
    memory_limit: str = "auto"
    #: Folder for spilled values ("" = ``$TMPDIR``, else the system's temporary folder).
    spill_dir: str = ""
    #: Seconds every MPI rank waits at start-up for all the others to start dagmpi; a rank
    #: that failed or exited before it (a broken environment on one node, a crashed
    #: import) ends the job after this wait, with a message naming it, instead of a hang.
    join_timeout: float = 60.0
    #: Calls a ``dagmpi.Executor`` keeps in the runtime at a time (0: 4 per worker rank it
    #: uses, at least 16); the rest wait in the executor, where they can be cancelled.
    executor_window: int = 0
    #: Log level of the ``dagmpi`` logger when dagmpi configures logging (launcher only).
    log_level: str = "WARNING"
    #: Write a Chrome/Perfetto trace of the run to this file at shut-down ("" = no tracing).
    trace: str = ""
    #: Progress bars on the driver for long waits: "auto" (only when stderr is a
    #: terminal), "1" (always) or "0" (never).
    progress: str = "auto"

    @classmethod
    def from_sources(cls, overrides: Mapping[str, Any] | None = None,
                     environ: Optional[Mapping[str, str]] = None) -> "Config":
        """Build a config from keywords, then ``DAGMPI_*`` variables, then defaults."""
        overrides = dict(overrides or {})
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            named = ", ".join(f"{u} (did you mean {_hint(u, known)}?)" if _hint(u, known) else u
                              for u in unknown)
            raise TypeError(f"unknown dagmpi setting(s): {named}; valid settings are: {', '.join(known)}")
        values: dict[str, Any] = {}
        for name, f in known.items():
            env_name = "DAGMPI_" + name.upper()
            if name in overrides and overrides[name] is not None:
                raw, source = overrides[name], f"keyword {name}="
            elif env_name in environ:
                raw, source = environ[env_name], f"environment variable {env_name}"
            else:
                continue
            values[name] = _coerce(raw, f.type, source)
        cfg = cls(**values)
        cfg._validate()
        return cfg

    @classmethod
    def unknown_variables(cls, environ: Optional[Mapping[str, str]] = None) -> list[str]:
        """``DAGMPI_*`` names in the environment that no setting reads (misspellings)."""
        environ = os.environ if environ is None else environ
        valid = {"DAGMPI_" + f.name.upper() for f in fields(cls)} | OTHER_VARIABLES
        return sorted(n for n in environ if n.startswith("DAGMPI_") and n not in valid)

    @classmethod
    def warnings(cls, environ: Optional[Mapping[str, str]] = None) -> list[str]:
        """One line per misspelt ``DAGMPI_*`` variable, naming the closest valid one."""
        valid = sorted({"DAGMPI_" + f.name.upper() for f in fields(cls)} | OTHER_VARIABLES)
        out = []
        for name in cls.unknown_variables(environ):
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]}?" if close else
                    f"the settings are {', '.join(v for v in valid if v[7:].lower() in _NAMES)}")
            out.append(f"dagmpi: the environment variable {name} is not a dagmpi setting and is "
                       f"ignored ({hint})")
        return out

    def _validate(self) -> None:
        if self.log_level.upper() not in LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LEVELS)}, not {self.log_level!r}")
        if self.transport not in ("auto", "mpi", "inproc"):
            raise ValueError(f"transport must be 'auto', 'mpi' or 'inproc', not {self.transport!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, not {self.workers}")
        if self.slots < 0:
            raise ValueError(f"slots must be >= 1 (or 0 for the default), not {self.slots}")
        if self.checkpoint_policy not in ("all", "marked"):
            raise ValueError(f"checkpoint_policy must be 'all' or 'marked', not {self.checkpoint_policy!r}")
        if self.checkpoint_interval <= 0:
            raise ValueError(f"checkpoint_interval must be > 0 seconds, not {self.checkpoint_interval}")
        if self.grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, not {self.grace}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, not {self.retries}")
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, not {self.prefetch}")
        if self.gc_threshold < 0:
            raise ValueError(f"gc_threshold must be >= 0 (0: Python's default), not {self.gc_threshold}")
        if self.spin_time < 0 and self.spin_time != -1:
            raise ValueError(f"spin_time must be >= 0 seconds (or -1 for automatic), not {self.spin_time}")
        if not self.join_timeout > 0:
            raise ValueError(f"join_timeout must be > 0 seconds, not {self.join_timeout}")
        if not self.poll_max > 0:
            raise ValueError(f"poll_max must be > 0 seconds, not {self.poll_max}")
        parse_memory_limit(self.memory_limit)  # raises a ValueError naming the setting
        if str(self.progress).lower() not in ("auto", "1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"progress (DAGMPI_PROGRESS) must be 'auto', '1' or '0', not {self.progress!r}")

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


def _coerce(raw: Any, typ: Any, source: str) -> Any:
    typ = typ if isinstance(typ, str) else typ.__name__
    try:
        if typ == "int":
            return int(raw)
        if typ == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be {typ}, got {raw!r}") from None


#: Units of sizes such as ``memory_limit="4GiB"`` (as in ``Options.resources``).
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
               "t": 10**12, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_memory_limit(text: str) -> Optional[int]:
    """Bytes of a ``memory_limit`` setting: ``None`` for "auto", 0 for no limit ("0"),
    else the size ("4GiB", "500MB", "1.5 GB", or a whole number of bytes).

    Raises :class:`ValueError` naming the setting and giving an example.
    """
    import re

    given = str(text).strip()
    if given.lower() == "auto":
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)", given)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _SIZE_UNITS or (not unit and not m.group(1).isdigit()):
        raise ValueError(f"memory_limit (DAGMPI_MEMORY_LIMIT) must be 'auto', '0' (no limit) or a size "
                         f"such as '4GiB' or '500MB', not {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


#: Log levels ``log_level`` / ``DAGMPI_LOG_LEVEL`` accepts.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: ``DAGMPI_*`` variables read elsewhere than :class:`Config` (tools, tests, GPU transfers).
OTHER_VARIABLES = frozenset({
    "DAGMPI_CUDA_AWARE", "DAGMPI_SLURM_DIR", "DAGMPI_SLURM_CPUS", "DAGMPI_OMPI_VENV",
    "DAGMPI_CHAOS", "DAGMPI_CHAOS_KILLS", "DAGMPI_TEST_TIMEOUT", "DAGMPI_GPUS", "DAGMPI_PYTHON",
    "DAGMPI_GPU_CHUNK", "DAGMPI_GPU_SIM", "DAGMPI_GPU_SIM_COUNT", "DAGMPI_GPU_SIM_MEMORY",
})
_NAMES = frozenset(f.name for f in fields(Config))


def _hint(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else ""
