"""The chat turn on the real embedded model (SmolLM2-135M): replies that use what was told before.

Facts are told through `Chat.send` and extracted by the rule half of MemReader (as the app
does when no larger model is loaded); the question is asked in a new session.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")

from memdesk.engine.chat.context import COMPACT, choose_profile  # noqa: E402
from memdesk.engine.chat.notes import is_assistant_turn  # noqa: E402
from memdesk.engine.chat.turn import Chat, ChatConfig  # noqa: E402
from memdesk.engine.cube import Filters, MemoryType  # noqa: E402
from memdesk.engine.curation import Resolution, conflicts, resolve  # noqa: E402
from memdesk.engine.errors import ModelError  # noqa: E402
from memdesk.engine.llm.base import turn_markers  # noqa: E402
from memdesk.engine.reader.jobs import EXTRACT_JOB  # noqa: E402
from memdesk.engine.reader.memreader import MemReader  # noqa: E402
from memdesk.engine.scheduler.queue import JobQueue  # noqa: E402

T0 = datetime(2026, 9, 1, 18, 0, tzinfo=UTC)


@pytest.fixture
def chat(mem, llama_model):
    llama_model.reset()
    jobs = JobQueue(mem.db)
    jobs.handlers[EXTRACT_JOB] = MemReader(mem, None).handle_job
    return Chat(mem, llama_model, ChatConfig(max_reply_tokens=40), jobs=jobs)


def tell(chat: Chat, text: str, when: datetime) -> None:
    chat.send(text, now=when).text()
    chat.jobs.drain()
    chat.mem.wait_indexed()


def ask(chat: Chat, question: str, when: datetime):
    response = chat.send(question, now=when)
    return response.text(), response.result


def test_the_embedded_model_gets_the_compact_layout(llama_model):
    assert choose_profile(llama_model.info) is COMPACT
    assert 100e6 < llama_model.info.n_params < 200e6
    assert "<|im_end|>" in turn_markers(llama_model) and "<|im_start|>" in turn_markers(llama_model)


def test_a_fact_told_in_one_chat_is_answered_in_the_next(chat):
    tell(chat, "My dog is called Pepper.", T0)
    tell(chat, "I'm allergic to kiwi fruit, found that out the hard way.", T0 + timedelta(days=1))
    reply, result = ask(chat, "What's my dog's name?", T0 + timedelta(days=2))
    assert "Pepper" in reply
    assert result.profile == "compact" and any("Pepper" in m.memory for m in result.memories)
    assert "Notes about me:" in result.prompt and "Your dog is called Pepper." in result.prompt
    reply, _ = ask(chat, "What food am I allergic to?", T0 + timedelta(days=2))
    assert "kiwi" in reply.lower()


def test_a_plain_correction_is_answered_with_the_new_value(chat):
    tell(chat, "My favourite colour is yellow.", T0)
    tell(chat, "Actually, my favourite colour isn't yellow any more, it's teal.", T0 + timedelta(days=30))
    reply, result = ask(chat, "What's my favourite colour?", T0 + timedelta(days=31))
    assert "teal" in reply.lower() and "yellow" not in reply.lower()
    assert not any("yellow" in m.memory and "teal" not in m.memory for m in result.memories)


def test_a_conflict_resolved_by_hand_is_answered_with_the_kept_value(chat):
    tell(chat, "My sister Ana lives in Lisbon.", T0)
    fact = chat.mem.find_by_key("sister ana / location")[0]
    chat.mem.update(fact.id, pinned=True)
    tell(chat, "Ana moved to Porto.", T0 + timedelta(days=40))
    pair = conflicts(chat.mem)[0]
    resolve(chat.mem, pair.first.id, pair.second.id, Resolution.KEEP_SECOND)
    reply, result = ask(chat, "Which city does my sister live in?", T0 + timedelta(days=41))
    assert "Porto" in reply and "Lisbon" not in reply
    assert "Lisbon" not in " ".join(m.memory for m in result.memories)


def test_the_assistants_words_are_never_given_as_facts_about_the_user(chat):
    tell(chat, "Tomatoes and chillies grow in my back garden.", T0)  # not a telling the turn acknowledges
    assistant_turns = [m for m in chat.mem.list(Filters(memory_types=(MemoryType.RAW_CHAT.value,)))
                       if is_assistant_turn(m)]
    assert assistant_turns  # the reply is stored and searchable...
    reply, result = ask(chat, "What do I grow in my garden?", T0 + timedelta(days=1))
    # (what was told may be given as the memory or as the lasting disclosure drawn from it)
    given = result.memories + result.preferences
    assert given and not any(is_assistant_turn(m) for m in given)  # ...never given
    assert "tomato" in reply.lower() or "chilli" in reply.lower()
    # Nor is the question itself given as a fact next time.
    _, again = ask(chat, "What do I grow in my garden?", T0 + timedelta(days=2))
    assert not any(m.memory.endswith("garden?") for m in again.memories)


def test_a_personal_question_nothing_answers_is_met_with_i_dont_know(chat):
    tell(chat, "My dog is called Pepper.", T0)
    reply, result = ask(chat, "What is my blood type?", T0 + timedelta(days=1))
    assert reply.startswith("I don't know") and result.reply_prefix
    assert result.memories == ()


def test_a_telling_is_acknowledged_in_the_persons_words_and_a_request_is_not(chat):
    """The 135M model answered "My sister Ana lives in Porto." with "Amara, a la Ana! (Sí) Elle
    María..." (seen in the app): on the compact layout a message that only tells something about
    the person is acknowledged in their words, and remembered as ever."""
    reply, result = ask(chat, "My sister Ana lives in Porto.", T0)
    assert reply == "Got it: your sister Ana lives in Porto. I'll remember that."
    assert result.stats.completion_tokens == 0 and result.memories == ()
    # In the transcript, not a second memory of the fact (it would outlive a correction).
    assert not any("Got it" in m.memory for m in chat.mem.list(Filters(memory_types=(MemoryType.RAW_CHAT.value,))))
    chat.jobs.drain()
    _, later = ask(chat, "Where does my sister live?", T0 + timedelta(days=1))
    assert any("Porto" in m.memory for m in later.memories)
    for request in ("Plan my Saturday in Lisbon.", "I'd like a recipe for dinner.", "Where is my passport?"):
        reply, _ = ask(chat, request, T0 + timedelta(days=2))
        assert not reply.startswith("Got it:"), request


def test_the_reply_stops_at_the_templates_turn_markers(chat, llama_model):
    opener = llama_model.tokenize("<|im_start|>")
    end_of_turn = llama_model.tokenize("<|im_end|>")
    assert len(opener) == 1 and len(end_of_turn) == 1
    banned = llama_model._no_turn_openers()  # streamed as empty text, so never generated at all
    assert opener[0] in banned and end_of_turn[0] not in banned
    reply, result = ask(chat, "Say hello to me in one sentence.", T0)
    assert reply.strip() and "<|im" not in reply and "\nUser:" not in reply
    assert result.stats.stopped_by in ("stop", "eos", "length")
    assert {"<|im_end|>", "<|im_start|>", "\nUser:"} <= set(chat._stops)


def test_an_overlong_message_is_refused_and_nothing_is_stored(chat):
    before = chat.mem.count(Filters(statuses=()))
    with pytest.raises(ModelError, match="too long"):
        chat.send("Please read this. " + "word " * 2600, now=T0)
    assert chat.sessions.list() == [] and chat.mem.count(Filters(statuses=())) == before
    assert chat.jobs.drain() == 0
