"""Output helpers for the `memdesk` CLI: JSON encoding and the human-readable layouts.

Everything here writes to a given stream (stdout for results); nothing touches the disk.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from memdesk.engine.cube import Edge, MemoryItem, SearchHit, Version, iso

SHORT_ID = 8


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# What a terminal would act on instead of showing: C0 and C1 controls (ESC starts colour,
# cursor and title sequences; a lone CR overwrites the line), DEL, and the bidirectional
# overrides and isolates that make text display in another order than it is stored.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every unsafe character shown as an escape (\\x1b, \\u202e); newline and tab kept."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class SafeOutput:
    """A stream that escapes what a terminal would interpret (memory text is anyone's input:
    an imported file, a watched note, a pasted message)."""

    def __init__(self, out: TextIO):
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write(printable(text))

    def flush(self) -> None:
        self._out.flush()


def safe(out: TextIO) -> TextIO:
    return out if isinstance(out, SafeOutput) else SafeOutput(out)  # type: ignore[return-value]


def dump_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default) + "\n")


def one_line(text: str) -> str:
    return " ".join(text.split())


def truncate(text: str, width: int) -> str:
    if width <= 1:
        return text[:max(width, 0)]
    return text if len(text) <= width else text[:width - 1] + "…"


def short_date(value: datetime | None) -> str:
    return value.date().isoformat() if value is not None else "-" * 10


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


# ------------------------------------------------------------------ search
def hit_to_json(hit: SearchHit) -> dict[str, Any]:
    return {"item": hit.item.to_dict(), "score": float(hit.score),
            "signals": {name: float(value) for name, value in hit.signals.items()}}


def print_hits(hits: list[SearchHit], out: TextIO) -> None:
    out = safe(out)
    if not hits:
        out.write("No matching memories.\n")
        return
    width = terminal_width()
    for hit in hits:
        item = hit.item
        date = short_date(item.event_time or item.created_at)
        status = "" if item.status == "activated" else f"[{item.status}] "
        prefix = f"{item.id[:SHORT_ID]}  {hit.score:6.3f}  {item.memory_type:<16}  {date}  {status}"
        out.write(prefix + truncate(one_line(item.memory), max(width - len(prefix), 20)) + "\n")


# -------------------------------------------------------------------- get
def _value(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, datetime):
        return iso(value) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return str(value)


_FIELD_ORDER = ("id", "key", "memory_type", "status", "tags", "scope", "source", "confidence", "priority",
                "pinned", "visibility", "created_at", "updated_at", "event_time", "event_end", "expires",
                "usage_count", "last_used_at", "version", "info")


def print_item(item: MemoryItem, out: TextIO, edges: Iterable[Edge] = ()) -> None:
    out = safe(out)
    label_width = max(len(name) for name in _FIELD_ORDER) + 1
    for name in _FIELD_ORDER:
        out.write(f"{name + ':':<{label_width}} {_value(getattr(item, name))}\n")
    out.write(f"{'sources:':<{label_width}} -\n" if not item.sources else "sources:\n")
    for ref in item.sources:
        details = ", ".join(f"{k}={v}" for k, v in ref.to_dict().items() if k != "type")
        out.write(f"  - {ref.type}" + (f" ({details})" if details else "") + "\n")
    edges = list(edges)
    if edges:
        out.write("edges:\n")
        for edge in edges:
            if edge.src == item.id:
                out.write(f"  -> {edge.relation} {edge.dst}\n")
            else:
                out.write(f"  <- {edge.relation} {edge.src}\n")
    out.write("memory:\n")
    for line in item.memory.splitlines() or [""]:
        out.write(f"  {line}\n")


# ---------------------------------------------------------------- history
def history_to_json(versions: list[Version], current: MemoryItem) -> list[dict[str, Any]]:
    rows = [{"version": v.version, "changed_at": iso(v.changed_at), "reason": v.reason, "current": False,
             "item": v.item.to_dict()} for v in versions]
    rows.append({"version": current.version, "changed_at": iso(current.updated_at), "reason": "current",
                 "current": True, "item": current.to_dict()})
    return rows


def print_history(versions: list[Version], current: MemoryItem, out: TextIO) -> None:
    out = safe(out)
    width = terminal_width()
    out.write(f"History of {current.id}\n")
    for version in versions:
        head = f"v{version.version}  replaced {iso(version.changed_at)}  ({version.reason})"
        _write_version(out, head, version.item, width)
    head = f"v{current.version}  current since {iso(current.updated_at)}"
    _write_version(out, head, current, width)


def _write_version(out: TextIO, head: str, item: MemoryItem, width: int) -> None:
    out.write(head + "\n")
    details = f"status={item.status} type={item.memory_type}"
    if item.key:
        details += f" key={item.key!r}"
    if item.tags:
        details += " tags=" + ",".join(str(t) for t in item.tags)
    out.write(f"    {details}\n")
    out.write("    " + truncate(one_line(item.memory), max(width - 4, 20)) + "\n")


# ------------------------------------------------------------------ stats
def print_mapping(data: dict[str, Any], out: TextIO, indent: int = 0) -> None:
    out = safe(out)
    for name, value in data.items():
        if isinstance(value, dict):
            out.write(" " * indent + f"{name}:" + (" -" if not value else "") + "\n")
            print_mapping(value, out, indent + 2)
        else:
            out.write(" " * indent + f"{name}: {_value(value)}\n")
