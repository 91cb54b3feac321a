"""What the checkpoint layer exposes, independent of the file format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import DagmpiError

#: Value of the ``format`` attribute at the root of every checkpoint file.
FORMAT = "dagmpi-checkpoint"
#: Bumped when files written by this version cannot be read by an older one.
VERSION = 1
#: Exit status of a run that stopped on SIGTERM/SIGUSR1 after saving its checkpoint:
#: "preempted, resumable" (EX_TEMPFAIL); ``slurm/`` wrappers requeue on it.
EXIT_PREEMPTED = 75


class CheckpointError(DagmpiError):
    """A checkpoint directory or file that cannot be used as asked."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where one saved result lives: a file and the entry (task key) in it."""

    path: str
    key: str
    name: str = ""
    nbytes: int = 0
    kind: str = ""  # "array" (native HDF5 dataset) or "pickle"
    time: float = 0.0
    offset: int = -1  # pickled values: where in the file's /blob (-1: a dataset of its own)
    length: int = 0
    crc: int = -1  # CRC-32 of the saved bytes (-1: a file written before checksums)


@dataclass
class Index:
    """Every complete entry found in a checkpoint directory (key -> location)."""

    directory: str
    entries: dict[str, Location] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Files that cannot be read at all, and file -> keys of its damaged entries
    #: (``scan(verify=True)``): left out of ``entries``; ``ckpt gc`` removes them.
    unreadable: list[str] = field(default_factory=list)
    damaged: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str) -> Optional[Location]:
        return self.entries.get(key)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries
