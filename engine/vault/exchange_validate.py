"""Validation of imported records: every field checked against what the vault stores, so that a
bad file is refused with its line number before anything is written.

An export file is anyone's input (edited by hand, written by another tool, damaged): a null
created_at, an unknown status, a string where a number belongs or a 50 MB history entry
must be refused with the line and field, not crash halfway or land in the vault to break a
later `history` or `search`. History snapshots are validated exactly like memories.
"""
from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from memdesk.engine.api import check_priority
from memdesk.engine.cube import Edge, MemoryItem, MemoryType, Relation, SourceRef, Status, Version, parse_iso
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.text import MAX_KEY_CHARS, check_text

MAX_ID_CHARS = 100
MAX_TAGS = 100
MAX_TAG_CHARS = 100
MAX_SHORT_CHARS = 200  # source, visibility, scope, reason, source fields
MAX_SOURCES = 1000
MAX_INFO_BYTES = 64 * 1024
MAX_HISTORY = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TIMES = ("created_at", "updated_at", "event_time", "event_end", "expires", "last_used_at")
_REQUIRED_TIMES = ("created_at", "updated_at")
_MEMORY_TYPES = {t.value for t in MemoryType}
_STATUSES = {s.value for s in Status}
_RELATIONS = {r.value for r in Relation}
_SOURCE_TEXT = ("type", "message_id", "session_id", "role", "chat_time", "doc_path")


