"""Chat sessions and their messages, persisted in the encrypted vault."""
from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from datetime import datetime

from memdesk.engine.cube import from_ts, new_id, ts, utcnow
from memdesk.engine.errors import NotFoundError
from memdesk.engine.vault.database import Database


@dataclass(frozen=True)
class Session:
    id: str
    title: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Message:
    id: str
    session_id: str
    seq: int
    role: str  # "user" | "assistant"
    content: str
    created_at: datetime
    memory_ids: tuple[str, ...] = ()
    model: str | None = None
    stats: dict = field(default_factory=dict)


def _message(row) -> Message:
    mid, sid, seq, role, content, at, memory_ids, model, stats = row
    return Message(mid, sid, seq, role, content, from_ts(at), tuple(json.loads(memory_ids)), model, json.loads(stats))


class Sessions:
    def __init__(self, db: Database):
        self.db = db

    def create(self, title: str = "New chat") -> Session:
        now = utcnow()
        session = Session(new_id(), title, now, now)
        with self.db.write() as conn:
            conn.execute("INSERT INTO sessions(id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                         (session.id, title, ts(now), ts(now)))
        return session

    def get(self, session_id: str) -> Session:
        with self.db.read() as conn:
            row = conn.execute("SELECT id, title, created_at, updated_at FROM sessions WHERE id = ?",
                               (session_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No chat session {session_id!r}; `memdesk chat` without --session starts one.")
        return Session(row[0], row[1], from_ts(row[2]), from_ts(row[3]))

    def list(self) -> list[Session]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT id, title, created_at, updated_at FROM sessions "
                                "ORDER BY updated_at DESC").fetchall()
        return [Session(r[0], r[1], from_ts(r[2]), from_ts(r[3])) for r in rows]

    def rename(self, session_id: str, title: str) -> None:
        with self.db.write() as conn:
            conn.execute("UPDATE sessions SET title = ?, updated_at = ? WHERE id = ?",
                         (title, ts(utcnow()), session_id))
            if not conn.changes():
                raise NotFoundError(f"No chat session {session_id!r}.")

    def delete(self, session_id: str) -> None:
        """Removes the transcript; memories drawn from it stay (they have their own lifecycle)."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def messages(self, session_id: str, limit: int | None = None) -> builtins.list[Message]:
        """Oldest first; with `limit`, the most recent `limit` messages."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT id, session_id, seq, role, content, created_at, memory_ids, model, stats FROM messages "
                "WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
                (session_id, -1 if limit is None else limit)).fetchall()
        return [_message(r) for r in reversed(rows)]

    def append(self, session_id: str, role: str, content: str, *, when: datetime | None = None,
               memory_ids: tuple[str, ...] = (), model: str | None = None, stats: dict | None = None) -> Message:
        when = when or utcnow()
        with self.db.write() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE session_id = ?",
                               (session_id,)).fetchone()[0]
            message = Message(new_id(), session_id, seq, role, content, when, tuple(memory_ids), model, stats or {})
            conn.execute(
                "INSERT INTO messages(id, session_id, seq, role, content, created_at, memory_ids, model, stats) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message.id, session_id, seq, role, content, ts(when), json.dumps(list(memory_ids)), model,
                 json.dumps(message.stats)))
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (ts(when), session_id))
        return message
