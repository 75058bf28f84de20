"""The Memory API: lifecycle, dedup, provenance, limits, filters, vectors, threads."""
from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from memdesk.engine.api import Memory
from memdesk.engine.cube import ChatMessage, Filters, MemoryType, Relation, Source, iso
from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.text import MAX_MEMORY_BYTES
from tests.conftest import FAST_KDF

UTC = UTC
INDEX_TIMEOUT = 120


@pytest.fixture(params=["keyword", "hybrid"])
def any_mem(request):
    """The same behaviour must hold for keyword-only and for vector+keyword vaults."""
    memory = request.getfixturevalue("kw_mem" if request.param == "keyword" else "mem")
    return memory


def indexed(memory: Memory) -> Memory:
    assert memory.wait_indexed(timeout=INDEX_TIMEOUT), "indexer did not finish"
    return memory


def ids_of(hits) -> list[str]:
    return [h.item.id for h in hits]


# ------------------------------------------------------------------ lifecycle
def test_add_and_get(kw_mem):
    result = kw_mem.add("I moved to Porto in 2021", key="home town", tags=["home", "home", "city"],
                        memory_type=MemoryType.USER, priority=3, pinned=True, info={"origin": "test"})
    assert result.created
    item = kw_mem.get(result.id)
    assert item.memory == "I moved to Porto in 2021"
    assert item.key == "home town"
    assert item.tags == ["home", "city"]
    assert item.memory_type == "UserMemory"
    assert item.status == "activated" and item.version == 1
    assert item.priority == 3 and item.pinned is True and item.info == {"origin": "test"}
    assert item.sources and item.sources[0].type == Source.CAPTURE
    assert kw_mem.get(result.id[:8]).id == result.id  # unambiguous prefix
    with pytest.raises(NotFoundError):
        kw_mem.get("00000000-0000-4000-8000-000000000000")


def test_update_keeps_history_and_bumps_version(any_mem):
    first = any_mem.add("The wifi password is tangerine", tags=["wifi"]).id
    updated = any_mem.update(first, memory="The wifi password is marmalade", tags=["wifi", "home"])
    assert updated.version == 2
    assert updated.memory == "The wifi password is marmalade" and updated.tags == ["wifi", "home"]
    history = any_mem.history(first)
    assert [v.version for v in history] == [1]
    assert history[0].item.memory == "The wifi password is tangerine"
    assert history[0].item.tags == ["wifi"]
    assert history[0].reason == "edited"
    indexed(any_mem)
    assert ids_of(any_mem.search("marmalade"))[:1] == [first]
    # The old words are no longer indexed for keyword search (vectors may still find anything).
    assert [h for h in any_mem.search("tangerine") if "keyword" in h.signals] == []

    any_mem.update(first, priority=5)
    assert any_mem.get(first).version == 3
    assert [v.version for v in any_mem.history(first)] == [1, 2]


def test_update_rejects_unknown_fields_and_statuses_without_changing_anything(kw_mem):
    memory_id = kw_mem.add("unchanged text").id
    with pytest.raises(InvalidInputError):
        kw_mem.update(memory_id, version=9)
    with pytest.raises(InvalidInputError):
        kw_mem.update(memory_id, status="vanished")
    with pytest.raises(InvalidInputError):
        kw_mem.update(memory_id, memory="   ")
    item = kw_mem.get(memory_id)
    assert item.version == 1 and item.memory == "unchanged text"
    assert kw_mem.history(memory_id) == []


def test_archive_delete_restore_purge(any_mem):
    keep = any_mem.add("The boat is moored at pier seven").id
    other = any_mem.add("The boat trailer is in the garage").id
    any_mem.link(keep, other, Relation.RELATE)
    indexed(any_mem)
    assert keep in ids_of(any_mem.search("boat pier"))

    archived = any_mem.archive(keep)
    assert archived.status == "archived"
    assert keep not in ids_of(any_mem.search("boat pier"))
    assert keep in ids_of(any_mem.search("boat pier", include_inactive=True))

    deleted = any_mem.delete(keep)
    assert deleted.status == "deleted"
    assert any_mem.get(keep).status == "deleted"  # soft: still there
    assert keep not in ids_of(any_mem.search("boat pier"))
    assert keep not in ids_of(any_mem.search("moored pier seven"))

    restored = any_mem.restore(keep)
    assert restored.status == "activated"
    assert keep in ids_of(any_mem.search("boat pier"))
    assert [v.reason for v in any_mem.history(keep)] == ["archived", "deleted", "restored"]

    assert any_mem.purge(keep[:8]) == keep
    with pytest.raises(NotFoundError):
        any_mem.get(keep)
    with pytest.raises(NotFoundError):
        any_mem.history(keep)
    assert keep not in ids_of(any_mem.search("boat pier", include_inactive=True))
    assert any_mem.edges(other) == []  # edges go with it
    stats = any_mem.stats()
    assert stats["memories"] == 1 and stats["versions"] == 0
    with pytest.raises(NotFoundError):
        any_mem.purge(keep)


