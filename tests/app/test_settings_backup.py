"""Issue 12, Settings: backups from the privacy page (create, restore with its passphrase, clear
results), the embedding backlog in the status line, and compaction in the nightly window."""
from __future__ import annotations

import json
from datetime import datetime

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QTimer  # noqa: E402

from memdesk.app import gui  # noqa: E402
from memdesk.app.gui_backup import PendingRestore, finish_restore  # noqa: E402
from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.vault.backup import create_backup, read_header, restore_backup  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402
from memdesk.engine.vault.maintenance import INCREMENTAL  # noqa: E402
from memdesk.ui import settings_backup  # noqa: E402
from tests.conftest import FAST_KDF, PASSPHRASE  # noqa: E402

WAIT = 30000
SECRET = "backup passphrase 42"
CHEAP = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)


@pytest.fixture
def typed(monkeypatch):
    """The real passphrase dialog; each time it opens, the next answer is typed and accepted."""
    answers: list[str] = []
    shown: list[str] = []

    class Typing(settings_backup.BackupPassphraseDialog):
        def exec(self):
            shown.append(self.mode)
            answer = answers.pop(0)
            self.passphrase.setText(answer)
            self.repeat.setText(answer)
            QTimer.singleShot(0, self.accept)
            return super().exec()

    monkeypatch.setattr(settings_backup, "BackupPassphraseDialog", Typing)
    return answers, shown


@pytest.fixture
def dialog(qtbot, desktop):
    made = desktop.settings_dialog()
    qtbot.addWidget(made)
    made.tabs.setCurrentWidget(made.privacy_page)
    made.show()
    return made


def test_a_backup_made_from_settings_restores_elsewhere(qtbot, desktop, dialog, typed, tmp_path):
    desktop.mem.add("Ana lives in Lisbon")
    desktop.mem.add("I prefer short answers")
    answers, shown = typed
    answers.append(SECRET)
    target = tmp_path / "profile.backup"
    box = dialog.backup
    box.request_create(str(target))  # the file chooser's answer; the passphrase is typed in the dialog
    assert shown == ["create"]
    qtbot.waitUntil(lambda: box.status.text().startswith("Backed up"), timeout=WAIT)
    assert "Backed up 2 memories" in box.status.text() and str(target) in box.status.text()
    assert "Keep the backup passphrase" in box.status.text()
    assert box.create_button.isEnabled()
    read_header(target)  # a real backup file
    report = restore_backup(target, tmp_path / "elsewhere", "default", SECRET, vault_passphrase=lambda c: PASSPHRASE,
                            kdf=FAST_KDF)
    assert report.tables["memories"] == 2


def test_a_backup_that_cannot_be_made_says_why(qtbot, desktop, dialog, tmp_path):
    box = dialog.backup
    box.request_create(str(tmp_path / "no-such-folder" / "x.backup"), "long enough passphrase")
    qtbot.waitUntil(lambda: box.status.text().startswith("No backup was made"), timeout=WAIT)
    assert box.status.styleSheet()  # shown as an error


def test_the_passphrase_dialog_refuses_a_short_or_mismatched_one(qtbot):
    dialog = settings_backup.BackupPassphraseDialog("create")
    qtbot.addWidget(dialog)
    dialog.passphrase.setText("short")
    dialog.repeat.setText("short")
    dialog.accept()
    assert dialog.error.text() == "Use at least 8 characters." and dialog.result() == 0
    dialog.passphrase.setText("long enough")
    dialog.repeat.setText("long enougH")
    dialog.accept()
    assert dialog.error.text() == "The two passphrases do not match."


@pytest.fixture
def backup_file(tmp_path, kw_mem):
    kw_mem.add("Only in the backup")
    path = tmp_path / "old.backup"
    create_backup(kw_mem, path, SECRET, kdf=CHEAP)
    return path


