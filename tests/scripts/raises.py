import sys

import dagmpi


def slow(x):
    import time
    time.sleep(x)
    return x


def die(code):
    import os
    os._exit(code)


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
