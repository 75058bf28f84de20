"""Forget: remove every copy of some words, not just the memory that shows them.

`purge` erases one memory row. The same words also live in the chat transcript, in the
raw turn and in every fact extracted from it, in the keyword index blocks, in stored
training datasets, in adapters trained on those, and in cached KV states. A forget starts
from a memory or a chat session and removes all of it in one transaction:

- the words: the memory, every memory that cites the same chat messages (the raw turns and
  what was extracted from them, followed to a fixed point), every memory with the same text
  (another copy, any scope or status), their history, tags, edges, vectors and index rows;
- the transcript: those messages, the assistant reply that answered each forgotten user
  message, their feedback, and a chat title made from a forgotten message; replies that
  were merely given a forgotten memory keep their text but lose the link to it;
- what was derived: training datasets that cite a forgotten memory or message or contain
  its text are deleted; adapters trained on them are switched off, their weights erased and
  marked stale (the nightly job trains a new one without it); every activation state is
  dropped (a KV state can hold the words with no index pointing back to them); queued jobs
  about forgotten memories are dropped.

Then the keyword index is optimised (its segments rewritten without the words, on top of
FTS5 secure-delete), deleted content is overwritten (SQLite secure_delete), and the WAL is
checkpointed and truncated, so no page of the vault, free or used, still holds the words.
A note file the words were ingested from is the person's own: the report names it.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import apsw

from memdesk.engine.cube import ts, utcnow
from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.text import content_hash
from memdesk.engine.vault import items as vault

_CHUNK = 400
UNTITLED = "Untitled chat"


@dataclass
class ForgetReport:
    memories: list[str] = field(default_factory=list)  # ids erased
    messages: int = 0  # transcript messages erased
    sessions: list[str] = field(default_factory=list)  # chats erased whole
    retitled: list[str] = field(default_factory=list)  # chats whose title quoted forgotten words
    unlinked_replies: int = 0  # replies that keep their text but no longer cite a forgotten memory
    feedback: int = 0
    datasets: list[str] = field(default_factory=list)  # snapshots erased
    adapters: list[str] = field(default_factory=list)  # switched off, weights erased, marked stale
    adapters_active: list[str] = field(default_factory=list)  # of those, the ones that were in use
    kv_states: int = 0
    jobs: int = 0
    files: list[str] = field(default_factory=list)  # note files that still hold the words

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """What was done, in words, for the CLI and the app."""
        parts = [f"{len(self.memories)} {'memory' if len(self.memories) == 1 else 'memories'}",
                 f"{self.messages} chat message{'s' if self.messages != 1 else ''}"]
        if self.sessions:
            parts.append(f"{len(self.sessions)} chat{'s' if len(self.sessions) != 1 else ''}")
        for count, what in ((self.feedback, "rating/edit"), (len(self.datasets), "training dataset"),
                            (self.kv_states, "cached activation state"), (self.jobs, "queued job")):
            if count:
                parts.append(f"{count} {what}{'s' if count != 1 else ''}")
        lines = ["Forgot " + ", ".join(parts) + "; the keyword index was rewritten and freed space overwritten."]
        if self.adapters:
            active = f" (including the active one, {self.adapters_active[0][:8]}; the model runs without it)" \
                if self.adapters_active else ""
            lines.append(f"{len(self.adapters)} adapter{'s' if len(self.adapters) != 1 else ''} trained on it "
                         f"{'were' if len(self.adapters) != 1 else 'was'} switched off and erased{active}; the "
                         "nightly job trains a new one without it.")
        if self.retitled:
            lines.append(f"{len(self.retitled)} chat title{'s' if len(self.retitled) != 1 else ''} quoting it "
                         f"became '{UNTITLED}'.")
        if self.unlinked_replies:
            lines.append(f"{self.unlinked_replies} other repl{'ies' if self.unlinked_replies != 1 else 'y'} had "
                         "been given it; they were kept, without the link.")
        for path in self.files:
            lines.append(f"The note file {path} still holds the words: edit it, or MemDesk reads them again "
                         "when the file changes.")
        return "\n".join(lines)


# ------------------------------------------------------------------ entry points
class _Preview(Exception):
    """Raised inside the transaction of a preview so that everything it did is rolled back."""


def forget_memory(mem, memory_id: str, *, preview: bool = False) -> ForgetReport:
    """Forget a memory with everything derived from the same words (see the module doc).
    `preview=True` reports what would go and changes nothing."""
    def seeds(conn):
        return {vault.resolve(conn, memory_id)[1]}, set(), set()

    return _run(mem, seeds, preview)


def forget_session(mem, session_id: str, *, preview: bool = False) -> ForgetReport:
    """Forget a whole chat: its transcript, and every memory drawn from it."""
    def seeds(conn):
        session = _resolve_session(conn, session_id)
        messages = {r[0] for r in conn.execute("SELECT id FROM messages WHERE session_id = ?", (session,))}
        memories = {r[0] for r in conn.execute(
            "SELECT DISTINCT m.id FROM memories m, json_each(m.sources) s "
            "WHERE json_extract(s.value, '$.session_id') = ?", (session,))}
        return memories, messages, {session}

    return _run(mem, seeds, preview)


def _run(mem, seeds, preview: bool) -> ForgetReport:
    report = ForgetReport()
    try:
        with mem.db.write() as conn:
            report = _forget(conn, *seeds(conn))
            if preview:
                raise _Preview
    except _Preview:
        return report
    return _finish(mem, report)


def _resolve_session(conn: apsw.Connection, session_id: str) -> str:
    """A chat id, or an unambiguous prefix of at least 4 characters."""
    session_id = (session_id or "").strip()
    if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
        return session_id
    if len(session_id) < 4:
        raise NotFoundError(f"No chat session {session_id!r}; give its id, or at least its first 4 characters.")
    rows = conn.execute("SELECT id FROM sessions WHERE id >= ? AND id < ? LIMIT 2",
                        (session_id, session_id + "\uffff")).fetchall()
    if len(rows) > 1:
        raise InvalidInputError(f"The id prefix {session_id!r} matches several chats; type more of it.")
    if not rows:
        raise NotFoundError(f"No chat session {session_id!r}.")
    return rows[0][0]


# ------------------------------------------------------------------ the closure
def _forget(conn: apsw.Connection, memory_ids: set[str], message_ids: set[str], sessions: set[str]) -> ForgetReport:
    memories, messages = _closure(conn, memory_ids, message_ids)
    texts = _texts(conn, memories, messages)
    report = ForgetReport(sessions=sorted(sessions))

    report.files = sorted({r[0] for r in _chunked(conn, "SELECT DISTINCT c.path FROM ingest_chunks c "
                                                        "WHERE c.memory_id IN ({marks})", memories)})
    report.datasets = _datasets_citing(conn, memories | messages, texts)
    report.adapters, report.adapters_active = _stale_adapters(conn, report.datasets)
    report.retitled = _retitle(conn, messages, sessions)
    report.unlinked_replies = _unlink_replies(conn, memories, messages)

    report.kv_states = conn.execute("SELECT count(*) FROM kv_states").fetchone()[0]
    conn.execute("DELETE FROM kv_states")
    report.jobs = _drop_jobs(conn, memories | messages | sessions)
    report.feedback = _delete(conn, "DELETE FROM feedback WHERE message_id IN ({marks})", messages)
    _delete(conn, "DELETE FROM ingest_chunks WHERE memory_id IN ({marks})", memories)
    for rowid, full_id in sorted(_chunked(conn, "SELECT rowid, id FROM memories WHERE id IN ({marks})", memories)):
        vault.purge(conn, rowid)
        report.memories.append(full_id)
    report.messages = _delete(conn, "DELETE FROM messages WHERE id IN ({marks})", messages)
    for session in sessions:
        conn.execute("DELETE FROM sessions WHERE id = ?", (session,))
    # Segments rewritten without the deleted entries: FTS5 keeps tokens of deleted rows in its
    # index blocks until a merge, and secure-delete covers only deletes made after it was set.
    conn.execute("INSERT INTO memory_fts(memory_fts) VALUES ('optimize')")
    return report


def _closure(conn: apsw.Connection, memories: set[str], messages: set[str]) -> tuple[set[str], set[str]]:
    """Memories and messages that carry the same words, to a fixed point: the messages a memory
    cites, the memories citing a message (raw turns, extracted facts), copies of the same text,
    and the assistant reply that answered a forgotten user message."""
    memories, messages = set(memories), set(messages)
    while True:
        found_messages = set(messages)
        for (sources,) in _chunked(conn, "SELECT sources FROM memories WHERE id IN ({marks})", memories):
            found_messages |= {s["message_id"] for s in json.loads(sources)
                               if isinstance(s, dict) and isinstance(s.get("message_id"), str)}
        found_messages |= {r[0] for r in _chunked(
            conn, "SELECT a.id FROM messages u JOIN messages a ON a.session_id = u.session_id AND a.seq = u.seq + 1 "
                  "WHERE u.id IN ({marks}) AND u.role = 'user' AND a.role = 'assistant'", found_messages)}
        found_memories = set(memories)
        found_memories |= {r[0] for r in _chunked(
            conn, "SELECT DISTINCT m.id FROM memories m, json_each(m.sources) s "
                  "WHERE json_extract(s.value, '$.message_id') IN ({marks})", found_messages)}
        hashes = {r[0] for r in _chunked(conn, "SELECT content_hash FROM memories WHERE id IN ({marks})",
                                         found_memories)}
        hashes |= {content_hash(t) for t in _earlier_texts(conn, found_memories)}
        found_memories |= {r[0] for r in _chunked(conn, "SELECT id FROM memories WHERE content_hash IN ({marks})",
                                                  hashes)}
        if found_memories == memories and found_messages == messages:
            return memories, messages
        memories, messages = found_memories, found_messages


def _texts(conn: apsw.Connection, memories: set[str], messages: set[str]) -> set[str]:
    """The forgotten words themselves (current and earlier versions), to find copies no id links to."""
    texts = {r[0] for r in _chunked(conn, "SELECT memory FROM memories WHERE id IN ({marks})", memories)}
    texts |= {r[0] for r in _chunked(conn, "SELECT content FROM messages WHERE id IN ({marks})", messages)}
    texts |= _earlier_texts(conn, memories)
    # A raw turn is stored as "Speaker: text"; the dataset quotes the text alone.
    texts |= {t.split(": ", 1)[1] for t in texts if ": " in t}
    return {t.strip() for t in texts if len(t.strip()) >= 8}


def _earlier_texts(conn: apsw.Connection, memories: set[str]) -> set[str]:
    texts = set()
    for (snapshot,) in _chunked(conn, "SELECT v.snapshot FROM memory_versions v JOIN memories m "
                                      "ON m.rowid = v.memory_rowid WHERE m.id IN ({marks})", memories):
        text = json.loads(snapshot).get("memory")
        if isinstance(text, str) and text.strip():
            texts.add(text)
    return texts


def _datasets_citing(conn: apsw.Connection, ids: set[str], texts: set[str]) -> list[str]:
    needles = list(ids) + [json.dumps(t, ensure_ascii=False)[1:-1] for t in texts]
    out = []
    for snapshot, data in conn.execute("SELECT snapshot, data FROM adapter_datasets"):
        if any(needle in data for needle in needles):
            out.append(snapshot)
    _delete(conn, "DELETE FROM adapter_datasets WHERE snapshot IN ({marks})", set(out))
    return sorted(out)


def _stale_adapters(conn: apsw.Connection, snapshots: list[str]) -> tuple[list[str], list[str]]:
    rows = list(_chunked(conn, "SELECT id, status, metrics FROM adapters WHERE data_snapshot IN ({marks})",
                         set(snapshots)))
    for adapter_id, status, metrics in rows:
        info = json.loads(metrics or "{}")
        info["stale"] = f"trained on data that was forgotten on {utcnow():%Y-%m-%d}; weights erased"
        # Retired, not failed: its record and gate results stay for the person to see; with no
        # weights it can never be switched on again (AdapterRegistry.activate refuses).
        new_status = "retired" if status in ("active", "candidate", "retired", "training") else status
        conn.execute("UPDATE adapters SET status = ?, metrics = ?, gguf = NULL, native = NULL, checkpoint = NULL, "
                     "size_bytes = 0 WHERE id = ?", (new_status, json.dumps(info, sort_keys=True), adapter_id))
    return sorted(r[0] for r in rows), sorted(r[0] for r in rows if r[1] == "active")


def _retitle(conn: apsw.Connection, messages: set[str], erased_sessions: set[str]) -> list[str]:
    """A chat is titled after its first message: a title quoting a forgotten message goes too."""
    out = []
    for session, title, content in _chunked(conn, "SELECT s.id, s.title, m.content FROM messages m JOIN sessions s "
                                                  "ON s.id = m.session_id WHERE m.id IN ({marks})", messages):
        if session in erased_sessions or session in out:
            continue
        words = title.rstrip("…").split()
        if words and content.split()[:len(words)] == words:
            conn.execute("UPDATE sessions SET title = ?, updated_at = ? WHERE id = ?",
                         (UNTITLED, ts(utcnow()), session))
            out.append(session)
    return out


def _unlink_replies(conn: apsw.Connection, memories: set[str], erased: set[str]) -> int:
    count = 0
    if not memories:
        return 0
    rows = conn.execute("SELECT id, memory_ids FROM messages WHERE memory_ids != '[]'").fetchall()
    for message_id, raw in rows:
        if message_id in erased:
            continue
        given = json.loads(raw)
        kept = [m for m in given if m not in memories]
        if len(kept) != len(given):
            conn.execute("UPDATE messages SET memory_ids = ? WHERE id = ?", (json.dumps(kept), message_id))
            count += 1
    return count


def _drop_jobs(conn: apsw.Connection, ids: set[str]) -> int:
    dropped = [job_id for job_id, payload in conn.execute("SELECT id, payload FROM jobs")
               if any(i in payload for i in ids)]
    return _delete(conn, "DELETE FROM jobs WHERE id IN ({marks})", set(dropped))


# ------------------------------------------------------------------ helpers
def _chunked(conn: apsw.Connection, sql: str, values: Iterable) -> list[tuple]:
    values = list(values)
    rows: list[tuple] = []
    for start in range(0, len(values), _CHUNK):
        part = values[start:start + _CHUNK]
        rows += conn.execute(sql.format(marks=",".join("?" * len(part))), part).fetchall()
    return rows


def _delete(conn: apsw.Connection, sql: str, values: set) -> int:
    total = 0
    values_list = list(values)
    for start in range(0, len(values_list), _CHUNK):
        part = values_list[start:start + _CHUNK]
        conn.execute(sql.format(marks=",".join("?" * len(part))), part)
        total += conn.changes()
    return total


def _finish(mem, report: ForgetReport) -> ForgetReport:
    """After the commit: old page versions leave the WAL, and the views refresh."""
    checkpoint(mem)
    if report.memories:
        for hook in mem.on_changed:
            hook(list(report.memories))
    return report


def checkpoint(mem) -> bool:
    """Copy the WAL into the vault and truncate it; False when a reader kept part of it."""
    with mem.db.exclusive() as conn:
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except apsw.BusyError:
            return False
    return not busy
