"""Windows that open at a size a person can read.

A window sized by its content alone can open tiny (the Conflicts view opened at 248x119 with
nothing to show). The floor is in text units (average character width, line height), so it
follows the person's font size, and it never exceeds what the screen has room for.
"""
from __future__ import annotations

from PySide6.QtWidgets import QWidget

MIN_CHARS = 100  # wide enough for a memory's text on one or two lines
MIN_LINES = 30
SCREEN_SHARE = 0.9


def readable_size(widget: QWidget) -> tuple[int, int]:
    metrics = widget.fontMetrics()
    width = max(widget.width(), metrics.averageCharWidth() * MIN_CHARS)
    height = max(widget.height(), metrics.height() * MIN_LINES)
    screen = widget.screen()
    if screen is not None:
        room = screen.availableGeometry()
        width = min(width, int(room.width() * SCREEN_SHARE))
        height = min(height, int(room.height() * SCREEN_SHARE))
    return width, height


def ensure_readable(widget: QWidget) -> None:
    """Before a window is shown: at least the readable floor, at most what the screen can hold."""
    width, height = readable_size(widget)
    if (width, height) != (widget.width(), widget.height()):
        widget.resize(width, height)
