"""The SQL of ingestion state (tables from migration m004): one row per file, one per chunk.

Like engine.vault.items, functions take a connection and never commit: the ingestor writes
a file's state in the same transaction as its memories, so after a crash the state never
claims a file whose memories were lost (the next scan simply does that file again).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import apsw

from memdesk.engine.cube import SourceRef

INGESTED = "ingested"
SKIPPED = "skipped"


@dataclass(frozen=True)
class FileState:
    """What the vault knows about one file (for the settings/status view too)."""

    path: str
    size: int
    mtime_ns: int
    hashed_at_ns: int
    content_hash: str
    status: str  # "ingested" | "skipped"
    skip_reason: str | None
    chunks: int


@dataclass(frozen=True)
class ChunkState:
    seq: int
    chunk_hash: str
    memory_id: str
    start_line: int
    end_line: int


_FILE_COLUMNS = "path, size, mtime_ns, hashed_at_ns, content_hash, status, skip_reason, chunks"


def under(folder: str) -> tuple[str, str]:
    """Bounds of a range query for every path inside `folder`: [folder/, folder0) on POSIX."""
    prefix = folder.rstrip(os.sep) + os.sep
    return prefix, prefix[:-1] + chr(ord(os.sep) + 1)


def file_state(conn: apsw.Connection, path: str) -> FileState | None:
    row = conn.execute(f"SELECT {_FILE_COLUMNS} FROM ingest_files WHERE path = ?", (path,)).fetchone()
    return None if row is None else FileState(*row)


def files_under(conn: apsw.Connection, folder: str) -> dict[str, FileState]:
    low, high = under(folder)
    rows = conn.execute(f"SELECT {_FILE_COLUMNS} FROM ingest_files WHERE path >= ? AND path < ? ORDER BY path",
                        (low, high))
    return {row[0]: FileState(*row) for row in rows}


def chunks_of(conn: apsw.Connection, path: str) -> list[ChunkState]:
    rows = conn.execute("SELECT seq, chunk_hash, memory_id, start_line, end_line FROM ingest_chunks "
                        "WHERE path = ? ORDER BY seq", (path,))
    return [ChunkState(*row) for row in rows]


def save_file(conn: apsw.Connection, state: FileState) -> None:
    conn.execute(
        f"INSERT INTO ingest_files({_FILE_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
        "hashed_at_ns = excluded.hashed_at_ns, content_hash = excluded.content_hash, status = excluded.status, "
        "skip_reason = excluded.skip_reason, chunks = excluded.chunks, updated_at = excluded.updated_at",
        (state.path, state.size, state.mtime_ns, state.hashed_at_ns, state.content_hash, state.status,
         state.skip_reason, state.chunks, time.time()))


def save_chunks(conn: apsw.Connection, path: str, chunks: Sequence[ChunkState]) -> None:
    conn.execute("DELETE FROM ingest_chunks WHERE path = ?", (path,))
    conn.executemany("INSERT INTO ingest_chunks(path, seq, chunk_hash, memory_id, start_line, end_line) "
                     "VALUES (?, ?, ?, ?, ?, ?)",
                     [(path, c.seq, c.chunk_hash, c.memory_id, c.start_line, c.end_line) for c in chunks])


def forget_file(conn: apsw.Connection, path: str) -> None:
    conn.execute("DELETE FROM ingest_files WHERE path = ?", (path,))  # chunks cascade


def rename_file(conn: apsw.Connection, old: str, new: str) -> None:
    conn.execute("DELETE FROM ingest_files WHERE path = ?", (new,))
    conn.execute("UPDATE ingest_files SET path = ?, updated_at = ? WHERE path = ?", (new, time.time(), old))


def memory_rowids(conn: apsw.Connection, memory_ids: Sequence[str]) -> dict[str, tuple[int, str, list[dict]]]:
    """memory id -> (rowid, status, sources as dicts) for the ids that still exist."""
    out: dict[str, tuple[int, str, list[dict]]] = {}
    ids = list(memory_ids)
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        rows = conn.execute("SELECT id, rowid, status, sources FROM memories "
                            f"WHERE id IN ({','.join('?' * len(part))})",
                            part)
        for memory_id, rowid, status, sources in rows:
            out[memory_id] = (rowid, status, json.loads(sources))
    return out


def set_sources(conn: apsw.Connection, rowid: int, sources: Sequence[SourceRef]) -> None:
    """Refresh provenance only (a chunk whose lines moved): no new version, the text is the same."""
    conn.execute("UPDATE memories SET sources = ? WHERE rowid = ?", (json.dumps([s.to_dict() for s in sources]), rowid))


def file_counts(conn: apsw.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT status, count(*) FROM ingest_files GROUP BY status"))
