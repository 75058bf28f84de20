"""Background loops (indexer, folder watcher) survive any failure: they record it in
Memory.health, say so, and go on. File names that are not UTF-8 are skipped with a reason."""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from memdesk.app.cli import main as cli_main
from memdesk.engine.api import Memory
from memdesk.engine.cube import Filters
from memdesk.engine.errors import MemDeskError
from memdesk.engine.ingestion.folders import NOT_UTF8, Ingestor
from memdesk.engine.ingestion.watch import FolderWatcher
from tests.conftest import FAST_KDF

WAIT = 60.0


class FlakyEmbedder:
    """The real embedder, except that its first `failures` batches raise a non-MemDesk error."""

    def __init__(self, real, failures: int):
        self.real = real
        self.failures = failures

    def __getattr__(self, name):
        return getattr(self.real, name)

    def encode(self, texts):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the embedding backend fell over")
        return self.real.encode(texts)


class Waiter:
    """Wakes a waiting test whenever the watcher reports (progress, a report, an error)."""

    def __init__(self):
        self.cv = threading.Condition()
        self.errors: list[MemDeskError] = []
        self.reports: list = []

    def poke(self, *args) -> None:
        with self.cv:
            self.cv.notify_all()

    def on_error(self, exc) -> None:
        with self.cv:
            self.errors.append(exc)
            self.cv.notify_all()

    def on_report(self, report) -> None:
        with self.cv:
            self.reports.append(report)
            self.cv.notify_all()

    def until(self, condition, what: str) -> None:
        with self.cv:
            assert self.cv.wait_for(condition, WAIT), f"timed out waiting for {what}"


def bad_name(folder: Path, stem: bytes) -> bytes:
    path = os.fsencode(folder) + b"/" + stem + b".md"
    try:
        with open(path, "wb") as fh:
            fh.write(b"# Caf\xc3\xa9\n\ncoffee with Ana on Sunday\n")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    return path


def test_the_indexer_records_a_failed_batch_and_indexes_it_on_the_next_try(data_dir, embedder):
    with Memory.open(data_dir, embedder=FlakyEmbedder(embedder, failures=2), kdf=FAST_KDF) as mem:
        mem.indexer.retry_after = 0.01
        mem.add("The kayak is stored in the garage.")
        assert mem.wait_indexed(WAIT), "indexing never came back after the failures"
        failures = mem.health.failures()
        assert [(f.source, f.kind, f.count) for f in failures] == [("indexer", "RuntimeError", 2)]
        assert "fell over" in failures[0].error and mem.indexer.last_error is None
        assert mem.indexer._thread.is_alive()
        assert mem.search("where is the kayak?", k=1)[0].item.memory == "The kayak is stored in the garage."


def test_the_watcher_survives_a_failing_file_and_a_name_that_is_not_utf8(kw_mem, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()

    class Fragile(Ingestor):
        def ingest_file(self, path):
            if os.path.basename(path) == "poison.md":
                raise ValueError("unexpected trouble")
            return super().ingest_file(path)

    waiter = Waiter()
    watcher = FolderWatcher(Fragile(kw_mem), [folder], debounce=0.05, on_error=waiter.on_error,
                            on_report=waiter.on_report, on_progress=waiter.poke)
    watcher.start()
    try:
        assert watcher.wait_idle(WAIT)
        (folder / "poison.md").write_text("# Poison\n\nthis file makes ingestion fail\n", encoding="utf-8")
        waiter.until(lambda: waiter.errors, "the failure to be reported")
        assert isinstance(waiter.errors[0], MemDeskError) and "ValueError" in str(waiter.errors[0])
        bad_name(folder, b"caf\xe9")
        waiter.until(lambda: any(s.reason == NOT_UTF8 for r in waiter.reports for s in r.skipped),
                     "the badly named file to be skipped with its reason")
        (folder / "after.md").write_text("# After\n\nthe heron nests by the river\n", encoding="utf-8")
        waiter.until(lambda: kw_mem.search("heron river"), "the next note to be ingested")
        assert watcher.is_running
    finally:
        watcher.stop()
    failures = kw_mem.health.failures()
    assert failures[0].source == "watcher" and failures[0].kind == "ValueError"
    assert watcher.last_error == failures[-1].error


def test_cli_ingest_skips_a_name_that_is_not_utf8_and_goes_on(tmp_path, data_dir, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "ok.md").write_text("# Fine\n\nthe bread is in the freezer\n", encoding="utf-8")
    bad_name(folder, b"caf\xe9")
    os.makedirs(os.fsencode(folder) + b"/d\xefr")
    with open(os.fsencode(folder) + b"/d\xefr/inside.md", "wb") as fh:
        fh.write(b"# Inside\n\nunder a folder with a bad name\n")
    assert cli_main(["ingest", str(folder), "--json", "--no-embed", "--data-dir", str(data_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["added"] == [str(folder / "ok.md")]
    assert sorted(s["path"] for s in report["skipped"]) == [str(folder / "caf\ufffd.md"), str(folder / "d\ufffdr")]
    assert {s["reason"] for s in report["skipped"]} == {NOT_UTF8}
    assert cli_main(["ingest", str(folder), "--no-embed", "--data-dir", str(data_dir)]) == 0
    assert "caf\ufffd.md: its name is not valid UTF-8" in capsys.readouterr().out
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        assert [m.memory for m in mem.list(Filters(sources=("file",)))] == ["# Fine\n\nthe bread is in the freezer"]
