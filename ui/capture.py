"""Quick capture: a small always-on-top box to write down one thing to remember.

Saving hides the box at once; the write runs on the runner's write lane and `captured(id)`
follows when it has landed. If the write fails the note is not lost: the box reopens with
the text and the error (`failed(message)` tells the app, e.g. for the status bar).

Qt has no system-wide hotkeys: `install_capture_shortcut` makes Ctrl+Shift+Space work in
MemDesk's own windows, and app/global_hotkey.py takes the same keys from the window system
for the whole desktop where it allows that (X11, Windows). Elsewhere: the tray menu
(ui/tray.py) and `memdesk capture`.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtGui import QCursor, QGuiApplication, QKeyEvent, QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.api import Memory
from memdesk.engine.cube import AddResult, Source
from memdesk.engine.errors import MemDeskError
from memdesk.ui.messages import for_gui
from memdesk.ui.tasks import TaskRunner

CAPTURE_SHORTCUT = "Ctrl+Shift+Space"
EMPTY_HINT = "Nothing to remember yet: type a note, then press Enter."
SMOKE_TAG = "smoke-test"


def parse_tags(text: str) -> list[str]:
    """Tags from the tags field: commas or spaces separate them, repeats are dropped."""
    seen: list[str] = []
    for tag in text.replace(",", " ").split():
        if tag not in seen:
            seen.append(tag)
    return seen


class QuickCapture(QWidget):
    captured = Signal(str)  # the memory id, once the write has landed
    failed = Signal(str)  # what went wrong and what to do; the box has reopened with the text

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent, Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint
                         | Qt.WindowType.FramelessWindowHint)
        self.mem = mem
        self.runner = runner
        self.setObjectName("quickCapture")
        self.setWindowTitle("MemDesk — Quick capture")
        self.in_flight = 0  # writes sent and not yet landed
        self.last_captured_id: str | None = None
        self._exercise: dict[str, Any] = {}

        frame = QFrame(self)
        frame.setObjectName("captureFrame")
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        frame.setFrameShadow(QFrame.Shadow.Raised)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(frame)

        self.hint = QLabel("Remember…", frame)
        self.hint.setObjectName("captureHint")
        font = self.hint.font()
        font.setBold(True)
        self.hint.setFont(font)

        self.error_icon = QLabel(frame)
        self.error_icon.setObjectName("captureErrorIcon")
        size = self.fontMetrics().height()
        self.error_icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
                                  .pixmap(size, size))
        self.error = QLabel(frame)
        self.error.setObjectName("captureError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        error_row = QHBoxLayout()
        error_row.addWidget(self.error_icon, 0, Qt.AlignmentFlag.AlignTop)
        error_row.addWidget(self.error, 1)

        self.editor = QPlainTextEdit(frame)
        self.editor.setObjectName("captureEditor")
        self.editor.setPlaceholderText("A fact, a preference, a to-do… MemDesk will remember it.")
        self.editor.setTabChangesFocus(True)
        self.editor.setToolTip("Enter saves · Shift+Enter starts a new line · Esc cancels")
        self.editor.setMinimumHeight(self.fontMetrics().lineSpacing() * 4)
        self.tags = QLineEdit(frame)
        self.tags.setObjectName("captureTags")
        self.tags.setPlaceholderText("Tags (optional, e.g. home, family)")
        self.tags.setToolTip("Separate tags with commas or spaces")
        self.tags.setClearButtonEnabled(True)

        self.keys_hint = QLabel("Enter to save · Shift+Enter for a new line · Esc to cancel", frame)
        self.keys_hint.setObjectName("captureKeysHint")
        hint_palette = self.keys_hint.palette()  # help text: the placeholder colour, readable but quiet
        hint_palette.setColor(QPalette.ColorRole.WindowText, hint_palette.color(QPalette.ColorRole.PlaceholderText))
        self.keys_hint.setPalette(hint_palette)
        self.save_button = QPushButton("Save", frame)
        self.save_button.setObjectName("captureSave")
        self.save_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogSaveButton))
        self.save_button.setToolTip("Save to memory (Enter)")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        self.cancel_button = QPushButton("Cancel", frame)
        self.cancel_button.setObjectName("captureCancel")
        self.cancel_button.setToolTip("Close without saving (Esc)")
        self.cancel_button.clicked.connect(self.cancel)
        footer = QHBoxLayout()
        footer.addWidget(self.keys_hint, 1)
        footer.addWidget(self.cancel_button)
        footer.addWidget(self.save_button)

        layout = QVBoxLayout(frame)
        layout.addWidget(self.hint)
        layout.addLayout(error_row)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.tags)
        layout.addLayout(footer)

        self._set_error("")
        self.editor.installEventFilter(self)
        self.tags.installEventFilter(self)
        # Wide enough for a sentence per line in the user's font; no fixed pixel sizes.
        self.resize(self.fontMetrics().averageCharWidth() * 64, self.fontMetrics().lineSpacing() * 14)

    # ------------------------------------------------------------------ public
    @Slot()
    def open_capture(self) -> None:
        """Show the box centred on the screen that has the mouse, ready to type."""
        screen = QGuiApplication.screenAt(QCursor.pos()) or QGuiApplication.primaryScreen()
        if screen is not None:
            frame = self.frameGeometry()
            frame.moveCenter(screen.availableGeometry().center())
            self.move(frame.topLeft())
        self.show()
        self.raise_()
        self.activateWindow()
        self.editor.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    @Slot()
    def save(self) -> None:
        """Hide now and write in the background; empty text is refused and the box stays."""
        text = self.editor.toPlainText().strip()
        if not text:
            self._set_error(EMPTY_HINT)
            self.editor.setFocus()
            return
        tag_text = self.tags.text()
        tags = parse_tags(tag_text)
        self.hide()
        self._clear()
        self.in_flight += 1
        mem = self.mem
        self.runner.write(lambda: mem.add(text, source=Source.CAPTURE.value, tags=tags),
                          on_done=self._landed,
                          on_error=lambda exc: self._write_failed(exc, text, tag_text))

    @Slot()
    def cancel(self) -> None:
        """Close without saving; the draft is discarded."""
        self.hide()
        self._clear()

    def error_text(self) -> str:
        return self.error.text()

    # --------------------------------------------------------------- callbacks
    def _landed(self, result: AddResult) -> None:
        self.in_flight -= 1
        self.last_captured_id = result.id
        self.captured.emit(result.id)

    def _write_failed(self, exc: BaseException, text: str, tag_text: str) -> None:
        self.in_flight -= 1
        if isinstance(exc, MemDeskError):
            message = for_gui(str(exc))
        else:  # an unexpected failure still must not lose the note
            message = f"The note could not be saved ({exc}). It is still here: try again."
        draft = self.editor.toPlainText().strip()
        # If a new note was started meanwhile, keep both rather than overwrite it.
        self.editor.setPlainText(f"{text}\n\n{draft}" if draft else text)
        if not self.tags.text().strip():
            self.tags.setText(tag_text)
        self._set_error(message)
        self.open_capture()
        self.failed.emit(message)

    # ------------------------------------------------------------------ events
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and watched in (self.editor, self.tags):
            assert isinstance(event, QKeyEvent)
            key, mods = event.key(), event.modifiers()
            if key == Qt.Key.Key_Escape:
                self.cancel()
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                if mods & Qt.KeyboardModifier.ShiftModifier and watched is self.editor:
                    # Insert a real "\n" (Qt's default here is a U+2028 line separator).
                    self.editor.insertPlainText("\n")
                else:  # Enter, Ctrl+Enter (and Enter in the tags field) save
                    self.save()
                return True
        return super().eventFilter(watched, event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
            return
        super().keyPressEvent(event)

    # ----------------------------------------------------------------- private
    def _set_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.setVisible(bool(message))
        self.error_icon.setVisible(bool(message))

    def _clear(self) -> None:
        self.editor.clear()
        self.tags.clear()
        self._set_error("")

    # ------------------------------------------------------------- smoke test
    def exercise(self) -> None:
        """Capture one tagged note; once it lands, read it back (checked by check_exercised)."""
        from uuid import uuid4

        marker = f"MemDesk smoke capture {uuid4().hex[:8]}"
        self._exercise = {"marker": marker}
        mem = self.mem

        def read_back(memory_id: str) -> None:
            self.runner.read(lambda: mem.get(memory_id),
                             on_done=lambda item: self._exercise.update(item=item),
                             on_error=lambda exc: self._exercise.update(error=str(exc)))

        def on_failed(message: str) -> None:
            self._exercise["error"] = message

        self._exercise["connections"] = (self.captured.connect(read_back), self.failed.connect(on_failed))
        self.open_capture()
        self.editor.setPlainText(marker)
        self.tags.setText(SMOKE_TAG)
        self.save()
        self._exercise["hidden_at_once"] = not self.isVisible()

    def check_exercised(self) -> None:
        state = self._exercise
        if not state:
            raise AssertionError("QuickCapture.exercise() was not called")
        for connection in state.pop("connections", ()):
            QObject.disconnect(connection)
        if "error" in state:
            raise AssertionError(f"quick capture failed: {state['error']}")
        if not state.get("hidden_at_once"):
            raise AssertionError("the capture box stayed open after Save; it must hide at once")
        item = state.get("item")
        if item is None:
            raise AssertionError("the captured note never landed (captured was not emitted)")
        if item.memory != state["marker"] or item.source != Source.CAPTURE.value or SMOKE_TAG not in item.tags:
            raise AssertionError(f"stored note does not match: memory={item.memory!r} source={item.source!r} "
                                 f"tags={item.tags!r}, expected {state['marker']!r}, capture, {SMOKE_TAG}")
        if self.isVisible() or self.error_text():
            raise AssertionError(f"the capture box is showing after a good save: {self.error_text()!r}")


def install_capture_shortcut(window: QWidget, capture: QuickCapture) -> QShortcut:
    """Ctrl+Shift+Space opens quick capture from any MemDesk window (other apps: see above)."""
    shortcut = QShortcut(QKeySequence(CAPTURE_SHORTCUT), window)
    shortcut.setObjectName("captureShortcut")
    shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
    shortcut.activated.connect(capture.open_capture)
    return shortcut
