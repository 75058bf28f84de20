"""Qt tests run offscreen; every window gets a TaskRunner that is drained before the vault closes."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


@pytest.fixture
def runner(qtbot):
    from ui.tasks import TaskRunner

    tasks = TaskRunner()
    yield tasks
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=30000)
    tasks.shutdown()


@pytest.fixture
def settle(qtbot, runner):
    """Wait until every background task has finished and delivered its result."""
    def wait(timeout: int = 30000) -> None:
        qtbot.waitUntil(lambda: runner.pending == 0, timeout=timeout)
    return wait
