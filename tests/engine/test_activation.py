"""Activation memory on the real embedded model: store, match, restore, reject, invalidate, evict."""
from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")

from datetime import UTC

from memdesk.engine.activation.states import ActivationCache  # noqa: E402
from memdesk.engine.errors import ModelError  # noqa: E402
from memdesk.engine.llm.base import ChatTurn, GenerationConfig  # noqa: E402


@pytest.fixture
def model(llama_model):
    llama_model.reset()
    return llama_model


def prompts(model):
    prefix = model.render_chat([ChatTurn("system", "You are MemDesk. What you remember about the user:\n"
                                                   "- The user's sister Ana lives in Porto.\n"
                                                   "- The user likes hiking and short answers.")],
                               add_generation_prompt=False)
    prompt = prefix + model.render_chat([ChatTurn("user", "Where does my sister live?")])
    return model.tokenize(prefix), prompt, model.tokenize(prompt)


def test_a_stored_prefix_is_found_restored_and_gives_the_same_reply(kw_mem, model):
    cache = ActivationCache(kw_mem.db)
    prefix, prompt, prompt_tokens = prompts(model)
    model.reset()
    cold = "".join(model.stream(prompt, GenerationConfig(max_tokens=16)))
    cache.put(model, prefix, memory_ids=["m-sister"], label="session")
    model.reset()
    record = cache.find(model, prompt_tokens)
    assert record is not None and record.n_tokens == len(prefix)
    assert cache.restore(model, record, prompt_tokens)
    assert "".join(model.stream(prompt, GenerationConfig(max_tokens=16))) == cold
    stats = cache.stats()
    assert stats["states"] == 1 and stats["hits"] == 1 and stats["bytes"] == record.bytes
    assert cache.find(model, model.tokenize("an unrelated prompt")) is None


def test_a_state_is_found_only_for_the_same_adapter_and_cache_format(kw_mem, model):
    """A LoRA changes every layer's keys and values, and a state's bytes follow the cache's
    number format: a state saved under either one must never be restored under the other."""
    from dataclasses import replace

    assert model.info.kv_cache == "k-q8_0" and model.info.state_key.endswith("+kv=k-q8_0")
    cache = ActivationCache(kw_mem.db)
    prefix, _, prompt_tokens = prompts(model)
    cache.put(model, prefix)
    assert cache.find(model, prompt_tokens) is not None
    real = model.info
    try:
        for other in (replace(real, adapter="some-adapter"), replace(real, kv_cache=""),
                      replace(real, kv_cache="q8_0")):
            model.info = other
            assert cache.find(model, prompt_tokens) is None and not cache.has(model, prefix)
    finally:
        model.info = real
    assert cache.find(model, prompt_tokens) is not None


def test_a_16_bit_cache_saves_and_restores_too(kw_mem, monkeypatch):
    from memdesk.engine.llm.llama_backend import KV_CACHE_ENV, LlamaCppModel
    from memdesk.engine.llm.registry import embedded_model_path

    monkeypatch.setenv(KV_CACHE_ENV, "f16")
    sixteen = LlamaCppModel(embedded_model_path(), n_ctx=1024)
    try:
        assert sixteen.info.kv_cache == "" and sixteen.info.state_key == sixteen.info.fingerprint
        cache = ActivationCache(kw_mem.db)
        prefix, prompt, prompt_tokens = prompts(sixteen)
        cold = "".join(sixteen.stream(prompt, GenerationConfig(max_tokens=12)))
        cache.put(sixteen, prefix)
        sixteen.reset()
        assert cache.restore(sixteen, cache.find(sixteen, prompt_tokens), prompt_tokens)
        assert "".join(sixteen.stream(prompt, GenerationConfig(max_tokens=12))) == cold
    finally:
        sixteen.close()
    monkeypatch.setenv(KV_CACHE_ENV, "q4")
    with pytest.raises(ModelError, match="KV cache format"):
        LlamaCppModel(embedded_model_path(), n_ctx=1024)


def test_a_damaged_state_is_rejected_and_deleted_never_used(kw_mem, model):
    cache = ActivationCache(kw_mem.db)
    prefix, _, prompt_tokens = prompts(model)
    record = cache.put(model, prefix)
    with kw_mem.db.write() as conn:
        conn.execute("UPDATE kv_states SET state = zeroblob(bytes) WHERE id = ?", (record.id,))
    assert cache.restore(model, record, prompt_tokens) is False
    assert cache.stats()["states"] == 0 and cache.rejected == 1


def test_a_changed_memory_invalidates_the_prefixes_that_rendered_it(kw_mem, model):
    cache = ActivationCache(kw_mem.db)
    kw_mem.on_changed.append(cache.invalidate_memories)
    fact = kw_mem.add("The user's sister Ana lives in Porto.").id
    prefix, _, prompt_tokens = prompts(model)
    cache.put(model, prefix, memory_ids=[fact])
    cache.put(model, prefix[:-3], memory_ids=["another"])
    kw_mem.update(fact, memory="The user's sister Ana lives in Braga.")
    remaining = cache.find(model, prompt_tokens)
    assert remaining is not None and remaining.n_tokens == len(prefix) - 3


