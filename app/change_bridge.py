"""Engine change reports, relayed as one signal on the GUI thread (Anki's "operation did execute").

The vault reports each committed write on the thread that made it (engine/vault/changes.py): a
TaskRunner lane, the scheduler's thread (extraction, the nightly job), the watcher's thread
(ingestion). The bridge carries every report to the GUI thread through a queued signal and
merges what arrives within `coalesce_ms` into one `changed`, so that a folder of a thousand
notes refreshes the open views a few times a second, not a thousand times.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from memdesk.engine.api import Memory
from memdesk.engine.vault.changes import Changes

COALESCE_MS = 150


class ChangeBridge(QObject):
    changed = Signal(object)  # Changes, on the GUI thread
    _arrived = Signal(object)  # emitted on the writing thread

    def __init__(self, mem: Memory, parent: QObject | None = None, coalesce_ms: int = COALESCE_MS):
        super().__init__(parent)
        self._pending = Changes()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(coalesce_ms)
        self._timer.timeout.connect(self._flush)
        self._arrived.connect(self._collect, Qt.ConnectionType.QueuedConnection)
        self._listeners = mem.on_commit
        self._listener = self._arrived.emit  # kept: the same object must be removed in close()
        self._listeners.append(self._listener)

    def close(self) -> None:
        """Stop listening (before this object goes; a write after that would emit on a dead object)."""
        if self._listener in self._listeners:
            self._listeners.remove(self._listener)
        self._timer.stop()

    def _collect(self, changes: Changes) -> None:
        self._pending = self._pending | changes
        if not self._timer.isActive():  # not restarted: a long burst still refreshes as it goes
            self._timer.start()

    def _flush(self) -> None:
        changes, self._pending = self._pending, Changes()
        if changes:
            self.changed.emit(changes)
