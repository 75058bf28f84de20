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
Callbacks are kept on the GUI thread and the worker only reports (task id, result), so the
last reference to a widget a callback captures is never dropped on a worker thread.
"""
from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from memdesk.engine.errors import MemDeskError

log = logging.getLogger(__name__)

LANES = {"read": 2, "write": 1, "model": 1}

Callback = Callable[[Any], None] | None


class _Relay(QObject):
    """Lives on the GUI thread; a signal emitted from a worker is delivered there, queued."""
    deliver = Signal(int, str, object)  # task id, "progress" | "done" | "error", value


@dataclass
class _Task:
    fn: Callable[..., Any]
    on_done: Callback
    on_error: Callback
    on_progress: Callback


class _Job(QRunnable):
    """Holds only the task id and the callable: the callbacks (which often capture a widget)
    stay on the GUI thread, so a widget is never destroyed on a worker thread when the
    worker drops its last reference. The worker lets go of `fn` before it reports."""

    def __init__(self, task_id: int, fn: Callable[..., Any], wants_progress: bool, relay: _Relay):
        super().__init__()
        self.task_id = task_id
        self.fn: Callable[..., Any] | None = fn
        self.wants_progress = wants_progress
        self.relay = relay
        self.setAutoDelete(True)

    def progress(self, value: Any) -> None:
        self.relay.deliver.emit(self.task_id, "progress", value)

    def run(self) -> None:
        fn, self.fn = self.fn, None
        kind = "done"
        try:
            value = fn(self.progress) if self.wants_progress else fn()
        except Exception as exc:  # noqa: BLE001 - any failure must reach the GUI, never kill the worker
            log.warning("background task failed: %s", exc, exc_info=not isinstance(exc, MemDeskError))
            exc.__traceback__ = None  # its frames would keep the task's closures alive on this thread
            kind, value = "error", exc
        fn = None
        self.relay.deliver.emit(self.task_id, kind, value)


class TaskRunner(QObject):
    """Create on the GUI thread. `pending` counts tasks not yet finished (tests wait on it)."""

    failed = Signal(str)  # a task without its own on_error failed: for the status line
    idle = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._relay = _Relay()
        self._relay.deliver.connect(self._delivered)
        self._pools: dict[str, QThreadPool] = {}
        for lane, threads in LANES.items():
            pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)
            pool.setExpiryTimeout(-1)  # keep the threads (and their warm reader connections)
            self._pools[lane] = pool
        self._tasks: dict[int, _Task] = {}  # touched on the GUI thread only
        self._ids = itertools.count(1)
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def run(self, lane: str, fn: Callable[..., Any], on_done: Callback = None, on_error: Callback = None,
            on_progress: Callback = None) -> None:
        if lane not in self._pools:
            raise ValueError(f"unknown lane {lane!r}; use one of {sorted(self._pools)}")
        if self.closed:
            return
        task_id = next(self._ids)
        self._tasks[task_id] = _Task(fn, on_done, on_error, on_progress)
        self._pools[lane].start(_Job(task_id, fn, on_progress is not None, self._relay))

    @Slot(int, str, object)
    def _delivered(self, task_id: int, kind: str, value: Any) -> None:
        task = self._tasks.get(task_id)
        if task is None:
            return
        if kind == "progress":
            if task.on_progress is not None:
                task.on_progress(value)
            return
        try:
            if kind == "done":
                if task.on_done is not None:
                    task.on_done(value)
            elif task.on_error is not None:
                task.on_error(value)
            else:
                self.failed.emit(str(value))
        finally:
            del self._tasks[task_id]
            if not self._tasks:
                self.idle.emit()

    def read(self, fn, on_done: Callback = None, on_error: Callback = None, on_progress: Callback = None) -> None:
        self.run("read", fn, on_done, on_error, on_progress)

    def write(self, fn, on_done: Callback = None, on_error: Callback = None, on_progress: Callback = None) -> None:
        self.run("write", fn, on_done, on_error, on_progress)

    def model(self, fn, on_done: Callback = None, on_error: Callback = None, on_progress: Callback = None) -> None:
        self.run("model", fn, on_done, on_error, on_progress)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Refuse new work and wait for running tasks (call before closing the vault)."""
        self.closed = True
        return all(pool.waitForDone(timeout_ms) for pool in self._pools.values())



def weakly(method: Callable[..., None], *leading: object) -> Callable[[Any], None]:
    """A callback that holds its widget weakly: a result arriving after the view was closed
    and collected is dropped instead of keeping the view alive until the task ends."""
    ref = weakref.WeakMethod(method)

    def call(value: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(*leading, value)
    return call
