"""Where benchmark scripts write their JSON: ``bench-results/`` at the repository root."""

from __future__ import annotations

import json
import os
import importlib.util
import subprocess
import sys
from typing import Any, Callable

RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench-results")


def default_json(name: str) -> str:
    """``bench-results/<name>.json`` (the folder is made when needed; git ignores it)."""
    return os.path.join(RESULTS_DIR, f"{name}.json")


def open_json(path: str):
    """Open ``path`` for writing, making its folder first."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return open(path, "w")


def mpiexec() -> str:
    """The ``mpiexec`` beside this Python (a venv's MPI wheel), else the one on ``PATH``."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else "mpiexec"


def run_child(cmd: list[str], timeout: float) -> dict:
    """Run one system's child process: its ``RESULT <json>`` line, or
    ``{"error": ...}`` saying why there is none."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    err = p.stderr.strip()
    return {"error": f"exit {p.returncode}: {err[:600]} ... {err[-600:]}" if len(err) > 1300
            else f"exit {p.returncode}: {err}"}


def run_system(peer: str, cmd: list[str], timeout: float) -> dict:
    """:func:`run_child` for one system; Dask's is skipped (said so) when it is not installed."""
    if peer == "dask" and importlib.util.find_spec("distributed") is None:
        return {"skipped": "Dask distributed is not installed (pip install -e '.[bench]')"}
    return run_child(cmd, timeout)


def run_systems(peers: str, child: Callable[[str], dict]) -> dict:
    """``child(peer)`` for each of the comma-separated ``peers``, one after another."""
    results = {}
    for peer in peers.split(","):
        print(f"running {peer} ...", file=sys.stderr, flush=True)
        results[peer] = child(peer)
    return results


def print_result(res: Any) -> None:
    """A child's answer to its parent: the ``RESULT <json>`` line :func:`run_child` reads."""
    if res:
        print("RESULT " + json.dumps(res), flush=True)
