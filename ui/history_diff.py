"""Diffs between two versions of a memory, as HTML for a QTextBrowser.

Text is compared word by word (difflib on whitespace-separated tokens, whitespace kept), so a
one-word edit in a long note shows as one struck-out word and one inserted word rather
than two whole lines. Other fields (key, tags, status, ...) are listed old -> new.
"""
from __future__ import annotations

import difflib
import html
import re
from datetime import datetime

from memdesk.engine.cube import MemoryItem

# Colours chosen to read on the light Fusion palette and still be distinguishable without colour
# (deletions are struck through, insertions underlined).
DELETED_STYLE = "background-color:#fbd3d0; color:#8a1c12; text-decoration:line-through;"
INSERTED_STYLE = "background-color:#d3f5d6; color:#135c1f; text-decoration:underline;"

# Fields a person can see change in the browser; the text itself is diffed separately.
SHOWN_FIELDS = (("key", "Key"), ("tags", "Tags"), ("status", "Status"), ("pinned", "Pinned"),
                ("priority", "Priority"), ("expires", "Expires"), ("memory_type", "Type"),
                ("event_time", "Event time"), ("confidence", "Confidence"), ("scope", "Scope"))

_TOKEN = re.compile(r"\s+|[^\s]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def diff_html(old: str, new: str) -> str:
    """Inline word diff of `old` -> `new`: deletions red and struck, insertions green."""
    a, b = _tokens(old), _tokens(new)
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(html.escape("".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(f'<span class="del" style="{DELETED_STYLE}">{html.escape("".join(a[i1:i2]))}</span>')
        if op in ("insert", "replace"):
            out.append(f'<span class="ins" style="{INSERTED_STYLE}">{html.escape("".join(b[j1:j2]))}</span>')
    return "".join(out).replace("\n", "<br>")


def _shown(value: object) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def field_changes(old: MemoryItem, new: MemoryItem) -> list[tuple[str, str, str]]:
    """(label, old, new) for every shown field that differs."""
    return [(label, _shown(getattr(old, name)), _shown(getattr(new, name)))
            for name, label in SHOWN_FIELDS if getattr(old, name) != getattr(new, name)]


def version_diff_html(old: MemoryItem, new: MemoryItem, old_label: str, new_label: str) -> str:
    """The whole comparison panel: a heading, the text diff, then changed fields."""
    parts = [f"<p><b>{html.escape(old_label)}</b> → <b>{html.escape(new_label)}</b></p>"]
    if old.memory == new.memory:
        parts.append(f"<p><i>Text unchanged.</i></p><p>{html.escape(new.memory)}</p>")
    else:
        parts.append(f"<p>{diff_html(old.memory, new.memory)}</p>")
    changes = field_changes(old, new)
    if changes:
        rows = "".join(
            f'<tr><td><b>{html.escape(label)}</b></td><td><span style="{DELETED_STYLE}">{html.escape(a)}</span></td>'
            f'<td>→</td><td><span style="{INSERTED_STYLE}">{html.escape(b)}</span></td></tr>'
            for label, a, b in changes)
        parts.append(f'<table cellspacing="4">{rows}</table>')
    return "".join(parts)
