"""The watched folders while the desktop app runs: one FolderWatcher, its reports on the GUI thread.

The watcher calls back on its own thread (engine.ingestion.watch); the signals here carry that to
the GUI thread (emitted there, they are queued to receivers living on the GUI thread). Every
configured folder is handed to the watcher, missing ones included: a folder that is not
there (a drive not plugged in, a folder deleted and made again) is watched as soon as it is,
and each folder's state (`states`) is what Settings shows.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from memdesk.engine.api import Memory
from memdesk.engine.errors import MemDeskError
from memdesk.engine.ingestion.watch import FolderState


class FolderWatching(QObject):
    progress = Signal(int, int, str)  # done, total, path (files that needed work in the current scan)
    report = Signal(object)  # IngestReport
    error = Signal(str)
    states = Signal(object)  # list[FolderState]: every change of any folder's state
    RECHECK_S = 2.0  # how soon a folder that vanished or came back is noticed

    def __init__(self, mem: Memory, parent: QObject | None = None):
        super().__init__(parent)
        self.mem = mem
        self.watcher = None
        self.current: list[FolderState] = []  # the latest states, as the GUI thread has seen them
        self.states.connect(self._remember)

    def start(self, folders: list[str]) -> None:
        """Watch exactly these folders (stopping what was watched before)."""
        from memdesk.engine.ingestion.folders import Ingestor
        from memdesk.engine.ingestion.watch import FolderWatcher

        self.stop()
        if not folders:
            self.states.emit([])
            return
        watcher = FolderWatcher(Ingestor(self.mem), folders, health=self.mem.health, missing_ok=True,
                                recheck=self.RECHECK_S, on_report=self.report.emit,
                                on_progress=lambda done, total, path: self.progress.emit(done, total, str(path)),
                                on_error=lambda exc: self.error.emit(str(exc)), on_state=self.states.emit)
        try:
            watcher.start()
        except MemDeskError as exc:
            self.error.emit(str(exc))
            self.states.emit([FolderState(f, "error", error=str(exc)) for f in watcher.folders])
            return
        self.watcher = watcher
        self.states.emit(watcher.states())  # "starting": Settings never says "Not watching" meanwhile

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def pause(self, paused: bool) -> None:
        if self.watcher is not None:
            (self.watcher.pause if paused else self.watcher.resume)()

    def _remember(self, states: list[FolderState]) -> None:
        self.current = list(states)
