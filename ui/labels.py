"""Labels every view uses the same way: an inline message line and an empty-state text."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel


def message_label(name: str) -> QLabel:
    """A hidden, wrapping, selectable line for errors and results (people copy error text)."""
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.hide()
    return label


def empty_label(text: str, name: str) -> QLabel:
    """The centred text shown where a list or picture has nothing yet."""
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    return label