# ---------------------------------------------------------------------- dedup
def test_dedup_on_write(kw_mem):
    first = kw_mem.add("I like green tea", reference_time=datetime(2024, 1, 1, tzinfo=UTC))
    again = kw_mem.add("  i LIKE   green\ttea!! ", reference_time=datetime(2024, 2, 1, tzinfo=UTC))
    assert first.created and not again.created
    assert again.id == first.id
    assert kw_mem.stats()["memories"] == 1
    assert len(kw_mem.get(first.id).sources) == 2  # the second sighting is remembered

    elsewhere = kw_mem.add("I like green tea", scope="work")
    assert elsewhere.created and elsewhere.id != first.id
    different = kw_mem.add("I like green tea with honey")
    assert different.created and different.id != first.id

    kw_mem.delete(first.id)
    revived = kw_mem.add("I like green tea")
    assert revived.created and revived.id != first.id  # a deleted item is not silently reused


# ------------------------------------------------------------------- messages
def test_add_messages_links_turns_and_keeps_provenance(kw_mem):
    t0 = datetime(2024, 5, 8, 18, 30, tzinfo=UTC)
    msgs = [
        ChatMessage("Ana", "Did you see the eclipse?", t0, "msg-1", "s1"),
        ChatMessage("Bob", "Yes, I watched it yesterday from the roof", t0 + timedelta(minutes=1), "msg-2", "s1"),
        ChatMessage("Ana", "Lucky you", t0 + timedelta(minutes=2), "msg-3", "s1"),
    ]
    results = kw_mem.add_messages(msgs, tags=["chat"])
    assert [r.created for r in results] == [True, True, True]
    ids = [r.id for r in results]
    items = [kw_mem.get(i) for i in ids]
    assert items[0].memory == "Ana: Did you see the eclipse?"
    for item, msg in zip(items, msgs):
        assert item.memory_type == MemoryType.RAW_CHAT and item.source == Source.CONVERSATION
        assert item.tags == ["chat"]
        (ref,) = item.sources
        assert ref.message_id == msg.message_id and ref.session_id == "s1" and ref.role == msg.speaker
        assert ref.chat_time == iso(msg.timestamp)
    assert items[0].event_time == t0
    assert items[1].event_time.date() == date(2024, 5, 7)  # "yesterday", said on the 8th

    follows = {(e.src, e.dst) for e in kw_mem.edges(ids[1]) if e.relation == Relation.FOLLOWS}
    assert follows == {(ids[0], ids[1]), (ids[1], ids[2])}
    assert kw_mem.stats()["edges"] == 2


def test_relative_dates_resolve_against_reference_time(kw_mem):
    ref = datetime(2024, 5, 8, 15, 0, tzinfo=UTC)
    item = kw_mem.get(kw_mem.add("I went hiking yesterday", reference_time=ref).id)
    assert item.event_time.date() == date(2024, 5, 7)
    assert item.event_end is not None and item.event_end <= datetime(2024, 5, 8, tzinfo=UTC)
    plain = kw_mem.get(kw_mem.add("I like hiking", reference_time=ref).id)
    assert plain.event_time is None
    explicit = datetime(2020, 1, 2, tzinfo=UTC)
    fixed = kw_mem.get(kw_mem.add("I hiked to the lake yesterday", event_time=explicit, reference_time=ref).id)
    assert fixed.event_time == explicit


# -------------------------------------------------------------------- limits
@pytest.mark.parametrize("bad", ["", "   ", "\n\t \r\n", "abc\x00def"])
def test_invalid_text_is_refused(kw_mem, bad):
    kw_mem.add("already here")
    with pytest.raises(InvalidInputError):
        kw_mem.add(bad)
    with pytest.raises(InvalidInputError):
        kw_mem.add_messages([ChatMessage("Ana", bad)])
    assert kw_mem.stats()["memories"] == 1


def test_huge_text_is_refused_with_the_limit_in_the_message(kw_mem):
    kw_mem.add("already here")
    before = kw_mem.stats()
    with pytest.raises(InvalidInputError) as info:
        kw_mem.add("x" * 10_000_000)
    assert f"{MAX_MEMORY_BYTES // 1024} KB" in str(info.value)
    after = kw_mem.stats()
    assert after["memories"] == before["memories"] == 1
    assert kw_mem.add("y" * (MAX_MEMORY_BYTES - 10)).created  # just under the limit is fine


