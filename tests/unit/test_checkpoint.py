"""HDF5 checkpoint files and task keys (no MPI)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from dagmpi.checkpoint import keys
from dagmpi.checkpoint import CheckpointError
from dagmpi.checkpoint.hdf5 import Reader, Writer, scan


def test_written_entries_are_indexed_and_load_back(tmp_path):
    w = Writer(str(tmp_path), rank=3)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    w.add("k1", "load", a)
    w.add("k2", "meta", {"x": [1, 2], "s": "text"})
    w.add("k3", "scalar", np.float64(2.5))
    w.close(timeout=10)
    idx = scan(str(tmp_path))
    assert set(idx.entries) == {"k1", "k2", "k3"} and not idx.warnings
    assert idx.get("k1").kind == "array" and idx.get("k2").kind == "pickle"
    r = Reader()
    np.testing.assert_array_equal(r.load(idx.get("k1")), a)
    assert r.load(idx.get("k2")) == {"x": [1, 2], "s": "text"}
    assert float(r.load(idx.get("k3"))) == 2.5
    # native HDF5: h5py reads the array without dagmpi
    r.close()
    with h5py.File(idx.get("k1").path, "r") as f:
        np.testing.assert_array_equal(f["entries/k1"][()], a)
        assert f.attrs["format"] == "dagmpi-checkpoint"


def test_incomplete_corrupt_and_foreign_files_are_ignored_not_deleted(tmp_path):
    w = Writer(str(tmp_path), rank=0)
    w.add("good", "t", 1)
    w.close(timeout=10)
    (tmp_path / "rank1-9-1.h5.tmp").write_bytes(b"\x89HDF partial")
    (tmp_path / "rank2-9-1.h5").write_bytes(b"not hdf5 at all")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    idx = scan(str(tmp_path))
    assert set(idx.entries) == {"good"}
    text = "\n".join(idx.warnings)
    assert "rank1-9-1.h5.tmp" in text and "incomplete" in text
    assert "rank2-9-1.h5" in text and "cannot be read" in text
    assert "other.h5" in text and "not a dagmpi checkpoint" in text
    assert len(os.listdir(tmp_path)) == 4  # nothing deleted


def test_incompatible_version_is_an_error_naming_the_file(tmp_path):
    with h5py.File(tmp_path / "rank0-1-1.h5", "w") as f:
        f.attrs["format"] = "dagmpi-checkpoint"
        f.attrs["version"] = 99
        f.create_group("entries")
    with pytest.raises(CheckpointError, match="rank0-1-1.h5.*version 99"):
        scan(str(tmp_path))


def test_files_roll_by_count_and_only_complete_files_show(tmp_path):
    w = Writer(str(tmp_path), rank=0, roll_entries=2, roll_seconds=60)
    for i in range(5):
        w.add(f"k{i}", "t", i)
    w.flush(timeout=10)
    assert len(scan(str(tmp_path)).entries) == 5
    assert len(list(tmp_path.glob("*.h5"))) == 3
    w.close(timeout=10)


def add(a, b):
    return a + b


def test_keys_are_stable_and_content_based():
    x = np.arange(5.0)
    k1 = keys.task_key(add, (x, 1), {})
    assert k1 == keys.task_key(add, (np.arange(5.0), 1), {})
    assert k1 != keys.task_key(add, (np.arange(5.0) + 1, 1), {})
    assert k1 != keys.task_key(add, (x, 2), {})

    def add2(a, b):
        return a - b

    assert keys.function_fingerprint(add) != keys.function_fingerprint(add2)
    assert keys.task_key(add, (1,), {}, user_key="mine") == keys.task_key(len, (), {}, "mine")
