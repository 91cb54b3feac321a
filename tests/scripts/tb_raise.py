"""A task that raises: rank 0's report of it names this file, the line and its source text.

With the argument ``deleted`` the script deletes itself once the worker ranks are serving
(run a copy): they cannot read it then, and show the source lines shipped with the function.
"""

import linecache
import os
import sys

import dagmpi


def inner(x):
    y = x * 2
    raise ValueError(f"tb-script failure {y}")  # TB-RAISE-LINE


def outer(x):
    return [inner(v) for v in (x,)]  # a comprehension: nested code pickled by value


if __name__ == "__main__":
    if sys.argv[1:] == ["deleted"]:
        assert dagmpi.fetch(dagmpi.spawn(abs, -1)) == 1  # the workers are up (past reading the script)
        linecache.getlines(__file__)  # rank 0 keeps its own copy of the source
        os.remove(__file__)
    dagmpi.fetch(dagmpi.spawn(outer, 1))
    print("UNREACHABLE")
