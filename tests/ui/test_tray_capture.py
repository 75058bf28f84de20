"""Tray menu signals and quick capture: hide at once, write in the background, never lose a note."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QShortcut  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from memdesk.engine.cube import Filters  # noqa: E402
from memdesk.engine.errors import StorageFullError  # noqa: E402
from memdesk.ui.capture import CAPTURE_SHORTCUT, QuickCapture, install_capture_shortcut, parse_tags  # noqa: E402
from memdesk.ui.tray import ICON_PATH, NO_TRAY_MESSAGE, Tray, app_icon  # noqa: E402


# --------------------------------------------------------------------- tray
def test_tray_menu_actions_emit_their_signals(qtbot):
    tray = Tray()
    assert isinstance(Tray.available(), bool)
    assert ICON_PATH.is_file() and not app_icon().isNull()
    assert "Ctrl+Shift+Space" in NO_TRAY_MESSAGE
    names = [a.objectName() for a in tray.menu.actions() if not a.isSeparator()]
    assert names == ["trayOpen", "trayCapture", "trayPause", "trayQuit"]

    with qtbot.waitSignal(tray.openRequested, timeout=1000):
        tray.open_action.trigger()
    with qtbot.waitSignal(tray.captureRequested, timeout=1000):
        tray.capture_action.trigger()
    with qtbot.waitSignal(tray.quitRequested, timeout=1000):
        tray.quit_action.trigger()
    assert tray.pause_action.isCheckable()
    with qtbot.waitSignal(tray.pauseToggled, timeout=1000) as paused:
        tray.pause_action.trigger()
    assert paused.args == [True] and tray.is_paused() and "paused" in tray.icon.toolTip()
    with qtbot.waitSignal(tray.pauseToggled, timeout=1000) as resumed:
        tray.set_paused(False)
    assert resumed.args == [False] and tray.icon.toolTip() == "MemDesk"
    tray.show()  # a no-op without a tray (offscreen); must not raise either way
    assert tray.icon.isVisible() == Tray.available()
    tray.hide()


# ------------------------------------------------------------------ capture
@pytest.fixture
def capture(qtbot, kw_mem, runner):
    box = QuickCapture(kw_mem, runner)
    qtbot.addWidget(box)
    return box


def _type_note(qtbot, box: QuickCapture, text: str) -> None:
    box.open_capture()
    qtbot.waitUntil(box.isVisible, timeout=2000)
    qtbot.keyClicks(box.editor, text)


def test_enter_saves_hides_at_once_and_the_note_lands(qtbot, capture, kw_mem, settle):
    _type_note(qtbot, capture, "Ana's birthday is on 4 May")
    qtbot.keyClicks(capture.tags, "family, dates")
    capture.editor.setFocus()
    with qtbot.waitSignal(capture.captured, timeout=10000) as landed:
        qtbot.keyClick(capture.editor, Qt.Key.Key_Return)
        # Hidden before the write has landed: the GUI thread did not wait for the vault.
        assert not capture.isVisible()
        assert capture.in_flight == 1
    settle()
    memory_id = landed.args[0]
    item = kw_mem.get(memory_id)
    assert item.memory == "Ana's birthday is on 4 May"
    assert item.source == "capture" and sorted(item.tags) == ["dates", "family"]
    listed = kw_mem.list(Filters(sources=("capture",)))
    assert [m.id for m in listed] == [memory_id]
    assert capture.editor.toPlainText() == "" and capture.last_captured_id == memory_id


def test_shift_enter_is_a_newline_and_ctrl_enter_saves(qtbot, capture, kw_mem, settle):
    _type_note(qtbot, capture, "first line")
    qtbot.keyClick(capture.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(capture.editor, "second line")
    assert capture.isVisible() and capture.editor.toPlainText() == "first line\nsecond line"
    with qtbot.waitSignal(capture.captured, timeout=10000) as landed:
        qtbot.keyClick(capture.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    settle()
    assert kw_mem.get(landed.args[0]).memory == "first line\nsecond line"


def test_escape_cancels_without_saving(qtbot, capture, kw_mem, runner, settle):
    _type_note(qtbot, capture, "never mind this")
    with qtbot.assertNotEmitted(capture.captured, wait=200):
        qtbot.keyClick(capture.editor, Qt.Key.Key_Escape)
        assert not capture.isVisible() and runner.pending == 0
    settle()
    assert kw_mem.count() == 0
    capture.open_capture()
    assert capture.editor.toPlainText() == ""  # a cancelled draft does not come back


def test_empty_text_is_refused_and_the_box_stays(qtbot, capture, kw_mem, runner):
    _type_note(qtbot, capture, "   ")
    capture.editor.setPlainText("   \n\t  ")  # only whitespace
    with qtbot.assertNotEmitted(capture.captured, wait=200):
        qtbot.keyClick(capture.editor, Qt.Key.Key_Return)
    assert capture.isVisible() and runner.pending == 0
    assert "Nothing to remember" in capture.error_text() and capture.error.isVisibleTo(capture)
    assert kw_mem.count() == 0


def test_a_failed_write_reopens_the_box_with_the_text_and_the_error(qtbot, capture, kw_mem, monkeypatch, settle):
    def disk_full(*args, **kwargs):
        raise StorageFullError("Disk full: free space and retry")

    monkeypatch.setattr(kw_mem, "add", disk_full)
    _type_note(qtbot, capture, "the plumber comes on Tuesday")
    qtbot.keyClicks(capture.tags, "home")
    with qtbot.waitSignal(capture.failed, timeout=10000) as failure:
        capture.save()
        assert not capture.isVisible()
    settle()
    assert failure.args == ["Disk full: free space and retry"]
    assert capture.isVisible()
    assert capture.editor.toPlainText() == "the plumber comes on Tuesday" and capture.tags.text() == "home"
    assert capture.error_text() == "Disk full: free space and retry" and capture.error.isVisibleTo(capture)

    monkeypatch.undo()  # space freed: the same note saves on retry
    with qtbot.waitSignal(capture.captured, timeout=10000) as landed:
        qtbot.keyClick(capture.editor, Qt.Key.Key_Return)
    settle()
    assert kw_mem.get(landed.args[0]).memory == "the plumber comes on Tuesday"
    assert capture.error_text() == ""


def test_the_application_shortcut_opens_capture(qtbot, capture):
    window = QWidget()
    qtbot.addWidget(window)
    shortcut = install_capture_shortcut(window, capture)
    assert isinstance(shortcut, QShortcut)
    assert shortcut.context() == Qt.ShortcutContext.ApplicationShortcut
    assert shortcut.key().toString() == CAPTURE_SHORTCUT
    shortcut.activated.emit()
    assert capture.isVisible()
    assert capture.focusWidget() is capture.editor


def test_parse_tags():
    assert parse_tags(" home, family  home,,work ") == ["home", "family", "work"]
    assert parse_tags("") == []


def test_exercise_and_check(qtbot, capture, kw_mem, settle):
    with pytest.raises(AssertionError, match="not called"):
        capture.check_exercised()
    capture.exercise()
    assert not capture.isVisible()
    settle()
    capture.check_exercised()
    assert kw_mem.count(Filters(tags=("smoke-test",))) == 1
