"""Issue 12, watched folders in the app: Settings said "Not watching" after Apply while the notes
were being ingested, and a folder deleted and re-created was not watched again until Apply was
pressed. Now each folder's row shows its state as it changes, and a folder that comes back is
watched again by itself."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from memdesk.app.folder_watching import FolderWatching  # noqa: E402

WAIT = 15000


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(3):
        (folder / f"n{i}.md").write_text(f"# Note {i}\n\nMarker{i} words.\n")
    return folder


@pytest.fixture(autouse=True)
def quick_recheck(monkeypatch):
    monkeypatch.setattr(FolderWatching, "RECHECK_S", 0.1)


def row_text(dialog, path) -> str:
    for row in range(dialog.folders.count()):
        if dialog.folders.item(row).data(256) == str(path):  # Qt.UserRole
            return dialog.folders.item(row).text()
    return ""


def test_settings_show_each_folders_state_after_apply(qtbot, desktop, notes):
    dialog = desktop.settings_dialog()
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.ingest_status.text().startswith("Not watching")
    assert dialog.add_folder(str(notes))
    assert "Watched once you press Apply" in dialog.folders.item(0).toolTip()
    assert dialog.apply()
    # Right after Apply: never "Not watching" while the folder is being read.
    assert not dialog.ingest_status.text().startswith("Not watching")
    qtbot.waitUntil(lambda: dialog.folder_state_text(str(notes)) == "Watching", timeout=WAIT)
    assert row_text(dialog, notes).endswith("Watching")
    assert dialog.ingest_status.text() == "Watching 1 folder."
    qtbot.waitUntil(lambda: desktop.mem.count() == 3, timeout=WAIT)


def test_a_folder_deleted_and_made_again_is_watched_again_without_apply(qtbot, desktop, notes):
    desktop.apply_settings(desktop.settings.__class__(**{**desktop.settings.__dict__,
                                                         "watched_folders": [str(notes)]}))
    dialog = desktop.settings_dialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.folder_state_text(str(notes)) == "Watching", timeout=WAIT)
    shutil.rmtree(notes)
    qtbot.waitUntil(lambda: dialog.folder_state_text(str(notes)).startswith("Folder not found"), timeout=WAIT)
    assert "not found" in dialog.ingest_status.text()
    notes.mkdir()
    (notes / "back.md").write_text("# Back\n\nA note written after the folder came back.\n")
    qtbot.waitUntil(lambda: dialog.folder_state_text(str(notes)) == "Watching", timeout=WAIT)
    qtbot.waitUntil(lambda: bool(desktop.mem.search("written after the folder came back")), timeout=WAIT)


def test_a_folder_missing_at_start_shows_why_and_is_watched_once_there(qtbot, desktop, tmp_path):
    later = tmp_path / "drive"
    desktop.apply_settings(desktop.settings.__class__(**{**desktop.settings.__dict__,
                                                         "watched_folders": [str(later)]}))
    dialog = desktop.settings_dialog()
    qtbot.addWidget(dialog)
    assert "watched again as soon as it is back" in row_text(dialog, later)
    later.mkdir()
    qtbot.waitUntil(lambda: dialog.folder_state_text(str(later)) == "Watching", timeout=WAIT)
