"""While the desktop app runs, Python's cyclic garbage is collected on the GUI thread only.

The cyclic collector runs on whichever thread crosses its allocation threshold. Garbage
that holds a Qt object (a dialog kept by a traceback's frames, a view in a reference
cycle) was then destroyed on a worker thread; at start-up that is the indexer, which
allocates heavily while it imports torch. A widget destroyed off the GUI thread takes the
window system's locks from the wrong thread while the GUI thread may be waiting for the
indexer (docs/design-notes.md, "Lock order"). So automatic collection is off and a timer
on the GUI thread collects, by the collector's own thresholds (the usual PyQt/PySide remedy).
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 1000


class GuiGarbageCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    def collect(self) -> int:
        """Collect the generations whose thresholds were crossed (what gc would have done by itself)."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        generation = -1
        for gen in range(3):
            if thresholds[gen] and counts[gen] > thresholds[gen]:
                generation = gen
        return gc.collect(generation) if generation >= 0 else 0

    def stop(self) -> None:
        self.timer.stop()
        if self._was_enabled:
            gc.enable()
