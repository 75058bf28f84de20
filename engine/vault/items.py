"""MemVault: the SQL for memory items, their tags, versions and edges.

Functions here take a connection and never open or commit on their own; the caller
(engine.api) decides transaction boundaries, so one user action is one transaction.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import apsw

from memdesk.engine.cube import Edge, MemoryItem, SourceRef, Version, from_ts, ts, utcnow
from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.vault import vectors

_COLUMNS = ("rowid", "id", "memory", "key", "tags", "memory_type", "status", "confidence", "source",
            "sources", "created_at", "updated_at", "event_time", "event_end", "expires", "priority",
            "pinned", "visibility", "scope", "usage_count", "last_used_at", "version", "info")
SELECT = "SELECT " + ", ".join(f"m.{c}" for c in _COLUMNS) + " FROM memories m"
# Columns a caller may change through update(); everything else is managed here.
EDITABLE = {"memory", "key", "tags", "memory_type", "status", "confidence", "event_time", "event_end",
            "expires", "priority", "pinned", "visibility", "scope", "info", "sources", "source"}
_TIME_FIELDS = {"event_time", "event_end", "expires"}


def row_to_item(row: Sequence) -> MemoryItem:
    r = dict(zip(_COLUMNS, row))
    return MemoryItem(
        id=r["id"], memory=r["memory"], key=r["key"], tags=json.loads(r["tags"]),
        memory_type=r["memory_type"], status=r["status"], confidence=r["confidence"],
        source=r["source"], sources=[SourceRef.from_dict(s) for s in json.loads(r["sources"])],
        created_at=from_ts(r["created_at"]), updated_at=from_ts(r["updated_at"]),
        event_time=from_ts(r["event_time"]), event_end=from_ts(r["event_end"]),
        expires=from_ts(r["expires"]), priority=r["priority"], pinned=bool(r["pinned"]),
        visibility=r["visibility"], scope=r["scope"], usage_count=r["usage_count"],
        last_used_at=from_ts(r["last_used_at"]), version=r["version"], info=json.loads(r["info"]))


def _item_values(item: MemoryItem) -> dict:
    return {
        "id": item.id, "memory": item.memory, "key": item.key, "tags": json.dumps(item.tags),
        "memory_type": item.memory_type, "status": item.status, "confidence": item.confidence,
        "source": item.source, "sources": json.dumps([s.to_dict() for s in item.sources]),
        "created_at": ts(item.created_at), "updated_at": ts(item.updated_at),
        "event_time": ts(item.event_time), "event_end": ts(item.event_end), "expires": ts(item.expires),
        "priority": item.priority, "pinned": int(item.pinned), "visibility": item.visibility,
        "scope": item.scope, "usage_count": item.usage_count, "last_used_at": ts(item.last_used_at),
        "version": item.version, "info": json.dumps(item.info),
    }


def insert(conn: apsw.Connection, item: MemoryItem, content_hash: str, embed_text: str | None = None) -> int:
    values = _item_values(item) | {"content_hash": content_hash, "embed_text": embed_text}
    names = ", ".join(values)
    conn.execute(f"INSERT INTO memories({names}) VALUES ({', '.join(':' + n for n in values)})", values)
    rowid = conn.last_insert_rowid()
    _write_tags(conn, rowid, item.tags)
    return rowid


def _write_tags(conn: apsw.Connection, rowid: int, tags: Iterable[str]) -> None:
    conn.execute("DELETE FROM memory_tags WHERE memory_rowid = ?", (rowid,))
    conn.executemany("INSERT OR IGNORE INTO memory_tags(tag, memory_rowid) VALUES (?, ?)",
                     [(t, rowid) for t in tags])


def find_live_duplicate(conn: apsw.Connection, scope: str, content_hash: str) -> tuple[int, str] | None:
    row = conn.execute(
        "SELECT rowid, id FROM memories WHERE scope = ? AND content_hash = ? "
        "AND status IN ('activated', 'resolving') LIMIT 1", (scope, content_hash)).fetchone()
    return None if row is None else (row[0], row[1])


def merge_sources(conn: apsw.Connection, rowid: int, sources: list[SourceRef]) -> None:
    """A duplicate add keeps the existing item and remembers the new provenance too."""
    current = json.loads(conn.execute("SELECT sources FROM memories WHERE rowid = ?", (rowid,)).fetchone()[0])
    known = {json.dumps(s, sort_keys=True) for s in current}
    for source in sources:
        data = source.to_dict()
        if json.dumps(data, sort_keys=True) not in known:
            current.append(data)
    conn.execute("UPDATE memories SET sources = ? WHERE rowid = ?", (json.dumps(current), rowid))


def resolve(conn: apsw.Connection, id_or_prefix: str) -> tuple[int, str]:
    """Full ids, or an unambiguous prefix of at least 4 characters (handy on the CLI)."""
    row = conn.execute("SELECT rowid, id FROM memories WHERE id = ?", (id_or_prefix,)).fetchone()
    if row:
        return row[0], row[1]
    if len(id_or_prefix) >= 4:
        rows = conn.execute("SELECT rowid, id FROM memories WHERE id >= ? AND id < ? LIMIT 2",
                            (id_or_prefix, id_or_prefix + "\uffff")).fetchall()
        if len(rows) == 1:
            return rows[0][0], rows[0][1]
        if len(rows) > 1:
            raise InvalidInputError(f"The id prefix {id_or_prefix!r} matches several memories; type more of it.")
    else:
        raise NotFoundError(f"No memory with id {id_or_prefix!r}: give the full id or at least its first 4 "
                            f"characters ({len(id_or_prefix)} given). `memdesk search` lists ids.")
    raise NotFoundError(f"No memory with id {id_or_prefix!r}. `memdesk search` lists ids.")


def fetch(conn: apsw.Connection, rowid: int) -> MemoryItem:
    return row_to_item(conn.execute(SELECT + " WHERE m.rowid = ?", (rowid,)).fetchone())


def fetch_many(conn: apsw.Connection, rowids: Sequence[int]) -> dict[int, MemoryItem]:
    out: dict[int, MemoryItem] = {}
    for start in range(0, len(rowids), 500):
        chunk = list(rowids[start:start + 500])
        sql = SELECT + f" WHERE m.rowid IN ({','.join('?' * len(chunk))})"
        for row in conn.execute(sql, chunk):
            out[row[0]] = row_to_item(row)
    return out


def fetch_by_ids(conn: apsw.Connection, ids: Sequence[str]) -> dict[str, MemoryItem]:
    """The memories with these full ids, by id; ids that no longer exist are left out."""
    out: dict[str, MemoryItem] = {}
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for row in conn.execute(SELECT + f" WHERE m.id IN ({','.join('?' * len(chunk))})", chunk):
            item = row_to_item(row)
            out[item.id] = item
    return out


def snapshot(conn: apsw.Connection, rowid: int, reason: str) -> MemoryItem:
    """Keep the current state in history before it changes."""
    item = fetch(conn, rowid)
    conn.execute(
        "INSERT INTO memory_versions(memory_rowid, version, changed_at, reason, snapshot) VALUES (?, ?, ?, ?, ?)",
        (rowid, item.version, ts(utcnow()), reason, json.dumps(item.to_dict())))
    return item


def update(conn: apsw.Connection, rowid: int, changes: dict, reason: str, content_hash: str | None) -> None:
    unknown = set(changes) - EDITABLE
    if unknown:
        raise InvalidInputError(f"Cannot edit {sorted(unknown)}; editable fields: {sorted(EDITABLE)}.")
    snapshot(conn, rowid, reason)
    values: dict = {}
    for name, value in changes.items():
        if name in _TIME_FIELDS:
            value = ts(value)
        elif name in ("tags", "info"):
            value = json.dumps(value)
        elif name == "sources":
            value = json.dumps([s.to_dict() for s in value])
        elif name == "pinned":
            value = int(bool(value))
        values[name] = value
    values["updated_at"] = ts(utcnow())
    if content_hash is not None:
        values["content_hash"] = content_hash
    if "memory" in changes:
        # The old vector describes the old text; the embedder picks this row up again.
        values["embed_fp"] = None
        values["embed_text"] = None
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    conn.execute(f"UPDATE memories SET {assignments}, version = version + 1 WHERE rowid = :rowid",
                 values | {"rowid": rowid})
    if "tags" in changes:
        _write_tags(conn, rowid, changes["tags"])
    vectors.sync_metadata(conn, rowid)


def purge(conn: apsw.Connection, rowid: int) -> None:
    vectors.delete(conn, rowid)
    conn.execute("DELETE FROM memories WHERE rowid = ?", (rowid,))


def history(conn: apsw.Connection, rowid: int) -> list[Version]:
    rows = conn.execute("SELECT version, changed_at, reason, snapshot FROM memory_versions "
                        "WHERE memory_rowid = ? ORDER BY version", (rowid,)).fetchall()
    return [Version(v, from_ts(at), reason, MemoryItem.from_dict(json.loads(snap))) for v, at, reason, snap in rows]


def add_edge(conn: apsw.Connection, src: str, dst: str, relation: str, weight: float = 1.0) -> None:
    conn.execute("INSERT OR IGNORE INTO edges(src, dst, relation, weight, created_at) VALUES (?, ?, ?, ?, ?)",
                 (src, dst, relation, weight, ts(utcnow())))


def edges_of(conn: apsw.Connection, memory_id: str) -> list[Edge]:
    rows = conn.execute("SELECT src, dst, relation, created_at, weight FROM edges WHERE src = ? OR dst = ?",
                        (memory_id, memory_id)).fetchall()
    return [Edge(s, d, r, from_ts(at), w) for s, d, r, at, w in rows]


def neighbours(conn: apsw.Connection, rowids: Sequence[int], relation: str) -> dict[int, list[int]]:
    """rowid -> rowids linked by `relation` in either direction (for graph-aware ranking)."""
    out: dict[int, list[int]] = {}
    for start in range(0, len(rowids), 500):
        chunk = list(rowids[start:start + 500])
        marks = ",".join("?" * len(chunk))
        # Two index lookups (src, then dst) instead of one OR, which would scan every edge.
        for column, other in (("src", "dst"), ("dst", "src")):
            sql = (f"SELECT a.rowid, b.rowid FROM memories a JOIN edges e ON e.{column} = a.id "
                   f"JOIN memories b ON b.id = e.{other} WHERE a.rowid IN ({marks}) AND e.relation = ?")
            for a, b in conn.execute(sql, [*chunk, relation]):
                out.setdefault(a, []).append(b)
    return out


def pending_embeddings(conn: apsw.Connection, limit: int) -> list[tuple[int, str]]:
    return conn.execute("SELECT rowid, COALESCE(embed_text, memory) FROM memories WHERE embed_fp IS NULL "
                        "ORDER BY rowid LIMIT ?", (limit,)).fetchall()


def count_pending(conn: apsw.Connection) -> int:
    return conn.execute("SELECT count(*) FROM memories WHERE embed_fp IS NULL").fetchone()[0]


def stats(conn: apsw.Connection) -> dict:
    def grouped(column: str) -> dict:
        return dict(conn.execute(f"SELECT {column}, count(*) FROM memories GROUP BY {column} ORDER BY {column}"))

    return {
        "memories": conn.execute("SELECT count(*) FROM memories").fetchone()[0],
        "by_status": grouped("status"),
        "by_type": grouped("memory_type"),
        "by_source": grouped("source"),
        "by_scope": grouped("scope"),
        "versions": conn.execute("SELECT count(*) FROM memory_versions").fetchone()[0],
        "edges": conn.execute("SELECT count(*) FROM edges").fetchone()[0],
        "pending_embeddings": count_pending(conn),
    }


def store_vector(conn: apsw.Connection, rowid: int, text: str, vector, fingerprint: str) -> bool:
    """Save a vector unless the row changed (or vanished) while it was being computed."""
    row = conn.execute("SELECT COALESCE(embed_text, memory) FROM memories WHERE rowid = ?", (rowid,)).fetchone()
    if row is None or row[0] != text:
        return False
    vectors.upsert(conn, rowid, vector)
    conn.execute("UPDATE memories SET embed_fp = ? WHERE rowid = ?", (fingerprint, rowid))
    return True


def insert_version(conn: apsw.Connection, rowid: int, version: Version) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO memory_versions(memory_rowid, version, changed_at, reason, snapshot) "
        "VALUES (?, ?, ?, ?, ?)",
        (rowid, version.version, ts(version.changed_at), version.reason, json.dumps(version.item.to_dict())))


def all_rowids(conn: apsw.Connection, statuses: Sequence[str] = ()) -> list[int]:
    if statuses:
        marks = ",".join("?" * len(statuses))
        return [r for (r,) in conn.execute(f"SELECT rowid FROM memories WHERE status IN ({marks}) ORDER BY rowid",
                                           list(statuses))]
    return [r for (r,) in conn.execute("SELECT rowid FROM memories ORDER BY rowid")]


def all_edges(conn: apsw.Connection) -> list[Edge]:
    rows = conn.execute("SELECT src, dst, relation, created_at, weight FROM edges ORDER BY rowid").fetchall()
    return [Edge(s, d, r, from_ts(at), w) for s, d, r, at, w in rows]


def live_by_key(conn: apsw.Connection, scope: str, key: str, memory_types: Sequence[str]) -> list[MemoryItem]:
    marks = ",".join("?" * len(memory_types))
    rows = conn.execute(SELECT + f" WHERE m.scope = ? AND m.key = ? AND m.memory_type IN ({marks}) "
                        "AND m.status IN ('activated', 'resolving') ORDER BY m.updated_at DESC",
                        (scope, key, *memory_types)).fetchall()
    return [row_to_item(r) for r in rows]


def preference_candidates(conn: apsw.Connection, scope: str | None, limit: int) -> list[tuple[int, MemoryItem]]:
    """(rowid, item) of what can govern a request: live preferences, and the health facts that
    act as constraints ("allergy: shellfish"), most recently updated first."""
    rows = conn.execute(SELECT + " WHERE (m.memory_type = 'PreferenceMemory' OR (m.memory_type = 'UserMemory' "
                        "AND (m.key LIKE 'allergy:%' OR m.key LIKE 'health:%'))) "
                        "AND m.status IN ('activated', 'resolving') AND (? IS NULL OR m.scope = ?) "
                        "ORDER BY m.updated_at DESC LIMIT ?", (scope, scope, limit)).fetchall()
    return [(r[0], row_to_item(r)) for r in rows]


def turns_of_messages(conn: apsw.Connection, message_ids: Sequence[str]) -> list[MemoryItem]:
    """Live raw chat turns stored for these message ids (m007's index)."""
    if not message_ids:
        return []
    marks = ",".join("?" * len(message_ids))
    rows = conn.execute(SELECT + " WHERE m.memory_type = 'RawChatMemory' AND "
                        f"json_extract(m.sources, '$[0].message_id') IN ({marks}) "
                        "AND m.status IN ('activated', 'resolving')", list(message_ids)).fetchall()
    return [row_to_item(r) for r in rows]


# Sort keys of each listing order, all descending, with rowid as the tie-break so that
# keyset pages neither repeat nor skip rows with equal keys. Each has an index (m001, m005).
LIST_ORDERS = {
    "updated": ("m.updated_at",),
    "created": ("m.created_at",),
    "usage": ("m.usage_count",),
    "priority": ("m.pinned", "m.priority", "m.updated_at"),
    "event_time": ("COALESCE(m.event_time, m.created_at)",),
}


def listing(conn: apsw.Connection, where: list[str], args: list, order: str, limit: int, offset: int,
            after: str | None = None) -> list[MemoryItem]:
    keys = (*LIST_ORDERS[order], "m.rowid")
    where, args = list(where), list(args)
    if after is not None:
        row = conn.execute(f"SELECT {', '.join(keys)} FROM memories m WHERE m.id = ?", (after,)).fetchone()
        if row is None:
            raise NotFoundError(f"No memory {after!r} to page after; reload the list.")
        where.append(f"AND ({', '.join(keys)}) < ({', '.join('?' * len(keys))})")
        args.extend(row)
    sql = (SELECT + " WHERE 1 " + " ".join(where) + " ORDER BY " + ", ".join(f"{k} DESC" for k in keys)
           + " LIMIT ? OFFSET ?")
    return [row_to_item(r) for r in conn.execute(sql, [*args, limit, offset])]


def count(conn: apsw.Connection, where: list[str], args: list) -> int:
    return conn.execute("SELECT count(*) FROM memories m WHERE 1 " + " ".join(where), args).fetchone()[0]


def remove_edge(conn: apsw.Connection, src: str, dst: str, relation: str) -> int:
    conn.execute("DELETE FROM edges WHERE relation = ? AND ((src = ? AND dst = ?) OR (src = ? AND dst = ?))",
                 (relation, src, dst, dst, src))
    return conn.changes()


def edges_by_relation(conn: apsw.Connection, relation: str) -> list[Edge]:
    rows = conn.execute("SELECT src, dst, relation, created_at, weight FROM edges WHERE relation = ? "
                        "ORDER BY created_at DESC", (relation,)).fetchall()
    return [Edge(s, d, r, from_ts(at), w) for s, d, r, at, w in rows]


def mark_used(conn: apsw.Connection, ids: Sequence[str], when: float) -> None:
    conn.executemany("UPDATE memories SET usage_count = usage_count + 1, last_used_at = ? WHERE id = ?",
                     [(when, i) for i in ids])