def test_restore_asks_the_backups_passphrase_and_a_wrong_one_changes_nothing(qtbot, desktop, dialog, typed,
                                                                             backup_file, monkeypatch):
    quits: list[int] = []
    monkeypatch.setattr(desktop, "quit", lambda: quits.append(1))
    answers, shown = typed
    answers.append("not the passphrase")
    box = dialog.backup
    box.request_restore(str(backup_file))
    qtbot.waitUntil(lambda: "Wrong backup passphrase" in box.status.text(), timeout=WAIT)
    assert shown == ["restore"] and desktop.pending_restore is None and quits == []
    assert box.restore_button.isEnabled()
    answers.append(SECRET)
    box.request_restore(str(backup_file))
    qtbot.waitUntil(lambda: desktop.pending_restore is not None, timeout=WAIT)
    assert desktop.pending_restore == PendingRestore(str(backup_file), SECRET) and quits == [1]
    assert "opens again" in box.status.text()


def test_a_file_that_is_not_a_backup_is_refused_before_any_passphrase(qtbot, desktop, dialog, typed, tmp_path):
    answers, shown = typed
    other = tmp_path / "notes.txt"
    other.write_text("not a backup")
    dialog.backup.request_restore(str(other))
    qtbot.waitUntil(lambda: "is not a MemDesk backup" in dialog.backup.status.text(), timeout=WAIT)
    assert shown == []


def test_finish_restore_replaces_the_closed_profile_and_keeps_its_settings(tmp_path):
    data = tmp_path / "data"
    with Memory.open(data, embedder=False, kdf=FAST_KDF) as mem:
        mem.add("Before the backup")
        create_backup(mem, tmp_path / "b.backup", SECRET, kdf=CHEAP)
        mem.add("After the backup: lost by the restore")
        paths = mem.paths
    (paths.root / "settings.json").write_text(json.dumps({"backend": "auto"}))
    report = finish_restore(paths, PendingRestore(str(tmp_path / "b.backup"), SECRET), lambda confirm: PASSPHRASE)
    assert report.replaced and report.tables["memories"] == 1
    with Memory.open(data, embedder=False, kdf=FAST_KDF) as mem:
        assert [m.memory for m in mem.list()] == ["Before the backup"]
    assert json.loads((paths.root / "settings.json").read_text()) == {"backend": "auto"}


def test_the_status_line_shows_memories_waiting_for_vectors(qtbot, tmp_path, embedder):
    from memdesk.app import settings_store

    with Memory.open(tmp_path / "vec", embedder=embedder, background=False, kdf=FAST_KDF) as mem:
        app = gui.DesktopApp(gui.make_qt_app([]), mem, mem.paths, settings_store.SettingsStore(tmp_path / "s"))
        for widget in (app.window, app.browser, app.conflicts, app.timeline, app.capture):
            qtbot.addWidget(widget)
        section = app.window.status_line.embedding
        try:
            for i in range(3):
                mem.add(f"Note number {i} about the garden")
            qtbot.waitUntil(lambda: section.text() == "Preparing search: 0 of 3 memories", timeout=WAIT)
            assert section.isVisibleTo(app.window)
            mem.indexer.drain()  # the indexer catches up (here by hand: the vault has no background thread)
            qtbot.waitUntil(lambda: not section.isVisibleTo(app.window), timeout=WAIT)
            assert section.text() == "Preparing search: 3 of 3 memories"
        finally:
            app.shutdown()


def test_the_nightly_window_compacts_the_vault(qtbot, desktop):
    with desktop.mem.db.exclusive() as conn:  # a vault from before incremental auto-vacuum
        conn.pragma("auto_vacuum", 0)
        conn.execute("VACUUM")
    desktop.scheduler.add_nightly("adapter", lambda should_stop: None)  # this test is about compaction only
    queued = desktop.scheduler.tick(datetime(2026, 12, 2, desktop.settings.nightly_start_hour, 30))
    assert "compact" in queued

    def mode() -> int:
        with desktop.mem.db.read() as conn:
            return conn.pragma("auto_vacuum")

    qtbot.waitUntil(lambda: mode() == INCREMENTAL, timeout=WAIT)
