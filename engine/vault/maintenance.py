"""Keeping the vault file as small as what it holds, and saying what it holds.

SQLite never gives freed pages back to the file system on its own: a vault that once held
a gigabyte of KV states stayed a gigabyte. Vaults are in incremental auto-vacuum mode (new
ones from creation, older ones converted by one VACUUM in `compact`), so freed pages can be
returned without rewriting the file: deleting activation states does it at once
(`reclaim_free_pages`), and `compact` (CLI `memdesk compact`, meant for the scheduler's idle
window) does the rest. Freed pages are overwritten before they are reused or returned
(secure_delete, engine/vault/connection.py).

`storage_by_part` reports the vault's size by what it stores, from SQLite's own page
accounting (dbstat), for `memdesk stats`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import apsw

INCREMENTAL = 2  # PRAGMA auto_vacuum value

# Table (or an index's table) -> the part of the vault it belongs to.
_PARTS = (
    ("keyword_index", ("memory_fts",)),
    ("vectors", ("memory_vec",)),
    ("activation", ("kv_state",)),
    ("parametric", ("adapter", "feedback")),
    ("chats", ("sessions", "messages")),
    ("ingestion", ("ingest_",)),
    ("memories", ("memories", "memory_tags", "memory_versions", "edges")),
)


def part_of(table: str) -> str:
    for part, prefixes in _PARTS:
        if table.startswith(prefixes):
            return part
    return "other"


def storage_by_part(conn: apsw.Connection, vault_path: Path | None = None) -> dict[str, int]:
    """Bytes of the vault by part (memories, keyword_index, vectors, activation, parametric, chats,
    ingestion, other), plus free pages and, given the path, the WAL."""
    page_size = conn.pragma("page_size")
    owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema WHERE name IS NOT NULL"))
    parts = {part: 0 for part, _ in _PARTS} | {"other": 0}
    for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat WHERE aggregate = TRUE GROUP BY name"):
        parts[part_of(owner.get(name, name))] += size
    parts["free"] = conn.pragma("freelist_count") * page_size
    # Pages no table owns and dbstat does not list: auto-vacuum's pointer maps (and the lock page).
    parts["other"] += conn.pragma("page_count") * page_size - sum(parts.values())
    if vault_path is not None:
        wal = Path(str(vault_path) + "-wal")
        parts["wal"] = wal.stat().st_size if wal.exists() else 0
    return parts


def reclaim_free_pages(conn: apsw.Connection) -> None:
    """Give free pages back to the file system (inside the caller's transaction). A no-op for a
    vault not yet converted to incremental auto-vacuum (`compact` converts it)."""
    if conn.pragma("auto_vacuum") == INCREMENTAL:
        conn.execute("PRAGMA incremental_vacuum").fetchall()  # one page per step: run it to the end


@dataclass(frozen=True)
class CompactReport:
    bytes_before: int
    bytes_after: int
    converted: bool  # the vault was rewritten once to enable incremental auto-vacuum
    states_evicted: int

    def to_dict(self) -> dict:
        return {"bytes_before": self.bytes_before, "bytes_after": self.bytes_after, "converted": self.converted,
                "states_evicted": self.states_evicted}


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def compact(mem, cache=None) -> CompactReport:
    """Apply the activation cache's bounds, return free pages to the file system (converting an
    older vault to incremental auto-vacuum with one VACUUM), and truncate the WAL."""
    from memdesk.engine.activation.states import ActivationCache

    path = mem.db.path
    before = _file_bytes(path)
    evicted = (cache or ActivationCache(mem.db)).trim()
    converted = False
    with mem.db.exclusive() as conn:
        if conn.pragma("auto_vacuum") != INCREMENTAL:
            # Taking effect needs a VACUUM, which rewrites the file once (through the page
            # cache, encrypted like every write; temp_store is memory, so nothing plaintext
            # is written elsewhere). The bounds above ran first, so no evicted state is copied.
            conn.pragma("auto_vacuum", INCREMENTAL)
            conn.execute("VACUUM")
            converted = True
        else:
            with conn:
                reclaim_free_pages(conn)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except apsw.BusyError:
            pass  # a reader holds the WAL; the next checkpoint truncates it
    return CompactReport(before, _file_bytes(path), converted, evicted)


def idle_compact(mem) -> CompactReport | None:
    """For the scheduler's idle window: compact only when there is something to give back
    (more than 8 MiB or a tenth of the file free, or a vault still to convert)."""
    with mem.db.read() as conn:
        free = conn.pragma("freelist_count") * conn.pragma("page_size")
        mode = conn.pragma("auto_vacuum")
    size = max(os.path.getsize(mem.db.path), 1)
    if mode == INCREMENTAL and free < max(8 << 20, size // 10):
        return None
    return compact(mem)


def quick_check(conn: apsw.Connection) -> list[str]:
    """SQLite's quick_check over every page: ["ok"], or what is wrong."""
    return [row[0] for row in conn.execute("PRAGMA quick_check")]
