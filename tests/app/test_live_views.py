"""Issue 12, views that never go stale: the memory browser, conflicts and timeline heard only
about writes made by other views. Writes from extraction, the chat turn, the nightly job and
ingestion never reached them ("0 memories - No memories yet" while memories existed; a
conflict found after a chat never appeared; the detail pane could save over a newer version
it never showed). Now every engine write is reported and one signal on the GUI thread
refreshes every open view, whoever wrote."""
from __future__ import annotations

import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from memdesk.engine.cube import ChatMessage, MemoryType  # noqa: E402
from memdesk.engine.ingestion.folders import Ingestor  # noqa: E402
from memdesk.engine.parametric.registry import AdapterRegistry  # noqa: E402
from memdesk.engine.reader.memreader import MemReader  # noqa: E402

WAIT = 15000


def elsewhere(fn, *args, **kwargs):
    """Write on another thread, as the scheduler, the watcher or the indexer do."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(fn(*args, **kwargs)))
    thread.start()
    thread.join(30)
    assert box, "the write did not finish"
    return box[0]


def test_a_hidden_browser_shows_what_was_written_meanwhile_when_opened(qtbot, desktop):
    """The reported bug: built at start-up on an empty vault, the Memories window kept saying
    '0 memories - No memories yet'."""
    browser = desktop.browser
    qtbot.waitUntil(lambda: browser.count_label.text() == "0 memories", timeout=WAIT)
    assert not browser.isVisible()
    elsewhere(desktop.mem.add, "Ana lives in Lisbon")
    desktop.search_memories()  # Ctrl+K: the window opens
    qtbot.waitUntil(lambda: browser.count_label.text() == "1 memory", timeout=WAIT)
    assert browser.model.rowCount() == 1


def test_an_open_browser_and_timeline_follow_extraction_and_ingestion(qtbot, desktop, tmp_path):
    desktop.search_memories()
    desktop._show(desktop.timeline)
    browser, timeline = desktop.browser, desktop.timeline
    qtbot.waitUntil(lambda: browser.count_label.text() == "0 memories", timeout=WAIT)
    reader = MemReader(desktop.mem, None, user_name="Sam")
    turn = elsewhere(desktop.mem.add_messages, [ChatMessage("Sam", "I live in Oslo.", role="user")])[0].id
    elsewhere(lambda: reader.apply(reader.extract_items([desktop.mem.get(turn)])))  # the extraction job
    qtbot.waitUntil(lambda: browser.count_label.text() == "2 memories", timeout=WAIT)
    qtbot.waitUntil(lambda: timeline.summary.text() == "Showing all 2 memories", timeout=WAIT)
    note = tmp_path / "trip.md"
    note.write_text("# Trip\n\nTook the train to Porto.\n")
    elsewhere(Ingestor(desktop.mem).ingest_file, note)  # the watcher's thread
    qtbot.waitUntil(lambda: browser.count_label.text() == "3 memories", timeout=WAIT)
    qtbot.waitUntil(lambda: timeline.summary.text() == "Showing all 3 memories", timeout=WAIT)


def test_a_conflict_found_after_a_chat_appears(qtbot, desktop):
    conflicts = desktop.conflicts
    desktop._show(conflicts)
    qtbot.waitUntil(lambda: conflicts.is_loaded, timeout=WAIT)
    assert conflicts.rows == []
    mem, reader = desktop.mem, MemReader(desktop.mem, None, user_name="Sam")

    def said(text: str) -> str:
        return mem.add_messages([ChatMessage("Sam", text, role="user")])[0].id

    [fact] = reader.apply(reader.extract_items([mem.get(said("I live in Oslo."))]))
    mem.update(fact.id, memory="Sam lives in Bergen.")  # edited by hand: extraction may not overwrite it
    qtbot.waitUntil(lambda: conflicts.rows == [], timeout=WAIT)
    turn = elsewhere(said, "I moved to Lisbon.")
    [applied] = elsewhere(lambda: reader.apply(reader.extract_items([mem.get(turn)])))
    assert applied.action == "conflict"
    qtbot.waitUntil(lambda: len(conflicts.rows) == 1, timeout=WAIT)
    assert {row.conflict.second.id for row in conflicts.rows} == {applied.id}


def test_the_detail_pane_does_not_save_over_a_version_it_did_not_show(qtbot, desktop):
    mem, browser = desktop.mem, desktop.browser
    memory_id = mem.add("Ana lives in Lisbon", memory_type=MemoryType.USER).id
    desktop.open_memory(memory_id)
    detail = browser.detail
    qtbot.waitUntil(lambda: detail.item is not None and detail.item.id == memory_id, timeout=WAIT)
    detail.text.setPlainText("Ana lives in Faro")  # the person is typing...
    elsewhere(mem.update, memory_id, memory="Ana lives in Porto")  # ...when extraction writes v2
    qtbot.waitUntil(lambda: detail.stale.isVisible(), timeout=WAIT)
    assert "version 2" in detail.stale_text.text()
    assert detail.text.toPlainText() == "Ana lives in Faro"  # the typing is kept
    assert not detail.save_button.isEnabled()
    detail.save()
    assert "Reload" in detail.error.text()
    assert mem.get(memory_id).memory == "Ana lives in Porto"
    detail.reload_button.click()
    assert detail.text.toPlainText() == "Ana lives in Porto" and not detail.stale.isVisible()
    detail.text.setPlainText("Ana lives in Faro")
    with qtbot.waitSignal(detail.saved, timeout=WAIT):
        detail.save()
    assert mem.get(memory_id).memory == "Ana lives in Faro"


def test_the_engine_refuses_a_save_the_pane_could_not_see_coming(qtbot, desktop):
    """The newer version is written after the pane last heard of it: the save itself is refused
    and the pane then offers the reload."""
    mem, browser = desktop.mem, desktop.browser
    memory_id = mem.add("Ana lives in Lisbon").id
    desktop.open_memory(memory_id)
    detail = browser.detail
    qtbot.waitUntil(lambda: detail.item is not None and detail.item.id == memory_id, timeout=WAIT)
    desktop.change_bridge.changed.disconnect(desktop.memories_changed)  # the report comes too late
    elsewhere(mem.update, memory_id, memory="Ana lives in Porto")
    detail.text.setPlainText("Ana lives in Faro")
    detail.save()
    qtbot.waitUntil(lambda: detail.stale.isVisible(), timeout=WAIT)
    assert "nothing was saved" in detail.error.text()
    assert mem.get(memory_id).memory == "Ana lives in Porto"


def test_the_learned_preferences_page_shows_the_nightly_jobs_adapter(qtbot, desktop):
    dialog = desktop.settings_dialog()
    qtbot.addWidget(dialog)
    view = dialog.adapters
    qtbot.waitUntil(lambda: view.adapters == [], timeout=WAIT)
    registry = AdapterRegistry(desktop.mem.db)
    elsewhere(lambda: registry.create(base_fingerprint=desktop.chat.model.info.fingerprint, base_name="fake",
                                      trainer="torch", data_snapshot="snap", config={}))
    qtbot.waitUntil(lambda: len(view.adapters) == 1, timeout=WAIT)
