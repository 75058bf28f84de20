"""Forget: every copy of the words goes (transcript, memories, index blocks, datasets, adapters,
activation states), checked in the decrypted database itself, free pages included."""
from __future__ import annotations

import uuid

import pytest

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.api import Memory
from memdesk.engine.cube import ChatMessage, MemoryType, SourceRef
from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.parametric.registry import AdapterRegistry
from memdesk.engine.parametric.types import Dataset, SftExample
from memdesk.engine.scheduler.queue import JobQueue
from memdesk.engine.vault.feedback import Feedback
from memdesk.engine.vault.forget import UNTITLED, forget_memory, forget_session
from memdesk.engine.vault.sessions import Sessions
from tests.conftest import FAST_KDF
from tests.engine.test_backup import store_dataset
from tests.engine.test_store import find_markers


def decrypted_image(mem: Memory) -> bytes:
    """Every page of the vault as SQLite reads it (decrypted), free pages and the WAL's newest included."""
    with mem.db.read() as conn:
        return conn.serialize("main")


def traces(mem: Memory, marker: str) -> list[str]:
    """Where the marker still is: any cell of any table, the FTS vocabulary, any byte of the image."""
    found = []
    with mem.db.read() as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                             "AND sql NOT LIKE 'CREATE VIRTUAL%'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for cell in row:
                    blob = cell if isinstance(cell, bytes) else str(cell).encode()
                    if marker.encode() in blob or marker[3:].encode() in blob:
                        found.append(table)
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms USING fts5vocab(main, memory_fts, 'row')")
        if conn.execute("SELECT count(*) FROM temp.fts_terms WHERE term LIKE ?", (marker[:12] + "%",)).fetchone()[0]:
            found.append("fts vocabulary")
    image = decrypted_image(mem)
    # The FTS5 index stores a term after the prefix it shares with the previous one: look for the tail too.
    if marker.encode() in image or marker[3:].encode() in image:
        found.append("decrypted pages")
    return sorted(set(found))


def chat_about(mem: Memory, marker: str, title_words: int = 8):
    """A chat the way engine.chat.turn stores one: transcript, raw turns, then an extracted fact."""
    sessions = Sessions(mem.db)
    text = f"My gym locker code is {marker} so remember it please"
    session = sessions.create(" ".join(text.split()[:title_words]) + "…")
    user = sessions.append(session.id, "user", text)
    reply = sessions.append(session.id, "assistant", f"Noted: your locker code is {marker}.")
    raw = mem.add_messages([ChatMessage("User", text, None, user.id, session.id, role="user"),
                            ChatMessage("Assistant", reply.content, None, reply.id, session.id, role="assistant")])
    fact = mem.add(f"The user's gym locker code is {marker}.", key="gym locker code",
                   memory_type=MemoryType.USER.value, sources=[SourceRef("chat", user.id, session.id)]).id
    return session, user, reply, [r.id for r in raw], fact


@pytest.fixture
def marker():
    return "qjx" + uuid.uuid4().hex


