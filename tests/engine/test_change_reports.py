"""Issue 12, views that never go stale: every engine write reports what it changed, whoever
wrote, once it is committed (engine/vault/changes.py). Before, only the widgets' own writes told
the other views: extraction, the chat turn, the nightly job and ingestion never did."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from memdesk.engine import curation
from memdesk.engine.chat.turn import Chat, ChatConfig
from memdesk.engine.cube import ChatMessage, Filters, MemoryType, Relation
from memdesk.engine.errors import InvalidInputError, StaleVersionError
from memdesk.engine.ingestion.folders import Ingestor
from memdesk.engine.llm.fake import FakeModel
from memdesk.engine.parametric.registry import AdapterRegistry
from memdesk.engine.reader.jobs import EXTRACT_JOB
from memdesk.engine.reader.memreader import MemReader
from memdesk.engine.scheduler.queue import JobQueue
from memdesk.engine.vault.changes import Changes
from memdesk.engine.vault.forget import forget_memory

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def reports(kw_mem):
    """Every report, with what a fresh reader saw of the vault when it arrived."""
    got: list[tuple[Changes, int]] = []
    kw_mem.on_commit.append(lambda changes: got.append((changes, kw_mem.count())))
    return got


def merged(reports) -> Changes:
    out = Changes()
    for changes, _ in reports:
        out |= changes
    return out


def test_add_update_purge_report_ids(kw_mem, reports):
    memory_id = kw_mem.add("Ana lives in Lisbon").id
    assert reports[-1][0] == Changes(added=frozenset({memory_id}))
    kw_mem.update(memory_id, memory="Ana lives in Porto")
    assert reports[-1][0] == Changes(changed=frozenset({memory_id}))
    kw_mem.archive(memory_id)
    assert reports[-1][0].changed == {memory_id}
    kw_mem.purge(memory_id)
    assert reports[-1][0] == Changes(removed=frozenset({memory_id}))
    assert len(reports) == 4


def test_a_report_comes_after_the_commit(kw_mem, reports):
    kw_mem.add("Ana lives in Lisbon")
    # The listener read the vault through another connection and already saw the new memory.
    assert reports[-1][1] == 1


def test_a_rolled_back_write_reports_nothing(kw_mem, reports):
    memory_id = kw_mem.add("Ana lives in Lisbon").id
    reports.clear()
    with pytest.raises(InvalidInputError):
        kw_mem.update(memory_id, memory="")  # refused before the write
    with pytest.raises(RuntimeError):
        with kw_mem.db.write() as conn:
            conn.execute("UPDATE memories SET priority = 5 WHERE id = ?", (memory_id,))
            raise RuntimeError("the write fails half-way")
    assert reports == []
    kw_mem.update(memory_id, pinned=True)  # and the next write reports only its own change
    assert reports[-1][0] == Changes(changed=frozenset({memory_id}))


def test_the_embedding_backlog_is_not_reported_as_changes(kw_mem, reports):
    memory_id = kw_mem.add("Ana lives in Lisbon").id
    reports.clear()
    with kw_mem.db.write() as conn:
        conn.execute("UPDATE memories SET embed_fp = 'x' WHERE id = ?", (memory_id,))
    assert reports == []


def test_nested_writes_report_once_when_the_outer_one_commits(kw_mem, reports):
    first = kw_mem.add("Sam lives in Bergen.", memory_type=MemoryType.USER).id
    second = kw_mem.add("Sam lives in Lisbon.", memory_type=MemoryType.USER).id
    kw_mem.link(first, second, Relation.CONFLICT)
    assert reports[-1][0].relations == {"CONFLICT"}
    reports.clear()
    curation.resolve(kw_mem, first, second, "keep_second")
    assert len(reports) == 1  # update, link and supersede inside resolve's one transaction
    changes = reports[0][0]
    assert first in changes.changed and {"CONFLICT", "MERGED_TO"} <= changes.relations


def test_a_chat_turn_and_its_extraction_report(kw_mem, reports):
    model = FakeModel(n_ctx=2048)
    jobs = JobQueue(kw_mem.db)
    jobs.handlers[EXTRACT_JOB] = MemReader(kw_mem, None, user_name="Sam").handle_job
    chat = Chat(kw_mem, model, ChatConfig(user_name="Sam"), jobs=jobs)
    model.enqueue("Nice, Lisbon is lovely.")
    response = chat.send("I live in Lisbon.", now=NOW)
    response.text()
    turn = merged(reports)
    assert response.result.session_id in turn.sessions
    raw = {m.id for m in kw_mem.list(filters=Filters(memory_types=(MemoryType.RAW_CHAT.value,)))}
    assert raw <= turn.added
    reports.clear()
    assert jobs.drain() >= 1  # the extraction job, as the scheduler runs it after the turn
    facts = {m.id for m in kw_mem.list() if m.memory_type == MemoryType.USER.value}
    assert facts and facts <= merged(reports).added


def test_extraction_that_finds_a_conflict_reports_the_relation(kw_mem, reports):
    reader = MemReader(kw_mem, None, user_name="Sam")
    [added] = reader.apply(reader.extract_items([kw_mem.get(kw_mem.add_messages(
        [_said("I live in Oslo.")])[0].id)]))
    kw_mem.update(added.id, memory="Sam lives in Bergen.")
    reports.clear()
    [applied] = reader.apply(reader.extract_items([kw_mem.get(kw_mem.add_messages(
        [_said("I moved to Lisbon.")])[0].id)]))
    assert applied.action == "conflict"
    changes = merged(reports)
    assert "CONFLICT" in changes.relations and applied.id in changes.added


def _said(text: str) -> ChatMessage:
    return ChatMessage("Sam", text, NOW, role="user")


def test_ingestion_reports_what_a_file_gave(kw_mem, reports, tmp_path):
    note = tmp_path / "trip.md"
    note.write_text("# Trip\n\nTook the train to Porto.\n")
    Ingestor(kw_mem).ingest_file(note)
    [item] = kw_mem.list()
    assert merged(reports).added == {item.id}
    reports.clear()
    note.unlink()
    Ingestor(kw_mem).remove(note)
    assert item.id in merged(reports).changed  # archived: "removed from its file"


def test_import_and_forget_report(kw_mem, reports, tmp_path):
    memory_id = kw_mem.add("Ana lives in Lisbon").id
    export = tmp_path / "out.jsonl"
    kw_mem.export(export)
    kw_mem.purge(memory_id)
    reports.clear()
    kw_mem.import_(export)
    assert merged(reports).added == {memory_id}
    reports.clear()
    forget_memory(kw_mem, memory_id, preview=True)
    assert reports == []  # a preview rolls back
    forget_memory(kw_mem, memory_id)
    assert memory_id in merged(reports).removed


def test_the_nightly_jobs_adapter_writes_report(kw_mem, reports):
    registry = AdapterRegistry(kw_mem.db)
    adapter = registry.create(base_fingerprint="base", base_name="SmolLM2", trainer="torch",
                              data_snapshot="snap", config={})
    assert merged(reports).adapters == {adapter.id}
    reports.clear()
    registry.set_status(adapter.id, "candidate", metrics={"passed": True})
    assert merged(reports).adapters == {adapter.id}


def test_an_edit_over_a_version_it_did_not_see_is_refused(kw_mem):
    memory_id = kw_mem.add("Ana lives in Lisbon").id
    seen = kw_mem.get(memory_id).version
    kw_mem.update(memory_id, memory="Ana lives in Porto", reason="extraction")  # someone else, meanwhile
    with pytest.raises(StaleVersionError, match="Reload it"):
        kw_mem.update(memory_id, memory="Ana lives in Faro", expected_version=seen)
    assert kw_mem.get(memory_id).memory == "Ana lives in Porto"
    kw_mem.update(memory_id, memory="Ana lives in Faro", expected_version=seen + 1)
    assert kw_mem.get(memory_id).memory == "Ana lives in Faro"
