"""The import rules of docs/design.md hold: ``lint-imports`` checks the contracts in pyproject.toml."""

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]' (it brings import-linter)")
    return [exe, "--no-cache"]


def test_import_contracts_are_kept():
    proc = subprocess.run(_lint_imports(), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout, proc.stdout


def test_a_broken_layer_is_caught(tmp_path):
    """The contract really bites: a core module importing the runtime breaks it."""
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "dagmpi"), src / "dagmpi",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path / "pyproject.toml")
    with open(src / "dagmpi" / "core" / "states.py", "a") as f:
        f.write("\nfrom ..runtime import client  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(_lint_imports(), cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "dagmpi.core.states -> dagmpi.runtime.client" in proc.stdout, proc.stdout
