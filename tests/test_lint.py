"""ruff and mypy, configured in pyproject.toml, run as part of the suite (so `.ci/run` runs them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    pytest.importorskip("ruff", reason="ruff is part of the test extra: pip install -e '.[test]'")
    done = _run("ruff", "check", "engine", "app", "ui", "memdesk", "tests", "bench", "packaging", "installers")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_the_engine():
    pytest.importorskip("mypy", reason="mypy is part of the test extra: pip install -e '.[test]'")
    done = _run("mypy")  # files and settings: [tool.mypy] in pyproject.toml
    assert done.returncode == 0, done.stdout + done.stderr
