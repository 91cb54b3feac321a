"""Checkpoints of whole arrays under names the application chooses.

A time-stepping application saves its state every few steps and, when it is
run again after a preemption, starts from the last state it saved instead of
step 0::

    start, U = 0, None
    for s in reversed(range(0, steps + 1, every)):      # the newest complete save
        U = da.restore(f"heat/step{s}", shape, blocks, np.float64)
        if U is not None:
            start = s
            break
    ...
    U = da.checkpoint(U, f"heat/step{step}")            # every ``every`` steps

Each block is saved under ``"<name>/<i>,<j>,..."`` (``Options(key=...)``) by
the rank that holds it, in the run's checkpoint folder (``checkpoint=`` /
``DAGMPI_CHECKPOINT``); an array counts as saved only when every block is.
Restored blocks are read from the checkpoint files by their new owners.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import api
from ..options import Options, scope
from . import core
from . import grid as g
from . import launched


def _same(block: Any) -> Any:
    """Task: the block itself (saved to the checkpoint by its options)."""
    return block


def _never(key: str) -> Any:
    """The function of a restored block's task, which never runs (it is restored)."""
    raise RuntimeError(f"the checkpoint entry {key!r} disappeared while the run started")


def _block_key(name: str, idx: tuple[int, ...]) -> str:
    return f"{name}/{','.join(map(str, idx))}"


def _same_point(i: int, block: Any) -> Any:
    """Point: block ``i`` itself (saved to the checkpoint by its launch)."""
    return block


def _never_point(i: int, key: str) -> Any:
    """The function of a restored launch's points, which never run (each is read back)."""
    raise RuntimeError(f"block {i} of the checkpointed array {key!r} disappeared from the checkpoint "
                       "while the run started")


def _keys(name: str, chunks: Any) -> tuple:
    """The checkpoint key of every block of an array saved under ``name``, in C order."""
    return tuple(api.key_of(_block_key(name, idx)) for idx in g.block_indices(chunks))


def checkpoint(a: Any, name: str) -> core.DArray:
    """``a``, with every block saved to the checkpoint under ``name`` (see the module
    docstring); ``a`` itself when checkpointing is off.  The blocks stay where they are."""
    a = core.asarray(a)
    if not isinstance(name, str) or not name:
        raise TypeError(f"checkpoint name must be a non-empty string, got {name!r}")
    if not getattr(api.context.current_client(), "checkpointing", False):
        return a
    a._materialize()  # (a pending program of launched arrays becomes a launch here)
    if a._launch is not None and launched.enabled(a._device == "gpu"):
        # one launch: point k saves block k where it is, under the block's key
        out = core.DArray(a.chunks, a.dtype, None, a._owners, name="checkpoint")
        out._set_launch(api.spawn_many(_same_point, a._launch.n, layout=a._launch.layout,
                                       reads=[(a._launch, launched.SAME)], name="checkpoint", checkpoint=True,
                                       keys=_keys(name, a.chunks)))
        out._device = a._device
        return out
    src = a.tasks
    out = np.empty(a.nblocks, dtype=object)
    for idx in g.block_indices(a.chunks):
        out[idx] = api.spawn(_same, src[idx], options=Options(
            name="checkpoint", checkpoint=True, key=_block_key(name, idx), scope=scope(near=src[idx]),
            move=False))  # (a GPU block stays on its GPU; the checkpoint holds a host copy)
    return core.DArray(a.chunks, a.dtype, out, a._owners, name="checkpoint")


def saved(name: str, nblocks: tuple[int, ...]) -> bool:
    """Does the checkpoint hold every block of the array saved under ``name``?"""
    return all(api.saved(_block_key(name, idx)) for idx in np.ndindex(*nblocks))


def _chunks(shape: Any, blocks: Any, dtype: Any) -> tuple:
    shape = g.normalize_shape(shape)
    return g.normalize_chunks(blocks, shape, np.dtype(dtype).itemsize, len(core._workers()))


def checkpointed(name: str, shape: Any, blocks: Any, dtype: Any = float) -> bool:
    """Does the checkpoint hold every block of an array of this layout saved under
    ``name``?  (Spawns nothing: an application can decide where it starts, and set up
    the run, before its first task.)"""
    return saved(name, g.nblocks(_chunks(shape, blocks, dtype)))


def restore(name: str, shape: Any, blocks: Any, dtype: Any = float) -> Optional[core.DArray]:
    """The array saved under ``name`` (with this ``shape``, ``blocks`` and ``dtype``),
    its blocks read back on the ranks a new array of that layout would use; ``None``
    when the checkpoint does not hold all of it (or checkpointing is off)."""
    dtype = np.dtype(dtype)
    chunks = _chunks(shape, blocks, dtype)
    if not saved(name, g.nblocks(chunks)):
        return None
    owners = core._plan(chunks)
    if launched.enabled():  # one launch whose every point is read back where it goes
        out = core.DArray(chunks, dtype, None, owners, name="restore")
        out._set_launch(api.spawn_many(_never_point, math.prod(g.nblocks(chunks)), name,
                                       layout=launched.layout_of(owners), name="restore", checkpoint=False,
                                       keys=_keys(name, chunks)))
        return out
    out = np.empty(g.nblocks(chunks), dtype=object)
    for idx in g.block_indices(chunks):
        key = _block_key(name, idx)
        held = api.spawn(_never, key, options=Options(name="restored", checkpoint=True, key=key))
        out[idx] = api.spawn(_same, held, options=core._opts("restore", prefer=owners[idx]))
    return core.DArray(chunks, dtype, out, owners, name="restore")
