"""A worker rank dies in different ways while tasks run; the job must go on (ULFM) or end clearly.

    rank_death.py MODE MARKER_DIR
      exit     a task calls os._exit(3) on its rank (the first time it runs)
      segv     a task crashes its rank with a segmentation fault (the first time)
      kill     a task's rank is killed with SIGKILL (the first time)
      poison   a task kills every rank it runs on: it must fail, the job must finish
      driver   rank 0 kills itself with SIGKILL: every rank must end, nobody hangs
      alone    every worker is killed, then the script exits with status 5
      raise    the script raises with every worker alive (KILL=1: after one was killed)
      exit3    the script exits with status 3 while tasks still run on live workers
      stuck    the script raises while a task holds a worker's GIL (it cannot read messages)
"""
import ctypes
import os
import signal
import sys
import time

import dagmpi


def die_once(how, marker, x):
    """Die the first time (a marker file says it happened), compute the second time."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return x * 2
    os.close(fd)
    time.sleep(0.05)
    if how == "exit":
        os._exit(3)
    if how == "segv":
        ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGKILL)


def poison(x):
    os.kill(os.getpid(), signal.SIGKILL)


def hog(n):
    return sum(range(n))  # one C call: the GIL is not given up for minutes


def slow(x):
    time.sleep(0.01)
    return x + 1


def main():
    mode, where = sys.argv[1], sys.argv[2]
    marker = os.path.join(where, "died")
    if mode == "driver":
        ts = [dagmpi.spawn(slow, i) for i in range(50)]
        dagmpi.wait(ts[:5])
        print("driver: killing myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "alone":  # every worker dies, then the script exits with its own status
        for p in dagmpi.processors():
            os.kill(p["pid"], signal.SIGKILL)
        time.sleep(1.0)
        sys.exit(5)
    if mode == "raise":
        if os.environ.get("KILL") == "1":
            os.kill(dagmpi.processors()[0]["pid"], signal.SIGKILL)
        print("got", dagmpi.fetch(dagmpi.spawn(slow, 1)), flush=True)
        raise ValueError("boom from the driver")
    if mode == "stuck":
        print("pids", *[p["pid"] for p in dagmpi.processors()], flush=True)
        dagmpi.spawn(hog, 10**11)
        time.sleep(1.0)
        raise ValueError("boom while a worker holds the GIL")
    if mode == "exit3":
        ts = [dagmpi.spawn(slow, i) for i in range(200)]
        dagmpi.wait(ts[:2])
        sys.exit(3)
    if mode == "poison":
        bad = dagmpi.spawn(poison, 1)
        good = [dagmpi.spawn(slow, i) for i in range(100)]
        assert dagmpi.fetch(good) == [i + 1 for i in range(100)]
        try:
            dagmpi.fetch(bad)
        except dagmpi.WorkerLostError as exc:
            print(f"poison failed as expected: {exc}")
        else:
            raise AssertionError("the poison task returned")
        print("OK")
        return
    before = [dagmpi.spawn(slow, i) for i in range(40)]
    victim = dagmpi.spawn(die_once, mode, marker, 21)
    after = [dagmpi.spawn(slow, t) for t in before]  # consume values that may live on the dying rank
    total = dagmpi.spawn(lambda *xs: sum(xs), victim, *after)
    got = dagmpi.fetch(total)
    want = 42 + sum(i + 2 for i in range(40))
    assert got == want, (got, want)
    assert os.path.exists(marker), "the victim never died"
    print(f"result {got}; OK")


if __name__ == "__main__":
    main()
