"""Layout helpers shared by the Settings pages: caption/field grids, rows, help text."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QWidget


def muted(label: QLabel) -> None:
    """Help text: the palette's placeholder colour (readable, unlike disabled text) and a smaller font."""
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText))
    label.setPalette(palette)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.92)
    label.setFont(font)


class FormGrid:
    """Caption/field rows on a grid (QFormLayout leaves gaps under word-wrapped labels)."""

    def __init__(self, page: QWidget):
        self.grid = QGridLayout(page)
        self.grid.setColumnStretch(1, 1)
        self.rows = 0

    def add(self, caption: str | QWidget, field: QWidget | QHBoxLayout | None = None) -> None:
        """`add("Caption:", field)`, `add("", note)` (indented), or `add(widget)` across both columns."""
        row, self.rows = self.rows, self.rows + 1
        if field is None:
            assert isinstance(caption, QWidget)
            self.grid.addWidget(caption, row, 0, 1, 2)
            return
        if caption:
            self.grid.addWidget(QLabel(str(caption)), row, 0,
                                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if isinstance(field, QWidget):
            self.grid.addWidget(field, row, 1)
        else:
            self.grid.addLayout(field, row, 1)

    def end(self) -> None:
        self.grid.setRowStretch(self.rows, 1)  # spare height goes below the last row


def named_page(name: str) -> QWidget:
    page = QWidget()
    page.setObjectName(name)
    return page


def hrow(*widgets: QWidget, stretch: int | None = 0) -> QHBoxLayout:
    """A row of widgets, top-aligned; the one at index `stretch` takes the spare width."""
    row = QHBoxLayout()
    for index, widget in enumerate(widgets):
        row.addWidget(widget, 1 if index == stretch else 0, Qt.AlignmentFlag.AlignTop)
    return row


def hour_combo(name: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    combo.addItems([f"{hour:02d}:00" for hour in range(24)])  # index == hour
    return combo
