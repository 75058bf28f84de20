"""Desktop integration in the composed app (`memdesk capture` is tested with the second launch in
test_desktop_app.py): a short confirmation after a capture, Help ▸ About, Quit in the menu, windows that open
at a readable size."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")


ROOT = Path(__file__).resolve().parents[2]


def test_a_saved_capture_is_confirmed(qtbot, desktop):
    desktop.capture.open_capture()
    desktop.capture.editor.setPlainText("Renew the passport before March.")
    with qtbot.waitSignal(desktop.capture.captured, timeout=30000):
        desktop.capture.save()
    qtbot.waitUntil(lambda: desktop.window.statusBar().currentMessage() == "Saved to your memories.", timeout=5000)


def test_about_names_the_version_the_data_folder_and_licences(qtbot, desktop):
    from memdesk.ui.about import AboutDialog

    desktop.window.actions_by_name["about"].trigger()
    dialog = next(w for w in desktop.window.findChildren(AboutDialog))
    qtbot.addWidget(dialog)
    head, licences = dialog.findChild(type(dialog.licences), "aboutHead").text(), dialog.licences.text()
    assert str(desktop.paths.data_dir) in head and "never deletes it" in head
    assert "SmolLM2-135M-Instruct" in licences and "all-MiniLM-L6-v2" in licences
    assert "llama-cpp-python" in licences and "MIT" in licences and "PySide6-Essentials" in licences
    assert "pytest" not in licences  # test extras are not what MemDesk ships


def test_quit_is_in_the_menu(qtbot, desktop, monkeypatch):
    quit_asked = []
    monkeypatch.setattr(desktop, "quit", lambda: quit_asked.append(True))
    desktop.window.quitRequested.disconnect()
    desktop.window.quitRequested.connect(desktop.quit)
    action = desktop.window.actions_by_name["quit"]
    assert action in desktop.window.menuBar().actions()[0].menu().actions()
    action.trigger()
    assert quit_asked == [True]


def test_views_open_at_a_readable_size(qtbot, desktop):
    conflicts = desktop.conflicts
    conflicts.resize(248, 119)  # what it opened at before
    desktop.window.openConflictsRequested.emit()
    metrics = conflicts.fontMetrics()
    screen = conflicts.screen().availableGeometry()
    assert conflicts.width() >= min(metrics.averageCharWidth() * 100, screen.width() * 0.9)
    assert conflicts.height() >= min(metrics.height() * 30, screen.height() * 0.9) - 1
