"""Activation states stay bounded (count and bytes, least recently used first), freed space goes
back to the file system, and the vault reports its size by part."""
from __future__ import annotations

import os

import pytest

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.vault.forget import checkpoint
from memdesk.engine.vault.maintenance import INCREMENTAL, compact, idle_compact, storage_by_part

pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")


@pytest.fixture
def model(llama_model):
    llama_model.reset()
    return llama_model


def prefixes(model, n: int) -> list[list[int]]:
    return [model.tokenize(f"You are MemDesk. Note {i}: the user likes walking by the river on day {i}.")
            for i in range(n)]


def vault_bytes(mem) -> int:
    checkpoint(mem)
    return os.path.getsize(mem.db.path)


def test_states_are_bounded_by_count_and_bytes_least_recently_used_first(kw_mem, model):
    first, second, third, fourth = prefixes(model, 4)
    cache = ActivationCache(kw_mem.db, max_states=2)
    a = cache.put(model, first)
    cache.put(model, second)
    assert cache.restore(model, a, first + [1])  # `first` is now the most recently used
    cache.put(model, third)
    assert cache.stats()["states"] == 2
    assert cache.find(model, second + [1]) is None  # least recently used went first
    assert cache.find(model, first + [1]) is not None and cache.find(model, third + [1]) is not None

    by_bytes = ActivationCache(kw_mem.db, cap_bytes=int(a.bytes * 1.5), max_states=10)
    by_bytes.put(model, fourth)
    assert by_bytes.stats()["states"] == 1 and by_bytes.find(model, fourth + [1]) is not None


def test_evicted_states_give_their_space_back(kw_mem, model):
    with kw_mem.db.read() as conn:
        assert conn.pragma("auto_vacuum") == INCREMENTAL  # new vaults are created in this mode
    empty = vault_bytes(kw_mem)
    cache = ActivationCache(kw_mem.db, cap_bytes=1 << 40, max_states=100)
    records = [cache.put(model, p) for p in prefixes(model, 3)]
    held = sum(r.bytes for r in records)
    full = vault_bytes(kw_mem)
    assert full - empty >= held * 0.9
    with kw_mem.db.read() as conn:
        assert storage_by_part(conn)["activation"] >= held

    ActivationCache(kw_mem.db, max_states=1).trim()
    after = vault_bytes(kw_mem)
    assert full - after >= held * 0.6, (empty, full, after, held)
    with kw_mem.db.read() as conn:
        assert conn.pragma("freelist_count") == 0


def test_an_older_vault_is_converted_once_and_shrinks(kw_mem, model):
    with kw_mem.db.exclusive() as conn:  # how vaults made before incremental auto-vacuum look
        conn.pragma("auto_vacuum", 0)
        conn.execute("VACUUM")
    cache = ActivationCache(kw_mem.db, cap_bytes=1 << 40, max_states=100)
    held = sum(cache.put(model, p).bytes for p in prefixes(model, 2))
    with kw_mem.db.write() as conn:
        conn.execute("DELETE FROM kv_states")
    grown = vault_bytes(kw_mem)
    assert idle_compact(kw_mem) is not None
    report = compact(kw_mem)  # already converted: nothing left to give back
    assert not report.converted and report.bytes_after <= grown - held * 0.7
    assert idle_compact(kw_mem) is None  # nothing worth doing in the idle window now


def test_stats_report_the_vault_size_by_part(kw_mem, model):
    kw_mem.add("I walk by the river on Sundays")
    ActivationCache(kw_mem.db).put(model, prefixes(model, 1)[0])
    data = kw_mem.stats(by_part=True)
    parts = data["vault_parts"]
    assert set(parts) >= {"memories", "keyword_index", "activation", "parametric", "chats", "free", "wal", "other"}
    assert parts["activation"] > parts["memories"] > 0 and parts["keyword_index"] > 0
    with kw_mem.db.read() as conn:
        total = conn.pragma("page_count") * conn.pragma("page_size")
    assert sum(v for k, v in parts.items() if k != "wal") == total
