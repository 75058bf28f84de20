"""The app's log file: failures of background work are in it, memory text never is; it rotates."""
from __future__ import annotations

import logging

from memdesk.app import logs
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.scheduler.health import Health
from memdesk.engine.vault.paths import ProfilePaths

SECRET = "Ana's new address is 12 Rua das Flores"


def test_failures_are_logged_without_the_words_of_any_memory(tmp_path):
    paths = ProfilePaths.for_profile(tmp_path / "data", "default")
    handler = logs.install(paths)
    try:
        health = Health()
        try:
            raise RuntimeError(f"model choked on: {SECRET}")
        except RuntimeError as exc:
            health.failed("jobs", "extract job", exc, "attempt 1 of 3; it will be tried again")
        try:
            try:
                raise KeyError(SECRET)
            except KeyError as inner:
                raise InvalidInputError(f"The tag {SECRET[:20]!r}... is too long") from inner
        except InvalidInputError as exc:
            logging.getLogger("memdesk.engine.scheduler.memscheduler").warning(
                "%s task failed: %s (%d tries)", SECRET, exc, 3, exc_info=True)
        logging.getLogger("memdesk.engine.ingestion.folders").warning("skipped %s", SECRET)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = logs.log_path(paths).read_text(encoding="utf-8")
    assert "extract job failed in jobs (RuntimeError, 1 time(s) in a row)" in text
    assert "builtins.RuntimeError at test_logs.py:" in text  # where it happened
    assert "‹…› task failed: InvalidInputError (3 tries)" in text
    assert "memdesk.engine.errors.InvalidInputError at" in text and "builtins.KeyError at" in text  # the cause too
    assert "skipped ‹…›" in text
    for word in ("Ana", "Rua das Flores", "choked"):
        assert word not in text


def test_the_log_file_rotates(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "MAX_BYTES", 2_000)
    paths = ProfilePaths.for_profile(tmp_path / "data", "default")
    handler = logs.install(paths)
    try:
        for n in range(200):
            logging.getLogger("memdesk.engine.search.indexer").warning("indexing paused, attempt %d", n)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    folder = logs.log_path(paths).parent
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["memdesk.log", "memdesk.log.1", "memdesk.log.2", "memdesk.log.3"]
    assert all(p.stat().st_size <= 2_100 for p in folder.iterdir())
    assert "attempt 199" in logs.log_path(paths).read_text(encoding="utf-8")
