"""The worker's store (dagmpi/runtime/spill.py): spills past its limit, reads back, frees files."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from dagmpi import serialize
from dagmpi.config import Config, parse_memory_limit
from dagmpi.runtime import spill
from dagmpi.runtime.spill import Store

MB = 1 << 20


def triple(value):
    payload, buffers = serialize.dump_value(value)
    return (value, payload, buffers)


def files(store):
    return sorted(os.listdir(store.folder)) if store.folder else []


@pytest.mark.parametrize("serialized", [True, False], ids=["mpi-triples", "inproc-values"])
def test_spills_past_the_limit_and_reads_back_equal(tmp_path, serialized):
    s = Store(10 * MB, str(tmp_path), serialized=serialized, rank=3)
    arrays = {i: np.full(MB // 8, float(i)) for i in range(30)}  # 30 MiB, 3x the limit
    for i, a in arrays.items():
        s[i] = triple(a) if serialized else a
        assert s.memory_bytes <= s.limit
    assert not s.over_limit
    assert len(s) == 30 and all(i in s for i in arrays) and 99 not in s
    st = s.stats()
    assert st["limit"] == 10 * MB
    assert st["spilled"] >= 20 and st["spilled_bytes"] >= 20 * MB
    assert st["read"] == 0 and st["memory_bytes"] == s.memory_bytes
    assert s.folder.startswith(str(tmp_path)) and f"-r3-" in os.path.basename(s.folder)
    assert len(files(s)) == st["spilled"]
    # the oldest went to disk; reading it back gives an equal, writable value
    entry = s[0]
    value = entry[0] if serialized else entry
    np.testing.assert_array_equal(value, arrays[0])
    assert value.flags.writeable
    if serialized:  # the triple is rebuilt: payload and buffers load to the same value again
        np.testing.assert_array_equal(serialize.load_value(entry[1], entry[2]), arrays[0])
    assert s.stats()["read"] == 1 and s.stats()["read_bytes"] >= MB
    assert s.memory_bytes <= s.limit
    assert s.get(12345, "nope") == "nope"
    with pytest.raises(KeyError):
        s[12345]


def test_discard_and_pop_remove_the_file(tmp_path):
    s = Store(4 * MB, str(tmp_path))
    for i in range(8):
        s[i] = triple(np.arange(MB // 8, dtype=np.float64) + i)
    on_disk = [i for i in range(8) if i in s._disk]
    assert on_disk and len(files(s)) == len(on_disk)
    before = s.disk_bytes
    assert s.discard(on_disk[0]) is True
    assert on_disk[0] not in s and len(files(s)) == len(on_disk) - 1 and s.disk_bytes < before
    value = s.pop(on_disk[1])[0]  # pop reads a spilled value back, then removes it everywhere
    np.testing.assert_array_equal(value, np.arange(MB // 8, dtype=np.float64) + on_disk[1])
    assert on_disk[1] not in s and len(files(s)) == len(on_disk) - 2
    assert s.pop(on_disk[1], None) is None and s.discard(on_disk[1]) is False
    in_memory = next(i for i in range(8) if i in s._fast)
    used = s.memory_bytes
    s.discard(in_memory)
    assert s.memory_bytes < used and in_memory not in s
    for i in list(range(8)):
        s.discard(i)
    assert len(s) == 0 and s.memory_bytes == 0 and s.disk_bytes == 0 and files(s) == []
    st = s.stats()
    assert st["spilled"] == len(on_disk) and st["disk_bytes"] == 0 and st["peak_disk_bytes"] > 0


def test_read_back_value_keeps_its_file_and_is_not_written_twice(tmp_path):
    s = Store(3 * MB + 64 * 1024, str(tmp_path))  # three 1 MiB values (and their pickles) fit
    for i in range(4):
        s[i] = triple(np.zeros(MB // 8) + i)
    assert 0 in s._disk
    s.get(0)  # back in memory (most recently used); the others are older now
    written = s.stats()["spilled"]
    for i in range(4, 8):
        s[i] = triple(np.zeros(MB // 8) + i)
    # 4..7 pushed out 2, 3, 0 and 4: 0 again without a second write; every key reads back equal
    assert 0 not in s._fast and s.stats()["spilled"] == written + 3
    for i in range(8):
        assert float(s[i][0][0]) == i


def test_value_bigger_than_the_limit_goes_straight_to_disk(tmp_path):
    s = Store(1 * MB, str(tmp_path))
    s["small"] = triple(np.ones(1000))
    s["big"] = triple(np.ones(MB))  # 8 MiB > the whole limit
    assert "small" in s._fast and "big" in s._disk and "big" not in s._fast
    assert s.memory_bytes < MB and not s.over_limit
    assert s["big"][0].sum() == MB
    assert "big" not in s._fast  # read back, not kept: it would not fit


def test_fortran_order_and_object_values_round_trip(tmp_path):
    s = Store(1000, str(tmp_path))
    f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    s[1] = triple(f)
    s[2] = triple({"a": list(range(1000)), "b": "x" * 5000})
    s[3] = triple(7)
    np.testing.assert_array_equal(s[1][0], f)
    assert s[2][0]["a"][-1] == 999 and s[3][0] == 7


def test_unspillable_value_stays_in_memory_and_raises_over_limit(tmp_path):
    s = Store(1 * MB, str(tmp_path), serialized=False)
    lock = threading.Lock()  # does not pickle: cannot be spilled in-process
    s["lock"] = [lock] * (MB // 4)  # ~2 MiB of list, over the limit by itself
    assert s.over_limit and s["lock"][0] is lock and s.stats()["held"] == 1
    s["x"] = np.ones(1000)
    assert "x" in s
    s.discard("lock")
    assert not s.over_limit and s.memory_bytes < MB


def test_no_limit_never_writes(tmp_path):
    s = Store(0, str(tmp_path / "never"))
    for i in range(100):
        s[i] = triple(np.ones(MB // 8))
    assert s.stats()["spilled"] == 0 and s.folder == "" and not (tmp_path / "never").exists()


def test_close_removes_the_folder_and_dead_folders_are_swept(tmp_path):
    dead = tmp_path / f"dagmpi-spill-{spill._HOST}-999999999-r1-abc"  # no such pid
    dead.mkdir()
    (dead / "1").write_bytes(b"x")
    other = tmp_path / "dagmpi-spill-otherhost-999999999-r1-abc"
    other.mkdir()
    s = Store(1000, str(tmp_path))
    s[1] = triple(np.ones(1000))
    folder = s.folder
    assert os.path.isdir(folder) and not dead.exists() and other.exists()
    s.close()
    assert not os.path.exists(folder) and s.folder == "" and 1 not in s


def test_bad_spill_dir_is_refused_up_front(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("")
    with pytest.raises(ValueError, match="spill_dir"):
        Store(MB, str(f))
    Store(0, str(f))  # no limit: the folder is never used


def test_memory_limit_setting():
    assert parse_memory_limit("auto") is None
    assert parse_memory_limit("0") == 0
    assert parse_memory_limit("4GiB") == 4 << 30
    assert parse_memory_limit("500MB") == 500_000_000
    assert parse_memory_limit("1.5 GB") == 1_500_000_000
    assert parse_memory_limit("12345") == 12345
    for bad in ("lots", "0.5", "-1GB", "4XB", ""):
        with pytest.raises(ValueError, match=r"memory_limit.*'4GiB'"):
            Config.from_sources({"memory_limit": bad})
    with pytest.raises(ValueError, match="DAGMPI_MEMORY_LIMIT"):
        Config.from_sources(environ={"DAGMPI_MEMORY_LIMIT": "big"})
    assert Config.from_sources(environ={"DAGMPI_MEMORY_LIMIT": "20MB"}).memory_limit == "20MB"


def test_resolve_limit_auto_is_a_share_of_the_node():
    one = spill.resolve_limit("auto", {})
    four = spill.resolve_limit("auto", {"MPI_LOCALNRANKS": "4"})
    assert one > 0 and abs(four - one / 4) <= 1
    assert spill.resolve_limit("0", {}) == 0
    assert spill.resolve_limit("2MiB", {"MPI_LOCALNRANKS": "4"}) == 2 * MB
