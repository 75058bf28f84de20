"""Issue 12, watched folders: each folder's state (scanning n of m, watching, missing, error with
its reason) is reported as it changes, and a folder deleted and re-created is watched again
by itself (before, only pressing Apply in Settings did that)."""
from __future__ import annotations

import shutil
import threading

import pytest

from memdesk.engine.errors import InvalidInputError, MemDeskError
from memdesk.engine.ingestion.folders import Ingestor
from memdesk.engine.ingestion.watch import FolderState, FolderWatcher

WAIT = 15.0


class States:
    """Every report of on_state, and a way to wait for one that satisfies a condition."""

    def __init__(self):
        self.history: list[list[FolderState]] = []
        self._cv = threading.Condition()

    def __call__(self, states: list[FolderState]) -> None:
        with self._cv:
            self.history.append(states)
            self._cv.notify_all()

    def wait(self, condition) -> list[FolderState]:
        with self._cv:
            assert self._cv.wait_for(lambda: self.history and condition(self.history[-1]), WAIT), \
                f"no such state; last: {self.history[-1] if self.history else None}"
            return self.history[-1]


def state_of(states: list[FolderState], folder) -> str:
    return next(s.state for s in states if s.folder == str(folder))


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(3):
        (folder / f"n{i}.md").write_text(f"# Note {i}\n\nMarker{i} text.\n")
    return folder


@pytest.fixture
def watch(kw_mem):
    made: list[FolderWatcher] = []

    def start(folders, **kwargs) -> tuple[FolderWatcher, States]:
        states = States()
        watcher = FolderWatcher(Ingestor(kw_mem), folders, on_state=states, debounce=0.1, recheck=0.1, **kwargs)
        made.append(watcher)
        watcher.start()
        return watcher, states

    yield start
    for watcher in made:
        watcher.stop()


def test_a_scan_reports_its_progress_then_watching(watch, notes):
    watcher, states = watch([notes])
    states.wait(lambda s: state_of(s, notes) == "watching")
    seen = [s[0] for s in states.history]
    scanning = [s for s in seen if s.state == "scanning"]
    assert scanning and scanning[-1].total == 3 and scanning[-1].done == 3
    assert scanning[-1].describe() == "Scanning: 3 of 3 files"
    assert watcher.states()[0].describe() == "Watching"


def test_a_deleted_folder_is_watched_again_when_it_comes_back(watch, notes, kw_mem):
    watcher, states = watch([notes])
    states.wait(lambda s: state_of(s, notes) == "watching")
    shutil.rmtree(notes)
    missing = states.wait(lambda s: state_of(s, notes) == "missing")
    assert "watched again as soon as it is back" in missing[0].describe()
    notes.mkdir()
    (notes / "back.md").write_text("# Back\n\nThe folder came back with news.\n")
    states.wait(lambda s: state_of(s, notes) == "watching")
    assert watcher.wait_idle(WAIT)
    assert kw_mem.search("folder came back news")
    # And it is watched, not only scanned once: a later file is read as it appears.
    (notes / "later.md").write_text("# Later\n\nWritten after the folder returned.\n")
    assert watcher.wait_until_seen(notes / "later.md", WAIT)
    assert watcher.wait_idle(WAIT)
    assert kw_mem.search("written after the folder returned")


def test_a_folder_missing_at_start_is_watched_once_it_exists(watch, tmp_path, kw_mem):
    later = tmp_path / "usb-stick"
    with pytest.raises(InvalidInputError, match="no such folder"):
        FolderWatcher(Ingestor(kw_mem), [later]).start()  # a one-off watch still says so
    watcher, states = watch([later], missing_ok=True)
    assert watcher.states()[0].state == "missing"
    later.mkdir()
    (later / "plug.md").write_text("# Plugged\n\nThe stick was plugged in.\n")
    states.wait(lambda s: state_of(s, later) == "watching")
    assert watcher.wait_idle(WAIT)
    assert kw_mem.search("stick plugged")


def test_a_failed_scan_is_that_folders_error_with_its_reason(watch, notes, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    real_scan = Ingestor.scan

    def scan(self, path, **kwargs):
        if str(path) == str(notes):
            raise MemDeskError("The vault is full; free some disk space and MemDesk reads the folder again.")
        return real_scan(self, path, **kwargs)

    monkeypatch.setattr(Ingestor, "scan", scan)
    watcher, states = watch([notes, other])
    last = states.wait(lambda s: state_of(s, notes) == "error" and state_of(s, other) == "watching")
    assert last[0].describe() == ("Error: The vault is full; free some disk space and MemDesk reads the "
                                  "folder again.")


def test_pause_and_resume_are_states(watch, notes):
    watcher, states = watch([notes])
    states.wait(lambda s: state_of(s, notes) == "watching")
    watcher.pause()
    assert watcher.states()[0].describe() == "Paused"
    watcher.resume()
    states.wait(lambda s: state_of(s, notes) == "watching")
