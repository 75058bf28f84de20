"""Curation: what a person does to their memories by hand in the browser.

Undo lives here, in the engine (as in Anki), not in the widgets: reverting restores the
fields of an earlier version as a new version, so an undo is itself undoable and the
history never loses a state. Conflicts are pairs linked by a CONFLICT edge (MemReader adds
one when a new fact contradicts a pinned or user-edited one); resolving one removes the
edge and records what became of each side.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryItem, Relation, Status
from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.text import check_text
from memdesk.engine.vault import items as vault

# What a revert puts back; status too, so undoing an archive or delete brings the memory back.
REVERTIBLE = ("memory", "key", "tags", "memory_type", "status", "confidence", "event_time", "event_end",
              "expires", "priority", "pinned", "visibility", "scope", "info")


def revert(mem: Memory, memory_id: str, version: int) -> MemoryItem:
    """Bring back the fields of `version` (from `history()`), as a new version."""
    current = mem.get(memory_id)
    earlier = next((v.item for v in mem.history(current.id) if v.version == version), None)
    if earlier is None:
        raise NotFoundError(f"Memory {current.id[:8]} has no version {version}; "
                            f"see `memdesk history {current.id[:8]}`.")
    changes = {name: getattr(earlier, name) for name in REVERTIBLE
               if getattr(earlier, name) != getattr(current, name)}
    if not changes:
        return current
    return mem.update(current.id, reason=f"reverted to v{version}", **changes)


def undo_last(mem: Memory, memory_id: str) -> MemoryItem:
    """Undo the most recent change to this memory (edit, archive, delete, pin...)."""
    versions = mem.history(memory_id)
    if not versions:
        raise InvalidInputError("This memory has never been changed, so there is nothing to undo.")
    return revert(mem, memory_id, versions[-1].version)


@dataclass(frozen=True)
class Conflict:
    first: MemoryItem  # the older fact (the one a person pinned or edited)
    second: MemoryItem  # the newer, contradicting one
    since: datetime


class Resolution(StrEnum):
    KEEP_FIRST = "keep_first"
    KEEP_SECOND = "keep_second"
    KEEP_BOTH = "keep_both"
    MERGE = "merge"


def conflicts(mem: Memory) -> list[Conflict]:
    """Unresolved conflicts between live memories, newest first."""
    with mem.db.read() as conn:
        edges = vault.edges_by_relation(conn, Relation.CONFLICT.value)
    out: list[Conflict] = []
    for edge in edges:
        try:
            first, second = sorted((mem.get(edge.src), mem.get(edge.dst)), key=lambda m: m.created_at)
        except NotFoundError:
            continue  # one side was purged
        if first.status in (Status.ACTIVATED.value, Status.RESOLVING.value) and \
                second.status in (Status.ACTIVATED.value, Status.RESOLVING.value):
            out.append(Conflict(first, second, edge.created_at))
    return out


def resolve(mem: Memory, first_id: str, second_id: str, resolution: Resolution | str,
            merged_text: str | None = None) -> list[MemoryItem]:
    """Settle one conflict; returns the memories that remain live.

    Everything is checked first (the resolution, the merged text, both memories, the conflict
    itself), then every change is made in one transaction: removing the conflict, the merge or
    the archive, the new edge, and superseding the chat turns behind the dropped side. A failure
    anywhere leaves the conflict exactly as it was, to be resolved again."""
    try:
        resolution = Resolution(resolution)
    except ValueError:
        raise InvalidInputError(f"Unknown resolution {resolution!r}; use one of "
                                f"{', '.join(r.value for r in Resolution)}.") from None
    text = None
    if resolution is Resolution.MERGE:
        if not (merged_text or "").strip():
            raise InvalidInputError("A merge needs the merged text; write it, or keep one or both instead.")
        text = check_text(merged_text)
    with mem.db.write() as conn:
        first = vault.fetch(conn, vault.resolve(conn, first_id)[0])
        second = vault.fetch(conn, vault.resolve(conn, second_id)[0])
        if first.id == second.id:
            raise InvalidInputError("A memory cannot be in conflict with itself; pick the two sides.")
        live = (Status.ACTIVATED.value, Status.RESOLVING.value)
        if first.status not in live or second.status not in live or \
                not vault.remove_edge(conn, first.id, second.id, Relation.CONFLICT.value):
            raise NotFoundError("These two memories are not in conflict (any more); reload the conflicts view.")
        # From here on each step is a savepoint inside this one transaction (Memory's writes nest).
        if resolution is Resolution.KEEP_BOTH:
            mem.link(first.id, second.id, Relation.RELATE)
            remaining = [first.id, second.id]
        else:
            if resolution is Resolution.MERGE:
                kept = mem.update(first.id, memory=text, reason="merged", sources=[*first.sources, *second.sources])
                dropped = second
            else:
                kept, dropped = (first, second) if resolution is Resolution.KEEP_FIRST else (second, first)
            mem.update(dropped.id, status=Status.ARCHIVED.value, reason="conflict resolved")
            mem.link(dropped.id, kept.id, Relation.MERGED_TO)
            # The chat turns that stated what was dropped must not come back as current either; after a
            # merge the text is the person's own, so every turn behind either side is superseded.
            stale = _said_in(dropped) | _said_in(first) if resolution is Resolution.MERGE \
                else _said_in(dropped) - _said_in(kept)
            turns = vault.turns_of_messages(conn, sorted(stale))
            mem.supersede([t.id for t in turns], by=kept.id, why="conflict resolved")
            remaining = [kept.id]
    return [mem.get(memory_id) for memory_id in remaining]


def _said_in(item: MemoryItem) -> set[str]:
    return {s.message_id for s in item.sources if s.message_id}
