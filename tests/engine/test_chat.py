"""The chat turn on the scripted FakeModel: retrieval, budget, storage, extraction jobs."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memdesk.engine.chat.turn import Chat, ChatConfig
from memdesk.engine.cube import MemoryType
from memdesk.engine.errors import ModelError
from memdesk.engine.llm.fake import FakeModel
from memdesk.engine.reader.jobs import EXTRACT_JOB
from memdesk.engine.reader.memreader import MemReader
from memdesk.engine.scheduler.queue import JobQueue

NOW = datetime(2024, 6, 19, 10, 0, tzinfo=UTC)


def make_chat(mem, n_ctx=2048, **config) -> tuple[Chat, FakeModel, JobQueue]:
    model = FakeModel(n_ctx=n_ctx)
    jobs = JobQueue(mem.db)
    jobs.handlers[EXTRACT_JOB] = MemReader(mem, None, user_name="Sam").handle_job
    return Chat(mem, model, ChatConfig(user_name="Sam", **config), jobs=jobs), model, jobs


def test_a_turn_streams_stores_both_messages_and_records_memories_given(mem):
    fact = mem.add("Sam's sister Ana lives in Lisbon", memory_type=MemoryType.USER).id
    mem.wait_indexed()
    chat, model, _ = make_chat(mem)
    model.enqueue("She lives in Lisbon.")
    response = chat.send("where does my sister live?", now=NOW)
    pieces = list(response)
    assert "".join(pieces) == "She lives in Lisbon." and len(pieces) == 4
    result = response.result
    assert fact in result.memory_ids
    assert "Ana lives in Lisbon" in model.prompts[0]
    messages = chat.sessions.messages(result.session_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].memory_ids and fact in messages[1].memory_ids
    assert mem.get(fact).usage_count == 1
    raw = mem.list(filters=__import__("memdesk.engine.cube", fromlist=["Filters"]).Filters(
        memory_types=(MemoryType.RAW_CHAT.value,)))
    assert {r.memory for r in raw} == {"Sam: where does my sister live?", "Assistant: She lives in Lisbon."}


def test_preferences_are_instructions_in_the_prompt(mem):
    mem.add("Sam prefers short answers.", memory_type=MemoryType.PREFERENCE)
    mem.wait_indexed()
    chat, model, _ = make_chat(mem)
    chat.send("tell me about the weather in Oslo", now=NOW).text()
    assert "preferences. Your reply must respect them" in model.prompts[0]
    assert "Sam prefers short answers." in model.prompts[0]


def test_budget_trims_oldest_turns_first_and_keeps_pinned(mem):
    pinned = mem.add("Sam is allergic to peanuts", pinned=True).id
    mem.wait_indexed()
    chat, model, _ = make_chat(mem, n_ctx=260, max_reply_tokens=40, extract=False)
    session = None
    for i in range(12):
        response = chat.send(f"message number {i} " + "filler " * 12, session, now=NOW)
        response.text()
        session = response.result.session_id
    last = response.result
    prompt = model.prompts[-1]
    assert len(model.tokenize(prompt)) <= 260 - 40
    assert pinned in last.memory_ids and "allergic to peanuts" in prompt
    assert 0 < last.history_used < 22
    assert "message number 10" in prompt and "message number 0 " not in prompt


def test_a_message_too_long_for_the_context_is_refused_clearly(mem):
    chat, _, _ = make_chat(mem, n_ctx=400, max_reply_tokens=16)
    with pytest.raises(ModelError, match="too long"):
        chat.send("word " * 500, now=NOW)
    assert chat.sessions.list() == []  # no empty session is left behind
    chat.model.enqueue("Hi.")
    first = chat.send("hello", now=NOW)
    first.text()
    session = first.result.session_id
    with pytest.raises(ModelError, match="too long"):
        chat.send("word " * 500, session, now=NOW)
    assert [m.content for m in chat.sessions.messages(session)] == ["hello", "Hi."]  # nor a half turn


def test_a_stopped_reply_stores_what_was_written(mem):
    chat, model, _ = make_chat(mem)
    model.enqueue("The first part of a long answer and then more words")
    response = chat.send("Tell me everything", now=NOW)
    pieces = iter(response)
    written = "".join(next(pieces) for _ in range(3))
    pieces.close()
    response.stop()
    session = response.result.session_id
    stored = chat.sessions.messages(session)
    assert [m.role for m in stored] == ["user", "assistant"] and stored[1].content == written.strip()
    response.stop()  # twice is harmless
    assert len(chat.sessions.messages(session)) == 2


def test_fact_from_one_session_is_given_in_a_later_one_and_a_correction_wins(mem):
    chat, model, jobs = make_chat(mem)
    chat.send("My sister Ana lives in Lisbon.", now=NOW).text()
    assert jobs.drain() == 1
    facts = mem.find_by_key("sister ana / location")
    assert len(facts) == 1 and "Lisbon" in facts[0].memory
    mem.wait_indexed()

    later = chat.send("Where does my sister live?", now=NOW)
    later.text()
    assert facts[0].id in later.result.memory_ids
    assert "Ana lives in Lisbon" in model.prompts[-1]

    chat.send("Ana moved to Porto last month.", now=NOW).text()
    jobs.drain()
    current = mem.find_by_key("sister ana / location")
    assert len(current) == 1 and current[0].id == facts[0].id and "Porto" in current[0].memory
    assert any("Lisbon" in v.item.memory for v in mem.history(current[0].id))
    mem.wait_indexed()
    third = chat.send("Where does my sister live now?", now=NOW)
    third.text()
    assert current[0].id in third.result.memory_ids
    assert "Porto" in model.prompts[-1]


def test_a_reply_ends_where_the_model_starts_writing_the_users_turn(mem):
    chat, model, _ = make_chat(mem)
    model.enqueue("Fine, thanks.\nSam: and you?\nAssistant: great")
    assert chat.send("How are you?", now=NOW).text() == "Fine, thanks."
    model.enqueue("Sure.\n<|user|>\nmore")
    assert chat.send("Hi", now=NOW).text().strip() == "Sure."
    assert "\nSam:" in model.configs[0].stop and "<|user|>" in model.configs[0].stop
