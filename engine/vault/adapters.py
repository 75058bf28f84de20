"""The SQL of the adapter registry (table `adapters` from migration m006): one row per
trained LoRA adapter, with its weights as blobs.

Like engine/vault/ingest_state.py, functions take a connection and never commit: the
registry (engine/parametric/registry.py) owns the transactions, so switching adapters
(retire the active one, activate another, remember the previous) happens as one write.
Rows come back in the order of COLUMNS; the registry turns them into `Adapter`s.
"""
from __future__ import annotations

import apsw

# The weights themselves are never read for a listing, only whether they are there.
COLUMNS = ("id, base_fingerprint, base_name, trainer, status, data_snapshot, config, metrics, created_at, "
           "activated_at, size_bytes, gguf IS NOT NULL, native IS NOT NULL")


# ------------------------------------------------------------------ writing
def insert(conn: apsw.Connection, adapter_id: str, *, base_fingerprint: str, base_name: str, trainer: str,
           data_snapshot: str, config: str, created_at: float) -> None:
    """A new adapter in status 'training' (`config` is JSON)."""
    conn.execute("INSERT INTO adapters(id, base_fingerprint, base_name, trainer, status, data_snapshot, "
                 "config, created_at) VALUES (?, ?, ?, ?, 'training', ?, ?, ?)",
                 (adapter_id, base_fingerprint, base_name, trainer, data_snapshot, config, created_at))


def set_checkpoint(conn: apsw.Connection, adapter_id: str, data: bytes | None) -> None:
    conn.execute("UPDATE adapters SET checkpoint = ? WHERE id = ?", (data, adapter_id))


def set_weights(conn: apsw.Connection, adapter_id: str, *, native: bytes, gguf: bytes | None,
                size_bytes: int) -> None:
    """The finished weights; the resumable checkpoint is no longer needed."""
    conn.execute("UPDATE adapters SET native = ?, gguf = ?, size_bytes = ?, checkpoint = NULL WHERE id = ?",
                 (native, gguf, size_bytes, adapter_id))


def set_status(conn: apsw.Connection, adapter_id: str, status: str, *, metrics: str | None = None) -> None:
    """The status, and the metrics (JSON) too when given (None keeps them)."""
    if metrics is not None:
        conn.execute("UPDATE adapters SET status = ?, metrics = ? WHERE id = ?", (status, metrics, adapter_id))
    else:
        conn.execute("UPDATE adapters SET status = ? WHERE id = ?", (status, adapter_id))


def retire_active(conn: apsw.Connection, base_fingerprint: str) -> None:
    conn.execute("UPDATE adapters SET status = 'retired' WHERE base_fingerprint = ? AND status = 'active'",
                 (base_fingerprint,))


def mark_active(conn: apsw.Connection, adapter_id: str, activated_at: float) -> None:
    conn.execute("UPDATE adapters SET status = 'active', activated_at = ? WHERE id = ?", (activated_at, adapter_id))


def set_previous(conn: apsw.Connection, adapter_id: str, previous_id: str | None) -> None:
    """The adapter that was active before this one (what rollback returns to; None: no adapter)."""
    conn.execute("UPDATE adapters SET previous_id = ? WHERE id = ?", (previous_id, adapter_id))


# ------------------------------------------------------------------ reading
def active_id(conn: apsw.Connection, base_fingerprint: str) -> str | None:
    row = conn.execute("SELECT id FROM adapters WHERE base_fingerprint = ? AND status = 'active'",
                       (base_fingerprint,)).fetchone()
    return row[0] if row else None


def previous_id(conn: apsw.Connection, adapter_id: str) -> str | None:
    row = conn.execute("SELECT previous_id FROM adapters WHERE id = ?", (adapter_id,)).fetchone()
    return row[0] if row else None


def rows_by_prefix(conn: apsw.Connection, prefix: str) -> list[tuple]:
    """Every adapter whose id starts with `prefix` (COLUMNS)."""
    return conn.execute(f"SELECT {COLUMNS} FROM adapters WHERE id LIKE ? || '%'", (prefix,)).fetchall()


def rows(conn: apsw.Connection, base_fingerprint: str | None = None) -> list[tuple]:
    """All adapters, or those of one base model, newest first (COLUMNS)."""
    sql = f"SELECT {COLUMNS} FROM adapters" + (" WHERE base_fingerprint = ?" if base_fingerprint else "")
    return conn.execute(sql + " ORDER BY created_at DESC", (base_fingerprint,) if base_fingerprint else ()).fetchall()


def active_row(conn: apsw.Connection, base_fingerprint: str) -> tuple | None:
    """The active adapter of a base model (COLUMNS), if any."""
    return conn.execute(f"SELECT {COLUMNS} FROM adapters WHERE base_fingerprint = ? AND status = 'active'",
                        (base_fingerprint,)).fetchone()


def _blob(conn: apsw.Connection, column: str, adapter_id: str) -> bytes | None:
    row = conn.execute(f"SELECT {column} FROM adapters WHERE id = ?", (adapter_id,)).fetchone()
    return row[0] if row else None


def checkpoint(conn: apsw.Connection, adapter_id: str) -> bytes | None:
    """The resumable training state (a zipped folder), if any."""
    return _blob(conn, "checkpoint", adapter_id)


def native(conn: apsw.Connection, adapter_id: str) -> bytes | None:
    """The trainer's own adapter folder (peft or mlx), zipped, if stored."""
    return _blob(conn, "native", adapter_id)


def gguf(conn: apsw.Connection, adapter_id: str) -> bytes | None:
    """The llama.cpp LoRA (GGUF), if stored."""
    return _blob(conn, "gguf", adapter_id)
