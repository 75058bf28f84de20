"""The composed desktop app: unlocking (wrong passphrase, MEMDESK_PASSPHRASE), one instance per
profile, the background-preparation setting, and a shutdown that waits for running work."""
from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QEventLoop, QObject, QTimer  # noqa: E402

from memdesk.app import gui  # noqa: E402
from memdesk.app.gui_gc import GuiGarbageCollector  # noqa: E402
from memdesk.app.single_instance import SingleInstance  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.vault.database import VaultClosed  # noqa: E402
from memdesk.engine.vault.paths import ProfilePaths  # noqa: E402
from memdesk.ui.tasks import TaskRunner  # noqa: E402
from memdesk.ui.unlock import UnlockDialog  # noqa: E402
from tests.conftest import FAST_KDF, PASSPHRASE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def paths(data_dir) -> ProfilePaths:
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF):  # a passphrase vault (MEMDESK_PASSPHRASE)
        pass
    return ProfilePaths.for_profile(data_dir, "default")


@pytest.fixture
def typed(monkeypatch):
    """The real unlock dialog, shown; each time it opens, the next answer is typed and accepted."""
    answers: list[str] = []
    shown: list[str] = []

    class Typing(UnlockDialog):
        def exec(self):
            shown.append(self.error.text())
            self.passphrase.setText(answers.pop(0))
            QTimer.singleShot(0, self.accept)
            return super().exec()

    monkeypatch.setattr(gui, "UnlockDialog", Typing)
    return answers, shown


def live(*kinds: type) -> list:
    return [o for o in gc.get_objects() if issubclass(type(o), kinds)]  # type(): no lazy attribute lookups


def test_unlock_after_a_wrong_passphrase_many_times(qtbot, paths, typed, embedder, monkeypatch):
    """A relaunch after a wrong passphrase hung now and then: the WrongKeyError, kept in
    wait_for's frame, held that frame, the dialog and a TaskRunner in a reference cycle, and the
    cyclic collector freed those Qt objects later on the indexer's thread (busy allocating while
    it loads its model, and holding the write lock the GUI thread was waiting for). Nothing of
    the unlock flow may be left for the collector."""
    answers, shown = typed
    monkeypatch.delenv("MEMDESK_PASSPHRASE")
    for _ in range(12):
        answers[:] = ["not the passphrase", PASSPHRASE]
        shown.clear()
        gc.collect()
        gc.disable()
        try:
            # Objects of earlier tests may still be alive (or be freed meanwhile); only this unlock's
            # may not be left over. Holding the earlier ones keeps their ids from being reused.
            earlier = live(UnlockDialog, TaskRunner, QEventLoop)
            known = {id(o) for o in earlier}
            mem = gui.open_vault(paths, embedder=embedder)
            assert mem is not None and mem.indexer is not None
            # Left for the cyclic collector, these would be freed on whichever thread collects next.
            assert [type(o).__name__ for o in live(UnlockDialog, TaskRunner, QEventLoop) if id(o) not in known] == []
            del earlier
        finally:
            gc.enable()
        assert shown == ["", "Wrong passphrase for the vault in " + str(paths.root) +
                         ". Try again, or check MEMDESK_PASSPHRASE."]
        mem.add("opened again")  # the vault works, with the indexer thread running beside it
        assert mem.wait_indexed(60)
        mem.close()


def test_memdesk_passphrase_opens_without_asking_and_a_wrong_one_is_said(qtbot, paths, typed, monkeypatch):
    """The GUI passed a provider that returned nothing when MEMDESK_PASSPHRASE was set, then
    stopped on an error box."""
    answers, shown = typed
    mem = gui.open_vault(paths, embedder=False)
    assert mem is not None and shown == []  # no dialog: the variable opened it
    mem.close()
    monkeypatch.setenv("MEMDESK_PASSPHRASE", "a passphrase that is wrong")
    answers[:] = [PASSPHRASE]
    mem = gui.open_vault(paths, embedder=False)
    assert mem is not None and shown == ["MEMDESK_PASSPHRASE does not open this vault. Enter its passphrase."]
    mem.close()


