"""The chat window's status bar: the model, the scheduler, ingestion, and transient messages.

Permanent sections sit on the right (QStatusBar's permanent widgets) so that a transient
`showMessage` on the left never hides them: the model's state is what a person needs to
see at a glance (can I send yet? why not?), the rest says what runs in the background.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QStatusBar, QStyle, QWidget

from memdesk.ui.messages import for_gui

MODEL_STATES = ("loading", "ready", "error")

_ICONS = {"loading": QStyle.StandardPixmap.SP_BrowserReload,
          "ready": QStyle.StandardPixmap.SP_DialogApplyButton,
          "error": QStyle.StandardPixmap.SP_MessageBoxWarning,
          "scheduler": QStyle.StandardPixmap.SP_ComputerIcon,
          "ingest": QStyle.StandardPixmap.SP_DirIcon,
          "embedding": QStyle.StandardPixmap.SP_FileDialogContentsView,
          "download": QStyle.StandardPixmap.SP_ArrowDown}

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


class _ClickableSection(StatusSection):
    clicked = Signal()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)


class StatusLine(QStatusBar):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatStatusLine")
        self.failure = _ClickableSection("backgroundFailure", self)
        self.failure.setCursor(Qt.CursorShape.PointingHandCursor)
        self.failure.label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.failure.clicked.connect(self.show_failure_details)
        self.ingest = StatusSection("ingestStatus", self)
        self.embedding = StatusSection("embeddingStatus", self)
        self.download = StatusSection("downloadStatus", self)
        self.scheduler = StatusSection("schedulerStatus", self)
        self.model = StatusSection("modelStatus", self)
        for section in (self.failure, self.ingest, self.embedding, self.download, self.scheduler, self.model):
            self.addPermanentWidget(section)
        self.ingest.hide()
        self.embedding.hide()
        self.download.hide()
        self.failure.hide()
        self.log_file = ""  # where the app's log is, named in the failure details
        self._failures: list[dict] = []
        self._seen = 0  # the newest failure (its seq) the person has dismissed
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

    def set_failures(self, failures: list[dict]) -> None:
        """Failures of background work (engine.scheduler.health Failure dicts, oldest first). The newest one
        not dismissed yet is shown; a click shows them all."""
        self._failures = list(failures)
        fresh = [f for f in self._failures if f["seq"] > self._seen]
        if not fresh:
            self.failure.hide()
            return
        latest = fresh[-1]
        repeated = f" ({latest['count']} times)" if latest.get("count", 1) > 1 else ""
        self.failure.set(f"Background work failed: {latest['what']}{repeated}", _ICONS["error"],
                         f"{latest['what']}: {for_gui(latest['error'])}\nClick for the details.")
        self.failure.show()

    def failure_details(self) -> str:
        lines = []
        for failure in reversed(self._failures[-10:]):
            when = time.strftime("%H:%M:%S", time.localtime(failure["at"]))
            repeated = f" ({failure['count']} times in a row)" if failure.get("count", 1) > 1 else ""
            lines.append(f"{when} — {failure['what']}{repeated}:\n{for_gui(failure['error'])}")
        if self.log_file:
            lines.append(f"The log file (no memory text in it) is {self.log_file}.")
        return "\n\n".join(lines)

    def show_failure_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Background work failed", self.failure_details(),
                          QMessageBox.StandardButton.Close, self.window())
        box.setObjectName("failureDetails")
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.finished.connect(lambda _result: self.dismiss_failures())
        box.open()

    def dismiss_failures(self) -> None:
        """Seen: hide the failure until a new one is recorded."""
        self._seen = max([self._seen, *(f["seq"] for f in self._failures)])
        self.failure.hide()

    def set_ingest_status(self, text: str) -> None:
        self.ingest.set(text, _ICONS["ingest"], f"{text}\nWatched folders are indexed in the background.")
        self.ingest.setVisible(bool(text))

    def set_embedding_status(self, done: int, total: int) -> None:
        """Memories still waiting for their vector: shown until every one has it."""
        waiting = total - done
        self.embedding.set(f"Preparing search: {done:,} of {total:,} memories", _ICONS["embedding"],
                           f"{waiting:,} memor{'y' if waiting == 1 else 'ies'} still to read for search by meaning. "
                           "Searches find them by their words meanwhile; MemDesk works through them in the "
                           "background.")
        self.embedding.setVisible(waiting > 0)

    def set_download_status(self, text: str) -> None:
        """A model download running in the background ("" hides it)."""
        self.download.set(text, _ICONS["download"], f"{text}\nYou can keep chatting with the current model; "
                          "Settings ▸ Models shows the download and can cancel it.")
        self.download.setVisible(bool(text))
