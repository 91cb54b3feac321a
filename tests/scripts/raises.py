import sys

import dagmpi


def slow(x):
    import time
    time.sleep(x)
    return x


def die(code):
    import os
    os._exit(code)


def fork_child_exits():
    """A task whose forked child ends with os._exit (as multiprocessing's children do)."""
    import os
    child = os.fork()
    if child == 0:
        os._exit(7)
    return os.waitpid(child, 0)[1] >> 8


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "driver":
        t = dagmpi.spawn(slow, 30)  # a worker is busy; the abort must not wait for it
        raise RuntimeError("driver failure on purpose")
    if mode == "worker-dies":
        dagmpi.fetch(dagmpi.spawn(die, 3))
        print("UNREACHABLE")
    if mode == "exit":
        sys.exit(4)
    if mode == "fork-exit":
        print("child status", dagmpi.fetch(dagmpi.spawn(fork_child_exits)))
