"""Jobs that used to hang or mislead (issue #11); each mode must end clearly.

    reliability.py MODE
      plain      spawn and fetch one task
      stuck      a task that never returns has timeout=2, then more work must still run
      orphan     the script ends while a spawned task runs for 7 s more (never fetched)
      forever    the script ends while a spawned task runs forever (the test sends SIGTERM)
      slots      init(slots=3, resources="licence=2") must hold under every launch form
      fixed      init(prefetch=5) after the launcher started the runtime: refused
      late       init(slots=2) after a spawn: refused
      long       four 30 s tasks (the test sends Ctrl-C)
"""
import sys
import time

import dagmpi


def add1(x):
    return x + 1


def hang():
    time.sleep(1e6)


def sleep_for(s):
    time.sleep(s)
    return s


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "plain":
        print("result", dagmpi.fetch(dagmpi.spawn(add1, 1)))
    elif mode == "stuck":
        t = dagmpi.spawn(hang, options=dagmpi.Options(timeout=2))
        later = [dagmpi.spawn(add1, i) for i in range(5)]
        try:
            dagmpi.fetch(t)
        except TimeoutError as exc:
            print("timed out:", exc)
        print("later", dagmpi.fetch(later))
        t2 = dagmpi.spawn(hang, options=dagmpi.Options(timeout=1))
        try:
            dagmpi.fetch(t2)
        except TimeoutError:
            print("second timed out")
        print("after", dagmpi.fetch(dagmpi.spawn(add1, 10)))
    elif mode == "orphan":
        dagmpi.spawn(sleep_for, 7)
        print("script done", flush=True)
    elif mode == "forever":
        dagmpi.spawn(hang)
        print("script done", flush=True)
    elif mode == "slots":
        dagmpi.init(slots=3, resources="licence=2")
        got = sorted((p["cpu_slots"], p["resources"].get("licence")) for p in dagmpi.processors())
        print("processors", got)
        print("result", dagmpi.fetch(dagmpi.spawn(add1, 1, options=dagmpi.Options(resources={"licence": 2}))))
    elif mode == "fixed":
        dagmpi.init(prefetch=5)
        print("not refused")
    elif mode == "late":
        t = dagmpi.spawn(add1, 1)
        dagmpi.init(slots=2)
        print("not refused")
    elif mode == "long":
        print("started", flush=True)
        print(dagmpi.fetch([dagmpi.spawn(sleep_for, 30) for _ in range(4)]))
    else:
        raise SystemExit(f"unknown mode {mode}")
