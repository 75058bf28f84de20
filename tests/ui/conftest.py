"""Qt tests run offscreen (the `runner` and `settle` fixtures are in tests/conftest.py)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


@pytest.fixture
def window(qtbot, kw_mem, runner, settle):
    """The main window on a keyword-only vault, shown and settled."""
    from memdesk.ui.chat_window import MainWindow

    win = MainWindow(kw_mem, runner)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    settle()
    return win
