"""HDF5 in and out of DArrays, with no array data through rank 0.

``from_hdf5``: every block's task reads its own hyperslab of the file on the
rank that owns the block.  ``to_hdf5``: each worker writes the blocks it holds
to its own part file (``<path>.parts/``: the serial h5py wheel cannot share a
file between processes), and the driver then writes, in ``path``, a virtual
dataset (``h5py.VirtualLayout``) of the full shape that maps every block to
its part, so any HDF5 reader sees one dataset.  The part files must stay next
to ``path`` (the links are relative).
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

import numpy as np

from .. import api
from . import core
from . import grid as g

PARTS_SUFFIX = ".parts"


def _h5py() -> Any:
    import h5py

    return h5py


def read_block(path: str, dataset: str, key: tuple) -> np.ndarray:
    """Task: one hyperslab of a dataset."""
    h5py = _h5py()
    with h5py.File(path, "r", locking=False) as f:
        ds = f[dataset]
        shape = tuple(s.stop - s.start for s in key)
        out = np.empty(shape, ds.dtype)
        if out.size:
            ds.read_direct(out, source_sel=key)
        return out


def write_blocks(part: str, names: tuple, *blocks: np.ndarray) -> int:
    """Task: write ``blocks`` as datasets ``names`` of a new file ``part`` (written to
    ``part.tmp``, fsynced, then renamed so a reader never sees half a file)."""
    h5py = _h5py()
    tmp = part + ".tmp"
    with h5py.File(tmp, "w", locking=False) as f:
        for name, block in zip(names, blocks):
            if not isinstance(block, np.ndarray) and hasattr(block, "get"):
                block = block.get()  # a GPU block (CuPy): written from a host copy
            f.create_dataset(name, data=np.ascontiguousarray(block))
        f.flush()
        os.fsync(f.id.get_vfd_handle())
    os.replace(tmp, part)
    return sum(int(b.nbytes) for b in blocks)


def from_hdf5(path: str, dataset: str, blocks: Any = "auto") -> core.DArray:
    """A DArray of an HDF5 dataset; each worker reads its own blocks from the file
    (which every worker rank must see, e.g. on a shared file system)."""
    h5py = _h5py()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"from_hdf5: no file {path!r}")
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise OSError(f"from_hdf5: {path!r} is not a readable HDF5 file ({exc})") from None
    with f:
        if dataset not in f:
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            raise KeyError(f"from_hdf5: {path!r} has no dataset {dataset!r}; it has "
                           f"{', '.join(repr(n) for n in sorted(names)) or 'none'}")
        ds = f[dataset]
        if not isinstance(ds, h5py.Dataset):
            raise KeyError(f"from_hdf5: {dataset!r} in {path!r} is a group, not a dataset")
        shape, dtype = ds.shape, ds.dtype
    if shape is None:
        raise ValueError(f"from_hdf5: {dataset!r} in {path!r} has no shape (an empty dataset)")
    apath = os.path.abspath(path)
    chunks = g.normalize_chunks(blocks, tuple(shape), dtype.itemsize, len(core._workers()))
    return core._create(shape, chunks, dtype,
                        lambda idx, bs: (read_block, apath, dataset, g.block_slices(chunks, idx)), "from_hdf5")


def _part_name(dataset: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dataset.strip("/")) or "data"


def to_hdf5(path: str, dataset: str, a: Any, overwrite: bool = False) -> str:
    """Write ``a`` to ``path`` as ``dataset`` (see the module's docstring); returns
    the path.  Other datasets of an existing file are kept; an existing dataset of
    the same name is an error unless ``overwrite=True``."""
    h5py = _h5py()
    a = core.asarray(a)
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"to_hdf5: the folder {folder!r} does not exist")
    if os.path.exists(path):
        try:
            with h5py.File(path, "r", locking=False) as f:
                present = dataset in f
        except OSError as exc:
            raise OSError(f"to_hdf5: {path!r} exists and is not an HDF5 file ({exc}); "
                          f"choose another path") from None
        if present and not overwrite:
            raise FileExistsError(f"to_hdf5: {path!r} already has a dataset {dataset!r}; "
                                  f"pass overwrite=True to replace it")
    parts_dir = path + PARTS_SUFFIX
    os.makedirs(parts_dir, exist_ok=True)
    stem = _part_name(dataset)
    for old in os.listdir(parts_dir):  # an earlier write of this dataset
        if re.fullmatch(re.escape(stem) + r"\.\d+\.h5(\.tmp)?", old):
            os.remove(os.path.join(parts_dir, old))
    tasks = a.tasks
    owners = a.owners()
    groups: dict[int, list[tuple[int, ...]]] = {}
    for n, idx in enumerate(g.block_indices(a.chunks)):
        owner = int(owners[idx]) if a.ndim else int(owners.reshape(-1)[0]) if owners.size else -1
        groups.setdefault(owner if owner >= 0 else -1 - n, []).append(idx)
    writes = []
    layout_items = []
    for gid, (owner, idxs) in enumerate(sorted(groups.items())):
        part = os.path.join(parts_dir, f"{stem}.{gid}.h5")
        names = tuple("b" + "_".join(map(str, idx)) if idx else "b" for idx in idxs)
        prefer = owner if owner >= 0 else None
        writes.append(api.spawn(write_blocks, part, names, *(tasks[idx] for idx in idxs),
                                options=core._opts("to_hdf5", near=None if prefer is not None else tasks[idxs[0]],
                                                   prefer=prefer)))
        for name, idx in zip(names, idxs):
            layout_items.append((os.path.relpath(part, folder), name, idx))
    api.fetch(writes)
    layout = h5py.VirtualLayout(shape=a.shape, dtype=a.dtype)
    for rel, name, idx in layout_items:
        bshape = g.block_shape(a.chunks, idx)
        if 0 in bshape:
            continue
        layout[g.block_slices(a.chunks, idx)] = h5py.VirtualSource(rel, name, shape=bshape)
    with h5py.File(path, "a", locking=False) as f:
        if dataset in f:
            del f[dataset]
        f.create_virtual_dataset(dataset, layout, fillvalue=_fill(a.dtype))
    return path


def _fill(dtype: np.dtype) -> Optional[Any]:
    if dtype.kind in "fc":
        return np.nan
    return None
