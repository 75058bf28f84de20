"""The status line's "Preparing search: n of m memories" while memories wait for their vectors.

The indexer embeds new and edited memories in the background; until it has, a search finds
them by their words only. A write that adds or changes memories starts a look at
`Memory.embedding_progress()` on the read lane, repeated every POLL_MS while some are still
waiting (embedding itself is not a change the views need to hear about) and stopped when none
are.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from memdesk.engine.api import Memory
from memdesk.engine.vault.changes import Changes
from memdesk.ui.status_line import StatusLine
from memdesk.ui.tasks import TaskRunner


class EmbeddingProgress(QObject):
    POLL_MS = 1000

    def __init__(self, mem: Memory, runner: TaskRunner, status: StatusLine, parent: QObject | None = None):
        super().__init__(parent)
        self.mem = mem
        self.runner = runner
        self.status = status
        self._reading = False
        self.timer = QTimer(self)
        self.timer.setInterval(self.POLL_MS)
        self.timer.timeout.connect(self.check)

    def changed(self, changes: Changes) -> None:
        if changes.added or changes.changed:
            self.check()

    def check(self) -> None:
        if self.mem.indexer is None or self._reading or self.runner.closed:
            return  # a keyword-only vault has no vectors to wait for
        self._reading = True
        self.runner.read(self.mem.embedding_progress, on_done=self._show, on_error=self._failed)

    def _show(self, progress: tuple[int, int]) -> None:
        self._reading = False
        done, total = progress
        self.status.set_embedding_status(done, total)
        if done < total:
            if not self.timer.isActive():
                self.timer.start()
        else:
            self.timer.stop()

    def _failed(self, _error: BaseException) -> None:
        self._reading = False  # the vault is closing, or busy: the next change or tick asks again
