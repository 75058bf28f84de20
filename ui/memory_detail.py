"""The detail pane: edit one memory, see its history (with diffs) and where it came from.

Single-memory writes (save, archive, delete, restore, purge) run here on the runner's write
lane; the pane then announces the new state with `saved` (or `purged`) so the window can
update its table, remember what to undo and tell the rest of the app. Undo itself belongs
to the window (it undoes the memory last edited there, not necessarily the one shown).

A save is made against the version the pane showed (`Memory.update(expected_version=...)`).
When someone else (extraction, a chat, ingestion, another window) writes a newer version
while the person is typing, the pane keeps their typing, says so, and offers to reload;
it does not save over a version it never showed.
"""
from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime

from PySide6.QtCore import QDate, Qt, QUrl, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDateEdit,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QStyle,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryItem, SourceRef, Status, Version, parse_iso
from memdesk.engine.errors import NotFoundError, StaleVersionError
from memdesk.ui.history_diff import version_diff_html
from memdesk.ui.memory_table import local_midnight, short_time
from memdesk.ui.messages import for_gui
from memdesk.ui.tasks import TaskRunner


def confirm(parent: QWidget, title: str, text: str) -> bool:
    """Ask before anything that loses data; No is the default button."""
    answer = QMessageBox.question(parent, title, text,
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def parse_tags(text: str) -> list[str]:
    out: list[str] = []
    for tag in (part.strip() for part in text.split(",")):
        if tag and tag not in out:
            out.append(tag)
    return out


def local_date(value: datetime) -> QDate:
    local = value.astimezone()
    return QDate(local.year, local.month, local.day)


def describe_source(ref: SourceRef) -> str:
    """One provenance line as HTML; chat turns and file spans get a link the app opens."""
    when = parse_iso(ref.chat_time) if ref.chat_time else None
    stamp = f" · {html.escape(short_time(when))}" if when else ""
    if ref.type == "chat" and ref.session_id:
        who = f" · {html.escape(ref.role)}" if ref.role else ""
        return (f"<b>Chat</b> · session {html.escape(ref.session_id[:8])}{stamp}{who} "
                "— <a href='{link}'>open conversation</a>")
    if ref.doc_path:
        span = ""
        if ref.start_line is not None:
            span = f":{ref.start_line}" + (f"–{ref.end_line}" if ref.end_line not in (None, ref.start_line) else "")
        return f"<b>File</b> · {html.escape(ref.doc_path)}{span} — <a href='{{link}}'>open file</a>"
    return f"<b>{html.escape(ref.type.capitalize())}</b>{stamp}"


class MemoryDetailPane(QWidget):
    saved = Signal(object)  # MemoryItem: its new state after a write from this pane
    purged = Signal(str)
    undoRequested = Signal()
    openSessionRequested = Signal(str, str)
    openFileRequested = Signal(str, int)
    loaded = Signal()  # the shown item and its history are fresh from the vault
    errorOccurred = Signal(str)

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("memoryDetail")
        self.mem = mem
        self.runner = runner
        self.item: MemoryItem | None = None  # the version the form shows and edits
        self.versions: list[Version] = []
        self.newer: tuple[MemoryItem, list[Version]] | None = None  # written elsewhere while typing
        self._generation = 0
        self._populating = False
        self._build()
        self.clear()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        style = self.style()
        self.stack = QStackedWidget(self)
        empty = QLabel("Select a memory to see and edit it.\nIts history and origin show here too.")
        empty.setObjectName("detailEmpty")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        empty.setEnabled(False)
        self.stack.addWidget(empty)

        body = QWidget()
        self.title = QLabel()
        self.title.setObjectName("detailTitle")
        self.title.setWordWrap(True)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.title.setFont(font)
        self.meta = QLabel()
        self.meta.setObjectName("detailMeta")
        self.meta.setWordWrap(True)
        self.meta.setTextFormat(Qt.TextFormat.PlainText)
        self.meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.text = QPlainTextEdit(objectName="memoryText")
        self.text.setPlaceholderText("What to remember")
        self.key = QLineEdit(objectName="memoryKey", placeholderText="Short title (optional)")
        self.tags = QLineEdit(objectName="memoryTags", placeholderText="family, travel, work")
        self.tags.setToolTip("Tags, separated by commas")
        self.priority = QSpinBox(objectName="memoryPriority")
        self.priority.setRange(-100, 100)
        self.priority.setToolTip("Higher priority memories are listed and considered first")
        self.expires_on = QCheckBox("Expires on", objectName="memoryExpiresOn")
        self.expires = QDateEdit(objectName="memoryExpires", calendarPopup=True)
        self.expires.setDate(QDate.currentDate().addMonths(1))
        self.expires.setEnabled(False)
        self.expires_on.toggled.connect(self.expires.setEnabled)
        self.pinned = QCheckBox("Pinned", objectName="memoryPinned")
        self.pinned.setToolTip("Pinned memories are always considered for the assistant's answers")
        expiry = QHBoxLayout()
        expiry.addWidget(self.expires_on)
        expiry.addWidget(self.expires, 1)
        form = QFormLayout()
        form.addRow("&Key", self.key)
        form.addRow("&Tags", self.tags)
        form.addRow("&Priority", self.priority)
        form.addRow("Expiry", expiry)
        form.addRow("", self.pinned)
        for widget in (self.text, self.key, self.tags):
            widget.textChanged.connect(self._update_buttons)
        self.priority.valueChanged.connect(self._update_buttons)
        self.expires_on.toggled.connect(self._update_buttons)
        self.expires.dateChanged.connect(self._update_buttons)
        self.pinned.toggled.connect(self._update_buttons)

        def button(text: str, icon: QStyle.StandardPixmap, tip: str, slot: Callable[[], None],
                   name: str) -> QPushButton:
            b = QPushButton(style.standardIcon(icon), text, objectName=name, toolTip=tip)
            b.clicked.connect(slot)
            return b

        SP = QStyle.StandardPixmap
        self.save_button = button("Save", SP.SP_DialogSaveButton, "Save changes (Ctrl+S)", self.save, "saveButton")
        self.save_button.setDefault(True)
        self.undo_button = button("Undo last edit", SP.SP_ArrowBack,
                                  "Undo the last change made in this window (Ctrl+Z)", self.undoRequested.emit,
                                  "undoButton")
        self.archive_button = button("Archive", SP.SP_DialogNoButton, "Hide from search and chat, keep it",
                                     self.archive, "archiveButton")
        self.restore_button = button("Restore", SP.SP_DialogYesButton, "Make it active again", self.restore,
                                     "restoreButton")
        self.delete_button = button("Delete", SP.SP_TrashIcon, "Move to deleted (restorable until purged)",
                                    self.delete, "deleteButton")
        self.purge_button = button("Purge…", SP.SP_DialogDiscardButton, "Erase it and its history for good",
                                   self.purge, "purgeButton")
        edit_row = QHBoxLayout()
        edit_row.addWidget(self.save_button)
        edit_row.addWidget(self.undo_button)
        edit_row.addStretch(1)
        life_row = QHBoxLayout()
        for b in (self.archive_button, self.restore_button, self.delete_button, self.purge_button):
            life_row.addWidget(b)
        life_row.addStretch(1)
        self.error = QLabel(objectName="detailError", wordWrap=True)
        self.error.setStyleSheet("color: #a61b1b;")  # readable red on the light Fusion palette
        self.error.hide()
        self.stale = QWidget(objectName="staleBanner")
        self.stale_text = QLabel(objectName="staleText", wordWrap=True)
        self.reload_button = button("Reload", SP.SP_BrowserReload, "Show the newer version (your edit is dropped)",
                                    self.reload_newer, "reloadButton")
        stale_row = QHBoxLayout(self.stale)
        stale_row.setContentsMargins(0, 0, 0, 0)
        stale_row.addWidget(self.stale_text, 1)
        stale_row.addWidget(self.reload_button)
        self.stale.hide()

        editor = QWidget()
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.title, self.meta, self.stale, self.text):
            editor_layout.addWidget(w, 1 if w is self.text else 0)
        editor_layout.addLayout(form)
        editor_layout.addLayout(edit_row)
        editor_layout.addLayout(life_row)
        editor_layout.addWidget(self.error)

        self.history_list = QListWidget(objectName="historyList")
        self.history_list.setToolTip("Each earlier version; select one to see what changed next")
        self.history_list.currentRowChanged.connect(self._show_diff)
        self.history_diff = QTextBrowser(objectName="historyDiff")
        history = QSplitter(Qt.Orientation.Horizontal)
        history.addWidget(self.history_list)
        history.addWidget(self.history_diff)
        history.setStretchFactor(1, 2)
        self.provenance = QTextBrowser(objectName="provenance")
        self.provenance.setOpenLinks(False)
        self.provenance.anchorClicked.connect(self._source_clicked)
        self.tabs = QTabWidget(objectName="detailTabs")
        self.tabs.addTab(history, style.standardIcon(SP.SP_FileDialogDetailedView), "History")
        self.tabs.addTab(self.provenance, style.standardIcon(SP.SP_FileDialogInfoView), "Provenance")

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(editor)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        body_layout.addWidget(split)
        self.stack.addWidget(body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

    # ------------------------------------------------------------ showing
    def clear(self) -> None:
        self._generation += 1
        self.item = None
        self.versions = []
        self._set_newer(None)
        self.stack.setCurrentIndex(0)

    def show_item(self, item: MemoryItem) -> None:
        """Show what we have now (a table row), then read the fresh item and its history."""
        same = self.item is not None and self.item.id == item.id
        if not (same and self.is_dirty()):
            self._populate(item)
        self.load(item.id)

    def load(self, memory_id: str) -> None:
        self._generation += 1
        generation, mem = self._generation, self.mem
        self.runner.read(lambda: (mem.get(memory_id), mem.history(memory_id)),
                         lambda result: self._loaded(generation, *result),
                         lambda error: self._load_failed(generation, memory_id, error))

    def _loaded(self, generation: int, item: MemoryItem, versions: list[Version]) -> None:
        if generation != self._generation:
            return
        shown = self.item
        if shown is not None and shown.id == item.id and self.is_dirty():
            # A refresh must not wipe what the person is typing into the same memory; nor may
            # their edit be saved over a version they never saw.
            if item.version != shown.version:
                self._set_newer((item, versions))
                self.loaded.emit()
                return
            self.item = item  # the same version (its usage count, say, moved on)
        else:
            self._populate(item)
        self.versions = versions
        self._fill_history()
        self._update_buttons()
        self.loaded.emit()

    def _load_failed(self, generation: int, memory_id: str, error: BaseException) -> None:
        if generation == self._generation and isinstance(error, NotFoundError) and \
                self.item is not None and self.item.id == memory_id:
            self.clear()  # purged or forgotten elsewhere: nothing left to show
            self._show_error("That memory was erased elsewhere (purged or forgotten).")
            self.errorOccurred.emit(self.error.text())
            return
        self._failed(error)

    def _set_newer(self, newer: tuple[MemoryItem, list[Version]] | None) -> None:
        self.newer = newer
        if newer is not None:
            assert self.item is not None
            self.stale_text.setText(
                f"This memory was changed elsewhere while you were editing it (you see version "
                f"{self.item.version}, it is now version {newer[0].version}). Your edit cannot be saved over "
                "a version you have not seen: Reload to see it, then make your change again.")
        self.stale.setVisible(newer is not None)
        self._update_buttons()

    def reload_newer(self) -> None:
        """Show the newer version (dropping the edit in progress); or re-read it when none is known."""
        if self.newer is not None:
            item, versions = self.newer
            self._populate(item)
            self.versions = versions
            self._fill_history()
            self._update_buttons()
        elif self.item is not None:
            self._populate(self.item)
            self.load(self.item.id)

    def _populate(self, item: MemoryItem) -> None:
        self._populating = True
        try:
            self.item = item
            self._set_newer(None)
            self.stack.setCurrentIndex(1)
            self.title.setText(item.key or item.memory.split("\n", 1)[0][:80])
            self.title.setToolTip(item.id)
            self.text.setPlainText(item.memory)
            self.key.setText(item.key)
            self.tags.setText(", ".join(item.tags))
            self.priority.setValue(item.priority)
            self.expires_on.setChecked(item.expires is not None)
            if item.expires is not None:
                self.expires.setDate(local_date(item.expires))
            self.pinned.setChecked(item.pinned)
            self._set_meta(item)
            self._fill_provenance(item)
            self.error.hide()
        finally:
            self._populating = False
        self._update_buttons()

    def _set_meta(self, item: MemoryItem) -> None:
        parts = [item.memory_type, item.status, item.source, f"v{item.version}",
                 f"event {short_time(item.event_time or item.created_at)}",
                 f"updated {short_time(item.updated_at)}", f"used {item.usage_count}×", f"id {item.id[:8]}"]
        self.meta.setText(" · ".join(parts))

    def _fill_provenance(self, item: MemoryItem) -> None:
        if not item.sources:
            self.provenance.setHtml("<p><i>No recorded origin.</i></p>")
            return
        lines = [describe_source(ref).replace("{link}", f"source:{i}") for i, ref in enumerate(item.sources)]
        self.provenance.setHtml("".join(f"<p>{line}</p>" for line in lines))

    def _fill_history(self) -> None:
        self.history_list.blockSignals(True)
        self.history_list.clear()
        assert self.item is not None
        for i, version in enumerate(self.versions):
            following = self.versions[i + 1].version if i + 1 < len(self.versions) else self.item.version
            entry = QListWidgetItem(f"v{version.version} → v{following}: {version.reason}\n"
                                    f"{short_time(version.changed_at)}")
            entry.setToolTip(version.item.memory[:500])
            self.history_list.addItem(entry)
        current = QListWidgetItem(f"v{self.item.version} (current)\n{short_time(self.item.updated_at)}")
        self.history_list.addItem(current)
        self.history_list.blockSignals(False)
        # Open on the latest change, so a save shows its own diff at once.
        self.history_list.setCurrentRow(max(0, len(self.versions) - 1))
        self._show_diff(self.history_list.currentRow())

    def _show_diff(self, row: int) -> None:
        if self.item is None or row < 0:
            self.history_diff.clear()
            return
        if not self.versions:
            self.history_diff.setHtml("<p><i>Never changed: this is the first version.</i></p>"
                                      f"<p>{html.escape(self.item.memory)}</p>")
            return
        # Each earlier version is compared with the one after it; "current" with the one before.
        index = min(row, len(self.versions) - 1)
        old = self.versions[index]
        new_item = self.versions[index + 1].item if index + 1 < len(self.versions) else self.item
        new_label = f"v{new_item.version}" + (" (current)" if new_item is self.item else "")
        self.history_diff.setHtml(version_diff_html(old.item, new_item, f"v{old.version}", new_label))

    def _source_clicked(self, url: QUrl) -> None:
        if url.scheme() == "source" and url.path().isdigit():
            self.open_source(int(url.path()))

    def open_source(self, index: int) -> None:
        """Ask the app to open the chat turn or file span this memory came from."""
        if self.item is None or not 0 <= index < len(self.item.sources):
            return
        ref = self.item.sources[index]
        if ref.type == "chat" and ref.session_id:
            self.openSessionRequested.emit(ref.session_id, ref.message_id or "")
        elif ref.doc_path:
            self.openFileRequested.emit(ref.doc_path, ref.start_line or 1)

    # ------------------------------------------------------------ editing
    def changes(self) -> dict:
        """Fields the form changed, as `Memory.update` keywords."""
        if self.item is None:
            return {}
        item, out = self.item, {}
        text = self.text.toPlainText().strip()
        if text != item.memory:
            out["memory"] = text
        if self.key.text().strip() != item.key:
            out["key"] = self.key.text().strip()
        if parse_tags(self.tags.text()) != item.tags:
            out["tags"] = parse_tags(self.tags.text())
        if self.priority.value() != item.priority:
            out["priority"] = self.priority.value()
        if self.pinned.isChecked() != item.pinned:
            out["pinned"] = self.pinned.isChecked()
        if not self.expires_on.isChecked():
            if item.expires is not None:
                out["expires"] = None
        elif item.expires is None or local_date(item.expires) != self.expires.date():
            out["expires"] = local_midnight(self.expires.date())
        return out

    def is_dirty(self) -> bool:
        return bool(self.changes())

    def _update_buttons(self) -> None:
        if self._populating:
            return
        item = self.item
        self.save_button.setEnabled(item is not None and self.newer is None and self.is_dirty())
        live = item is not None and item.status in (Status.ACTIVATED, Status.RESOLVING)
        self.archive_button.setVisible(live)
        self.delete_button.setVisible(item is not None and item.status != Status.DELETED)
        self.restore_button.setVisible(item is not None and not live)

    def save(self) -> None:
        if self.item is None:
            return
        changes = self.changes()
        if not changes:
            self._show_error("Nothing to save: no field was changed.")
            return
        if self.newer is not None:
            self._show_error("Not saved: a newer version of this memory was written elsewhere. Reload it, then "
                             "make your change again.")
            return
        memory_id, mem, seen = self.item.id, self.mem, self.item.version
        self._write(lambda: mem.update(memory_id, reason="edited", expected_version=seen, **changes))

    def archive(self) -> None:
        if self.item is not None:
            memory_id, mem = self.item.id, self.mem
            self._write(lambda: mem.archive(memory_id))

    def restore(self) -> None:
        if self.item is not None:
            memory_id, mem = self.item.id, self.mem
            self._write(lambda: mem.restore(memory_id))

    def delete(self) -> None:
        if self.item is None or not confirm(
                self, "Delete memory",
                "Delete this memory? It disappears from search and chat. You can restore it from "
                "Status: deleted until it is purged."):
            return
        memory_id, mem = self.item.id, self.mem
        self._write(lambda: mem.delete(memory_id))

    def purge(self) -> None:
        if self.item is None or not confirm(
                self, "Purge memory",
                "Purge this memory permanently? It and its whole history are erased. "
                "This is irreversible and cannot be undone."):
            return
        memory_id, mem = self.item.id, self.mem
        self.runner.write(lambda: mem.purge(memory_id), self._purged, self._failed)

    def _write(self, fn: Callable[[], MemoryItem]) -> None:
        self.error.hide()
        self.runner.write(fn, self._written, self._failed)

    def _written(self, item: MemoryItem) -> None:
        if self.item is not None and self.item.id == item.id:
            self._populate(item)
            self.load(item.id)
        self.saved.emit(item)

    def _purged(self, memory_id: str) -> None:
        if self.item is not None and self.item.id == memory_id:
            self.clear()
        self.purged.emit(memory_id)

    def _failed(self, error: BaseException) -> None:
        self._show_error(str(error))
        self.errorOccurred.emit(str(error))
        if isinstance(error, StaleVersionError) and self.item is not None:
            self.load(self.item.id)  # fetch the newer version, so that Reload can show it

    def _show_error(self, message: str) -> None:
        self.error.setText(for_gui(message))
        self.error.show()
