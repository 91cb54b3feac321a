"""Serialization: out-of-band buffers, dependencies at any depth, clear errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dagmpi import serialize
from dagmpi.errors import SerializationError
from dagmpi.task import Task


class _FakeClient:
    def release(self, task_id):  # Task.__del__ calls this
        pass

    def acquire(self, task_id):
        pass


def make_task(task_id):
    return Task(task_id, "t", _FakeClient())


def test_numpy_arrays_travel_out_of_band_without_copy():
    a = np.arange(1_000_000, dtype=np.float64)
    payload, buffers, deps = serialize.dump_args((a,), {"b": a[::2].copy()})
    assert deps == ()
    assert len(payload) < 10_000  # the 8 MB is not in the pickle stream
    assert len(buffers) == 2
    raw = buffers[0].raw()
    assert np.shares_memory(np.frombuffer(raw, dtype=np.float64), a)  # zero-copy view
    args, kwargs = serialize.load_args(payload, [b.raw() for b in buffers], {})
    np.testing.assert_array_equal(args[0], a)
    np.testing.assert_array_equal(kwargs["b"], a[::2])


def test_tasks_at_any_depth_become_dependencies():
    t1, t2, t3 = make_task(11), make_task(22), make_task(33)

    class Box:
        def __init__(self, inner):
            self.inner = inner

    payload, buffers, deps = serialize.dump_args(
        ([t1, (t2,)], {"k": Box(t3)}), {"again": t1})
    assert deps == (11, 22, 33)
    args, kwargs = serialize.load_args(payload, buffers, {11: "a", 22: "b", 33: "c"})
    assert args[0] == ["a", ("b",)]
    assert args[1]["k"].inner == "c"
    assert kwargs["again"] == "a"


def test_missing_input_is_a_clear_error():
    payload, buffers, _ = serialize.dump_args((make_task(5),), {})
    with pytest.raises(SerializationError, match="0x5"):
        serialize.load_args(payload, buffers, {})


def test_unpicklable_argument_is_named():
    with pytest.raises(SerializationError, match=r"argument 1 \(lock\)"):
        serialize.dump_args((1, threading.Lock()), {})
    with pytest.raises(SerializationError, match=r"keyword argument 'x' \(lock\)"):
        serialize.dump_args((1,), {"x": threading.Lock()})


def test_unpicklable_result_and_function():
    with pytest.raises(SerializationError, match="lock"):
        serialize.dump_value(threading.Lock())
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="function"):
        serialize.dump_function(lambda: lock)


def test_values_roundtrip_with_buffers():
    value = {"a": np.ones((3, 4), dtype=np.int32), "s": "text"}
    payload, buffers = serialize.dump_value(value)
    assert len(buffers) == 1
    out = serialize.load_value(payload, [b.raw() for b in buffers])
    np.testing.assert_array_equal(out["a"], value["a"])
    assert out["a"].shape == (3, 4) and out["s"] == "text"


def test_function_cache_pickles_once_and_ids_are_rank_scoped():
    cache = serialize.FunctionCache(rank=3)

    def f(x):
        return x + 1

    id1, data1 = cache.get(f)
    id2, data2 = cache.get(f)
    assert id1 == id2 and data1 is data2 and id1[0] == 3
    assert serialize.load_function(data1)(1) == 2
    other, _ = cache.get(len)
    assert other != id1


def test_function_cache_is_bounded():
    cache = serialize.FunctionCache(rank=0, maxsize=2)
    fns = [lambda i=i: i for i in range(5)]
    for fn in fns:
        cache.get(fn)
    assert len(cache._ids) == 2


def test_sizeof_estimates():
    assert serialize.sizeof(np.zeros(1000)) == 8000
    assert serialize.sizeof(b"x" * 100) == 100
    assert serialize.sizeof([np.zeros(10)] * 100) >= 8000



def test_plain_arguments_take_the_c_pickler_and_others_cloudpickle():
    t = make_task(42)
    assert serialize._plain(([1, "a", t], {"k": (2.0, None)}), 0)
    assert serialize._plain((np.zeros(3),), 0)
    assert not serialize._plain((np.array([object()]),), 0)
    assert not serialize._plain((lambda: 1,), 0)  # functions need pickling by value
    payload, buffers, deps = serialize.dump_args(([1, t], np.arange(4.0)), {"x": {"y": t}})
    assert deps == (42,)
    args, kwargs = serialize.load_args(payload, [b.raw() for b in buffers], {42: "v"})
    assert args[0] == [1, "v"] and kwargs == {"x": {"y": "v"}}
    np.testing.assert_array_equal(args[1], np.arange(4.0))
    f = lambda x: x + 1  # noqa: E731 - a lambda argument goes through cloudpickle
    payload, _, _ = serialize.dump_args((f,), {})
    (g,), _ = serialize.load_args(payload, [], {})
    assert g(1) == 2


def test_top_level_task_arguments_take_the_plain_holes_form():
    t1, t2 = make_task(7), make_task(8)
    payload, buffers, deps = serialize.dump_args((t1, 2, t1), {"b": t2, "c": "x"})
    assert payload[:1] == b"H" and buffers == () and deps == (7, 8)
    args, kwargs = serialize.load_args(payload, buffers, {7: "seven", 8: [8]})
    assert args == ("seven", 2, "seven") and kwargs == {"b": [8], "c": "x"}
    with pytest.raises(SerializationError, match="0x8"):
        serialize.load_args(payload, buffers, {7: "seven"})


# -- tracebacks of code pickled by value point at the user's file (issue #11, rule 4)

USER_MODULE = '''\
def helper(x):
    y = x * 2
    raise ValueError(f"user failure {y}")


def entry(x):
    return [helper(v) for v in (x,)]


def other(x):
    raise KeyError(x)


class Exploding:
    def __reduce__(self):
        return explode, ()


def explode():
    raise RuntimeError("cannot be rebuilt")
'''


def raising_line(text, needle):
    lines = text.splitlines()
    n = next(i for i, line in enumerate(lines, 1) if needle in line)
    return n, lines[n - 1].strip()


def load_user_module(path, how):
    """The functions of ``path``, which pickle by value: a module loaded by path and
    left out of ``sys.modules``, or the file's text exec'd with its file name."""
    if how == "module":
        import importlib.util

        spec = importlib.util.spec_from_file_location("dagmpi_test_user_module", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return vars(module)
    namespace = {"__name__": "dagmpi_test_user_script"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def formatted_error(fn, *args):
    import traceback

    with pytest.raises(Exception) as info:
        fn(*args)
    return "".join(traceback.format_exception(info.value))


@pytest.fixture
def user_file(tmp_path):
    import linecache

    path = tmp_path / "user_code.py"
    path.write_text(USER_MODULE)
    yield path
    linecache.cache.pop(str(path), None)
    serialize._FILLED.discard(str(path))


@pytest.mark.parametrize("how", ["module", "exec"])
def test_function_pickled_by_value_keeps_file_line_and_source(user_file, how):
    fn = load_user_module(user_file, how)["entry"]
    data = serialize.dump_function(fn)
    text = formatted_error(serialize.load_function(data), 1)
    n, source = raising_line(USER_MODULE, "raise ValueError")
    assert f'File "{user_file}", line {n}, in helper' in text, text
    assert source in text, text
    assert f'File "{user_file}", line 7, in <listcomp>' in text, text  # nested code too
    assert "<dynamic-code>" not in text, text
    assert str(user_file) not in serialize._FILLED  # the file is readable here: linecache reads it


def test_source_fills_linecache_where_the_file_is_missing(user_file):
    import linecache

    funcs = load_user_module(user_file, "module")
    entry, other = serialize.dump_function(funcs["entry"]), serialize.dump_function(funcs["other"])
    user_file.unlink()  # the receiving rank cannot read the file
    linecache.cache.pop(str(user_file), None)
    text = formatted_error(serialize.load_function(entry), 1)
    n, source = raising_line(USER_MODULE, "raise ValueError")
    assert f'File "{user_file}", line {n}, in helper' in text and source in text, text
    size, mtime, lines, name = linecache.cache[str(user_file)]
    assert mtime is None and name == str(user_file)  # checkcache keeps it
    assert lines[n - 1].strip() == source and size == sum(map(len, lines))
    # the lines of another function of the same file are added to the entry
    text = formatted_error(serialize.load_function(other), 1)
    n2, source2 = raising_line(USER_MODULE, "raise KeyError")
    assert f'line {n2}, in other' in text and source2 in text, text
    assert linecache.getline(str(user_file), n).strip() == source  # still there


def test_embedded_remote_traceback_starts_at_the_users_code(user_file):
    import dagmpi

    funcs = load_user_module(user_file, "module")
    dagmpi.init(transport="inproc", workers=1, slots=1)
    try:
        with pytest.raises(ValueError, match="user failure 2") as info:
            dagmpi.fetch(dagmpi.spawn(funcs["entry"], 1))
        remote = info.value.__cause__.tb
        n, source = raising_line(USER_MODULE, "raise ValueError")
        frames = remote.split("Traceback (most recent call last):\n", 1)[1]
        assert frames.startswith(f'  File "{user_file}", line 7, in entry'), remote
        assert f'File "{user_file}", line {n}, in helper' in remote and source in remote, remote
        assert "running.py" not in remote and "<dynamic-code>" not in remote, remote
        # dagmpi failed before the task's function ran: its frames say what failed, and stay
        with pytest.raises(RuntimeError, match="cannot be rebuilt") as info:
            dagmpi.fetch(dagmpi.spawn(funcs["entry"], funcs["Exploding"]()))
        remote = info.value.__cause__.tb
        assert "in _execute" in remote and "in load_args" in remote and "in explode" in remote, remote
    finally:
        dagmpi.shutdown()


def test_read_only_buffers_received_can_be_sent_on():
    """A read-only array argument arrives as a read-only memoryview (pickle's
    READONLY_BUFFER); a task given back to rank 0 sends its buffers on again
    (stealing: CI found a worker crashing on it, which left the job waiting)."""
    import pickle

    import numpy as np

    from dagmpi import serialize

    a = np.arange(100_000, dtype=np.float64)
    a.flags.writeable = False
    payload, bufs, _ = serialize.dump_args((a,), {})
    oob: list = []
    wire = pickle.dumps(("exec", payload, list(bufs)), 5, buffer_callback=oob.append)
    got = pickle.loads(wire, buffers=[np.frombuffer(b.raw(), np.uint8).copy() for b in oob])  # as MPI delivers
    received = got[2]
    assert any(type(b) is memoryview for b in received)
    with pytest.raises(TypeError):
        pickle.dumps(received, 5, buffer_callback=[].append)
    again = serialize.portable(received)
    oob2: list = []
    wire2 = pickle.dumps(("returned", payload, again), 5, buffer_callback=oob2.append)
    back = pickle.loads(wire2, buffers=[np.frombuffer(b.raw(), np.uint8).copy() for b in oob2])
    args, _ = serialize.load_args(back[1], serialize.portable(back[2]), {})
    assert np.array_equal(args[0], a)
