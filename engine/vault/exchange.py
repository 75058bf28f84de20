"""Export and import of memories as JSON Lines.

Line 1 is a header with the schema version; then one line per memory (with its version
history) and one per edge. Item fields use MemOS's names, so other MemOS tools can read
them. Vectors are not exported: they are derived, and re-computed on import.
Import validates every line before writing anything, then writes in one transaction:
a bad line is reported with its number and the vault is left exactly as it was.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memdesk.engine.cube import Edge, MemoryItem, Version, iso
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.text import content_hash
from memdesk.engine.vault import exchange_validate as checked
from memdesk.engine.vault import items as vault
from memdesk.engine.vault.private_files import STDOUT, output

if TYPE_CHECKING:
    from memdesk.engine.api import Memory

FORMAT = "memdesk.memories"
SCHEMA_VERSION = 1


@dataclass
class ImportReport:
    added: int = 0
    skipped: int = 0  # already present (same id, or same text in the same scope)
    edges: int = 0
    ids: list[str] = field(default_factory=list)


def export_jsonl(mem: Memory, path: Path | str, include_inactive: bool = True) -> int:
    """Write every memory to `path` ("-": standard output); returns how many. The file is
    plaintext: keep it safe. It replaces `path` whole, through an unpredictable temporary
    file in the same folder (removed on any failure), and only if `path` is a regular file
    or absent: a symlink, FIFO or device there is refused (engine/vault/private_files.py)."""
    if str(path) != STDOUT:
        path = Path(path)
        data_root = mem.paths.data_dir
        if path.resolve().is_relative_to(data_root.resolve()):
            raise InvalidInputError(
                f"Refusing to write a plaintext export inside the encrypted data folder ({data_root}). "
                "Choose a path outside it.")
    statuses = () if include_inactive else ("activated", "resolving")
    count = 0
    with mem.db.read() as conn, output(path) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="\n", write_through=True)
        try:
            rowids = vault.all_rowids(conn, statuses)
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
            out.flush()
        finally:
            out.detach()  # the caller's stream (stdout, or the temporary file) is closed by `output`
    return count


MAX_LINE_BYTES = 8 * 1024 * 1024  # a memory holds 64 KB; a line this long is not an export


@dataclass
class _Parsed:
    memories: list[tuple[int, MemoryItem, list[Version]]]  # (line number, item, history)
    edges: list[tuple[int, Edge]]


def _parse(path: Path) -> _Parsed:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"Cannot read {path}: {exc.strerror}.") from exc
    lines = raw.split(b"\n")
    parsed = _Parsed([], [])
    seen: dict[str, tuple[int, str]] = {}  # id -> (line, normalised text) of its first record
    header_seen = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            raise InvalidInputError(f"{path}, line {number}: {len(line) / 1e6:.0f} MB on one line; a memory holds "
                                    f"at most 64 KB. Nothing was imported; fix or remove that line.")
        try:
            record = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path}, line {number}: not valid UTF-8 (byte {exc.start}). "
                                    "Nothing was imported; fix or remove that line.") from exc
        except (json.JSONDecodeError, RecursionError) as exc:
            raise InvalidInputError(f"{path}, line {number}: not valid JSON ({getattr(exc, 'msg', exc)}). "
                                    "Nothing was imported; fix or remove that line.") from exc
        try:
            if not isinstance(record, dict):
                raise ValueError("each line must be a JSON object")
            if not header_seen:
                version = record.get("schema_version", 0)
                if record.get("format") != FORMAT or isinstance(version, bool) or not isinstance(version, int):
                    raise ValueError(f"the first line must be a {FORMAT} header")
                if version > SCHEMA_VERSION:
                    raise ValueError(f"schema version {version} is newer than this MemDesk "
                                     f"understands ({SCHEMA_VERSION}); upgrade MemDesk")
                header_seen = True
                continue
            kind = record.get("type")
            if kind == "memory":
                item = checked.memory_item(record.get("item"))
                versions = checked.history(record.get("history", []), item)
                text = content_hash(item.memory)
                if item.id in seen:
                    first, first_text = seen[item.id]
                    if first_text != text:
                        raise ValueError(f"the id {item.id} was already used on line {first} for another text")
                    continue  # the same memory twice: once is enough
                seen[item.id] = (number, text)
                parsed.memories.append((number, item, versions))
            elif kind == "edge":
                parsed.edges.append((number, checked.edge(record)))
            else:
                raise ValueError(f"unknown record type {kind!r}")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{path}, line {number}: {exc}. Nothing was imported; "
                                    "fix or remove that line.") from exc
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"{path}, line {number}: {exc}. Nothing was imported; "
                                    "fix or remove that line.") from exc
    if not header_seen:
        raise InvalidInputError(f"{path} is empty or has no {FORMAT} header line; is it a MemDesk export?")
    return parsed


def import_jsonl(mem: Memory, path: Path) -> ImportReport:
    parsed = _parse(path)
    report = ImportReport()
    with mem.db.write() as conn:
        for number, item, versions in parsed.memories:
            present = conn.execute("SELECT content_hash FROM memories WHERE id = ?", (item.id,)).fetchone()
            if present:
                if present[0] != content_hash(item.memory):
                    raise InvalidInputError(
                        f"{path}, line {number}: the id {item.id} is already in the vault with another text. "
                        "Nothing was imported; give that record a new id or edit the memory instead.")
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
        for _, edge in parsed.edges:
            present = conn.execute("SELECT count(*) FROM memories WHERE id IN (?, ?)",
                                   (edge.src, edge.dst)).fetchone()[0]
            if present == 2 or (edge.src == edge.dst and present == 1):
                conn.execute("INSERT OR IGNORE INTO edges(src, dst, relation, weight, created_at) "
                             "VALUES (?, ?, ?, ?, ?)",
                             (edge.src, edge.dst, edge.relation, edge.weight, edge.created_at.timestamp()))
                report.edges += conn.changes()
    if report.added and mem.indexer is not None:
        mem.indexer.notify()
    return report
