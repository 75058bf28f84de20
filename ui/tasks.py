"""Run engine work off the GUI thread and get the result back on it.

The GUI thread never waits on the database, a model or a disk scan (ARCHITECTURE.md,
Threads). Widgets hand a callable to a `TaskRunner` lane and give callbacks; the callable
runs on a worker thread and the callbacks run later on the GUI thread, through a queued
signal. Lanes:

- "read": a small pool; each worker thread gets its own SQLite reader connection.
- "write": one thread, so writes reach the single writer connection in order.
- "model": one thread, the chat model's (a model is not re-entrant).

A task that wants to report progress (streamed tokens, files scanned) takes a `progress`
callable as its only argument; each call reaches `on_progress` on the GUI thread, in order.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from engine.errors import MemDeskError

log = logging.getLogger(__name__)

LANES = {"read": 2, "write": 1, "model": 1}

Callback = Callable[[Any], None] | None


class _Relay(QObject):
    """Lives on the GUI thread; a signal emitted from a worker is delivered there, queued."""
    deliver = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.deliver.connect(self._call)

    @Slot(object)
    def _call(self, thunk: Callable[[], None]) -> None:
        thunk()


class _Job(QRunnable):
    def __init__(self, body: Callable[[], None]):
        super().__init__()
        self.body = body
        self.setAutoDelete(True)

    def run(self) -> None:
        self.body()


class TaskRunner(QObject):
    """Create on the GUI thread. `pending` counts tasks not yet finished (tests wait on it)."""

    failed = Signal(str)  # a task without its own on_error failed: for the status line
    idle = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._relay = _Relay()
        self._pools: dict[str, QThreadPool] = {}
        for lane, threads in LANES.items():
            pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)
            pool.setExpiryTimeout(-1)  # keep threads: a reader's connection belongs to its thread
            self._pools[lane] = pool
        self._lock = threading.Lock()
        self.pending = 0
        self.closed = False

    def run(self, lane: str, fn: Callable[..., Any], on_done: Callback = None, on_error: Callback = None,
            on_progress: Callback = None) -> None:
        if lane not in self._pools:
            raise ValueError(f"unknown lane {lane!r}; use one of {sorted(self._pools)}")
        if self.closed:
            return
        with self._lock:
            self.pending += 1
        relay = self._relay

        def progress(value: Any) -> None:
            if on_progress is not None:
                relay.deliver.emit(lambda: on_progress(value))

        def body() -> None:
            try:
                result = fn(progress) if on_progress is not None else fn()
            except Exception as exc:  # noqa: BLE001 - any failure must reach the GUI, never kill the worker
                log.warning("background task failed: %s", exc, exc_info=not isinstance(exc, MemDeskError))
                error = exc  # `exc` is unbound once the except block ends
                relay.deliver.emit(lambda: self._finish(on_error, error, failed=True))
            else:
                relay.deliver.emit(lambda: self._finish(on_done, result))

        self._pools[lane].start(_Job(body))

    def read(self, fn, on_done: Callback = None, on_error: Callback = None, on_progress: Callback = None) -> None:
        self.run("read", fn, on_done, on_error, on_progress)

    def write(self, fn, on_done: Callback = None, on_error: Callback = None, on_progress: Callback = None) -> None:
        self.run("write", fn, on_done, on_error, on_progress)

    def model(self, fn, on_done: Callback = None, on_error: Callback = None, on_progress: Callback = None) -> None:
        self.run("model", fn, on_done, on_error, on_progress)

    def _finish(self, callback: Callback, value: Any, failed: bool = False) -> None:
        try:
            if callback is not None:
                callback(value)
            elif failed:
                self.failed.emit(str(value))
        finally:
            with self._lock:
                self.pending -= 1
                now_idle = self.pending == 0
            if now_idle:
                self.idle.emit()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Refuse new work and wait for running tasks (call before closing the vault)."""
        self.closed = True
        return all(pool.waitForDone(timeout_ms) for pool in self._pools.values())