def test_forget_removes_every_copy_and_says_what_it_did(kw_mem, data_dir, tmp_path, marker, llama_model):
    session, user, reply, raw_ids, fact = chat_about(kw_mem, marker)
    copy = kw_mem.add(f"The user's gym locker code is {marker}.", scope="work").id  # same words, another scope
    kw_mem.update(fact, memory=f"The user's gym locker code is {marker} (the blue locker).")  # into history
    Feedback(kw_mem.db).edit(reply.id, f"Saved: {marker}.")
    snapshot = store_dataset(kw_mem, Dataset(sft=(SftExample(user.content, f"Saved: {marker}.", (reply.id, user.id)),)))
    unrelated = store_dataset(kw_mem, Dataset(sft=(SftExample("Hi", "Hello!", ("other",)),)))
    registry = AdapterRegistry(kw_mem.db)
    adapter = registry.create(base_fingerprint="base", base_name="m", trainer="torch", data_snapshot=snapshot,
                              config={})
    (tmp_path / "native").mkdir()
    (tmp_path / "native" / "adapter_config.json").write_text("{}")
    registry.store_weights(adapter.id, native_dir=tmp_path / "native", gguf_path=None)
    registry.set_status(adapter.id, "candidate")
    registry.activate(adapter.id, "base")
    llama_model.reset()
    ActivationCache(kw_mem.db).put(llama_model, llama_model.tokenize("Notes: the gym locker code."), [fact])
    JobQueue(kw_mem.db).enqueue("extract", {"memory_ids": [raw_ids[0]]})
    # What must survive: another chat, whose reply was given the fact, and an unrelated memory.
    other = Sessions(kw_mem.db).create("Tea")
    kept_reply = Sessions(kw_mem.db).append(other.id, "assistant", "You like green tea.", memory_ids=(fact,))
    tea = kw_mem.add("I like green tea").id

    assert "decrypted pages" in traces(kw_mem, marker)  # the scan sees the words before (not vacuous)
    report = forget_memory(kw_mem, fact[:8])

    assert sorted(report.memories) == sorted([fact, copy, *raw_ids])
    assert report.messages == 2 and report.feedback == 1 and report.retitled == [session.id]
    assert report.datasets == [snapshot] and report.adapters == [adapter.id] == report.adapters_active
    assert report.kv_states == 1 and report.jobs == 1 and report.unlinked_replies == 1
    assert "switched off" in report.summary() and "Forgot 4 memories, 2 chat messages" in report.summary()

    assert traces(kw_mem, marker) == []
    kw_mem.close()
    assert find_markers(data_dir, [marker]) == []
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as mem:
        assert mem.get(tea).memory == "I like green tea" and mem.search("green tea")[0].item.id == tea
        assert Sessions(mem.db).get(session.id).title == UNTITLED and Sessions(mem.db).messages(session.id) == []
        assert Sessions(mem.db).messages(other.id)[0].memory_ids == () and \
            Sessions(mem.db).messages(other.id)[0].id == kept_reply.id
        registry = AdapterRegistry(mem.db)
        stale = registry.get(adapter.id)
        assert stale.status == "retired" and "stale" in stale.metrics and not stale.has_native
        assert registry.active("base") is None
        with pytest.raises(InvalidInputError):
            registry.activate(adapter.id, "base")
        with mem.db.read() as conn:
            assert [r[0] for r in conn.execute("SELECT snapshot FROM adapter_datasets")] == [unrelated]


def test_purge_leaves_the_words_but_forget_session_does_not(kw_mem, marker):
    session, user, reply, raw_ids, fact = chat_about(kw_mem, marker)
    kw_mem.purge(fact)
    kw_mem.purge(raw_ids[0])
    assert "messages" in traces(kw_mem, marker)  # what purge leaves behind: the transcript
    with pytest.raises(NotFoundError, match="4 characters"):
        forget_session(kw_mem, session.id[:2])

    report = forget_session(kw_mem, session.id)
    assert report.sessions == [session.id] and report.messages == 2 and report.memories == [raw_ids[1]]
    assert traces(kw_mem, marker) == []
    with pytest.raises(NotFoundError):
        Sessions(kw_mem.db).get(session.id)


def test_a_failure_midway_forgets_nothing(kw_mem, marker, monkeypatch):
    session, user, reply, raw_ids, fact = chat_about(kw_mem, marker)
    from memdesk.engine.vault import items as vault

    calls = []

    def failing_purge(conn, rowid):
        calls.append(rowid)
        if len(calls) == 2:
            raise OSError("disk went away")
        return original(conn, rowid)

    original = vault.purge
    monkeypatch.setattr(vault, "purge", failing_purge)
    with pytest.raises(OSError):
        forget_memory(kw_mem, fact)
    monkeypatch.setattr(vault, "purge", original)
    assert kw_mem.get(fact) and all(kw_mem.get(i) for i in raw_ids)
    assert len(Sessions(kw_mem.db).messages(session.id)) == 2
    assert Sessions(kw_mem.db).get(session.id).title != UNTITLED


def test_unknown_ids_are_clear(kw_mem):
    with pytest.raises(NotFoundError):
        forget_memory(kw_mem, "ffffffff")
    with pytest.raises(NotFoundError):
        forget_session(kw_mem, "no-such-chat")