def _fail(field: str, problem: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {problem}")


def _text(value: Any, field: str, limit: int, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _fail(field, f"must be text, not {type(value).__name__}")
    if len(value) > limit:
        raise _fail(field, f"is {len(value)} characters; at most {limit} are allowed")
    if not empty and not value.strip():
        raise _fail(field, "is empty")
    return value


def identifier(value: Any, field: str = "id") -> str:
    value = _text(value, field, MAX_ID_CHARS, empty=False)
    if _CONTROL.search(value) or value != value.strip():
        raise _fail(field, "holds control characters or surrounding spaces")
    return value


def _time(value: Any, field: str, required: bool) -> datetime | None:
    if value is None:
        if required:
            raise _fail(field, "is missing (null); every memory needs one (ISO 8601, e.g. 2024-03-01T09:30:00Z)")
        return None
    if not isinstance(value, str):
        raise _fail(field, f"must be an ISO 8601 time in quotes, not {type(value).__name__}")
    try:
        return parse_iso(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise _fail(field, f"{value[:40]!r} is not an ISO 8601 time") from None


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(field, f"must be a number, not {json.dumps(value)[:40]}")
    if not low <= value <= high:
        raise _fail(field, f"{value} is out of range ({low} to {high})")
    return float(value)


def _whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, f"must be a whole number, not {json.dumps(value)[:40]}")
    if not low <= value <= high:
        raise _fail(field, f"{value} is out of range ({low} to {high})")
    return value


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _fail("tags", "must be a list of texts")
    if len(value) > MAX_TAGS:
        raise _fail("tags", f"has {len(value)} tags; at most {MAX_TAGS} are allowed")
    out: list[str] = []
    for tag in value:
        if not isinstance(tag, str):
            raise _fail("tags", f"every tag must be text; found {json.dumps(tag)[:40]}")
        tag = check_text(tag, "tag")
        if len(tag) > MAX_TAG_CHARS:
            raise _fail("tags", f"the tag {tag[:20]!r}... is {len(tag)} characters; at most {MAX_TAG_CHARS}")
        if tag not in out:
            out.append(tag)
    return out


def _sources(value: Any) -> list[SourceRef]:
    if not isinstance(value, list) or len(value) > MAX_SOURCES:
        raise _fail("sources", f"must be a list of at most {MAX_SOURCES} provenance records")
    out = []
    for ref in value:
        if not isinstance(ref, dict):
            raise _fail("sources", "every entry must be an object")
        for name in _SOURCE_TEXT:
            if ref.get(name) is not None:
                _text(ref[name], f"sources.{name}", 4096 if name == "doc_path" else MAX_SHORT_CHARS)
        for name in ("start_line", "end_line"):
            if ref.get(name) is not None:
                _whole(ref[name], f"sources.{name}", 0, 2 ** 31)
        if not isinstance(ref.get("type"), str):
            raise _fail("sources.type", "is missing")
        out.append(SourceRef.from_dict(ref))
    return out


def memory_item(data: Any) -> MemoryItem:
    """A MemOS item dict, every field checked; unknown fields are kept in `info` (as before)."""
    if not isinstance(data, dict):
        raise _fail("item", "must be an object")
    if "memory" not in data or "id" not in data:
        raise _fail("item", "needs at least 'id' and 'memory'")
    known = {name for name in MemoryItem.__dataclass_fields__}
    extra = {k: v for k, v in data.items() if k not in known}
    info = data.get("info", {})
    if not isinstance(info, dict):
        raise _fail("info", "must be an object")
    info = {**info, **extra}
    if len(json.dumps(info, ensure_ascii=False).encode("utf-8")) > MAX_INFO_BYTES:
        raise _fail("info", f"is larger than {MAX_INFO_BYTES // 1024} KB")
    times = {name: _time(data.get(name), name, name in _REQUIRED_TIMES) for name in _TIMES}
    memory_type = data.get("memory_type", MemoryType.LONG_TERM.value)
    if memory_type not in _MEMORY_TYPES:
        raise _fail("memory_type", f"{json.dumps(memory_type)[:40]} is not one of {', '.join(sorted(_MEMORY_TYPES))}")
    status = data.get("status", Status.ACTIVATED.value)
    if status not in _STATUSES:
        raise _fail("status", f"{json.dumps(status)[:40]} is not one of {', '.join(sorted(_STATUSES))}")
    pinned = data.get("pinned", False)
    if not isinstance(pinned, bool):
        raise _fail("pinned", f"must be true or false, not {json.dumps(pinned)[:40]}")
    try:
        priority = check_priority(data.get("priority", 0))
    except InvalidInputError as exc:
        raise _fail("priority", str(exc)) from None
    return MemoryItem(
        id=identifier(data["id"]), memory=check_text(data["memory"]),
        key=_text(data.get("key", ""), "key", MAX_KEY_CHARS), tags=_tags(data.get("tags", [])),
        memory_type=memory_type, status=status,
        confidence=_number(data.get("confidence", 1.0), "confidence", 0.0, 1.0),
        source=_text(data.get("source", "capture"), "source", MAX_SHORT_CHARS, empty=False),
        sources=_sources(data.get("sources", [])),
        created_at=times["created_at"], updated_at=times["updated_at"], event_time=times["event_time"],
        event_end=times["event_end"], expires=times["expires"], priority=priority, pinned=pinned,
        visibility=_text(data.get("visibility", "private"), "visibility", MAX_SHORT_CHARS, empty=False),
        scope=_text(data.get("scope", "default"), "scope", MAX_SHORT_CHARS, empty=False),
        usage_count=_whole(data.get("usage_count", 0), "usage_count", 0, 2 ** 53),
        last_used_at=times["last_used_at"], version=_whole(data.get("version", 1), "version", 1, 2 ** 31),
        info=info)


def history(value: Any, item: MemoryItem) -> list[Version]:
    if not isinstance(value, list) or len(value) > MAX_HISTORY:
        raise _fail("history", f"must be a list of at most {MAX_HISTORY} versions")
    versions: list[Version] = []
    for index, entry in enumerate(value):
        where = f"history[{index}]"
        if not isinstance(entry, dict):
            raise _fail(where, "must be an object")
        try:
            number = _whole(entry.get("version"), "version", 1, 2 ** 31)
            changed = _time(entry.get("changed_at"), "changed_at", True)
            reason = _text(entry.get("reason", ""), "reason", MAX_SHORT_CHARS)
            snapshot = memory_item(entry.get("item"))
        except InvalidInputError as exc:
            raise _fail(where, str(exc)) from None
        if snapshot.id != item.id:
            raise _fail(where, f"is a version of another memory ({snapshot.id!r})")
        if number >= item.version or any(v.version == number for v in versions):
            raise _fail(where, f"version {number} repeats or is not older than the current version {item.version}")
        versions.append(Version(number, changed, reason, snapshot))
    return versions


def edge(record: dict) -> Edge:
    relation = record.get("relation")
    if relation not in _RELATIONS:
        raise _fail("relation", f"{json.dumps(relation)[:40]} is not one of {', '.join(sorted(_RELATIONS))}")
    return Edge(identifier(record.get("src"), "src"), identifier(record.get("dst"), "dst"), relation,
                _time(record.get("created_at"), "created_at", True),
                _number(record.get("weight", 1.0), "weight", -1e6, 1e6))
