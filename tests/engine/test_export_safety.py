"""`export` never turns a link, pipe or device into a plaintext file, uses an unpredictable
temporary name, and leaves nothing behind when it fails."""
from __future__ import annotations

import os

import pytest

from memdesk.engine.errors import InvalidInputError
from memdesk.engine.vault import items as vault


@pytest.fixture
def filled(kw_mem):
    for i in range(5):
        kw_mem.add(f"export safety note {i}")
    return kw_mem


def test_links_pipes_and_devices_are_refused(filled, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "link.jsonl"
    link.symlink_to(victim)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    for target, kind in ((link, "symbolic link"), (fifo, "named pipe"), (tmp_path, "folder")):
        with pytest.raises(InvalidInputError, match=kind):
            filled.export(target)
    if os.path.exists("/dev/null"):
        with pytest.raises(InvalidInputError, match="device"):
            filled.export("/dev/null")
    assert victim.read_text() == "precious" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "link.jsonl", "pipe.jsonl", "victim.txt"]


def test_the_temporary_name_is_not_predictable_or_followed(filled, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    trap = tmp_path / "out.jsonl.partial"  # the name the old export used, opened without O_EXCL
    trap.symlink_to(victim)
    assert filled.export(tmp_path / "out.jsonl") == 5
    assert victim.read_text() == "precious" and trap.is_symlink()
    assert (tmp_path / "out.jsonl").read_text().count("\n") == 6
    assert oct((tmp_path / "out.jsonl").stat().st_mode & 0o777) == "0o600"


def test_a_failure_midway_leaves_the_old_file_and_no_temporary(filled, tmp_path, monkeypatch):
    target = tmp_path / "out.jsonl"
    target.write_text("previous export\n")
    calls = []

    def failing_history(conn, rowid):
        calls.append(rowid)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(conn, rowid)

    real = vault.history
    monkeypatch.setattr(vault, "history", failing_history)
    with pytest.raises(OSError):
        filled.export(target)
    assert target.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "out.jsonl"]
