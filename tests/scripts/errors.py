import threading

import dagmpi


class MyError(Exception):
    pass


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def bad(x):
    raise MyError(f"bad input {x}")


def ugly():
    raise Unpicklable()


def inc(x):
    return x + 1


if __name__ == "__main__":
    b = dagmpi.spawn(bad, 7)
    dep = dagmpi.spawn(inc, b)
    dep2 = dagmpi.spawn(inc, dep)
    ok = dagmpi.spawn(inc, 41)
    u = dagmpi.spawn(ugly)
    try:
        dagmpi.fetch(b)
        raise SystemExit("expected MyError")
    except MyError as exc:
        assert "bad input 7" in str(exc)
        cause = exc.__cause__
        assert isinstance(cause, dagmpi.RemoteTraceback), type(cause)
        assert "in bad" in cause.tb and "rank" in cause.tb, cause.tb
        assert any("raised by task 'bad' on rank" in n for n in exc.__notes__), exc.__notes__
    for d in (dep, dep2):
        try:
            dagmpi.fetch(d)
            raise SystemExit("expected UpstreamError")
        except dagmpi.UpstreamError as exc:
            assert "'bad'" in str(exc) or "'inc'" in str(exc), str(exc)
            assert "MyError: bad input 7" in str(exc), str(exc)
            assert isinstance(exc.__cause__, MyError)
    assert isinstance(dep.exception(), dagmpi.UpstreamError)
    try:
        dagmpi.fetch(u)
        raise SystemExit("expected an error")
    except Exception as exc:  # the original type when it pickles, TaskError with its text if not
        assert "holds a lock" in str(exc), repr(exc)
    assert dagmpi.fetch(ok) == 42
    assert ok.exception() is None and ok.done()
    print("ERRORS-OK")
