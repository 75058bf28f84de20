"""Help ▸ About: the version, where the data folder is, and the licences of what MemDesk ships.

The app collects the facts (app/about.py reads each library's licence from its installed
metadata, so the list follows the dependencies rather than being typed twice); this window
only shows them, selectable so a person can copy the data folder's path.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QScrollArea, QVBoxLayout, QWidget


@dataclass(frozen=True)
class Licence:
    name: str
    version: str
    licence: str
    what: str = ""  # "embedded chat model", "embeddings", ... ("" for a library)


@dataclass(frozen=True)
class AboutInfo:
    version: str
    data_dir: str
    models: tuple[Licence, ...]
    libraries: tuple[Licence, ...]


class AboutDialog(QDialog):
    def __init__(self, info: AboutInfo, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About MemDesk")
        head = QLabel(f"<h2>MemDesk {escape(info.version)}</h2>"
                      "<p>A personal assistant that remembers you. Everything it knows stays on this computer.</p>"
                      f"<p><b>Your data folder:</b> <code>{escape(info.data_dir)}</code><br>Uninstalling MemDesk "
                      "never deletes it; make a backup in Settings ▸ Privacy & key before moving computers.</p>")
        head.setObjectName("aboutHead")
        head.setWordWrap(True)
        head.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        def rows(items: tuple[Licence, ...]) -> str:
            return "".join(f"<tr><td>{escape(i.name)}</td><td>{escape(i.version)}</td><td>{escape(i.licence)}</td>"
                           f"<td>{escape(i.what)}</td></tr>" for i in items)

        self.licences = QLabel("<h3>Models</h3><table cellspacing=6>" + rows(info.models) + "</table>"
                               "<h3>Libraries</h3><table cellspacing=6>" + rows(info.libraries) + "</table>")
        self.licences.setObjectName("aboutLicences")
        self.licences.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        scroll = QScrollArea()
        scroll.setWidget(self.licences)
        scroll.setWidgetResizable(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(head)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        em, line = self.fontMetrics().averageCharWidth(), self.fontMetrics().height()
        self.resize(em * 100, line * 36)
