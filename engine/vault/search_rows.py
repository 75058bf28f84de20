"""The SQL of search: FTS5 keyword ranking, the filters every search and listing applies, and
the checks on vector hits that sqlite-vec's metadata cannot make (engine/search/retrieval.py
ranks and fuses what these return)."""
from __future__ import annotations

from dataclasses import replace

import apsw

from memdesk.engine.cube import Filters
from memdesk.engine.vault import vectors


def keyword_ranked(conn: apsw.Connection, match: str, f: Filters, limit: int, weights, since=None, until=None):
    """(rowid, bm25) best first. Ranks in FTS5 alone, then filters: joining `memories` for
    every match before ranking costs tens of ms when a common word matches 10k+ rows."""
    ranked_sql = ("SELECT rowid, bm25(memory_fts, ?, ?, ?) AS s FROM memory_fts "
                  "WHERE memory_fts MATCH ? ORDER BY s LIMIT ?")
    fetch = limit * 4
    ranked = conn.execute(ranked_sql, [*weights, match, fetch]).fetchall()
    where, more = sql_filters(f, since, until)
    if ranked:
        keep = passing(conn, [r for r, _ in ranked], where, more)
        kept = [(r, score) for r, score in ranked if r in keep]
        if len(kept) >= limit or len(ranked) < fetch:
            return kept[:limit]
    # Selective filters: rank only the matches that pass them.
    sql = ["SELECT f.rowid, bm25(memory_fts, ?, ?, ?) AS s FROM memory_fts f JOIN memories m ON m.rowid = f.rowid",
           "WHERE memory_fts MATCH ?", *where, "ORDER BY s LIMIT ?"]
    return conn.execute(" ".join(sql), [*weights, match, *more, limit]).fetchall()


def sql_filters(f: Filters, since: float | None, until: float | None,
                listing: bool = False) -> tuple[list[str], list]:
    """WHERE clauses for `f`. With `listing`, the status and type tests are written `+m.x` so
    SQLite walks the index of the listing's order instead of sorting every live row."""
    where: list[str] = []
    args: list = []
    unary = "+" if listing else ""

    def member(column: str, values) -> None:
        if values:
            prefix = unary if column in ("status", "memory_type") else ""
            where.append(f"AND {prefix}m.{column} IN ({','.join('?' * len(values))})")
            args.extend(values)

    member("status", f.statuses)
    member("memory_type", f.memory_types)
    member("source", f.sources)
    if f.scope is not None:
        where.append("AND m.scope = ?")
        args.append(f.scope)
    if f.pinned is not None:
        where.append("AND m.pinned = ?")
        args.append(int(f.pinned))
    for tag in f.tags:
        where.append("AND m.rowid IN (SELECT memory_rowid FROM memory_tags WHERE tag = ?)")
        args.append(tag)
    if since is not None:
        where.append("AND COALESCE(m.event_time, m.created_at) >= ?")
        args.append(since)
    if until is not None:
        where.append("AND COALESCE(m.event_time, m.created_at) < ?")
        args.append(until)
    return where, args


def passing_sql_only_filters(conn: apsw.Connection, rowids: list[int], f: Filters) -> set[int]:
    """Tags and pinned are not vec0 metadata; check them for vector hits in one query."""
    if not rowids or (not f.tags and f.pinned is None):
        return set(rowids)
    where, args = sql_filters(replace(f, statuses=(), memory_types=(), sources=(), scope=None), None, None)
    return passing(conn, rowids, where, args)


def passing(conn: apsw.Connection, rowids: list[int], where: list[str], args: list) -> set[int]:
    sql = f"SELECT m.rowid FROM memories m WHERE m.rowid IN ({','.join('?' * len(rowids))}) " + " ".join(where)
    return {r for (r,) in conn.execute(sql, [*rowids, *args])}


def has_vector_table(conn: apsw.Connection) -> bool:
    return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (vectors.TABLE,)).fetchall())


def memory_count(conn: apsw.Connection) -> int:
    return conn.execute("SELECT count(*) FROM memories").fetchone()[0]
