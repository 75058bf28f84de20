"""The window shown while the vault opens (the key derivation takes about half a second).

Not QSplashScreen: its show() and showMessage() wait until the window system reports the
window exposed, up to a second each, and under Xvfb or the offscreen platform that second is
always spent; it was 40% of MemDesk's start (bench.bundle). This paints at once instead.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class Splash(QWidget):
    def __init__(self, pixmap: QPixmap):
        super().__init__(None, Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint
                         | Qt.WindowType.WindowStaysOnTopHint)
        self.setObjectName("splash")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        icon = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        icon.setPixmap(pixmap)
        self.message = QLabel("MemDesk", alignment=Qt.AlignmentFlag.AlignCenter, objectName="splashMessage")
        layout.addWidget(icon)
        layout.addWidget(self.message)

    def showMessage(self, text: str) -> None:
        """Show `text` now: the caller usually blocks right after (opening the vault)."""
        self.message.setText(text)
        if self.isVisible():
            self.repaint()

    def show(self) -> None:
        self.adjustSize()
        screen = QGuiApplication.primaryScreen()
        if screen is not None:  # centred, where QSplashScreen put itself
            frame = self.frameGeometry()
            frame.moveCenter(screen.availableGeometry().center())
            self.move(frame.topLeft())
        super().show()
        self.repaint()
