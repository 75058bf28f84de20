"""TaskRunner: work runs off the GUI thread, results and progress come back on it."""
from __future__ import annotations

import threading

import pytest

pytest.importorskip("PySide6")

from memdesk.ui.tasks import TaskRunner  # noqa: E402


def test_results_progress_and_errors_arrive_on_the_gui_thread(qtbot):
    runner = TaskRunner()
    gui = threading.get_ident()
    seen: dict = {"progress": []}

    def work(progress):
        seen["worker"] = threading.get_ident()
        for piece in ("a", "b", "c"):
            progress(piece)
        return "done"

    def on_progress(value):
        assert threading.get_ident() == gui
        seen["progress"].append(value)

    runner.model(work, on_done=lambda v: seen.update(result=(v, threading.get_ident())), on_progress=on_progress)
    runner.read(lambda: 1 / 0, on_error=lambda e: seen.update(error=type(e).__name__))
    with qtbot.waitSignal(runner.failed, timeout=5000) as failure:
        runner.write(lambda: (_ for _ in ()).throw(ValueError("disk full")))
    qtbot.waitUntil(lambda: runner.pending == 0, timeout=5000)
    assert failure.args == ["disk full"]
    assert seen["worker"] != gui and seen["result"] == ("done", gui)
    assert seen["progress"] == ["a", "b", "c"] and seen["error"] == "ZeroDivisionError"
    assert runner.shutdown()
    runner.read(lambda: seen.update(late=True))  # refused after shutdown
    assert "late" not in seen and runner.pending == 0


def test_the_write_lane_runs_in_order(qtbot):
    runner = TaskRunner()
    order = []
    for i in range(20):
        runner.write(lambda i=i: order.append(i))
    qtbot.waitUntil(lambda: runner.pending == 0, timeout=5000)
    assert order == list(range(20))


def test_signal_emits_keep_the_interpreter_alive():
    """PySide6 6.12.0 dropped a reference to True on each emit and aborted the process after a
    few hundred; pyproject excludes it. This catches a return of that kind of bug."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        ping = Signal()

    emitter = Emitter()
    before = sys.getrefcount(True)
    for _ in range(50):
        emitter.ping.emit()
    assert sys.getrefcount(True) >= before - 5
