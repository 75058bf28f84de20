"""Settings ▸ Scheduler ▸ "Start MemDesk at login".

Unlike the rest of the dialog this takes effect at once, not on OK/Apply: the truth is the
OS's own login entry, which the app writes (app/autostart.py) and reads back, so there is no
value in `AppSettings` to apply later. The box only asks (`changeRequested`) and shows what
the app answers (`show_state`); whenever it is shown it asks the app to read the entry again
(`refreshRequested`), so a tick never outlives an entry removed by hand.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QLabel, QWidget

from memdesk.ui.messages import for_gui
from memdesk.ui.settings_layout import muted
from memdesk.ui.status_line import ERROR_COLOR

NOTE = ("MemDesk opens when you log in to this computer, so its tray icon and quick capture "
        "(Ctrl+Shift+Space) are ready and nightly learning can run. This takes effect at once.")


class LoginStartBox(QObject):
    """The checkbox, its note and its error line; the page lays them out on its own grid so they
    line up with the page's other notes."""

    changeRequested = Signal(bool)  # the person ticked (True) or unticked (False) the box
    refreshRequested = Signal()  # shown again: the app reads the OS entry and answers with show_state

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("loginStartBox")
        self.checkbox = QCheckBox("Start MemDesk at login", parent, objectName="startAtLogin")
        self.checkbox.setToolTip("Adds MemDesk to the programs your desktop starts when you log in")
        # clicked, not toggled: show_state's setChecked must not read as the person's request.
        self.checkbox.clicked.connect(lambda _checked=False: self.changeRequested.emit(self.checkbox.isChecked()))
        self.checkbox.installEventFilter(self)
        self.note = QLabel(NOTE, parent, objectName="loginStartNote", wordWrap=True)
        muted(self.note)
        self.error = QLabel(parent, objectName="loginStartError", wordWrap=True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # a path to copy
        self.error.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error.hide()

    def show_state(self, enabled: bool, error: str | None = None) -> None:
        """What the OS entry says now, and why a change did not happen ("" clears the message,
        None keeps it: a re-read on showing the page must not hide why the last change failed)."""
        self.checkbox.setChecked(enabled)
        if error is not None:
            self.error.setText(for_gui(error))
            self.error.setVisible(bool(error))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.checkbox and event.type() == QEvent.Type.Show:  # its page became visible
            self.refreshRequested.emit()
        return False
