"""The sqlite-vec side of the vault: one vec0 table whose width follows the embedder.

Search is two-stage: a KNN scan over sign-bit (binary-quantised) vectors, then exact
cosine re-scoring of those candidates from the full float32 vector kept beside them as
an auxiliary column. With the PyPI build of sqlite-vec a float32 scan of 100k 384-d
vectors takes ~60 ms on this 2-core machine, the bit scan ~10x less (bench/scale.py).

Filter columns are mirrored into vec0 metadata so that filtered KNN is exact (filtered
during the scan, not after it). They must be kept in step with `memories`; every
write path that changes status, type, source, scope or time calls `sync_metadata`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import apsw

if TYPE_CHECKING:  # numpy loads with the first vector, not before the window (bench.bundle)
    import numpy as np

TABLE = "memory_vec"
MAX_K = 4096  # vec0's own limit on k
LAYOUT = "bit+f32-v1"  # bump to rebuild the table when its columns change
OVERSAMPLE = 2  # candidates from the bit scan per result re-scored exactly


def ensure_table(conn: apsw.Connection, dim: int, fingerprint: str) -> bool:
    """Create (or re-create for a new model) the vec0 table. True when vectors must be rebuilt."""
    meta = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('vec_dim', 'vec_fp', 'vec_layout')"))
    exists = bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchall())
    if exists and meta.get("vec_dim") == str(dim) and meta.get("vec_fp") == fingerprint \
            and meta.get("vec_layout") == LAYOUT:
        return False
    with conn:
        if exists:
            conn.execute(f"DROP TABLE {TABLE}")
        conn.execute(
            f"CREATE VIRTUAL TABLE {TABLE} USING vec0(embedding bit[{dim}], "
            "scope text, status text, memory_type text, source text, t float, +vector blob)")
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('vec_dim', ?), ('vec_fp', ?), ('vec_layout', ?)",
                     (str(dim), fingerprint, LAYOUT))
        conn.execute("UPDATE memories SET embed_fp = NULL")
    return True


def upsert(conn: apsw.Connection, rowid: int, vector: np.ndarray) -> None:
    import numpy as np
    row = conn.execute(
        "SELECT scope, status, memory_type, source, COALESCE(event_time, created_at) FROM memories "
        "WHERE rowid = ?", (rowid,)).fetchone()
    if row is None:
        return  # purged while its vector was being computed
    conn.execute(f"DELETE FROM {TABLE} WHERE rowid = ?", (rowid,))
    vector = vector.astype(np.float32)
    conn.execute(
        f"INSERT INTO {TABLE}(rowid, embedding, scope, status, memory_type, source, t, vector) "
        "VALUES (?, vec_bit(?), ?, ?, ?, ?, ?, ?)", (rowid, _bits(vector), *row, vector.tobytes()))


def _bits(vector: np.ndarray) -> bytes:
    import numpy as np
    return np.packbits(vector > 0).tobytes()


def sync_metadata(conn: apsw.Connection, rowid: int) -> None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchall():
        return
    conn.execute(
        f"UPDATE {TABLE} SET (scope, status, memory_type, source, t) = "
        "(SELECT scope, status, memory_type, source, COALESCE(event_time, created_at) "
        " FROM memories WHERE memories.rowid = ?) WHERE rowid = ?", (rowid, rowid))


def delete(conn: apsw.Connection, rowid: int) -> None:
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchall():
        conn.execute(f"DELETE FROM {TABLE} WHERE rowid = ?", (rowid,))


def knn(conn: apsw.Connection, query: np.ndarray, k: int, *, statuses, scope=None, memory_types=(),
        sources=(), since: float | None = None, until: float | None = None) -> list[tuple[int, float]]:
    """(rowid, cosine distance) of the k nearest vectors that pass the filters, nearest first."""
    import numpy as np
    query = query.astype(np.float32)
    sql = [f"SELECT rowid, vec_distance_cosine(vec_f32(vector), ?) AS d FROM {TABLE} "
           "WHERE embedding MATCH vec_bit(?) AND k = ?"]
    args: list = [query.tobytes(), _bits(query), min(k * OVERSAMPLE, MAX_K)]

    def member(column: str, values) -> None:
        if values:
            sql.append(f"AND {column} IN ({','.join('?' * len(values))})")
            args.extend(values)

    member("status", tuple(statuses))
    member("memory_type", tuple(memory_types))
    member("source", tuple(sources))
    if scope is not None:
        sql.append("AND scope = ?")
        args.append(scope)
    if since is not None:
        sql.append("AND t >= ?")
        args.append(since)
    if until is not None:
        sql.append("AND t < ?")
        args.append(until)
    sql.append("ORDER BY d LIMIT ?")
    args.append(k)
    return conn.execute(" ".join(sql), args).fetchall()


def vectors_of(conn: apsw.Connection, rowids: list[int]) -> dict[int, np.ndarray]:
    """The stored float32 vectors of these rows (those not yet embedded are absent)."""
    import numpy as np
    if not rowids or not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchall():
        return {}
    out: dict[int, np.ndarray] = {}
    for start in range(0, len(rowids), 500):
        chunk = rowids[start:start + 500]
        sql = f"SELECT rowid, vector FROM {TABLE} WHERE rowid IN ({','.join('?' * len(chunk))})"
        for rowid, blob in conn.execute(sql, chunk):
            out[rowid] = np.frombuffer(blob, dtype=np.float32)
    return out


def mark_other_models_pending(conn: apsw.Connection, fingerprint: str) -> None:
    """Rows embedded by another model are pending again (the indexer re-embeds them)."""
    conn.execute("UPDATE memories SET embed_fp = NULL WHERE embed_fp IS NOT NULL AND embed_fp != ?", (fingerprint,))
