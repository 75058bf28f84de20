"""Runs the training component's install (app/training_install.py) off the GUI thread for the
Learned preferences page, and tells the page each step and the end."""
from __future__ import annotations

import logging
import threading

from PySide6.QtCore import QObject, Signal

from memdesk.app.training_install import InstallPlan, describe, run
from memdesk.engine.errors import MemDeskError

log = logging.getLogger(__name__)


class TrainingInstaller(QObject):
    step = Signal(str)
    finished = Signal(str)  # "" when installed, else what went wrong and what to do

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.cancel = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, install: InstallPlan) -> bool:
        if self.running:
            return False
        self.cancel.clear()

        def work() -> None:
            try:
                run(install, lambda line: (text := describe(line)) and self.step.emit(text), self.cancel)
                self.finished.emit("")
            except MemDeskError as exc:
                self.finished.emit(str(exc))
            except Exception as exc:  # noqa: BLE001 - shown on the page and logged, never lost
                log.exception("training component install failed")
                self.finished.emit(f"The training component could not be installed ({type(exc).__name__}: {exc}).")

        self._thread = threading.Thread(target=work, name="memdesk-install-training", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """At quit: stop pip, interrupted as by Ctrl+C so that it rolls back what it had half installed."""
        self.cancel.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
