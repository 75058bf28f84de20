"""What `python -m bench.bundle` measures inside the desktop app: when the window is usable,
when the model is loaded, and when one chat turn has been answered.

Off unless MEMDESK_STARTUP_PROBE names a file. Each moment is appended to it as one JSON
line with the wall-clock time, so the benchmark (another process, which knows when it
started this one) can read the cold start and sample memory at the right moments. With
MEMDESK_STARTUP_PROBE_CHAT set, that text is sent as a chat turn a few seconds after the
model is ready (the idle sample is taken in between).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

if TYPE_CHECKING:
    from memdesk.app.gui import DesktopApp

PROBE_ENV = "MEMDESK_STARTUP_PROBE"
CHAT_ENV = "MEMDESK_STARTUP_PROBE_CHAT"
IDLE_S = 3.0  # after the model is ready, before the "idle" mark: background work settles
SEND_AFTER_IDLE_S = 2.0  # time for the benchmark to sample memory at "idle"

log = logging.getLogger(__name__)


def _mark(path: Path, event: str, **extra) -> None:
    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"event": event, "time": time.time(), **extra}) + "\n")
    except OSError as exc:  # a probe must never break the app it measures
        log.warning("startup probe could not write %s: %s", path, exc)


def install(desktop: DesktopApp) -> None:
    target = os.environ.get(PROBE_ENV)
    if not target:
        return
    path = Path(target)
    message = os.environ.get(CHAT_ENV, "")
    # Queued behind the first paint: the window is on screen and takes input.
    QTimer.singleShot(0, lambda: _mark(path, "window"))

    def model_ready(name: str) -> None:
        _mark(path, "model", name=name)
        QTimer.singleShot(int(IDLE_S * 1000), idle)

    def idle() -> None:
        _mark(path, "idle")
        if message:
            QTimer.singleShot(int(SEND_AFTER_IDLE_S * 1000), lambda: desktop.chat.send(message))

    desktop.chat.modelReady.connect(model_ready)
    desktop.chat.replyFinished.connect(lambda session_id: _mark(path, "reply"))
    desktop.chat.modelFailed.connect(lambda text: _mark(path, "model_failed", error=text))
