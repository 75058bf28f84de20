"""What one committed write changed (Anki's OpChanges), whoever made it.

Every write to a vault goes through its one writer connection (engine/vault/database.py).
Temporary triggers on that connection log which memories were added, changed or removed,
which kinds of relation (edges), which chats and which preference adapters changed. `Database.write` reads and clears
the log just before COMMIT and, once the commit is done and the write lock released, hands
one `Changes` to each `on_commit` listener on the writing thread. So the browser's edits,
extraction after a chat turn, the chat turn itself, the nightly job, ingestion, imports and
forgetting all report the same way, and a write that rolls back reports nothing (the log is
part of the transaction).

The triggers are TEMP: they live in the connection, not in the vault file, so no migration
is needed and nothing of them is ever written to disk. Columns the views never show (the
vector's fingerprint, the text the embedder sees) are left out, or the indexer working
through a backlog would report every memory it embeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import apsw

# Columns a view shows or that change what a search returns.
_SHOWN = ("memory, key, tags, memory_type, status, confidence, source, sources, event_time, event_end, "
          "expires, priority, pinned, visibility, scope, usage_count, version, info")

_SCHEMA = f"""
CREATE TEMP TABLE IF NOT EXISTS change_log(kind TEXT NOT NULL, id TEXT NOT NULL);
CREATE TEMP TRIGGER IF NOT EXISTS change_memory_added AFTER INSERT ON main.memories
BEGIN INSERT INTO change_log VALUES ('added', new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_memory_changed AFTER UPDATE OF {_SHOWN} ON main.memories
BEGIN INSERT INTO change_log VALUES ('changed', new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_memory_removed AFTER DELETE ON main.memories
BEGIN INSERT INTO change_log VALUES ('removed', old.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_edge_added AFTER INSERT ON main.edges
BEGIN INSERT INTO change_log VALUES ('relation', new.relation); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_edge_removed AFTER DELETE ON main.edges
BEGIN INSERT INTO change_log VALUES ('relation', old.relation); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_session_added AFTER INSERT ON main.sessions
BEGIN INSERT INTO change_log VALUES ('session', new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_session_changed AFTER UPDATE ON main.sessions
BEGIN INSERT INTO change_log VALUES ('session', new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_session_removed AFTER DELETE ON main.sessions
BEGIN INSERT INTO change_log VALUES ('session', old.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_message_added AFTER INSERT ON main.messages
BEGIN INSERT INTO change_log VALUES ('session', new.session_id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_message_changed AFTER UPDATE ON main.messages
BEGIN INSERT INTO change_log VALUES ('session', new.session_id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_message_removed AFTER DELETE ON main.messages
BEGIN INSERT INTO change_log VALUES ('session', old.session_id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_adapter_added AFTER INSERT ON main.adapters
BEGIN INSERT INTO change_log VALUES ('adapter', new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_adapter_changed AFTER UPDATE OF status, metrics, activated_at ON main.adapters
BEGIN INSERT INTO change_log VALUES ('adapter', new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS change_adapter_removed AFTER DELETE ON main.adapters
BEGIN INSERT INTO change_log VALUES ('adapter', old.id); END;
"""


@dataclass(frozen=True)
class Changes:
    """What committed writes changed. Merged with `|`; empty is false."""

    added: frozenset[str] = field(default_factory=frozenset)  # memory ids
    changed: frozenset[str] = field(default_factory=frozenset)  # edited, archived, restored, used...
    removed: frozenset[str] = field(default_factory=frozenset)  # purged or forgotten: gone from the vault
    relations: frozenset[str] = field(default_factory=frozenset)  # relation kinds of edges added or removed
    sessions: frozenset[str] = field(default_factory=frozenset)  # chats whose messages or title changed
    adapters: frozenset[str] = field(default_factory=frozenset)  # preference adapters trained, switched, retired

    @property
    def memories(self) -> frozenset[str]:
        return self.added | self.changed | self.removed

    def __bool__(self) -> bool:
        return bool(self.memories or self.relations or self.sessions or self.adapters)

    def __or__(self, other: Changes) -> Changes:
        return Changes(self.added | other.added, self.changed | other.changed, self.removed | other.removed,
                       self.relations | other.relations, self.sessions | other.sessions,
                       self.adapters | other.adapters)


def install(conn: apsw.Connection) -> None:
    """Log changes on this (writer) connection from now on."""
    conn.execute(_SCHEMA)


def collect(conn: apsw.Connection) -> Changes:
    """What the open transaction changed so far; the log is emptied (inside that transaction)."""
    rows = conn.execute("SELECT kind, id FROM temp.change_log").fetchall()
    if not rows:
        return Changes()
    conn.execute("DELETE FROM temp.change_log")
    by_kind: dict[str, set[str]] = {kind: set() for kind in ("added", "changed", "removed", "relation",
                                                             "session", "adapter")}
    for kind, value in rows:
        by_kind[kind].add(value)
    removed = frozenset(by_kind["removed"])
    added = frozenset(by_kind["added"]) - removed
    return Changes(added, frozenset(by_kind["changed"]) - added - removed, removed,
                   frozenset(by_kind["relation"]), frozenset(by_kind["session"]), frozenset(by_kind["adapter"]))
