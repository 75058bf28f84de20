"""The system-tray icon: MemDesk stays reachable (and keeps ingesting) with its window closed.

The app wires it like this:

    if Tray.available():
        app.setQuitOnLastWindowClosed(False)   # closing the window only hides it
        tray = Tray(); tray.show()
        tray.openRequested.connect(window.show_and_raise)
        tray.captureRequested.connect(capture.open_capture)
        tray.pauseToggled.connect(ingest.set_paused)
        tray.quitRequested.connect(app.quit)
    else:
        window.statusBar().showMessage(NO_TRAY_MESSAGE)   # once; closing the window quits

Without a tray (some Linux desktops, offscreen tests) quick capture stays reachable from the
window through `install_capture_shortcut` (ui/capture.py) and the window's own menu.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QApplication, QMenu, QStyle, QSystemTrayIcon

# resources/ sits next to ui/ both in a checkout and in site-packages (pyproject package-data).
ICON_PATH = Path(__file__).resolve().parent.parent / "resources" / "icons" / "memdesk.svg"

NO_TRAY_MESSAGE = ("This desktop has no system tray, so MemDesk runs only while its window is open. "
                   "Quick capture stays in the window: press Ctrl+Shift+Space.")


def app_icon() -> QIcon:
    """The MemDesk icon (tray and window); Qt's computer icon if the SVG is missing from an install."""
    icon = QIcon(str(ICON_PATH)) if ICON_PATH.is_file() else QIcon()
    if icon.isNull():
        style = QApplication.style()
        if style is not None:
            icon = style.standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)
    return icon


class Tray(QObject):
    """A QSystemTrayIcon plus its menu. Only signals leave it; the app decides what they do."""

    openRequested = Signal()
    captureRequested = Signal()
    pauseToggled = Signal(bool)
    quitRequested = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.setObjectName("tray")
        self.icon = QSystemTrayIcon(app_icon(), self)
        # A context menu must not have a widget parent here (the tray is not a widget); keep
        # a reference so Python does not collect it.
        self.menu = QMenu()
        self.menu.setObjectName("trayMenu")

        self.open_action = self._action("Open MemDesk", "trayOpen", "Show the MemDesk window",
                                        "window-new", QStyle.StandardPixmap.SP_TitleBarNormalButton)
        self.open_action.triggered.connect(self.openRequested)
        self.menu.setDefaultAction(self.open_action)
        self.capture_action = self._action("Quick capture…", "trayCapture",
                                           "Write down something to remember (Ctrl+Shift+Space in the window)",
                                           "document-new", QStyle.StandardPixmap.SP_FileIcon)
        self.capture_action.triggered.connect(self.captureRequested)
        self.menu.addSeparator()
        self.pause_action = self._action("Pause ingestion", "trayPause",
                                         "Stop reading watched folders until you resume",
                                         "media-playback-pause", QStyle.StandardPixmap.SP_MediaPause)
        self.pause_action.setCheckable(True)
        self.pause_action.toggled.connect(self._on_pause_toggled)
        self.menu.addSeparator()
        self.quit_action = self._action("Quit MemDesk", "trayQuit", "Close the window and stop MemDesk",
                                        "application-exit", QStyle.StandardPixmap.SP_DialogCloseButton)
        self.quit_action.triggered.connect(self.quitRequested)

        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._on_activated)
        self._update_tooltip()

    @staticmethod
    def available() -> bool:
        return bool(QSystemTrayIcon.isSystemTrayAvailable())

    # ------------------------------------------------------------------ public
    def show(self) -> None:
        """Show the icon; a no-op without a tray (check `available()` first and tell the user)."""
        if self.available():
            self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def is_paused(self) -> bool:
        return self.pause_action.isChecked()

    @Slot(bool)
    def set_paused(self, paused: bool) -> None:
        """Reflect a pause decided elsewhere (e.g. the settings window); emits pauseToggled on change."""
        self.pause_action.setChecked(paused)

    @Slot(str, str)
    def notify(self, title: str, message: str) -> None:
        """A balloon message ("Saved to memory"); silently skipped where the platform has none."""
        if self.icon.isVisible() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, message, app_icon(), 4000)

    # ----------------------------------------------------------------- private
    def _action(self, text: str, name: str, tip: str, theme: str, pixmap: QStyle.StandardPixmap) -> QAction:
        action = QAction(text, self)
        action.setObjectName(name)
        action.setToolTip(tip)
        action.setStatusTip(tip)
        style = QApplication.style()
        fallback = style.standardIcon(pixmap) if style is not None else QIcon()
        action.setIcon(QIcon.fromTheme(theme, fallback))
        self.menu.addAction(action)
        return action

    def _on_pause_toggled(self, paused: bool) -> None:
        self._update_tooltip()
        self.pauseToggled.emit(paused)

    def _update_tooltip(self) -> None:
        self.icon.setToolTip("MemDesk — ingestion paused" if self.is_paused() else "MemDesk")

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        # A left click (Trigger) or double click opens the window; the context menu needs no help.
        if reason in (QSystemTrayIcon.ActivationReason.Trigger, QSystemTrayIcon.ActivationReason.DoubleClick):
            self.openRequested.emit()
        elif reason == QSystemTrayIcon.ActivationReason.MiddleClick:
            self.captureRequested.emit()
