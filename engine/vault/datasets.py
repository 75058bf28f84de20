"""The SQL of stored training datasets (table `adapter_datasets` from migration m006): one
row per dataset snapshot (the sha256 of its canonical JSON), with the examples as JSON.

Like engine/vault/ingest_state.py, functions take a connection and never commit; the
dataset code (engine/parametric/dataset.py) owns the transactions and the validation.
"""
from __future__ import annotations

import apsw


def save(conn: apsw.Connection, snapshot: str, *, created_at: float, sft: int, dpo: int, data: str) -> None:
    """Store a dataset; saving the same snapshot again only marks it as the latest."""
    conn.execute("INSERT INTO adapter_datasets(snapshot, created_at, sft, dpo, data) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT(snapshot) DO UPDATE SET created_at = excluded.created_at",
                 (snapshot, created_at, sft, dpo, data))


def listing(conn: apsw.Connection) -> list[tuple[str, float, int, int]]:
    """(snapshot, created_at, sft, dpo) of every stored dataset, newest first."""
    return conn.execute("SELECT snapshot, created_at, sft, dpo FROM adapter_datasets "
                        "ORDER BY created_at DESC, snapshot").fetchall()


def by_prefix(conn: apsw.Connection, prefix: str, limit: int = 2) -> list[tuple[str, str]]:
    """(snapshot, data) of at most `limit` datasets whose snapshot starts with `prefix`.
    Snapshots are lowercase hex, so [prefix, prefix + "g") holds exactly those (an index range)."""
    return conn.execute("SELECT snapshot, data FROM adapter_datasets WHERE snapshot >= ? AND snapshot < ? "
                        "LIMIT ?", (prefix, prefix + "g", limit)).fetchall()
