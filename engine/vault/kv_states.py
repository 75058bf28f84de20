"""The SQL of activation memory (tables kv_states and kv_state_memories, migration m003): one row
per stored KV state of a prompt prefix, one per memory rendered into that prefix.

Like engine/vault/ingest_state.py, functions take a connection and never commit: the
activation cache (engine/activation/states.py) holds the transaction, so a state, its
memory links and the eviction it causes are written together. The key column model_fp holds
the model's state key (engine.llm.base.ModelInfo.state_key), not its bare fingerprint.
"""
from __future__ import annotations

from collections.abc import Sequence

import apsw

# (id, n_tokens, prefix_hash, bytes, label) of a stored prefix, longest first.
Candidate = tuple[int, int, str, int, str]


def delete_prefix(conn: apsw.Connection, model_fp: str, n_ctx: int, prefix_hash: str) -> None:
    conn.execute("DELETE FROM kv_states WHERE model_fp = ? AND n_ctx = ? AND prefix_hash = ?",
                 (model_fp, n_ctx, prefix_hash))


def insert_state(conn: apsw.Connection, *, model_fp: str, backend: str, n_ctx: int, prefix_hash: str,
                 n_tokens: int, label: str, state: bytes, state_hash: str, now: float) -> int:
    """Store one state (created and last used `now`); returns its id."""
    conn.execute(
        "INSERT INTO kv_states(model_fp, backend, n_ctx, prefix_hash, n_tokens, label, state, state_hash, "
        "bytes, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (model_fp, backend, n_ctx, prefix_hash, n_tokens, label, state, state_hash, len(state), now, now))
    return conn.last_insert_rowid()


def link_memories(conn: apsw.Connection, state_id: int, memory_ids: Sequence[str]) -> None:
    """Record which memories were rendered into the state's prefix (duplicates are ignored)."""
    conn.executemany("INSERT OR IGNORE INTO kv_state_memories(memory_id, state_id) VALUES (?, ?)",
                     [(m, state_id) for m in dict.fromkeys(memory_ids)])


def has_prefix(conn: apsw.Connection, model_fp: str, n_ctx: int, prefix_hash: str) -> bool:
    return conn.execute("SELECT 1 FROM kv_states WHERE model_fp = ? AND n_ctx = ? AND prefix_hash = ?",
                        (model_fp, n_ctx, prefix_hash)).fetchone() is not None


def shorter_prefixes(conn: apsw.Connection, model_fp: str, n_ctx: int, n_tokens: int) -> list[Candidate]:
    """The stored prefixes shorter than `n_tokens` for this key and context size, longest first."""
    return conn.execute(
        "SELECT id, n_tokens, prefix_hash, bytes, label FROM kv_states WHERE model_fp = ? AND n_ctx = ? "
        "AND n_tokens < ? ORDER BY n_tokens DESC", (model_fp, n_ctx, n_tokens)).fetchall()


def state_blob(conn: apsw.Connection, state_id: int) -> tuple[bytes, str, str] | None:
    """(state, state_hash, model_fp) of one state, or None when it is gone."""
    return conn.execute("SELECT state, state_hash, model_fp FROM kv_states WHERE id = ?", (state_id,)).fetchone()


def touch(conn: apsw.Connection, state_id: int, when: float) -> None:
    conn.execute("UPDATE kv_states SET last_used_at = ? WHERE id = ?", (when, state_id))


def delete_state(conn: apsw.Connection, state_id: int) -> None:
    conn.execute("DELETE FROM kv_states WHERE id = ?", (state_id,))  # memory links cascade


def delete_for_memories(conn: apsw.Connection, memory_ids: Sequence[str]) -> int:
    """Delete every state whose prefix rendered one of these memories; returns how many went."""
    ids = list(memory_ids)
    if not ids:
        return 0
    marks = ",".join("?" * len(ids))
    conn.execute(f"DELETE FROM kv_states WHERE id IN (SELECT state_id FROM kv_state_memories "
                 f"WHERE memory_id IN ({marks}))", ids)
    return conn.changes()


def totals(conn: apsw.Connection) -> tuple[int, int]:
    """(number of states, their bytes)."""
    count, total = conn.execute("SELECT count(*), COALESCE(SUM(bytes), 0) FROM kv_states").fetchone()
    return count, total


def lru_order(conn: apsw.Connection) -> list[tuple[int, int]]:
    """(id, bytes) of every state, least recently used first."""
    return conn.execute("SELECT id, bytes FROM kv_states ORDER BY last_used_at, id").fetchall()


def per_model(conn: apsw.Connection) -> list[tuple[str, str, int, int, int, float | None]]:
    """(model_fp, backend, states, bytes, tokens, last used) for each key and backend."""
    return conn.execute("SELECT model_fp, backend, count(*), SUM(bytes), SUM(n_tokens), MAX(last_used_at) "
                        "FROM kv_states GROUP BY model_fp, backend").fetchall()
