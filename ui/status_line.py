"""The chat window's status bar: the model, the scheduler, ingestion, and transient messages.

Permanent sections sit on the right (QStatusBar's permanent widgets) so that a transient
`showMessage` on the left never hides them: the model's state is what a person needs to
see at a glance (can I send yet? why not?), the rest says what runs in the background.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStatusBar, QStyle, QWidget

MODEL_STATES = ("loading", "ready", "error")

_ICONS = {"loading": QStyle.StandardPixmap.SP_BrowserReload,
          "ready": QStyle.StandardPixmap.SP_DialogApplyButton,
          "error": QStyle.StandardPixmap.SP_MessageBoxWarning,
          "scheduler": QStyle.StandardPixmap.SP_ComputerIcon,
          "ingest": QStyle.StandardPixmap.SP_DirIcon}

ERROR_COLOR = "#b3261e"  # a dark red that reads well on Fusion's light palette

# Long texts (a model error's fix) are elided to this many average characters; the tooltip has all.
_MAX_CHARS = 60


class StatusSection(QWidget):
    """A small icon and a one-line text, elided, with the full text as tooltip."""

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName(name)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(4)
        self.icon = QLabel(self)
        self.label = QLabel(self)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.icon)
        layout.addWidget(self.label)
        self._full = ""

    def set(self, text: str, icon: QStyle.StandardPixmap | None = None, tooltip: str = "") -> None:
        self._full = text
        metrics = self.label.fontMetrics()
        first_line = text.splitlines()[0] if text else ""
        self.label.setText(metrics.elidedText(first_line, Qt.TextElideMode.ElideRight,
                                              metrics.averageCharWidth() * _MAX_CHARS))
        self.setToolTip(tooltip or text)
        if icon is not None:
            size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
            self.icon.setPixmap(self.style().standardIcon(icon).pixmap(size, size))
        self.icon.setVisible(icon is not None)

    def text(self) -> str:
        return self._full


class StatusLine(QStatusBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatStatusLine")
        self.ingest = StatusSection("ingestStatus", self)
        self.scheduler = StatusSection("schedulerStatus", self)
        self.model = StatusSection("modelStatus", self)
        for section in (self.ingest, self.scheduler, self.model):
            self.addPermanentWidget(section)
        self.ingest.hide()
        self.model_state = "loading"
        self.set_model_status("loading", "Model: loading…")
        self.set_scheduler_status("")

    def set_model_status(self, state: str, text: str) -> None:
        if state not in MODEL_STATES:
            raise ValueError(f"unknown model state {state!r}; use one of {MODEL_STATES}")
        self.model_state = state
        tooltip = {"loading": "The chat model is loading; you can type meanwhile.",
                   "ready": f"{text}\nThe chat model runs on this computer.",
                   "error": f"The chat model could not be loaded:\n{text}"}[state]
        self.model.set(f"Model error: {text}" if state == "error" else text, _ICONS[state], tooltip)
        self.model.label.setStyleSheet(f"color: {ERROR_COLOR};" if state == "error" else "")

    def set_scheduler_status(self, text: str) -> None:
        shown = text or "idle"
        self.scheduler.set(f"Background: {shown}", _ICONS["scheduler"],
                           f"Background work (MemScheduler): {shown}.\nIt prepares memories for your next "
                           "message and reads new memories out of your chats, without delaying a reply.")

    def set_ingest_status(self, text: str) -> None:
        self.ingest.set(text, _ICONS["ingest"], f"{text}\nWatched folders are indexed in the background.")
        self.ingest.setVisible(bool(text))