def test_cyclic_garbage_with_qt_objects_is_freed_on_the_gui_thread(qtbot):
    collector = GuiGarbageCollector()
    try:
        freed_on: list[str] = []
        holder = QObject()
        holder.destroyed.connect(lambda *_: freed_on.append(threading.current_thread().name))
        cycle = {"qt": holder}
        cycle["self"] = cycle
        del holder, cycle

        def allocate():  # far past gen 0's threshold: with automatic collection it would run here
            junk = [[i] for i in range(50_000)]
            del junk
            for _ in range(2000):
                loop = []
                loop.append(loop)

        worker = threading.Thread(target=allocate, name="worker")
        worker.start()
        worker.join()
        assert freed_on == []  # nothing was collected on the worker
        collector.collect()
        gc.collect()
        assert freed_on == [threading.current_thread().name]
    finally:
        collector.stop()
    assert gc.isenabled()


@pytest.mark.parametrize("command, signal, said", [("gui", "activated", "window was brought to the front"),
                                                    ("capture", "captureRequested", "capture box was opened")])
def test_a_second_launch_asks_the_running_app_and_exits(qtbot, tmp_path, command, signal, said):
    """`memdesk` shows the running window; `memdesk capture` (a desktop shortcut) opens its capture box."""
    data = tmp_path / "data"
    paths = ProfilePaths.for_profile(data, "default")
    first = SingleInstance(paths)
    assert first.acquire()
    heard = []
    first.activated.connect(lambda: heard.append("activated"))
    first.captureRequested.connect(lambda: heard.append("captureRequested"))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "memdesk", command, "--data-dir", str(data)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        with qtbot.waitSignal(getattr(first, signal), timeout=120000):
            pass
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        first.release()
    assert proc.returncode == 0, err[-3000:]
    assert "already running" in err and said in err and heard == [signal]
    assert not paths.vault.exists()  # the second launch never opened (or created) the vault
    other = SingleInstance(ProfilePaths.for_profile(data, "work"))  # another profile is its own app
    assert other.acquire()
    other.release()
    again = SingleInstance(paths)  # the lock went with its holder
    assert again.acquire()
    again.release()


def test_unticking_preparation_keeps_extraction_and_ticking_it_again_works(qtbot, desktop):
    """Unticking stopped the scheduler thread (and with it extraction and the nightly job), and
    ticking it again left it dead: its stop flag was never cleared."""
    ran, built = threading.Event(), threading.Event()
    desktop.jobs.handlers["test"] = lambda job, progress: ran.set()
    desktop.apply_settings(replace(desktop.settings, scheduler_enabled=False))
    assert desktop.scheduler_thread.isRunning() and not desktop.scheduler.preparation
    assert not desktop.scheduler.submit("prefix_build", lambda should_stop: built.set(), key="prefix:x")
    desktop.jobs.enqueue("test", {})
    assert ran.wait(30), "extraction stopped with the setting"
    desktop.apply_settings(replace(desktop.settings, scheduler_enabled=True))
    assert desktop.scheduler.submit("prefix_build", lambda should_stop: built.set(), key="prefix:x")
    assert built.wait(30)
    assert desktop.scheduler_thread.stop()
    built.clear()
    desktop.scheduler_thread.start()  # e.g. stopped and started again: it serves again
    assert desktop.scheduler.submit("prefix_build", lambda should_stop: built.set(), key="prefix:y")
    assert built.wait(30), "the scheduler stayed dead after a restart"


def test_a_second_launch_brings_the_hidden_window_back(qtbot, desktop):
    desktop.window.hide()
    desktop.activate()
    assert desktop.window.isVisible()


def test_shutdown_waits_for_a_running_task_before_closing_the_vault(qtbot, desktop, monkeypatch):
    """TaskRunner.shutdown's answer was ignored: after its 30 s the vault closed under the task."""
    waited = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record):
            if "still running" in record.getMessage():
                waited.set()

    handler = Seen()
    logging.getLogger("memdesk.gui").addHandler(handler)
    shutdown = desktop.runner.shutdown
    monkeypatch.setattr(desktop.runner, "shutdown", lambda timeout_ms=30000: shutdown(min(timeout_ms, 200)
                                                                                      if timeout_ms >= 0 else -1))
    result: list = []

    def task():
        assert waited.wait(60)  # the first wait for it ran out, as 30 s would for a slow import
        try:
            result.append(desktop.mem.count())  # a new read: the vault must still be open
        except VaultClosed as exc:
            result.append(exc)

    desktop.runner.write(task)
    try:
        desktop.shutdown()
    finally:
        logging.getLogger("memdesk.gui").removeHandler(handler)
    assert result == [0]
    with pytest.raises(VaultClosed):
        desktop.mem.count()  # and it was closed after
