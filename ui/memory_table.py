"""The memory table: its model (lazy pages of `Memory.list`, or the hits of one hybrid
search) and the filter bar that decides what it lists.

Listing mode never loads every row: the first page arrives after a reset, further pages only
when the view asks (canFetchMore/fetchMore, e.g. when scrolled to the bottom), each one read
on the runner's read lane after the last row shown (keyset paging). rowCount is what has arrived; `total` is
`Memory.count(filters)`, read separately. Search mode holds the best `SEARCH_K` hits,
ranked by relevance until a header click sorts them locally.

Every read carries the generation it was started in; a reset (new filters, query or order)
bumps the generation, so a page or search result that arrives late is dropped.
"""
from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QDate,
    QDateTime,
    QLocale,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import QComboBox, QDateEdit, QHBoxLayout, QLabel, QLineEdit, QStyle, QToolButton, QWidget

from memdesk.engine.api import Memory
from memdesk.engine.cube import LIVE_STATUSES, Filters, MemoryItem, MemoryType, SearchHit, Source, Status, to_utc, ts
from memdesk.ui.tasks import TaskRunner

PAGE_SIZE = 200
SEARCH_K = 200
# refresh() re-reads what is loaded, up to this many rows, so an edit elsewhere shows in place.
MAX_RELOAD_ROWS = 2000

ItemRole = Qt.ItemDataRole.UserRole + 1
IdRole = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column:
    name: str
    title: str
    order: str | None  # the `Memory.list` order a header click selects; None: sortable while searching only
    tooltip: str


COLUMNS = (
    Column("memory", "Memory", None, "The memory's text"),
    Column("key", "Key", None, "Short title"),
    Column("memory_type", "Type", None, "Kind of memory"),
    Column("tags", "Tags", None, "Tags"),
    Column("status", "Status", None, "activated, resolving, archived or deleted"),
    Column("source", "Source", None, "Where it came from: conversation, file, capture, system"),
    Column("event_time", "Event time", "event_time", "When it happened (or when it was stored)"),
    Column("updated_at", "Updated", "updated", "Last change"),
    Column("created_at", "Created", "created", "When it was stored"),
    Column("pinned", "Pinned", "priority", "Pinned memories are always considered first"),
    Column("priority", "Priority", "priority", "Higher comes first"),
    Column("usage_count", "Usage", "usage", "How often it was given to the model"),
)
COLUMN_INDEX = {c.name: i for i, c in enumerate(COLUMNS)}
_NUMERIC = {"priority", "usage_count"}
_TIMES = {"event_time", "updated_at", "created_at"}


def short_time(value: datetime | None) -> str:
    if value is None:
        return ""
    stamp = QDateTime.fromSecsSinceEpoch(int(value.timestamp()))
    # Day, month name, year: unambiguous in every locale (a short numeric date is not), localised names.
    return QLocale().toString(stamp, "d MMM yyyy HH:mm")


