import threading

import dagmpi


def f(*a, **k):
    return 1


if __name__ == "__main__":
    checks = 0
    try:
        dagmpi.spawn(f, 1, threading.Lock())
    except dagmpi.SerializationError as exc:
        assert "argument 1 (lock)" in str(exc), str(exc)
        checks += 1
    try:
        dagmpi.spawn(f, 1, key=threading.Lock())
    except TypeError as exc:
        assert "keyword argument 'key'" in str(exc), str(exc)
        checks += 1
    lock = threading.Lock()
    try:
        dagmpi.spawn(lambda: lock)
    except dagmpi.SerializationError as exc:
        assert "function" in str(exc), str(exc)
        checks += 1
    try:
        dagmpi.Options(retriez=2)
    except TypeError:
        checks += 1
    try:
        dagmpi.task(retriez=2)
    except TypeError as exc:
        assert "retriez" in str(exc) and "valid options" in str(exc), str(exc)
        checks += 1
    try:
        dagmpi.spawn(f, options={"priority": 1})
    except TypeError as exc:
        assert "dagmpi.Options" in str(exc)
        checks += 1
    try:
        dagmpi.fetch(3)
    except TypeError as exc:
        assert "expects a Task" in str(exc)
        checks += 1
    try:
        dagmpi.spawn(f, options=dagmpi.Options(scope=dagmpi.scope(rank=99)))
    except ValueError as exc:
        assert "impossible scope" in str(exc) and "99" in str(exc), str(exc)
        checks += 1
    try:
        dagmpi.spawn(3)
    except TypeError:
        checks += 1
    # nothing was lost: the runtime still works
    assert dagmpi.fetch(dagmpi.spawn(f, 1)) == 1
    print(f"BAD-INPUT-OK {checks}")
