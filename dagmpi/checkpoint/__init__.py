"""Checkpoints: task results saved in HDF5 so a rerun skips finished work.

The only part of dagmpi that imports h5py (in :mod:`.hdf5`).  See
:mod:`dagmpi.keys` for how a task's key is made, and ``docs/design.md``.
"""

from .base import (
    CheckpointError,
    Index,
    Location,
)

__all__ = ["CheckpointError", "Index", "Location"]
