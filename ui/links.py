"""Links in model replies open only after the person saw the whole address and said yes.

A reply is text a model wrote, and models invent addresses (in testing, made-up social-media
links): one click on a link in a reply must not open it. The confirmation shows the full
address (a markdown link's text can say anything), and only web and mail links are offered
at all; `file:` and other schemes could open local programs or files.
"""
from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget

OPENABLE = ("http", "https", "mailto")


class LinkConfirmation(QMessageBox):
    """Open, copy or leave a link from a reply; Cancel is the default."""

    def __init__(self, url: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.url = url
        self.setObjectName("linkConfirmation")
        self.setWindowTitle("Open link?")
        self.setIcon(QMessageBox.Icon.Question)
        openable = QUrl(url).scheme().lower() in OPENABLE
        if openable:
            self.setText("Open this address in your browser?")
            self.setInformativeText(f"{url}\n\nIt is in a reply written by the model, which can make up "
                                    "addresses. Open it only if you trust where it leads.")
            self.open_button = self.addButton("Open in browser", QMessageBox.ButtonRole.AcceptRole)
        else:
            self.setText("MemDesk opens only web and e-mail links from replies.")
            self.setInformativeText(url)
            self.open_button = None
        self.copy_button = self.addButton("Copy address", QMessageBox.ButtonRole.ActionRole)
        self.cancel_button = self.addButton(QMessageBox.StandardButton.Cancel)
        self.setDefaultButton(self.cancel_button)
        self.setEscapeButton(self.cancel_button)


def confirm_and_open(url: str, parent: QWidget | None = None) -> bool:
    """Ask; open the link in the browser only on "Open in browser". True when it was opened."""
    dialog = LinkConfirmation(url, parent)
    try:
        dialog.exec()
        clicked = dialog.clickedButton()
        if clicked is dialog.copy_button:
            QGuiApplication.clipboard().setText(url)
        if dialog.open_button is not None and clicked is dialog.open_button:
            return QDesktopServices.openUrl(QUrl(url))
        return False
    finally:
        dialog.deleteLater()