def test_least_recently_used_states_are_evicted_over_the_cap(kw_mem, model):
    prefix, _, _ = prompts(model)
    probe = ActivationCache(kw_mem.db).put(model, prefix[:10])
    cache = ActivationCache(kw_mem.db, cap_bytes=int(probe.bytes * 2.5))
    for n in (11, 12, 13):
        cache.put(model, prefix[:n])
    assert cache.stats()["states"] == 2
    assert cache.find(model, prefix[:11] + [1]) is None  # the two oldest went first
    assert cache.find(model, prefix[:13] + [1]).n_tokens == 13


def test_chat_restores_the_memory_prefix_and_replies_exactly_as_from_scratch(mem, model):
    from memdesk.engine.chat.turn import Chat, ChatConfig
    from memdesk.engine.cube import MemoryType

    mem.add("The user prefers short answers.", memory_type=MemoryType.PREFERENCE, priority=5)
    mem.add("The user's sister Ana lives in Porto.", pinned=True)
    mem.wait_indexed()
    config = ChatConfig(max_reply_tokens=24, extract=False, profile="full")
    cold = Chat(mem, model, config)  # no activation memory
    model.reset()
    expected = cold.send("Where does my sister live?").text()

    cache = ActivationCache(mem.db)
    chat = Chat(mem, model, config, activation=cache)
    first = chat.send("Where does my sister live?")
    assert first.text() == expected and first.result.activation == "stored"
    model.reset()  # as after a restart: nothing evaluated
    second = chat.send("Where does my sister live?")
    assert second.text() == expected and second.result.activation == "hit"
    assert cache.stats()["hits"] == 1
    # Editing a memory inside the prefix invalidates it.
    mem.on_changed.append(cache.invalidate_memories)
    pinned = mem.list(__import__("memdesk.engine.cube", fromlist=["Filters"]).Filters(pinned=True))[0]
    mem.update(pinned.id, memory="The user's sister Ana lives in Braga.")
    assert cache.stats()["states"] == 0


def test_next_scene_prefers_habits_of_this_time_of_day(kw_mem):
    from datetime import datetime, timedelta

    from memdesk.engine.chat.turn import Chat
    from memdesk.engine.llm.fake import FakeModel
    from memdesk.engine.scheduler.next_scene import habitual, hour_closeness

    morning = datetime(2026, 11, 20, 8, 0).astimezone()
    evening = morning.replace(hour=21)
    assert hour_closeness(morning, morning) == 1.0
    assert hour_closeness(morning.replace(hour=20), morning) == 0.0
    assert hour_closeness(morning.replace(hour=23), morning.replace(hour=1) + timedelta(days=1)) > 0.8
    commute = kw_mem.add("The user's train to work leaves at 8:12.").id
    recipes = kw_mem.add("The user cooks risotto on Fridays.").id
    for _ in range(2):
        kw_mem.mark_used([commute, recipes])
    kw_mem.mark_used([recipes])  # recipes used more often, but in the evening
    with kw_mem.db.write() as conn:
        for memory_id, when in ((commute, morning), (recipes, evening)):
            conn.execute("UPDATE memories SET last_used_at = ? WHERE id = ?",
                         (when.astimezone(UTC).timestamp(), memory_id))
    chat = Chat(kw_mem, FakeModel())
    assert [m.id for m in habitual(chat, morning + timedelta(days=1))] == [commute, recipes]
    assert [m.id for m in habitual(chat, evening + timedelta(days=1))] == [recipes, commute]


def test_the_memory_added_trigger_rebuilds_prefixes_for_standing_memories_only(kw_mem):
    from memdesk.engine.chat.turn import Chat, ChatConfig
    from memdesk.engine.llm.fake import FakeModel
    from memdesk.engine.scheduler.memscheduler import MemScheduler
    from memdesk.engine.scheduler.next_scene import Preparer

    model = FakeModel()
    model.enqueue("Hello.")
    chat = Chat(kw_mem, model, ChatConfig(extract=False))
    scheduler = MemScheduler()
    preparer = Preparer(chat, scheduler, ActivationCache(kw_mem.db))
    session = chat.send("Hi there").result.session_id
    scheduler.run_pending()
    preparer.prefix_ids[session] = set()  # as if a prefix had been built
    chat.sessions.append(session, "user", "When do I see the dentist?")
    kw_mem.add_messages([])
    assert scheduler.status()["pending"] == {}
    kw_mem.add("Note: the dentist is on Tuesday.", source="capture")
    assert scheduler.status()["pending"] == {"prefix_build": 1}  # re-predict: it may be needed next
    chat.predicted[session] = []
    scheduler.run_pending()
    assert any("dentist" in m.memory for m in chat.predicted[session])  # the new note is predicted
    kw_mem.add("Always answer in British English.", memory_type="PreferenceMemory")
    assert scheduler.status()["pending"] == {"prefix_build": 1}
