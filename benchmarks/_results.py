"""Where benchmark scripts write their JSON: ``bench-results/`` at the repository root."""

from __future__ import annotations

import os

RESULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench-results")


def default_json(name: str) -> str:
    """``bench-results/<name>.json`` (the folder is made when needed; git ignores it)."""
    return os.path.join(RESULTS_DIR, f"{name}.json")


def open_json(path: str):
    """Open ``path`` for writing, making its folder first."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return open(path, "w")
