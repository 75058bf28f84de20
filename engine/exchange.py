"""Export and import of memories as JSON Lines.

Line 1 is a header with the schema version; then one line per memory (with its version
history) and one per edge. Item fields use MemOS's names, so other MemOS tools can read
them. Vectors are not exported: they are derived, and re-computed on import.
Import validates every line before writing anything, then writes in one transaction:
a bad line is reported with its number and the vault is left exactly as it was.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cube import Edge, MemoryItem, Version, iso, parse_iso
from engine.errors import InvalidInputError
from engine.store import vault
from engine.text import check_text, content_hash

if TYPE_CHECKING:
    from engine.api import Memory

FORMAT = "memdesk.memories"
SCHEMA_VERSION = 1


@dataclass
class ImportReport:
    added: int = 0
    skipped: int = 0  # already present (same id, or same text in the same scope)
    edges: int = 0
    ids: list[str] = field(default_factory=list)


def export_jsonl(mem: "Memory", path: Path, include_inactive: bool = True) -> int:
    """Write every memory to `path`; returns how many. The file is plaintext: keep it safe."""
    data_root = mem.paths.data_dir
    if path.resolve().is_relative_to(data_root.resolve()):
        raise InvalidInputError(
            f"Refusing to write a plaintext export inside the encrypted data folder ({data_root}). "
            "Choose a path outside it.")
    statuses = () if include_inactive else ("activated", "resolving")
    tmp = path.with_name(path.name + ".partial")
    count = 0
    with mem.db.read() as conn:
        rowids = vault.all_rowids(conn, statuses)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION, "count": len(rowids)}) + "\n")
            for start in range(0, len(rowids), 500):
                items = vault.fetch_many(conn, rowids[start:start + 500])
                for rowid in rowids[start:start + 500]:
                    history = [{"version": v.version, "changed_at": iso(v.changed_at), "reason": v.reason,
                                "item": v.item.to_dict()} for v in vault.history(conn, rowid)]
                    out.write(json.dumps({"type": "memory", "item": items[rowid].to_dict(), "history": history},
                                         ensure_ascii=False) + "\n")
                    count += 1
            for edge in vault.all_edges(conn):
                out.write(json.dumps({"type": "edge", "src": edge.src, "dst": edge.dst, "relation": edge.relation,
                                      "weight": edge.weight, "created_at": iso(edge.created_at)}) + "\n")
    os.replace(tmp, path)
    return count


def _parse(path: Path) -> tuple[list[tuple[MemoryItem, list[Version]]], list[Edge]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror}.") from exc
    lines = raw.split(b"\n")
    memories: list[tuple[MemoryItem, list[Version]]] = []
    edges: list[Edge] = []
    header_seen = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path}, line {number}: not valid UTF-8 (byte {exc.start}). "
                                    "Nothing was imported; fix or remove that line.") from exc
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}, line {number}: not valid JSON ({exc.msg}). "
                                    "Nothing was imported; fix or remove that line.") from exc
        try:
            if not header_seen:
                if record.get("format") != FORMAT:
                    raise ValueError(f"the first line must be a {FORMAT} header")
                if record.get("schema_version", 0) > SCHEMA_VERSION:
                    raise ValueError(f"schema version {record['schema_version']} is newer than this MemDesk "
                                     f"understands ({SCHEMA_VERSION}); upgrade MemDesk")
                header_seen = True
                continue
            kind = record.get("type")
            if kind == "memory":
                item = MemoryItem.from_dict(record["item"])
                item.memory = check_text(item.memory)
                versions = [Version(v["version"], parse_iso(v["changed_at"]), v["reason"],
                                    MemoryItem.from_dict(v["item"])) for v in record.get("history", [])]
                memories.append((item, versions))
            elif kind == "edge":
                edges.append(Edge(record["src"], record["dst"], record["relation"],
                                  parse_iso(record["created_at"]), float(record.get("weight", 1.0))))
            else:
                raise ValueError(f"unknown record type {kind!r}")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}, line {number}: {exc} Nothing was imported.") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"{path}, line {number}: {exc}. Nothing was imported; "
                                    "fix or remove that line.") from exc
    if not header_seen:
        raise InvalidInputError(f"{path} is empty or has no {FORMAT} header line; is it a MemDesk export?")
    return memories, edges


def import_jsonl(mem: "Memory", path: Path) -> ImportReport:
    memories, edges = _parse(path)
    report = ImportReport()
    with mem.db.write() as conn:
        for item, versions in memories:
            if conn.execute("SELECT 1 FROM memories WHERE id = ?", (item.id,)).fetchone():
                report.skipped += 1
                continue
            digest = content_hash(item.memory)
            duplicate = vault.find_live_duplicate(conn, item.scope, digest) if item.status in (
                "activated", "resolving") else None
            if duplicate is not None:
                vault.merge_sources(conn, duplicate[0], item.sources)
                report.skipped += 1
                continue
            rowid = vault.insert(conn, item, digest)
            for version in versions:
                vault.insert_version(conn, rowid, version)
            report.added += 1
            report.ids.append(item.id)
        for edge in edges:
            present = conn.execute("SELECT count(*) FROM memories WHERE id IN (?, ?)", (edge.src, edge.dst)).fetchone()[0]
            if present == 2 or (edge.src == edge.dst and present == 1):
                conn.execute("INSERT OR IGNORE INTO edges(src, dst, relation, weight, created_at) VALUES (?, ?, ?, ?, ?)",
                             (edge.src, edge.dst, edge.relation, edge.weight, edge.created_at.timestamp()))
                report.edges += conn.changes()
    if report.added and mem.indexer is not None:
        mem.indexer.notify()
    return report
