"""The person's feedback on the assistant's replies: thumbs up/down and edited replies.

    feedback = Feedback(mem.db)
    feedback.rate(reply.id, +1)                      # thumbs up (0 clears it, -1 thumbs down)
    feedback.edit(reply.id, "Shorter, please: ...")  # the reply the person would have preferred

It lives in the vault's `feedback` table (migration m006), one row per rated or edited
assistant message. Parametric memory (engine/parametric/dataset.py) turns it into
training examples; the transcript itself is never changed, so later turns still see what
the model really said.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memdesk.engine.cube import from_ts, ts, utcnow
from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.text import check_text
from memdesk.engine.vault.database import Database

RATINGS = (-1, 0, 1)
_COLUMNS = "f.message_id, f.session_id, f.rating, f.edited_text, f.created_at, f.updated_at"


@dataclass(frozen=True)
class ReplyFeedback:
    message_id: str  # the assistant message
    session_id: str
    rating: int  # +1 thumbs up, -1 thumbs down, 0 none
    edited_text: str | None  # the person's preferred version of the reply, if they wrote one
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RatedTurn:
    """Feedback with the turn it is about: the user's message and the reply as the model wrote it."""
    feedback: ReplyFeedback
    prompt: str  # the user's message right before the reply ("" if the session has none)
    prompt_id: str
    reply: str  # the original reply
    reply_at: datetime


def _row(row) -> ReplyFeedback:
    mid, sid, rating, edited, created, updated = row[:6]
    return ReplyFeedback(mid, sid, int(rating), edited, from_ts(created), from_ts(updated))


class Feedback:
    def __init__(self, db: Database):
        self.db = db

    # ------------------------------------------------------------ writing
    def rate(self, message_id: str, rating: int, *, when: datetime | None = None) -> ReplyFeedback:
        """Thumbs up (+1), thumbs down (-1) or no rating (0) for an assistant reply."""
        if isinstance(rating, bool) or rating not in RATINGS:
            raise InvalidInputError(f"A rating is +1 (thumbs up), -1 (thumbs down) or 0 (none), not {rating!r}.")
        return self._upsert(message_id, "rating", int(rating), when)

    def edit(self, message_id: str, preferred_text: str, *, when: datetime | None = None) -> ReplyFeedback:
        """Store the person's preferred version of a reply. Saving the reply unchanged clears
        the edit: an identical text says nothing about what to do differently."""
        preferred = check_text(preferred_text, "preferred reply")
        with self.db.read() as conn:
            original = self._assistant_message(conn, message_id)[1]
        return self._upsert(message_id, "edited_text", None if preferred == original.strip() else preferred, when)

    def _upsert(self, message_id: str, column: str, value: object, when: datetime | None) -> ReplyFeedback:
        now = ts(when or utcnow())
        with self.db.write() as conn:
            session_id, _ = self._assistant_message(conn, message_id)
            # `column` is one of two literals above, never caller text.
            conn.execute(
                f"INSERT INTO feedback(message_id, session_id, {column}, created_at, updated_at) "
                f"VALUES (?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET {column} = excluded.{column}, "
                "updated_at = excluded.updated_at", (message_id, session_id, value, now, now))
            row = conn.execute(f"SELECT {_COLUMNS} FROM feedback f WHERE f.message_id = ?", (message_id,)).fetchone()
        return _row(row)

    @staticmethod
    def _assistant_message(conn, message_id: str) -> tuple[str, str]:
        """(session id, content) of an assistant message, or a clear refusal."""
        if not isinstance(message_id, str) or not message_id:
            raise InvalidInputError("Give the id of the assistant reply to rate or edit.")
        row = conn.execute("SELECT session_id, role, content FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"No chat message {message_id!r}; its chat may have been deleted. "
                                "Reload the chat and try again.")
        if row[1] != "assistant":
            raise InvalidInputError("Only the assistant's replies can be rated or edited, not your own messages.")
        return row[0], row[2]

    def prune(self) -> int:
        """Drop feedback whose message is gone (its chat was deleted); returns how many rows."""
        with self.db.write() as conn:
            conn.execute("DELETE FROM feedback WHERE message_id NOT IN (SELECT id FROM messages)")
            return conn.changes()

    # ------------------------------------------------------------ reading
    def get(self, message_id: str) -> ReplyFeedback | None:
        """The feedback on one reply, or None when there is none."""
        with self.db.read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM feedback f WHERE f.message_id = ?", (message_id,)).fetchone()
        return None if row is None else _row(row)

    def all(self) -> list[ReplyFeedback]:
        """Every piece of feedback whose reply still exists, oldest first (ties by id: deterministic)."""
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM feedback f JOIN messages m ON m.id = f.message_id "
                                "ORDER BY f.created_at, f.message_id").fetchall()
        return [_row(r) for r in rows]

    def for_session(self, session_id: str) -> dict[str, ReplyFeedback]:
        """Feedback on the replies of one chat, by message id (the transcript shows it)."""
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM feedback f WHERE f.session_id = ?", (session_id,)).fetchall()
        return {r[0]: _row(r) for r in rows}

    def rated_turns(self) -> list[RatedTurn]:
        """Each piece of feedback with the user's message before the reply and the reply itself,
        sorted by reply id so the dataset built from them does not depend on row order."""
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS}, m.content, m.created_at, u.id, u.content FROM feedback f "
                "JOIN messages m ON m.id = f.message_id "
                "LEFT JOIN messages u ON u.id = (SELECT p.id FROM messages p WHERE p.session_id = m.session_id "
                "AND p.role = 'user' AND p.seq < m.seq ORDER BY p.seq DESC LIMIT 1) "
                "WHERE m.role = 'assistant' ORDER BY f.message_id").fetchall()
        return [RatedTurn(_row(r), r[9] or "", r[8] or "", r[6], from_ts(r[7])) for r in rows]