def one_line(text: str, limit: int = 300) -> str:
    """Table cells show one line; the view elides it to the column width."""
    flat = " ".join(text[: limit * 2].split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def matches(item: MemoryItem, f: Filters) -> bool:
    """Whether `Memory.list(f)` would still list this item (after a local edit)."""
    when = ts(item.event_time or item.created_at)
    return ((not f.statuses or item.status in f.statuses)
            and (not f.memory_types or item.memory_type in f.memory_types)
            and (not f.sources or item.source in f.sources)
            and (f.scope is None or item.scope == f.scope)
            and (f.pinned is None or item.pinned == f.pinned)
            and all(tag in item.tags for tag in f.tags)
            and (f.since is None or when >= ts(f.since))
            and (f.until is None or when < ts(f.until)))


def _sort_key(name: str) -> Callable[[MemoryItem], Any]:
    if name == "event_time":
        return lambda item: ts(item.event_time or item.created_at)
    if name in _TIMES:
        return lambda item: ts(getattr(item, name)) or 0.0
    if name == "tags":
        return lambda item: ", ".join(item.tags).casefold()
    if name in _NUMERIC or name == "pinned":
        return lambda item: getattr(item, name)
    return lambda item: str(getattr(item, name)).casefold()


class MemoryTableModel(QAbstractTableModel):
    totalChanged = Signal(int)  # rows matching the filters (listing) or hits (search)
    loadingChanged = Signal(bool)
    loaded = Signal()  # a reset's first rows (or the search's hits) are in
    sortChanged = Signal(int, Qt.SortOrder)  # column shown as sorted; -1 = relevance
    errorOccurred = Signal(str)
    notice = Signal(str)

    def __init__(self, mem: Memory, runner: TaskRunner, parent=None, page_size: int = PAGE_SIZE):
        super().__init__(parent)
        self.mem = mem
        self.runner = runner
        self.page_size = page_size
        self._rows: list[MemoryItem] = []
        self._scores: dict[str, float] = {}
        self._filters = Filters()
        self._query = ""
        self._order = "updated"
        self._list_sort = COLUMN_INDEX["updated_at"]
        self._local_sort: tuple[int, Qt.SortOrder] | None = None
        self._generation = 0
        self._loading = False
        self._exhausted = False
        self.total: int | None = None
        self.kept_rows = False  # whether the last reset was a refresh of the same list (not a new one)

    # ------------------------------------------------------------ state
    @property
    def filters(self) -> Filters:
        return self._filters

    @property
    def query(self) -> str:
        return self._query

    @property
    def order(self) -> str:
        return self._order

    @property
    def searching(self) -> bool:
        return bool(self._query)

    @property
    def loading(self) -> bool:
        return self._loading

    def set_filters(self, filters: Filters) -> None:
        if filters != self._filters:
            self._filters = filters
            self.reload(keep_rows=False)

    def set_query(self, query: str) -> None:
        query = query.strip()
        if query != self._query:
            self._query = query
            self._local_sort = None
            self.reload(keep_rows=False)

    def set_order(self, order: str) -> None:
        if order != self._order:
            self._order = order
            self.reload(keep_rows=False)

    def item_at(self, row: int) -> MemoryItem | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, memory_id: str) -> int:
        return next((i for i, item in enumerate(self._rows) if item.id == memory_id), -1)

    def score_of(self, memory_id: str) -> float | None:
        return self._scores.get(memory_id)

    # ------------------------------------------------------------ loading
    def reload(self, keep_rows: bool = True) -> None:
        """Re-read from the start. keep_rows: re-read as many rows as are loaded (refresh)."""
        self._generation += 1
        self.kept_rows = keep_rows
        generation = self._generation
        self._set_loading(True)
        self._exhausted = False
        mem, filters, query = self.mem, self._filters, self._query
        if query:
            self.runner.read(lambda: mem.search(query, k=SEARCH_K, filters=filters),
                             lambda hits: self._hits_arrived(generation, hits), self._failed(generation))
            return
        limit = max(self.page_size, min(len(self._rows), MAX_RELOAD_ROWS)) if keep_rows else self.page_size
        order = self._order
        self.runner.read(lambda: mem.list(filters, order=order, limit=limit, offset=0),
                         lambda items: self._first_rows_arrived(generation, items, limit), self._failed(generation))
        self.runner.read(lambda: mem.count(filters), lambda n: self._count_arrived(generation, n),
                         self._failed(generation))

    def refresh_count(self) -> None:
        if self.searching:
            return
        generation, mem, filters = self._generation, self.mem, self._filters
        self.runner.read(lambda: mem.count(filters), lambda n: self._count_arrived(generation, n),
                         self._failed(generation))

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and not self.searching and not self._loading and not self._exhausted

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        if not self.canFetchMore(parent):
            return
        generation = self._generation
        self._set_loading(True)
        # Keyset paging: the next page starts after the last row shown, so row 50,000 costs what row 0 does.
        mem, filters, order, limit = self.mem, self._filters, self._order, self.page_size
        after = self._rows[-1].id if self._rows else None
        self.runner.read(lambda: mem.list(filters, order=order, limit=limit, after=after),
                         lambda items: self._page_arrived(generation, items), self._failed(generation))

    def _first_rows_arrived(self, generation: int, items: list[MemoryItem], limit: int) -> None:
        if generation != self._generation:
            return
        self.beginResetModel()
        self._rows = list(items)
        self._scores = {}
        self.endResetModel()
        self._exhausted = len(items) < limit
        self._set_loading(False)
        self.sortChanged.emit(self._list_sort, Qt.SortOrder.DescendingOrder)
        self.loaded.emit()

    def _page_arrived(self, generation: int, items: list[MemoryItem]) -> None:
        if generation != self._generation:
            return
        self._exhausted = len(items) < self.page_size
        known = {item.id for item in self._rows}
        # An edit elsewhere can move a row across a page boundary; never show it twice.
        fresh = [item for item in items if item.id not in known]
        if fresh:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(fresh) - 1)
            self._rows.extend(fresh)
            self.endInsertRows()
        self._set_loading(False)

    def _hits_arrived(self, generation: int, hits: list[SearchHit]) -> None:
        if generation != self._generation:
            return
        self.beginResetModel()
        self._rows = [hit.item for hit in hits]
        self._scores = {hit.item.id: hit.score for hit in hits}
        if self._local_sort is not None:
            self._sort_rows(*self._local_sort)
        self.endResetModel()
        self._exhausted = True
        self._set_loading(False)
        self._set_total(len(hits))
        column, order = self._local_sort or (-1, Qt.SortOrder.DescendingOrder)
        self.sortChanged.emit(column, order)
        self.loaded.emit()

    def _count_arrived(self, generation: int, n: int) -> None:
        if generation == self._generation and not self.searching:
            self._set_total(n)

    def _failed(self, generation: int) -> Callable[[BaseException], None]:
        def report(error: BaseException) -> None:
            if generation == self._generation:
                self._set_loading(False)
                self._exhausted = True  # do not retry in a loop; refresh() tries again
                self.errorOccurred.emit(str(error))
        return report

    def _set_loading(self, value: bool) -> None:
        if value != self._loading:
            self._loading = value
            self.loadingChanged.emit(value)

    def _set_total(self, n: int) -> None:
        self.total = n
        self.totalChanged.emit(n)

    # ------------------------------------------------------------ local changes
    def apply_changed(self, items: Iterable[MemoryItem]) -> None:
        """Show edits made in this window at once: rows update in place, or leave if filtered out."""
        gone: list[str] = []
        for item in items:
            row = self.row_of(item.id)
            if row < 0:
                continue
            if matches(item, self._filters):
                self._rows[row] = item
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))
            else:
                gone.append(item.id)
        self.remove_ids(gone)

    def remove_ids(self, ids: Iterable[str]) -> None:
        removed = 0
        for memory_id in ids:
            row = self.row_of(memory_id)
            if row >= 0:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
                removed += 1
        if removed and self.total is not None:
            self._set_total(max(0, self.total - removed))

    # ------------------------------------------------------------ sorting
    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(COLUMNS):
            return
        if self.searching:
            self._local_sort = (column, order)
            self.layoutAboutToBeChanged.emit()
            self._sort_rows(column, order)
            self.layoutChanged.emit()
            self.sortChanged.emit(column, order)
            return
        engine_order = COLUMNS[column].order
        if engine_order is None:
            self.notice.emit(f"The full list sorts by event time, updated, created, priority or usage; "
                             f"search first to sort by {COLUMNS[column].title.lower()}.")
        else:
            self._list_sort = column
            self.set_order(engine_order)
        # The engine lists newest/highest first only; show that, whatever the header toggled to.
        self.sortChanged.emit(self._list_sort, Qt.SortOrder.DescendingOrder)

    def _sort_rows(self, column: int, order: Qt.SortOrder) -> None:
        self._rows.sort(key=_sort_key(COLUMNS[column].name), reverse=order == Qt.SortOrder.DescendingOrder)

    # ------------------------------------------------------------ Qt model
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        column = COLUMNS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.title
        if role == Qt.ItemDataRole.ToolTipRole:
            how = "click to sort" if column.order else "click to sort search results"
            return f"{column.tooltip} ({how})"
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        item = self.item_at(index.row()) if index.isValid() else None
        if item is None:
            return None
        name = COLUMNS[index.column()].name
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, name)
        if role == ItemRole:
            return item
        if role == IdRole:
            return item.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item, name)
        if role == Qt.ItemDataRole.TextAlignmentRole and (name in _NUMERIC or name == "pinned"):
            return int(Qt.AlignmentFlag.AlignCenter if name == "pinned" else
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and item.status in (Status.ARCHIVED, Status.DELETED):
            return QGuiApplication.palette().color(QPalette.ColorRole.PlaceholderText)
        return None

    @staticmethod
    def _display(item: MemoryItem, name: str) -> str:
        if name == "memory":
            return one_line(item.memory)
        if name == "tags":
            return ", ".join(item.tags)
        if name == "pinned":
            return "✓" if item.pinned else ""
        if name == "memory_type":
            return item.memory_type.removesuffix("Memory")
        if name == "event_time":
            return short_time(item.event_time or item.created_at)
        if name in _TIMES:
            return short_time(getattr(item, name))
        return str(getattr(item, name))

    def _tooltip(self, item: MemoryItem, name: str) -> str | None:
        if name == "memory":
            score = self._scores.get(item.id)
            extra = f"<br><i>relevance {score:.3f}</i>" if score is not None else ""
            return f"<p>{html.escape(item.memory[:1500])}</p>{extra}"
        if name == "memory_type":
            return item.memory_type
        return None


# Oldest selectable date; a date edit showing it means "no limit" (shown as its special text).
NO_DATE = QDate(1970, 1, 1)
STATUS_CHOICES = (("Live", LIVE_STATUSES), ("Activated", (Status.ACTIVATED.value,)),
                  ("Resolving", (Status.RESOLVING.value,)), ("Archived", (Status.ARCHIVED.value,)),
                  ("Deleted", (Status.DELETED.value,)), ("Any status", ()))
PINNED_CHOICES = (("Pinned or not", None), ("Pinned", True), ("Not pinned", False))


class MemoryFilterBar(QWidget):
    """Type, status, source, pinned, tags and event-time range -> one `Filters`."""
    changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("memoryFilters")
        self._since: datetime | None = None
        self._until: datetime | None = None
        self.type = self._combo("filterType", "Only this kind of memory",
                                [("All types", None)] + [(t.value.removesuffix("Memory"), t.value) for t in MemoryType])
        self.status = self._combo("filterStatus", "Live = activated or resolving; archived and deleted are hidden",
                                  list(STATUS_CHOICES))
        self.source = self._combo("filterSource", "Where memories came from",
                                  [("All sources", None)] + [(s.value.capitalize(), s.value) for s in Source])
        self.pinned = self._combo("filterPinned", "Pinned memories only, or only the others", list(PINNED_CHOICES))
        self.tags = QLineEdit(objectName="filterTags", placeholderText="tags…", clearButtonEnabled=True)
        self.tags.setToolTip("Comma-separated tags; a memory must have all of them")
        self._tag_timer = QTimer(self, singleShot=True, interval=300)
        self._tag_timer.timeout.connect(self.changed.emit)
        self.tags.textChanged.connect(self._tag_timer.start)
        self.tags.returnPressed.connect(self._tags_now)
        self.since = self._date("filterSince", "Event time from (inclusive)")
        self.until = self._date("filterUntil", "Event time up to and including this day")
        self.clear_button = QToolButton(objectName="clearFilters", toolTip="Clear all filters", autoRaise=True)
        self.clear_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_DialogResetButton))
        self.clear_button.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.type, self.status, self.source, self.pinned):
            layout.addWidget(widget)
        layout.addWidget(self.tags, 1)
        layout.addWidget(QLabel("From"))
        layout.addWidget(self.since)
        layout.addWidget(QLabel("to"))
        layout.addWidget(self.until)
        layout.addWidget(self.clear_button)

    def _combo(self, name: str, tip: str, choices: list[tuple[str, object]]) -> QComboBox:
        combo = QComboBox(objectName=name, toolTip=tip)
        for label, value in choices:
            combo.addItem(label, value)
        combo.currentIndexChanged.connect(lambda _index: self.changed.emit())
        return combo

    def _date(self, name: str, tip: str) -> QDateEdit:
        edit = QDateEdit(objectName=name, toolTip=tip, calendarPopup=True)
        edit.setDisplayFormat("yyyy-MM-dd")
        edit.setMinimumDate(NO_DATE)
        edit.setSpecialValueText("any")
        edit.setDate(NO_DATE)
        edit.dateChanged.connect(self._dates_edited)
        return edit

    def _tags_now(self) -> None:
        self._tag_timer.stop()
        self.changed.emit()

    def _dates_edited(self) -> None:
        since, until = self.since.date(), self.until.date()
        self._since = None if since == NO_DATE else local_midnight(since)
        # The "to" day is inclusive on screen; Filters.until is exclusive.
        self._until = None if until == NO_DATE else local_midnight(until.addDays(1))
        self.changed.emit()

    def set_time_range(self, since: datetime | None, until: datetime | None) -> None:
        """Exact instants (the timeline's); the date edits show the days they fall on."""
        since, until = to_utc(since), to_utc(until)  # naive means UTC, as everywhere in the engine
        self._since, self._until = since, until
        for edit, value in ((self.since, since), (self.until, until)):
            edit.blockSignals(True)
            if value is None:
                edit.setDate(NO_DATE)
            else:
                shown = (value - timedelta(microseconds=1)) if edit is self.until else value
                local = shown.astimezone()
                edit.setDate(QDate(local.year, local.month, local.day))
            edit.blockSignals(False)
        self.changed.emit()

    def set_pinned(self, value: bool | None) -> None:
        self.pinned.setCurrentIndex([v for _, v in PINNED_CHOICES].index(value))

    def set_status(self, label: str) -> None:
        self.status.setCurrentIndex(self.status.findText(label))

    def set_type(self, memory_type: str | None) -> None:
        self.type.setCurrentIndex(self.type.findData(memory_type) if memory_type else 0)

    def clear(self) -> None:
        for widget in (self.type, self.status, self.source, self.pinned, self.tags, self.since, self.until):
            widget.blockSignals(True)
        for combo in (self.type, self.status, self.source, self.pinned):
            combo.setCurrentIndex(0)
        self.tags.clear()
        self.since.setDate(NO_DATE)
        self.until.setDate(NO_DATE)
        self._since = self._until = None
        for widget in (self.type, self.status, self.source, self.pinned, self.tags, self.since, self.until):
            widget.blockSignals(False)
        self.changed.emit()

    def filters(self) -> Filters:
        memory_type, source = self.type.currentData(), self.source.currentData()
        return Filters(memory_types=(memory_type,) if memory_type else (),
                       statuses=tuple(self.status.currentData()),
                       tags=tuple(part.strip() for part in self.tags.text().split(",") if part.strip()),
                       sources=(source,) if source else (), since=self._since, until=self._until,
                       pinned=self.pinned.currentData())

    def is_default(self) -> bool:
        return self.filters() == Filters()


def local_midnight(day: QDate) -> datetime:
    return datetime(day.year(), day.month(), day.day()).astimezone()
