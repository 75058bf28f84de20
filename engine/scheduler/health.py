"""What the background loops report when their work fails, so that someone is told.

The indexer, the scheduler, the job queue and the folder watcher each run on a thread of
their own. When a piece of their work raises, the loop records it here (and in the log,
without its message: engine messages can quote memory text), then goes on with the next
piece. The app reads `failures()` to show "Background work failed: ..." with the details.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

from memdesk.engine.errors import MemDeskError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    source: str  # "indexer", "scheduler", "jobs", "watcher"
    what: str  # the work that failed, e.g. "indexing new memories"
    error: str  # the error's own message, said to the person, never written to the log
    kind: str  # the error's type name
    at: float  # time.time() of the latest occurrence
    count: int = 1  # occurrences in a row of the same failure
    seq: int = 0  # increases with every failure recorded, to tell new ones from seen ones

    def summary(self) -> str:
        return f"{self.what}: {self.error}"

    def to_dict(self) -> dict:
        return asdict(self)


class Health:
    """Thread-safe; shared by the loops of one vault (Memory.health)."""

    def __init__(self, keep: int = 20):
        self._lock = threading.Lock()
        self._failures: deque[Failure] = deque(maxlen=keep)
        self._seq = 0

    def failed(self, source: str, what: str, exc: BaseException, note: str = "") -> Failure:
        """Record that `what` failed with `exc` (`note`: what happens next), and log it with its
        traceback (type and frames only). The same failure again counts up instead of piling up."""
        kind = type(exc).__name__
        message = str(exc) or kind
        if not isinstance(exc, MemDeskError):
            message = (f"{kind}: {message}. MemDesk keeps running; if this repeats, report it with the "
                       "log file from the data folder (it holds no memory text).")
        if note:
            message = f"{message} ({note})"
        with self._lock:
            self._seq += 1
            last = self._failures[-1] if self._failures else None
            count = 1
            if last is not None and (last.source, last.what, last.kind) == (source, what, kind):
                self._failures.pop()
                count = last.count + 1
            failure = Failure(source, what, message, kind, time.time(), count, self._seq)
            self._failures.append(failure)
        # The message may quote a memory, so the log gets the type and the frames, not the text.
        log.error("%s failed in %s (%s, %s time(s) in a row)", what, source, kind, count,
                  exc_info=(type(exc), exc, exc.__traceback__), extra={"safe_args": True})
        return failure

    def failures(self) -> list[Failure]:
        """Oldest first."""
        with self._lock:
            return list(self._failures)

    def latest(self) -> Failure | None:
        with self._lock:
            return self._failures[-1] if self._failures else None

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
