"""Failures that used to escape as raw tracebacks now carry their documented error (and exit code)."""
from __future__ import annotations

import json
import os
import time
import unicodedata
import uuid

import pytest

from memdesk.app.cli_format import print_history, print_item, printable
from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryItem, Version, utcnow
from memdesk.engine.errors import CorruptStoreError, InvalidInputError, NotFoundError, WrongKeyError
from memdesk.engine.vault.paths import ProfilePaths
from tests.conftest import FAST_KDF


def open_kw(data_dir, **kwargs) -> Memory:
    return Memory.open(data_dir, embedder=False, kdf=FAST_KDF, **kwargs)


def damage_memory_pages(data_dir) -> list[str]:
    """A vault whose second half of memory pages is damaged; returns every memory id."""
    with open_kw(data_dir) as mem:
        ids = [mem.add(f"note {i} " + "word " * 200 + uuid.uuid4().hex).id for i in range(120)]
        with mem.db.read() as conn:
            page_size = conn.pragma("page_size")
            leaves = [p for (p,) in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = 'memories' AND pagetype = 'leaf'")]
    vault = ProfilePaths.for_profile(data_dir).vault
    data = bytearray(vault.read_bytes())
    for page in leaves[len(leaves) // 2:]:
        data[(page - 1) * page_size + 100:(page - 1) * page_size + 150] = os.urandom(50)
    vault.write_bytes(bytes(data))
    return ids


def test_corruption_met_inside_a_nested_write_is_reported_as_damage(data_dir):
    ids = damage_memory_pages(data_dir)
    with open_kw(data_dir) as mem:
        with pytest.raises(CorruptStoreError, match="damaged"):
            for memory_id in ids:
                # One user action spanning several writes (a savepoint inside the transaction): SQLite
                # rolls back by itself on corruption, and the failed ROLLBACK TO must not hide why.
                with mem.db.write():
                    mem.update(memory_id, memory="changed")


def test_passphrases_are_normalised_and_checked(data_dir):
    composed = "caf\u00e9 con leche por favor"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    with open_kw(data_dir, passphrase=lambda confirm: composed) as mem:
        memory_id = mem.add("typed on a Mac, opened on Linux").id
    with open_kw(data_dir, passphrase=lambda confirm: decomposed) as mem:
        assert mem.get(memory_id).memory == "typed on a Mac, opened on Linux"
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        open_kw(data_dir, passphrase=lambda confirm: "bad \udcff bytes")
    with pytest.raises(WrongKeyError):
        open_kw(data_dir, passphrase=lambda confirm: composed + "!")


@pytest.mark.parametrize("field, value", [("kdf", {"time_cost": 1, "memory_kib": 1 << 40, "parallelism": 1}),
                                          ("kdf", {"time_cost": 10 ** 9, "memory_kib": 8192, "parallelism": 1}),
                                          ("kdf", {"time_cost": "3", "memory_kib": 8192, "parallelism": 1}),
                                          ("salt", "not hex"), ("mode", "plaintext"), ("check", 42)])
def test_a_tampered_key_file_is_refused_quickly(data_dir, field, value):
    with open_kw(data_dir) as mem:
        mem.add("keep me")
    sidecar = ProfilePaths.for_profile(data_dir).key_sidecar
    info = json.loads(sidecar.read_text())
    info[field] = value
    sidecar.write_text(json.dumps(info))
    started = time.monotonic()
    with pytest.raises(CorruptStoreError, match="key file"):
        open_kw(data_dir)
    assert time.monotonic() - started < 5


def test_priorities_keys_and_short_prefixes_get_clear_errors(kw_mem):
    for bad in (10 ** 23, 1e23, "3", True, 101):
        with pytest.raises(InvalidInputError, match="priority"):
            kw_mem.add("a memory with a silly priority", priority=bad)
    memory_id = kw_mem.add("fine", priority=-100).id
    with pytest.raises(InvalidInputError, match="priority"):
        kw_mem.update(memory_id, priority=10 ** 30)
    with pytest.raises(NotFoundError, match="at least its first 4 characters"):
        kw_mem.get(memory_id[:2])
    assert kw_mem.get(memory_id[:4]).id == memory_id


def test_terminal_escapes_in_memory_text_are_shown_not_obeyed(capsys):
    import sys

    evil = "clear\x1b[2J\x1b]0;pwned\x07 back\rover \u202eenil\x9b31m"
    item = MemoryItem(memory=evil, key="k\x1b[1m", tags=["t\x1b", 1, 2])  # number tags: an old import
    print_item(item, sys.stdout)
    print_history([Version(1, utcnow(), "edited", item)], item, sys.stdout)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out and "\x9b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out and "\\u202e" in out and "tags=t\\x1b,1,2" in out
    assert printable("two\nlines\tand tab") == "two\nlines\tand tab"
