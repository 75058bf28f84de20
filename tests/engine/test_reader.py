"""MemReader fine extraction (rules + model proposals), conflict handling, and the job queue."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime

from memdesk.engine.cube import ChatMessage, MemoryType, Relation
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.llm.fake import FakeModel
from memdesk.engine.reader.jobs import EXTRACT_JOB, extraction_payload
from memdesk.engine.reader.memreader import (
    MemReader,
    llm_extract,
    parse_query,
    utterances_of,
)
from memdesk.engine.reader.rules import Utterance
from memdesk.engine.scheduler.queue import LEASE_S, JobQueue

WHEN = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def turn(mem, text, speaker="Sam", role="user", when=WHEN):
    return mem.add_messages([ChatMessage(speaker, text, when, None, "s1", role=role)])[0].id


def test_parse_query_finds_time_topics_and_preference_intent():
    intent = parse_query("what kind of answers do I prefer since last May?", datetime(2024, 6, 1, tzinfo=UTC))
    assert intent.window is not None and intent.window.start == datetime(2024, 5, 1, tzinfo=UTC)
    assert intent.topics == ("answers", "prefer") and intent.memory_types == ("PreferenceMemory",)
    assert parse_query("where is Lisbon").memory_types == ()


def test_utterances_keep_speaker_role_and_time(kw_mem):
    ids = [turn(kw_mem, "I love hiking."), turn(kw_mem, "Nice!", speaker="Assistant", role="assistant")]
    utterances = utterances_of([kw_mem.get(i) for i in ids])
    assert [(u.speaker, u.text, u.is_user) for u in utterances] == [("Sam", "I love hiking.", True),
                                                                    ("Assistant", "Nice!", False)]
    assert utterances[0].timestamp == WHEN


def test_model_proposals_are_validated_and_capped():
    model = FakeModel()
    model.enqueue(json.dumps([
        {"key": "home / location", "memory": "Sam lives in Oslo", "type": "UserMemory", "confidence": 0.9},
        {"key": "x", "memory": "I like tea", "type": "PreferenceMemory", "confidence": 0.9},  # first person
        {"key": "pet", "memory": "Sam has a cat.", "type": "NotAType", "confidence": 0.9},  # bad type
        {"key": "pet", "memory": 42, "type": "UserMemory", "confidence": 0.9},  # not text
        {"key": "boat", "memory": "Sam owns a yacht in Monaco.", "type": "UserMemory", "confidence": 0.9},  # never said
        {"key": "memory", "memory": "UserMemory, PreferenceMemory or LongTermMemory.", "type": "UserMemory",
         "confidence": 0.0},  # an echo of the instructions
    ]).replace("}, {", "},{"))
    items = llm_extract(model, [Utterance("I live in Oslo.", "Sam", WHEN, "m1")], "Sam")
    assert [(i.key, i.memory, i.confidence) for i in items] == [("home / location", "Sam lives in Oslo.", 0.8)]
    assert "grammar" not in model.configs[0].__dict__ or model.configs[0].grammar.startswith("#")
    model.enqueue("[{ not json")
    assert llm_extract(model, [Utterance("I live in Oslo.", "Sam", WHEN, "m1")], "Sam") == []


def test_extraction_adds_then_merges_a_repeat(kw_mem):
    reader = MemReader(kw_mem, None, user_name="Sam")
    first = reader.apply(reader.extract_items([kw_mem.get(turn(kw_mem, "I really love hiking in the mountains."))]))
    assert [a.action for a in first] == ["added"]
    # The same statement in another message (same words, so the same extracted item).
    again = reader.apply([replace(first[0].item, message_ids=("another-message",))])
    assert [a.action for a in again] == ["merged"] and again[0].id == first[0].id
    assert len(kw_mem.get(first[0].id).sources) == 2
    assert kw_mem.get(first[0].id).memory_type == MemoryType.PREFERENCE.value


def test_a_user_edit_is_never_overwritten_a_conflict_is_flagged(kw_mem):
    reader = MemReader(kw_mem, None, user_name="Sam")
    [added] = reader.apply(reader.extract_items([kw_mem.get(turn(kw_mem, "I live in Oslo."))]))
    kw_mem.update(added.id, memory="Sam lives in Bergen.")  # the user corrected it by hand
    [applied] = reader.apply(reader.extract_items([kw_mem.get(turn(kw_mem, "I moved to Lisbon."))]))
    assert applied.action == "conflict" and applied.id != added.id
    assert kw_mem.get(added.id).memory == "Sam lives in Bergen."
    assert any(e.relation == Relation.CONFLICT.value and {e.src, e.dst} == {added.id, applied.id}
               for e in kw_mem.edges(added.id))


def test_assistant_turns_are_not_mined_for_user_facts(kw_mem):
    reader = MemReader(kw_mem, None, user_name="Sam")
    raw = kw_mem.get(turn(kw_mem, "I live in Oslo.", speaker="Assistant", role="assistant"))
    assert reader.extract_items([raw]) == []


def test_jobs_persist_dedupe_and_resume_after_a_restart(data_dir, kw_mem):
    jobs = JobQueue(kw_mem.db)
    payload = extraction_payload([turn(kw_mem, "I love jazz.")], "default", "s1")
    assert jobs.enqueue(EXTRACT_JOB, payload, dedup_key="m1") is not None
    assert jobs.enqueue(EXTRACT_JOB, payload, dedup_key="m1") is None  # one pending per key
    claimed = jobs.claim()  # a crash now leaves it "running"
    assert claimed is not None and jobs.status()["counts"][EXTRACT_JOB] == {"running": 1}
    # The next start, once the crashed owner's lease has lapsed (engine/scheduler/queue.py), takes the queue over.
    reopened = JobQueue(kw_mem.db, clock=lambda: time.time() + LEASE_S + 1)
    assert reopened.status()["counts"][EXTRACT_JOB] == {"running": 1}  # looking changes nothing
    reopened.handlers[EXTRACT_JOB] = MemReader(kw_mem, None, user_name="Sam").handle_job
    assert reopened.drain() == 1
    assert reopened.status()["counts"][EXTRACT_JOB] == {"done": 1}
    assert any("jazz" in m.memory for m in kw_mem.list())


def test_failing_jobs_retry_then_fail_with_the_error_kept(kw_mem):
    jobs = JobQueue(kw_mem.db)
    calls = []

    def broken(job, progress):
        calls.append(job.attempts)
        raise InvalidInputError("boom")

    jobs.handlers["broken"] = broken
    jobs.enqueue("broken", {})
    jobs.drain()
    status = jobs.status()
    assert calls == [1, 2, 3] and status["counts"]["broken"] == {"failed": 1}
    assert status["last_errors"][0]["error"] == "boom"