def test_non_text_and_bad_tags_are_refused(kw_mem):
    with pytest.raises(InvalidInputError):
        kw_mem.add(b"bytes are not text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        kw_mem.add("fine text", tags=["ok", ""])
    with pytest.raises(InvalidInputError):
        kw_mem.search("   ")
    assert kw_mem.stats()["memories"] == 0


# -------------------------------------------------------------------- vectors
DISTRACTORS = [
    "I bought a new pair of running shoes", "The dentist appointment is on Thursday",
    "My favourite band is Radiohead", "I am allergic to peanuts", "The car needs an oil change",
    "I started learning the guitar", "Our team meeting moved to 3pm", "I prefer green tea over coffee",
    "The printer on floor two is broken", "I finished reading Dune", "The password hint is the dog's name",
    "I want to run a marathon", "The plants need watering twice a week", "I booked a table at the sushi place",
    "My bike has a flat tyre", "The quarterly report is due Friday", "I like to swim on Sunday mornings",
    "The cat's vet visit went well", "I am saving money for a new camera", "The garden fence needs painting",
]


def test_semantic_search_without_shared_keywords(mem):
    for text in DISTRACTORS[:10]:
        mem.add(text)
    target = mem.add("My sister Ana lives in Lisbon").id
    for text in DISTRACTORS[10:]:
        mem.add(text)
    indexed(mem)
    assert mem.stats()["pending_embeddings"] == 0
    hits = mem.search("which city is my sibling's home?", k=5)
    assert hits and hits[0].item.id == target
    assert "vector" in hits[0].signals and "keyword" not in hits[0].signals


def test_fresh_search_indexes_first(mem):
    target = mem.add("My sister Ana lives in Lisbon").id
    for text in DISTRACTORS:
        mem.add(text)
    hits = mem.search("which city is my sibling's home?", k=3, fresh=True)
    assert hits and hits[0].item.id == target


class RenamedEmbedder:
    """The session's model under another fingerprint: what a model upgrade looks like to the vault."""

    def __init__(self, inner, fingerprint: str):
        self.inner = inner
        self.model_path = inner.model_path
        self.fingerprint = fingerprint

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts):
        return self.inner.encode(texts)


def _fingerprints(memory: Memory) -> set:
    with memory.db.read() as conn:
        return {fp for (fp,) in conn.execute("SELECT embed_fp FROM memories")}


def test_model_change_reindexes_everything(data_dir, embedder):
    with Memory.open(data_dir, embedder=embedder, kdf=FAST_KDF) as memory:
        target = memory.add("My sister Ana lives in Lisbon").id
        for text in DISTRACTORS:
            memory.add(text)
        indexed(memory)
        assert _fingerprints(memory) == {embedder.fingerprint}

    other = RenamedEmbedder(embedder, "another-model-0123456789")
    with Memory.open(data_dir, embedder=other, kdf=FAST_KDF) as memory:
        indexed(memory)
        stats = memory.stats()
        assert stats["pending_embeddings"] == 0 and stats["embedder"] == other.fingerprint
        assert _fingerprints(memory) == {other.fingerprint}
        with memory.db.read() as conn:
            assert conn.execute("SELECT count(*) FROM memory_vec").fetchone()[0] == len(DISTRACTORS) + 1
        hits = memory.search("which city is my sibling's home?", k=3)
        assert hits and hits[0].item.id == target


def test_time_aware_search_prefers_the_named_month(mem):
    ref = datetime(2024, 8, 15, 12, tzinfo=UTC)
    events = {
        "may": mem.add("I went hiking in the mountains with friends", event_time=datetime(2024, 5, 12, tzinfo=UTC)),
        "march": mem.add("I took a pottery class downtown", event_time=datetime(2024, 3, 8, tzinfo=UTC)),
        "july": mem.add("I went to a jazz concert in the park", event_time=datetime(2024, 7, 20, tzinfo=UTC)),
        "jan": mem.add("I visited my grandparents for a week", event_time=datetime(2024, 1, 15, tzinfo=UTC)),
    }
    indexed(mem)
    may = mem.search("what did I do last May", reference_time=ref, k=4)
    assert may[0].item.id == events["may"].id
    march = mem.search("what did I do last March", reference_time=ref, k=4)
    assert march[0].item.id == events["march"].id


# -------------------------------------------------------------------- filters
@pytest.fixture
def filtered(any_mem):
    ids = {
        "a": any_mem.add("project alpha kickoff notes", tags=["work", "urgent"],
                         event_time=datetime(2024, 1, 10, tzinfo=UTC)).id,
        "b": any_mem.add("project budget spreadsheet review", tags=["work"], memory_type=MemoryType.USER,
                         source=Source.FILE, event_time=datetime(2024, 2, 10, tzinfo=UTC)).id,
        "c": any_mem.add("project to repaint the kitchen", tags=["house"], memory_type=MemoryType.PREFERENCE,
                         source=Source.SYSTEM, scope="family", event_time=datetime(2024, 3, 10, tzinfo=UTC)).id,
        "d": any_mem.add("project retrospective went well", source=Source.CONVERSATION, pinned=True,
                         event_time=datetime(2024, 4, 10, tzinfo=UTC)).id,
    }
    indexed(any_mem)
    return any_mem, ids


