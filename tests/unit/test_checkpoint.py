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


def _overwrite(path, pattern: bytes, n: int = 16) -> None:
    """Overwrite ``n`` bytes in the middle of ``pattern``'s (unique) place in the file."""
    data = bytearray(open(path, "rb").read())
    at = data.find(pattern)
    assert at >= 0 and data.find(pattern, at + 1) < 0
    at += (len(pattern) - n) // 2
    data[at:at + n] = bytes((b ^ 0x5A) for b in data[at:at + n])
    with open(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("what", ["array", "pickle"])
def test_16_damaged_bytes_are_found_never_returned_and_gc_removes_them(tmp_path, what):
    """Issue #11 rule 2: every saved value carries a checksum checked on read; a restart's
    scan leaves the damaged entry out (its task runs again) with one warning; gc removes it."""
    good = np.arange(1000, dtype=np.float64)
    victim = np.arange(1000, 2000, dtype=np.float64) if what == "array" else {"text": "Q" * 400}
    w = Writer(str(tmp_path), rank=1)
    w.add("good", "good", good)
    w.add("victim", "victim", victim)
    w.add("other", "other", {"x": 1})
    w.close(timeout=10)
    (path,) = scan(str(tmp_path)).files
    _overwrite(path, victim.tobytes() if what == "array" else b"Q" * 400)

    plain = scan(str(tmp_path))  # the index alone does not read the values ...
    with pytest.raises(CheckpointError, match="damaged|cannot read"):
        Reader().load(plain.get("victim"))  # ... but a read never returns the damaged bytes

    idx = scan(str(tmp_path), verify=True)
    assert "victim" not in idx.entries and {"good", "other"} <= set(idx.entries)
    assert idx.damaged == {path: ["victim"]}
    assert len(idx.warnings) == 1 and "1 of 3 saved values are damaged" in idx.warnings[0]
    r = Reader()
    np.testing.assert_array_equal(r.load(idx.get("good")), good)
    assert r.load(idx.get("other")) == {"x": 1}
    r.close()

    from dagmpi.checkpoint.hdf5 import gc

    report = gc(str(tmp_path))
    assert report["damaged"] == 1 and report["removed"] == 1 and report["files_rewritten"] == [path]
    after = scan(str(tmp_path), verify=True)
    assert set(after.entries) == {"good", "other"} and not after.warnings and not after.damaged


def test_gc_removes_unreadable_and_cut_off_files_and_old_manifests(tmp_path):
    from dagmpi.checkpoint.hdf5 import gc, write_manifest

    w = Writer(str(tmp_path), rank=0)
    w.add("k", "k", 1)
    w.close(timeout=10)
    (tmp_path / "rank5-1-2-3.h5").write_bytes(b"not hdf5 at all")
    (tmp_path / "rank5-1-2-4.h5.tmp").write_bytes(b"cut off")
    old = write_manifest(str(tmp_path), {"k"})
    os.utime(old, (1, 1))
    newest = write_manifest(str(tmp_path), {"k"})
    assert len(scan(str(tmp_path)).warnings) == 2
    report = gc(str(tmp_path))
    assert sorted(os.path.basename(p) for p in report["files_deleted"]) == ["rank5-1-2-3.h5", "rank5-1-2-4.h5.tmp"]
    assert report["manifests_deleted"] == [old] and os.path.exists(newest) and not os.path.exists(old)
    idx = scan(str(tmp_path))
    assert set(idx.entries) == {"k"} and not idx.warnings
