"""dagmpi.datadeps on the in-process runtime: In/Out/InOut order tasks by their data.

Each ordering test makes the task that comes first in program order the slow one,
so a missing edge would let the later task run first and change the values.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import dagmpi
from dagmpi import In, InOut, Out
from dagmpi.datadeps import Region

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime():
    dagmpi.init(transport="inproc", workers=2, slots=2)
    yield
    dagmpi.shutdown()


# ------------------------------------------------------------------ task bodies
# (shared with the MPI script tests/scripts/datadeps.py, loaded under a name of its own)


def _load_script_tasks():
    import sys

    spec = importlib.util.spec_from_file_location("datadeps_script_tasks", ROOT / "tests" / "scripts" / "datadeps.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (tasks pickle by reference to it, in this process)
    spec.loader.exec_module(mod)
    return mod


_tasks = _load_script_tasks()
add_slowly, set_to, total, copy_of = _tasks.add_slowly, _tasks.set_to, _tasks.total, _tasks.copy_of
rank_of, meet, fail, two_writes = _tasks.rank_of, _tasks.meet, _tasks.fail, _tasks.two_writes
region_in_a_task = _tasks.region_in_a_task


def mutate_input(a):
    a[0] = 1


# ---------------------------------------------------------------- the edges


def test_read_after_write_sees_the_write(runtime):
    x = np.zeros(8)
    with dagmpi.datadeps():
        dagmpi.spawn(add_slowly, InOut(x), 1.0)
        r = dagmpi.spawn(total, In(x))
    assert dagmpi.fetch(r) == 8.0
    np.testing.assert_array_equal(x, np.ones(8))


def test_write_after_read_keeps_the_readers_version(runtime):
    x = np.ones(8)
    with dagmpi.datadeps():
        slow_read = dagmpi.spawn(total, In(x), delay=0.3)   # still reading when the write runs
        dagmpi.spawn(set_to, Out(x), 5.0)
        later_read = dagmpi.spawn(total, In(x))
    assert dagmpi.fetch(slow_read) == 8.0
    assert dagmpi.fetch(later_read) == 40.0
    np.testing.assert_array_equal(x, np.full(8, 5.0))


def test_write_after_write_keeps_the_program_order(runtime):
    x = np.zeros(8)
    with dagmpi.datadeps():
        dagmpi.spawn(set_to, InOut(x), 1.0, delay=0.3)
        dagmpi.spawn(set_to, Out(x[:4]), 2.0)   # a partial Out keeps the rest of the content
    np.testing.assert_array_equal(x, [2, 2, 2, 2, 1, 1, 1, 1])


def test_a_chain_of_updates(runtime):
    x = np.zeros(4)
    reads = []
    with dagmpi.datadeps():
        for i in range(10):
            dagmpi.spawn(add_slowly, InOut(x), 1.0, delay=0.01 * (i % 3))
            reads.append(dagmpi.spawn(total, In(x), delay=0.02))
    assert dagmpi.fetch(reads) == [4.0 * (i + 1) for i in range(10)]
    np.testing.assert_array_equal(x, np.full(4, 10.0))


def test_overlapping_views_are_ordered(runtime):
    A = np.zeros((4, 8))
    with dagmpi.datadeps():
        dagmpi.spawn(set_to, Out(A[:, :4]), 1.0, delay=0.3)
        top = dagmpi.spawn(copy_of, In(A[:2]))        # another view of the same memory
        dagmpi.spawn(add_slowly, InOut(A[1:3, 2:6]), 10.0, delay=0.1)
        whole = dagmpi.spawn(copy_of, In(A))
    expect_top = np.zeros((2, 8))
    expect_top[:, :4] = 1
    np.testing.assert_array_equal(dagmpi.fetch(top), expect_top)
    expect = np.zeros((4, 8))
    expect[:, :4] = 1
    expect[1:3, 2:6] += 10
    np.testing.assert_array_equal(dagmpi.fetch(whole), expect)
    np.testing.assert_array_equal(A, expect)


def test_disjoint_views_run_at_the_same_time(runtime, tmp_path):
    # The columns' byte ranges overlap in a C-ordered array; their index boxes do not.
    A = np.zeros((4, 8))
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with dagmpi.datadeps():
        dagmpi.spawn(meet, InOut(A[:, :4]), a, b)
        dagmpi.spawn(meet, InOut(A[:, 4:]), b, a)
    np.testing.assert_array_equal(A, np.ones((4, 8)))


def test_driver_arrays_are_updated_in_place_through_views(runtime):
    A = np.zeros((6, 6))
    before = A.__array_interface__["data"][0]
    rows = A[2:4]
    col = A[::2, 5]          # a strided view
    with dagmpi.datadeps():
        dagmpi.spawn(set_to, Out(rows), 3.0)
        dagmpi.spawn(add_slowly, InOut(col), 7.0, delay=0.05)
    expect = np.zeros((6, 6))
    expect[2:4] = 3
    expect[::2, 5] += 7
    np.testing.assert_array_equal(A, expect)
    assert A.__array_interface__["data"][0] == before
    np.testing.assert_array_equal(rows, expect[2:4])


def test_the_driver_memory_is_untouched_until_the_region_ends(runtime):
    x = np.zeros(4)
    with dagmpi.datadeps():
        t = dagmpi.spawn(set_to, InOut(x), 9.0)
        dagmpi.wait([t])
        np.testing.assert_array_equal(x, np.zeros(4))
    np.testing.assert_array_equal(x, np.full(4, 9.0))


def test_spawn_returns_the_functions_value(runtime):
    x, y = np.zeros(3), np.zeros(3)
    with dagmpi.datadeps():
        w = dagmpi.spawn(two_writes, InOut(x), InOut(y))   # a task writing two data
        r = dagmpi.spawn(total, In(y))
        r2 = dagmpi.spawn(total, In(x))
    assert dagmpi.fetch(w) == "both"
    assert dagmpi.fetch([r, r2]) == [6.0, 3.0]
    np.testing.assert_array_equal(x, np.ones(3))
    np.testing.assert_array_equal(y, np.full(3, 2.0))


def test_in_data_are_read_only(runtime):
    x = np.zeros(3)
    with pytest.raises(ValueError, match="read-only"):
        with dagmpi.datadeps():
            dagmpi.spawn(mutate_input, In(x))
    np.testing.assert_array_equal(x, np.zeros(3))


def test_plain_arrays_sharing_tracked_memory_are_read_as_in(runtime):
    A = np.zeros((4, 4))
    with dagmpi.datadeps():
        dagmpi.spawn(set_to, InOut(A[:2]), 1.0, delay=0.2)
        r = dagmpi.spawn(total, A)           # not wrapped: it still sees the write
    assert dagmpi.fetch(r) == 8.0


def test_the_same_datum_twice_in_one_task(runtime):
    x = np.ones(4)
    with dagmpi.datadeps():
        dagmpi.spawn(np.multiply, In(x), 3.0, out=InOut(x))
    np.testing.assert_array_equal(x, np.full(4, 3.0))


# ------------------------------------------------------------------ DArrays


def test_darray_block_inout_updates_the_array_and_stays_distributed(runtime):
    import dagmpi.array as da

    D = da.zeros((8, 8), blocks=(4, 4))
    old = D.tasks[0, 1]
    with dagmpi.datadeps():
        where = dagmpi.spawn(rank_of, InOut(D, block=(0, 1)), 3.0)
        r = dagmpi.spawn(total, In(D, block=(0, 1)))
        dagmpi.spawn(add_slowly, InOut(D, block=(1, 1)), 1.0, delay=0.05)
    assert dagmpi.fetch(where) != 0          # ran on a worker rank, not on the driver
    assert dagmpi.fetch(r) == 48.0
    assert D.tasks[0, 1] is not old and not D.tasks[0, 1]._has_value   # never fetched to the driver
    expect = np.zeros((8, 8))
    expect[:4, 4:] = 3
    expect[4:, 4:] = 1
    np.testing.assert_array_equal(D.to_numpy(), expect)
    np.testing.assert_array_equal(dagmpi.fetch(old), np.zeros((4, 4)))  # the old block is intact


def test_darray_markers_need_a_valid_block(runtime):
    import dagmpi.array as da

    D = da.zeros((8, 8), blocks=(4, 4))
    with pytest.raises(TypeError, match=r"block=\(i, j\)"):
        InOut(D)
    with pytest.raises(IndexError, match="outside"):
        In(D, block=(2, 0))
    with pytest.raises(TypeError, match="numpy array is tracked as it is"):
        In(np.zeros(3), block=(0,))


# ------------------------------------------------------------------- errors


def test_a_failure_raises_its_own_type_at_exit_and_copies_nothing(runtime):
    x = np.zeros(4)
    y = np.zeros(4)
    with pytest.raises(KeyError, match="tile 3 is broken"):
        with dagmpi.datadeps():
            dagmpi.spawn(set_to, InOut(y), 1.0)
            dagmpi.spawn(fail, InOut(x))
            dagmpi.spawn(add_slowly, InOut(x), 1.0, delay=0.0)   # fails upstream: not what is raised
    np.testing.assert_array_equal(x, np.zeros(4))
    np.testing.assert_array_equal(y, np.zeros(4))


def test_markers_outside_a_region_are_refused(runtime):
    x = np.zeros(4)
    with pytest.raises(TypeError, match=r"with dagmpi\.datadeps\(\)"):
        dagmpi.spawn(total, In(x))
    with pytest.raises(TypeError, match="direct") as info:
        with dagmpi.datadeps():
            dagmpi.spawn(total, [InOut(x)])
    assert "cannot be pickled" not in str(info.value)


def test_markers_check_their_data():
    with pytest.raises(TypeError, match="numpy arrays"):
        In([1, 2, 3])
    ro = np.zeros(3)
    ro.flags.writeable = False
    In(ro)
    with pytest.raises(ValueError, match="read-only"):
        Out(ro)
    with pytest.raises(TypeError, match="plain dtypes"):
        InOut(np.empty(2, dtype=object))


def test_regions_do_not_nest_and_a_body_error_propagates(runtime):
    x = np.zeros(2)
    with dagmpi.datadeps():
        with pytest.raises(RuntimeError, match="do not nest"):
            with dagmpi.datadeps():
                pass
    with pytest.raises(ZeroDivisionError):
        with dagmpi.datadeps():
            dagmpi.spawn(set_to, InOut(x), 1.0)
            1 / 0
    np.testing.assert_array_equal(x, np.zeros(2))   # nothing copied back
    with dagmpi.datadeps():                           # the thread has no region left open
        dagmpi.spawn(set_to, InOut(x), 2.0)
    np.testing.assert_array_equal(x, np.full(2, 2.0))


def test_a_task_opens_its_own_region(runtime):
    np.testing.assert_array_equal(dagmpi.fetch(dagmpi.spawn(region_in_a_task, 5)), np.arange(5.0) + 1)


# ----------------------------------------------------------------- aliasing


def _aliases(a: np.ndarray, b: np.ndarray) -> bool:
    r = Region()
    p, q = r._piece(In(a)), r._piece(In(b))
    return p is q or q in p.neighbors


def test_aliasing_of_views():
    A = np.zeros((8, 8))
    assert _aliases(A[:, :4], A[:2])
    assert not _aliases(A[:, :4], A[:, 4:])           # byte ranges overlap, boxes do not
    assert not _aliases(A[::2], A[1::2])              # interleaved rows
    assert _aliases(A[::2], A[2:4])
    assert not _aliases(A[:4, :4], A[4:, 4:])
    assert _aliases(A.T[:, :2], A[:2])                # a transposed view: rows of A
    assert not _aliases(A.T[:, :2], A[2:])
    assert _aliases(A[0], A.reshape(64)[:8])          # a reshape: same memory
    assert not _aliases(A[0], A.reshape(64)[8:16])
    assert not _aliases(A[0, :0], A[0])               # an empty view touches nothing
    assert _aliases(A[1:3], A[1:3])                   # one piece: the same geometry
    assert not _aliases(A, np.zeros((8, 8)))          # other memory
    F = np.asfortranarray(A)
    assert not _aliases(F[:4, :], F[4:, :])
    assert _aliases(F[:, 0], F[3:5, :])


def test_aliasing_never_misses_shared_memory():
    rng = np.random.default_rng(1)
    A = np.zeros((6, 7, 5))
    views = []
    for _ in range(150):
        key = []
        for n in A.shape:
            lo, hi = sorted(rng.integers(0, n + 1, 2))
            step = int(rng.integers(1, 3)) * (1 if rng.random() < 0.8 else -1)
            key.append(slice(lo, hi, step) if step > 0 else slice(hi - 1 if hi else None,
                                                                  lo - 1 if lo else None, step))
        v = A[tuple(key)]
        if rng.random() < 0.3:
            v = v.transpose(rng.permutation(3))
        views.append(v)
    for i in range(0, len(views), 3):
        for j in range(1, len(views), 4):
            a, b = views[i], views[j]
            if np.shares_memory(a, b):
                assert _aliases(a, b), (a.shape, a.strides, b.shape, b.strides)


# ------------------------------------------------------------------ the example


def test_the_cholesky_example_matches_numpy(runtime):
    spec = importlib.util.spec_from_file_location("cholesky_datadeps", ROOT / "examples" / "cholesky_datadeps.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(3)
    M = rng.random((96, 96))
    A0 = M @ M.T + 96 * np.eye(96)
    A = A0.copy()
    mod.cholesky(A, 24)
    np.testing.assert_allclose(np.tril(A), np.linalg.cholesky(A0), rtol=1e-10, atol=1e-10)
    for i in range(4):            # the tiles above the diagonal tiles are left alone
        for j in range(i + 1, 4):
            np.testing.assert_array_equal(A[i * 24:(i + 1) * 24, j * 24:(j + 1) * 24],
                                          A0[i * 24:(i + 1) * 24, j * 24:(j + 1) * 24])