@pytest.mark.parametrize("filters, expected", [
    (Filters(), "abcd"),
    (Filters(tags=("work",)), "ab"),
    (Filters(tags=("work", "urgent")), "a"),
    (Filters(memory_types=("UserMemory",)), "b"),
    (Filters(sources=("file", "system")), "bc"),
    (Filters(scope="family"), "c"),
    (Filters(scope="default"), "abd"),
    (Filters(pinned=True), "d"),
    (Filters(since=datetime(2024, 2, 1, tzinfo=UTC), until=datetime(2024, 4, 1, tzinfo=UTC)), "bc"),
    (Filters(since=datetime(2024, 2, 10, tzinfo=UTC), until=datetime(2024, 3, 10, tzinfo=UTC)), "b"),
    (Filters(since=datetime(2024, 3, 1, tzinfo=UTC)), "cd"),
    (Filters(tags=("work",), since=datetime(2024, 2, 1, tzinfo=UTC)), "b"),
])
def test_filters(filtered, filters, expected):
    memory, ids = filtered
    # With vectors, also a query sharing no keyword: the vector path must apply the same filters.
    queries = ["project", "planning meeting"] if memory.embedder is not None else ["project"]
    for query in queries:
        found = ids_of(memory.search(query, k=50, filters=filters))
        got = sorted(k for k, v in ids.items() if v in found)
        assert "".join(got) == expected, query
        assert len(found) == len(expected), query


def test_expired_memories_are_not_found(any_mem):
    now = datetime.now(UTC)
    gone = any_mem.add("the parking permit code is 4471", expires=now - timedelta(hours=1)).id
    live = any_mem.add("the parking garage code is 9902", expires=now + timedelta(days=30)).id
    indexed(any_mem)
    found = ids_of(any_mem.search("parking code", k=10))
    assert live in found and gone not in found
    assert any_mem.get(gone).memory == "the parking permit code is 4471"  # still stored


# -------------------------------------------------------------------- threads
def test_concurrent_writer_and_searcher(mem):
    errors: list[BaseException] = []
    added: list[str] = []
    done = threading.Event()

    def write():
        try:
            for i in range(200):
                added.append(mem.add(f"concurrent note number {i} about gardening topic {i * 7}").id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    searches = 0

    def search():
        nonlocal searches
        try:
            while not done.is_set() or searches < 3:
                mem.search("gardening note", k=20)
                searches += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=search)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert searches >= 3
    assert len(set(added)) == 200
    assert mem.stats()["memories"] == 200
    assert all(mem.get(i).id == i for i in added)
    indexed(mem)
    assert mem.stats()["pending_embeddings"] == 0
    assert len(mem.search("gardening note", k=500)) == 200


def test_feedback_search_reaches_what_resembles_the_best_results(mem):
    """Rocchio feedback (off by default, measured in bench.locomo): the second vector search runs
    from the best results, so a memory like them but unlike the question is reached."""
    from memdesk.engine.search.retrieval import SearchParams

    for text in ["Melanie took the kids camping by the lake last summer.",
                 "Melanie loves pottery; she made a bowl in her class.",
                 "Melanie painted a sunrise over the water.",
                 "The quarterly tax forms are due in April."]:
        mem.add(text)
    mem.wait_indexed()
    question = "What does Melanie do for fun?"
    plain = mem.search(question, k=4)
    fed = mem.search(question, k=4, params=SearchParams(feedback=1.0))
    assert any("feedback" in h.signals for h in fed) and not any("feedback" in h.signals for h in plain)
    assert all(0.15 <= h.signals["feedback"] <= 1.0 for h in fed if "feedback" in h.signals)
    assert fed[0].item.memory.startswith("Melanie")


def test_get_many_reads_several_memories_at_once_and_leaves_out_purged_ones(kw_mem):
    first = kw_mem.add("The user's sister Ana lives in Porto.").id
    second = kw_mem.add("The user runs on Sundays.").id
    gone = kw_mem.add("A note that will be purged.").id
    kw_mem.purge(gone)
    found = kw_mem.get_many([second, first, gone, first])
    assert set(found) == {first, second}
    assert found[first].memory == "The user's sister Ana lives in Porto." and found[second] == kw_mem.get(second)
    assert kw_mem.get_many([]) == {}
