"""The MemScheduler's executor on a QThread (ARCHITECTURE.md: the app runs the scheduler on one)."""
from __future__ import annotations

from PySide6.QtCore import QThread

from memdesk.engine.scheduler.memscheduler import MemScheduler


class SchedulerThread(QThread):
    def __init__(self, scheduler: MemScheduler, parent=None):
        super().__init__(parent)
        self.scheduler = scheduler
        self.setObjectName("memdesk-scheduler")

    def start(self, *args) -> None:
        """Start (or start again after stop()): stop() leaves the scheduler told to stop, and a
        restarted thread would otherwise return at once and leave background work dead."""
        self.scheduler.allow_restart()
        super().start(*args)

    def run(self) -> None:
        self.scheduler.serve()

    def stop(self, timeout_ms: int = 30000) -> bool:
        """Ask the loop to end (a running prefill stops at its next chunk) and wait for it."""
        self.scheduler.stop()
        return self.wait(timeout_ms)
