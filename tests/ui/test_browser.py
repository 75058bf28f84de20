"""The memory browser: search, filters, lazy paging, editing with history and undo, curation."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt, QUrl  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from memdesk.engine.cube import ChatMessage, Filters, MemoryType, SourceRef, Status  # noqa: E402
from memdesk.engine.errors import NotFoundError  # noqa: E402
from memdesk.ui.browser import BrowserWindow  # noqa: E402
from memdesk.ui.memory_table import COLUMN_INDEX, PAGE_SIZE, MemoryTableModel  # noqa: E402


@pytest.fixture
def open_browser(qtbot, runner, settle):
    def make(mem) -> BrowserWindow:
        window = BrowserWindow(mem, runner)
        qtbot.addWidget(window)
        window.show()
        settle()
        return window
    return make


def texts(window: BrowserWindow) -> list[str]:
    return [window.model.item_at(r).memory for r in range(window.model.rowCount())]


def select_row(window: BrowserWindow, settle, row: int) -> None:
    window.table.selectRow(row)
    settle()
    assert window.detail.item is not None and window.detail.item.id == window.model.item_at(row).id


def answer(monkeypatch, button: QMessageBox.StandardButton) -> list[str]:
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(text)
        return button
    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def test_search_as_you_type_shows_matches_and_drops_stale_results(kw_mem, open_browser, qtbot, settle):
    for text in ("I visited Lisbon with Ana", "Lisbon has steep hills", "Porto is north of Lisbon",
                 "Bought running shoes", "The dentist moved to Friday"):
        kw_mem.add(text)
    window = open_browser(kw_mem)
    assert window.count_label.text() == "5 memories"
    qtbot.keyClicks(window.search, "Lisbon")
    qtbot.waitUntil(lambda: window.model.query == "Lisbon" and not window.model.loading, timeout=5000)
    settle()
    assert sorted(texts(window)) == ["I visited Lisbon with Ana", "Lisbon has steep hills", "Porto is north of Lisbon"]
    assert window.count_label.text() == "3 matches"
    # Two searches back to back: whichever finishes last, only the newest query's rows show.
    window.model.set_query("Lisbon")
    window.model.set_query("dentist")
    window.model.set_query("shoes")
    settle()
    assert texts(window) == ["Bought running shoes"]
    window.activateWindow()
    qtbot.waitActive(window)
    window.focus_search()
    qtbot.keyClick(window.search, Qt.Key.Key_Escape)
    settle()
    assert window.search.text() == "" and window.model.rowCount() == 5
    window.search.setText("zebra crossing")
    window._search_now()
    settle()
    assert window.table_stack.currentWidget() is window.empty and "No memories match" in window.empty.text()


def test_hybrid_search_finds_by_meaning(mem, open_browser, qtbot, settle):
    mem.add("My sister Ana lives in Lisbon")
    mem.add("The quarterly budget is due on Monday")
    mem.add("I practised Japanese verbs after dinner")
    mem.wait_indexed()
    window = open_browser(mem)
    window.focus_search("which city is my sibling's home")
    window._search_now()
    settle()
    assert window.model.rowCount() >= 1
    assert texts(window)[0] == "My sister Ana lives in Lisbon"
    assert window.model.score_of(window.model.item_at(0).id) > 0


def test_filters_change_rows_and_count(kw_mem, open_browser, settle):
    kw_mem.add("Prefers tea over coffee", memory_type=MemoryType.PREFERENCE, pinned=True, tags=["food"])
    kw_mem.add("Allergic to peanuts", memory_type=MemoryType.USER, pinned=True, tags=["health", "food"])
    kw_mem.add("Lunch with Ben on Tuesday", tags=["food"])
    kw_mem.add("Renewed the passport")
    window = open_browser(kw_mem)
    assert window.count_label.text() == "4 memories"
    window.filter_bar.set_pinned(True)
    settle()
    assert sorted(texts(window)) == ["Allergic to peanuts", "Prefers tea over coffee"]
    assert window.count_label.text() == "2 memories"
    window.filter_bar.set_type(MemoryType.USER)
    settle()
    assert texts(window) == ["Allergic to peanuts"] and window.count_label.text() == "1 memory"
    window.filter_bar.clear()
    window.filter_bar.tags.setText("food")
    window.filter_bar.tags.returnPressed.emit()
    settle()
    assert window.model.filters == Filters(tags=("food",))
    assert len(texts(window)) == 3 and window.count_label.text() == "3 memories"
    # The timeline narrows by event time.
    kw_mem.add("Moved to Porto", event_time=datetime(2021, 3, 5, tzinfo=UTC))
    window.filter_bar.clear()
    window.set_time_range(datetime(2021, 3, 1, tzinfo=UTC), datetime(2021, 4, 1, tzinfo=UTC))
    settle()
    assert texts(window) == ["Moved to Porto"] and window.count_label.text() == "1 memory"


def test_lazy_paging_fetches_one_page_at_a_time(kw_mem, qtbot, runner, settle, open_browser):
    for i in range(1000):
        kw_mem.add(f"Synthetic note number {i}", tags=[f"t{i % 4}"])
    model = MemoryTableModel(kw_mem, runner)
    model.reload(keep_rows=False)
    settle()
    assert model.rowCount() == PAGE_SIZE and model.total == 1000 and model.canFetchMore()
    seen = [model.rowCount()]
    while model.canFetchMore():
        model.fetchMore()
        assert not model.canFetchMore()  # one page in flight at a time
        settle()
        seen.append(model.rowCount())
    assert seen == [200, 400, 600, 800, 1000, 1000]
    assert len({model.item_at(r).id for r in range(1000)}) == 1000
    # The view asks for more by itself when scrolled to the bottom, and the count shows the total.
    window = open_browser(kw_mem)
    assert window.model.rowCount() < 1000 and window.count_label.text() == "1,000 memories"
    window.table.scrollToBottom()
    qtbot.waitUntil(lambda: window.model.rowCount() > PAGE_SIZE, timeout=5000)
    # Sorting by a header asks the engine for another order.
    window.table.horizontalHeader().setSortIndicator(COLUMN_INDEX["priority"], Qt.SortOrder.AscendingOrder)
    settle()
    assert window.model.order == "priority" and window.model.rowCount() == PAGE_SIZE
    # A memory beyond the loaded pages still opens in the detail pane.
    oldest = kw_mem.list(order="created", limit=1, offset=999)[0]
    window.show_memory(oldest.id)
    settle()
    assert window.detail.item.id == oldest.id


def test_edit_save_shows_history_diff_and_undo_restores(kw_mem, open_browser, qtbot, settle):
    item_id = kw_mem.add("My sister lives in Lisbon", tags=["family"]).id
    window = open_browser(kw_mem)
    select_row(window, settle, 0)
    detail = window.detail
    assert not detail.save_button.isEnabled()
    detail.text.setPlainText("My sister lives in Porto")
    detail.tags.setText("family, moves")
    detail.pinned.setChecked(True)
    assert detail.save_button.isEnabled()
    with qtbot.waitSignal(window.memoriesChanged, timeout=5000) as changed:
        window.save_action.trigger()  # Ctrl+S
    settle()
    assert changed.args == [[item_id]]
    saved = kw_mem.get(item_id)
    assert saved.memory == "My sister lives in Porto" and saved.tags == ["family", "moves"] and saved.pinned
    assert detail.history_list.count() == 2  # v1 and the current v2
    diff = detail.history_diff.toHtml()
    assert "Lisbon" in diff and "Porto" in diff
    assert 'line-through' in diff.split("Lisbon")[0].rsplit("<span", 1)[1]  # the old word is struck out
    assert texts(window) == ["My sister lives in Porto"]
    window.undo_action.trigger()  # Ctrl+Z
    settle()
    assert kw_mem.get(item_id).memory == "My sister lives in Lisbon"
    assert detail.text.toPlainText() == "My sister lives in Lisbon" and detail.history_list.count() == 3
    assert texts(window) == ["My sister lives in Lisbon"]


def test_archive_hides_from_live_and_shows_under_archived(kw_mem, open_browser, settle):
    keep = kw_mem.add("Keep this one").id
    gone = kw_mem.add("Archive this one").id
    window = open_browser(kw_mem)
    window.show_memory(gone)
    settle()
    window.detail.archive_button.click()
    settle()
    assert kw_mem.get(gone).status == Status.ARCHIVED
    assert [window.model.item_at(r).id for r in range(window.model.rowCount())] == [keep]
    assert window.count_label.text() == "1 memory"
    window.filter_bar.set_status("Archived")
    settle()
    assert texts(window) == ["Archive this one"] and window.count_label.text() == "1 memory"
    select_row(window, settle, 0)
    assert window.detail.restore_button.isVisibleTo(window) and not window.detail.archive_button.isVisibleTo(window)
    window.detail.restore_button.click()
    settle()
    assert kw_mem.get(gone).status == Status.ACTIVATED and window.model.rowCount() == 0


def test_purge_asks_first_and_no_keeps_the_memory(kw_mem, open_browser, monkeypatch, settle):
    memory_id = kw_mem.add("Something private").id
    window = open_browser(kw_mem)
    select_row(window, settle, 0)
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)
    window.detail.purge_button.click()
    settle()
    assert "irreversible" in asked[0] and kw_mem.get(memory_id).memory == "Something private"
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    window.detail.purge_button.click()
    settle()
    with pytest.raises(NotFoundError):
        kw_mem.get(memory_id)
    assert window.model.rowCount() == 0 and window.detail.item is None


def test_keyboard_open_edit_save_undo_and_delete(kw_mem, open_browser, qtbot, monkeypatch, settle):
    for text in ("one", "two"):
        kw_mem.add(f"Memory {text}")
    first = kw_mem.add("My sister lives in Lisbon").id  # newest: the first row
    window = open_browser(kw_mem)
    window.activateWindow()
    qtbot.waitActive(window)
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_End)
    qtbot.keyClick(window.table, Qt.Key.Key_Home)
    settle()
    assert window.detail.item.id == first
    qtbot.keyClick(window.table, Qt.Key.Key_Return)  # Enter opens the detail pane for editing
    assert window.focusWidget() is window.detail.text
    qtbot.keyClicks(window.detail.text, " now")
    qtbot.keyClick(window.detail.text, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    settle()
    assert kw_mem.get(first).memory == "My sister lives in Lisbon now"
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    settle()
    assert kw_mem.get(first).memory == "My sister lives in Lisbon"
    qtbot.keyClick(window.table, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert window.focusWidget() is window.search
    window.table.setFocus()
    window.table.selectAll()
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)
    qtbot.keyClick(window.table, Qt.Key.Key_Delete)
    settle()
    assert "Delete 3 memories" in asked[0] and kw_mem.count() == 3
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    qtbot.keyClick(window.table, Qt.Key.Key_Delete)
    settle()
    assert window.model.rowCount() == 0 and kw_mem.count() == 0
    assert kw_mem.count(Filters(statuses=(Status.DELETED.value,))) == 3


def test_bulk_pin_and_tag_three_rows(kw_mem, open_browser, qtbot, settle):
    ids = [kw_mem.add(f"Bulk memory {i}").id for i in range(5)]
    window = open_browser(kw_mem)
    window.table.selectRow(0)
    window.table.selectionModel().select(window.model.index(2, 0), window.table.selectionModel().SelectionFlag.Select
                                         | window.table.selectionModel().SelectionFlag.Rows)
    window.table.selectionModel().select(window.model.index(4, 0), window.table.selectionModel().SelectionFlag.Select
                                         | window.table.selectionModel().SelectionFlag.Rows)
    chosen = window.selected_ids()
    assert len(chosen) == 3 and window.selection_label.text() == "3 selected"
    with qtbot.waitSignal(window.memoriesChanged, timeout=5000) as changed:
        window.bulk_pin.trigger()
    settle()
    assert sorted(changed.args[0]) == sorted(chosen)
    assert {i for i in ids if kw_mem.get(i).pinned} == set(chosen)
    window.add_tag_selected("reviewed")
    settle()
    assert {i for i in ids if "reviewed" in kw_mem.get(i).tags} == set(chosen)
    row = window.model.row_of(chosen[0])
    assert window.model.index(row, COLUMN_INDEX["pinned"]).data() == "✓"


def test_provenance_opens_the_chat_turn_or_file(kw_mem, open_browser, qtbot, settle):
    when = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    chat_id = kw_mem.add_messages([ChatMessage("Ana", "I adopted a cat called Miso", when, "msg-1", "sess-42")])[0].id
    file_id = kw_mem.add("Meeting notes: budget approved", source="file",
                         sources=[SourceRef(type="file", doc_path="/notes/work.md", start_line=12, end_line=18)]).id
    window = open_browser(kw_mem)
    window.show_memory(chat_id)
    settle()
    assert "sess-42"[:8] in window.detail.provenance.toPlainText()
    with qtbot.waitSignal(window.openSessionRequested, timeout=2000) as opened:
        window.detail.provenance.anchorClicked.emit(QUrl("source:0"))
    assert opened.args == ["sess-42", "msg-1"]
    window.show_memory(file_id)
    settle()
    assert "/notes/work.md:12–18" in window.detail.provenance.toPlainText()
    with qtbot.waitSignal(window.openFileRequested, timeout=2000) as opened:
        window.detail.open_source(0)
    assert opened.args == ["/notes/work.md", 12]


def test_refresh_keeps_selection_and_shows_outside_edits(kw_mem, open_browser, settle):
    ids = [kw_mem.add(f"Item {i}", event_time=datetime(2024, 1, 1) + timedelta(days=i)).id for i in range(3)]
    window = open_browser(kw_mem)
    window.show_memory(ids[1])
    settle()
    kw_mem.update(ids[1], memory="Item 1, edited in the chat window")
    window.refresh()
    settle()
    assert window.selected_ids() == [ids[1]]
    assert window.detail.text.toPlainText() == "Item 1, edited in the chat window"


def test_exercise_for_the_smoke_run(kw_mem, open_browser, settle):
    kw_mem.add("The plumber comes on Thursday morning")
    kw_mem.add("Remember to water the basil")
    window = open_browser(kw_mem)
    window.exercise()
    settle()
    window.check_exercised()
    window._exercise["step"] = "search"  # a run that stopped half way must fail loudly
    with pytest.raises(AssertionError, match="stopped at step"):
        window.check_exercised()
