"""The memory browser: search, filter and page through memories; edit, curate and undo.

The table (left) lists memories lazily or shows the hits of a search typed in the box above
it (debounced; stale results are dropped by the model's generation counter). The detail
pane (right) edits the current row. Bulk actions work on the selected rows. Everything that
touches the vault goes through the TaskRunner; this window only arranges results.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence, QTextCursor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine import curation
from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryItem
from memdesk.engine.errors import MemDeskError
from memdesk.ui.memory_detail import MemoryDetailPane, confirm, parse_tags
from memdesk.ui.memory_table import COLUMN_INDEX, COLUMNS, SEARCH_K, MemoryFilterBar, MemoryTableModel
from memdesk.ui.messages import for_gui
from memdesk.ui.tasks import TaskRunner

SEARCH_DELAY_MS = 200
# Starting widths (in average character widths) so the text column gets the room.
COLUMN_CHARS = {"memory": 40, "key": 12, "memory_type": 10, "tags": 10, "status": 8, "source": 9, "event_time": 14,
                "updated_at": 14, "created_at": 14, "pinned": 6, "priority": 7, "usage_count": 6}


class BrowserWindow(QWidget):
    openSessionRequested = Signal(str, str)  # session id, message id
    openFileRequested = Signal(str, int)  # path, line
    memoriesChanged = Signal(list)  # ids this window changed

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("memoryBrowser")
        self.setWindowTitle("Memories")
        self.mem = mem
        self.runner = runner
        self.last_edited: str | None = None
        self._pending_select: str | None = None
        self._keep_selection: list[str] = []
        self._exercise: dict = {}
        self._restoring = False
        self.model = MemoryTableModel(mem, runner, self)
        self._build()
        self._wire()
        self.model.reload(keep_rows=False)

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        style = self.style()
        SP = QStyle.StandardPixmap
        self.search = QLineEdit(objectName="memorySearch", clearButtonEnabled=True)
        self.search.setPlaceholderText("Search memories — meaning and keywords (Ctrl+K)")
        self.search.addAction(QIcon.fromTheme("edit-find", style.standardIcon(SP.SP_FileDialogContentsView)),
                              QLineEdit.ActionPosition.LeadingPosition)
        self.search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self.filter_bar = MemoryFilterBar(self)
        self.count_label = QLabel("Loading…", objectName="memoryCount")
        self.selection_label = QLabel(objectName="selectionCount")

        self.table = QTableView(objectName="memoryTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.setSortIndicator(COLUMN_INDEX["updated_at"], Qt.SortOrder.DescendingOrder)
        header.setHighlightSections(False)
        header.setStretchLastSection(False)
        char = self.fontMetrics().averageCharWidth()
        for name, chars in COLUMN_CHARS.items():
            self.table.setColumnWidth(COLUMN_INDEX[name], chars * char + 16)
        self.table.setColumnHidden(COLUMN_INDEX["created_at"], True)  # the header's context menu shows it
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._column_menu)
        self.empty = QLabel(objectName="memoryEmpty", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.empty.setEnabled(False)
        self.table_stack = QStackedWidget()
        self.table_stack.addWidget(self.table)
        self.table_stack.addWidget(self.empty)

        self.bulk_bar = QToolBar("Selected memories", objectName="bulkActions")
        self.bulk_bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.bulk_archive = self._action("Archive", SP.SP_DialogNoButton, "Archive the selected memories",
                                         self.archive_selected, self.bulk_bar)
        self.bulk_delete = self._action("Delete", SP.SP_TrashIcon, "Delete the selected memories (Del)",
                                        self.delete_selected, self.bulk_bar)
        self.bulk_pin = self._action("Pin", SP.SP_DialogApplyButton, "Pin the selected memories",
                                     lambda: self.pin_selected(True), self.bulk_bar)
        self.bulk_unpin = self._action("Unpin", SP.SP_DialogCancelButton, "Unpin the selected memories",
                                       lambda: self.pin_selected(False), self.bulk_bar)
        self.bulk_tag = self._action("Add tag…", SP.SP_FileDialogNewFolder, "Add a tag to the selected memories",
                                     self._ask_tag, self.bulk_bar)
        self.status_line = QLabel(objectName="browserStatus", wordWrap=True)
        self.status_line.setTextFormat(Qt.TextFormat.PlainText)

        self.detail = MemoryDetailPane(self.mem, self.runner, self)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        counts = QHBoxLayout()
        counts.addWidget(self.count_label)
        counts.addStretch(1)
        counts.addWidget(self.selection_label)
        left_layout.addLayout(counts)
        left_layout.addWidget(self.table_stack, 1)
        left_layout.addWidget(self.bulk_bar)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([780, 500])
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.filter_bar)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.status_line)

        window = Qt.ShortcutContext.WidgetWithChildrenShortcut
        self._action("Find", None, "Search memories", self.focus_search, self,
                     [QKeySequence.StandardKey.Find, QKeySequence("Ctrl+K")], window)
        self.save_action = self._action("Save", None, "Save the memory being edited", self.detail.save, self,
                                        [QKeySequence.StandardKey.Save], window)
        self.undo_action = self._action("Undo last edit", None, "Undo the last change made here",
                                        self.undo_last_edit, self, [QKeySequence.StandardKey.Undo], window)
        for owner in (self.search, self.table):  # not in the editor: Escape there must not reset the list
            self._action("Clear search", None, "Clear the search", self.clear_search, owner,
                         [QKeySequence(Qt.Key.Key_Escape)], Qt.ShortcutContext.WidgetShortcut)
        self._action("Delete", None, "Delete the selected memories", self.delete_selected, self.table,
                     [QKeySequence.StandardKey.Delete], Qt.ShortcutContext.WidgetShortcut)
        self.detail.undo_button.setEnabled(False)  # until something is changed in this window
        self.resize(1280, 760)
        self._update_selection()

    def _action(self, text: str, icon: QStyle.StandardPixmap | None, tip: str, slot: Callable[[], None],
                owner: QWidget, keys: list | None = None,
                context: Qt.ShortcutContext = Qt.ShortcutContext.WindowShortcut) -> QAction:
        action = QAction(text, self)
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        action.setToolTip(tip)
        action.triggered.connect(slot)
        if keys:
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(context)
        owner.addAction(action)
        return action

    def _wire(self) -> None:
        self.search.textChanged.connect(self._search_typed)
        self.search.returnPressed.connect(self._search_now)
        self.search_timer.timeout.connect(self._search_now)
        self.filter_bar.changed.connect(self._filters_changed)
        self.model.totalChanged.connect(self._update_count)
        self.model.loaded.connect(self._rows_loaded)
        self.model.sortChanged.connect(self._show_sort)
        self.model.errorOccurred.connect(self.show_status)
        self.model.notice.connect(self.show_status)
        self.model.modelReset.connect(self._update_empty)
        self.model.rowsInserted.connect(self._update_empty)
        self.table.horizontalHeader().sortIndicatorChanged.connect(self.model.sort)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.table.selectionModel().selectionChanged.connect(self._update_selection)
        self.table.activated.connect(self._open_detail)
        self.detail.saved.connect(lambda item: self._changed([item], reload_detail=False))
        self.detail.purged.connect(self._purged)
        self.detail.undoRequested.connect(self.undo_last_edit)
        self.detail.errorOccurred.connect(self.show_status)
        self.detail.openSessionRequested.connect(self.openSessionRequested)
        self.detail.openFileRequested.connect(self.openFileRequested)

    # ------------------------------------------------------------ public slots
    def show_memory(self, memory_id: str) -> None:
        """Select and open this memory; if it is not in the loaded rows, open it from the vault."""
        row = self.model.row_of(memory_id)
        if row >= 0:
            self._select_rows([row])
            return
        self._pending_select = memory_id
        self.table.clearSelection()
        self.runner.read(lambda: self.mem.get(memory_id), self.detail.show_item, self._error)

    def focus_search(self, text: str = "") -> None:
        if text:
            self.search.setText(text)
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def set_time_range(self, since: datetime | None, until: datetime | None) -> None:
        self.filter_bar.set_time_range(since, until)

    def refresh(self) -> None:
        """Memories changed elsewhere: re-read what is shown, keeping the selection."""
        self._keep_selection = self.selected_ids()
        self.model.reload(keep_rows=True)
        if self.detail.item is not None:
            self.detail.load(self.detail.item.id)

    def clear_search(self) -> None:
        self.search.clear()
        self._search_now()

    def show_status(self, message: str) -> None:
        self.status_line.setText(for_gui(message))

    # ------------------------------------------------------------ search and filters
    def _search_typed(self) -> None:
        self.search_timer.start()  # restarts: one search after typing pauses

    def _search_now(self) -> None:
        self.search_timer.stop()
        self._keep_selection = self.selected_ids()
        self.model.set_query(self.search.text())
        self._update_count()

    def _filters_changed(self) -> None:
        self._keep_selection = self.selected_ids()
        self.model.set_filters(self.filter_bar.filters())
        self._update_count()

    def _update_count(self) -> None:
        total = self.model.total
        if self.model.loading and (total is None or self.model.rowCount() == 0):
            self.count_label.setText("Loading…")
        elif self.model.searching:
            n = self.model.rowCount()
            self.count_label.setText(f"best {n} matches" if n >= SEARCH_K
                                     else f"{n:,} match" + ("" if n == 1 else "es"))
        elif total is not None:
            self.count_label.setText(f"{total:,} memor" + ("y" if total == 1 else "ies"))
        self._update_empty()

    def _update_empty(self) -> None:
        empty = self.model.rowCount() == 0 and not self.model.loading
        if empty:
            if self.model.searching:
                text = f"No memories match “{self.model.query}”.\nTry other words, or press Esc to clear the search."
            elif not self.filter_bar.is_default():
                text = "No memories match these filters.\nClear them with the reset button next to the dates."
            else:
                text = ("No memories yet — chat with MemDesk, write one down with Quick capture "
                        "(Ctrl+Shift+Space),\nor add a folder of notes in Settings ▸ Watched folders.")
            self.empty.setText(text)
        self.table_stack.setCurrentIndex(1 if empty else 0)

    def _show_sort(self, column: int, order: Qt.SortOrder) -> None:
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicator(column, order)  # -1: relevance, no column shown as sorted
        header.blockSignals(False)

    def _rows_loaded(self) -> None:
        self._update_count()
        wanted = [self._pending_select] if self._pending_select else self._keep_selection
        rows = [r for r in (self.model.row_of(i) for i in wanted if i) if r >= 0]
        if rows:
            self._select_rows(rows, keep_detail=not self._pending_select)
        elif not self.model.kept_rows:
            self.table.scrollToTop()  # a new list starts at its top (and does not fetch a second page)
        self._keep_selection = []
        self._pending_select = None  # only ever for the load that was under way
        self._exercise_step("loaded")

    # ------------------------------------------------------------ selection
    def selected_ids(self) -> list[str]:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        return [item.id for item in (self.model.item_at(r) for r in rows) if item is not None]

    def _select_rows(self, rows: list[int], keep_detail: bool = False) -> None:
        selection = QItemSelection()
        for row in rows:
            selection.select(self.model.index(row, 0), self.model.index(row, len(COLUMNS) - 1))
        flags = QItemSelectionModel.SelectionFlag
        model = self.table.selectionModel()
        self._restoring = keep_detail  # a refresh must not re-open the pane (it may hold unsaved typing)
        try:
            model.setCurrentIndex(self.model.index(rows[0], 0), flags.NoUpdate)
            model.select(selection, flags.ClearAndSelect | flags.Rows)
        finally:
            self._restoring = False
        self.table.scrollTo(self.model.index(rows[0], 0))
        self._update_selection()

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        item = self.model.item_at(current.row()) if current.isValid() else None
        if item is not None and not self._restoring and (self.detail.item is None or self.detail.item.id != item.id):
            self.detail.show_item(item)

    def _open_detail(self, index: QModelIndex) -> None:
        item = self.model.item_at(index.row())
        if item is not None:
            if self.detail.item is None or self.detail.item.id != item.id:
                self.detail.show_item(item)
            self.detail.text.setFocus(Qt.FocusReason.OtherFocusReason)
            self.detail.text.moveCursor(QTextCursor.MoveOperation.End)

    def _update_selection(self) -> None:
        n = len(self.table.selectionModel().selectedRows())
        self.selection_label.setText(f"{n:,} selected" if n > 1 else "")
        for action in (self.bulk_archive, self.bulk_delete, self.bulk_pin, self.bulk_unpin, self.bulk_tag):
            action.setEnabled(n > 0)

    # ------------------------------------------------------------ writes
    def archive_selected(self) -> None:
        self._bulk(lambda mem, i: mem.archive(i))

    def delete_selected(self) -> None:
        ids = self.selected_ids()
        if ids and confirm(self, "Delete memories",
                           f"Delete {len(ids)} memor{'y' if len(ids) == 1 else 'ies'}? They disappear from search "
                           "and chat; restore them from Status: deleted until they are purged."):
            self._bulk(lambda mem, i: mem.delete(i), ids)

    def pin_selected(self, pinned: bool) -> None:
        self._bulk(lambda mem, i: mem.update(i, pinned=pinned, reason="pinned" if pinned else "unpinned"))

    def add_tag_selected(self, text: str) -> None:
        tags = parse_tags(text)
        if tags:
            self._bulk(lambda mem, i: mem.update(i, tags=[*mem.get(i).tags, *tags], reason="tagged"))

    def _ask_tag(self) -> None:
        tag, ok = QInputDialog.getText(self, "Add tag", "Tag to add to the selected memories (commas for several):")
        if ok:
            self.add_tag_selected(tag)

    def _bulk(self, change: Callable[[Memory, str], MemoryItem], ids: list[str] | None = None) -> None:
        ids = ids if ids is not None else self.selected_ids()
        if not ids:
            return
        mem = self.mem
        self.runner.write(lambda: [change(mem, i) for i in ids], self._changed, self._error)

    def undo_last_edit(self) -> None:
        memory_id = self.last_edited
        if memory_id is None:
            self.show_status("Nothing to undo: no memory was changed in this window yet.")
            return
        mem = self.mem
        self.runner.write(lambda: curation.undo_last(mem, memory_id), self._undone, self._error)

    def _undone(self, item: MemoryItem) -> None:
        self._changed([item])
        self.show_status(f"Undone: {item.key or item.memory[:60]}")
        # An undone archive or delete brings a row back that this filter had dropped.
        self._pending_select = item.id
        self.model.reload(keep_rows=True)
        self._exercise_step("undone")

    def _changed(self, items: list[MemoryItem], reload_detail: bool = True) -> None:
        if not items:
            return
        self.last_edited = items[-1].id
        self.detail.undo_button.setEnabled(True)
        self.model.apply_changed(items)
        self.model.refresh_count()
        shown = self.detail.item
        if reload_detail and shown is not None and any(item.id == shown.id for item in items):
            self.detail.load(shown.id)
        self.memoriesChanged.emit([item.id for item in items])

    def _purged(self, memory_id: str) -> None:
        if self.last_edited == memory_id:
            self.last_edited = None  # a purge cannot be undone
            self.detail.undo_button.setEnabled(False)
        self.model.remove_ids([memory_id])
        self.model.refresh_count()
        self.memoriesChanged.emit([memory_id])

    def _column_menu(self, pos: QPoint) -> None:
        menu = QMenu(self)
        for i, column in enumerate(COLUMNS):
            action = menu.addAction(column.title)
            action.setCheckable(True)
            action.setChecked(not self.table.isColumnHidden(i))
            action.setEnabled(column.name != "memory")
            action.toggled.connect(lambda shown, i=i: self.table.setColumnHidden(i, not shown))
        menu.exec(self.table.horizontalHeader().mapToGlobal(pos))

    def _error(self, error: BaseException) -> None:
        self.show_status(str(error) if isinstance(error, MemDeskError) else f"Something went wrong: {error}")

    # ------------------------------------------------------------ smoke check
    def exercise(self) -> None:
        """Search for the words of a known memory, open it, edit and save, check history, undo."""
        self._exercise = {"step": "pick"}
        mem = self.mem
        self.runner.read(lambda: mem.list(limit=1), self._exercise_picked, self._exercise_failed)

    def _exercise_picked(self, items: list[MemoryItem]) -> None:
        if not items:
            self._exercise_failed(AssertionError("the vault has no live memory to exercise the browser with"))
            return
        item = items[0]
        # Its own words (the first dozen) rank it first even among many similar memories.
        words = " ".join(re.findall(r"\w+", item.memory)[:12]) or item.memory[:100]
        self._exercise.update(step="search", item=item, word=words)
        self.search.setText(self._exercise["word"])
        if self.model.query == self.search.text().strip():
            self.model.reload(keep_rows=False)  # same query as before: set_query would not search again
        self._search_now()

    def _exercise_step(self, event: str) -> None:
        state = self._exercise
        step = state.get("step")
        if step == "search" and event == "loaded":
            state["found"] = self.model.row_of(state["item"].id) >= 0
            if not state["found"]:
                return self._exercise_failed(AssertionError(
                    f"searching {state['word']!r} did not list memory {state['item'].id[:8]}"))
            state["step"] = "open"
            self.detail.loaded.connect(self._exercise_detail_loaded)
            self.show_memory(state["item"].id)
        elif step == "undone" and event == "undone":
            state["step"] = "done"

    def _exercise_detail_loaded(self) -> None:
        state = self._exercise
        if state.get("step") == "open":
            state.update(step="saved", versions_before=len(self.detail.versions))
            self.detail.text.setPlainText(state["item"].memory + " (checked)")
            self.detail.save()
        elif state.get("step") == "saved" and self.detail.item is not None \
                and self.detail.item.memory.endswith("(checked)"):
            state.update(step="undone", history_rows=self.history_rows(),
                         diff=self.detail.history_diff.toHtml())
            self.detail.loaded.disconnect(self._exercise_detail_loaded)
            self.undo_last_edit()

    def _exercise_failed(self, error: BaseException) -> None:
        self._exercise.update(step="failed", error=str(error))

    def history_rows(self) -> int:
        return self.detail.history_list.count()

    def check_exercised(self) -> None:
        state = self._exercise
        if state.get("step") == "failed":
            raise AssertionError(f"memory browser: {state['error']}")
        if state.get("step") != "done":
            raise AssertionError(f"memory browser: the exercise stopped at step {state.get('step')!r} "
                                 f"(status line: {self.status_line.text() or 'empty'})")
        expected = state["versions_before"] + 2  # one more earlier version, plus the current one
        if state["history_rows"] != expected or expected < 2:
            raise AssertionError(f"memory browser: history shows {state['history_rows']} versions after an edit, "
                                 f"expected {expected}")
        if "(checked)" not in state["diff"]:
            raise AssertionError("memory browser: the history diff does not show the inserted text")
        shown = self.detail.item
        if shown is None or shown.memory != state["item"].memory:
            raise AssertionError("memory browser: undo did not bring the original text back into the detail pane")
