"""The conflicts view: pairs of memories that contradict each other, side by side.

MemReader never overwrites a fact a person pinned or edited; when a new one contradicts
it, both are kept and linked by a CONFLICT edge. Here the person decides what becomes of
each pair: keep one (the other is archived, so it stays in history and can be restored),
keep both (they were both right, e.g. about different times), or merge them into one text.
The decision itself lives in the engine (`engine.curation.resolve`); this view only asks.
"""
from __future__ import annotations

import html
from datetime import datetime

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeyEvent, QKeySequence, QMouseEvent, QPalette
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.api import Memory
from memdesk.engine.cube import MemoryItem
from memdesk.engine.curation import Conflict, Resolution, conflicts, resolve
from memdesk.ui.labels import empty_label, message_label
from memdesk.ui.messages import for_gui
from memdesk.ui.tasks import TaskRunner, weakly

EMPTY_TEXT = ("No conflicts. When a new fact contradicts one you pinned or edited, "
              "both are kept and shown here.")

_DONE_TEXT = {Resolution.KEEP_FIRST: "Kept the older memory; the newer one is archived.",
              Resolution.KEEP_SECOND: "Kept the newer memory; the older one is archived.",
              Resolution.KEEP_BOTH: "Kept both memories; they are now linked as related.",
              Resolution.MERGE: "Merged into one memory; the newer one is archived."}


def _date(value: datetime | None) -> str:
    """A short local date; written out by hand so it reads the same on every platform."""
    if value is None:
        return "—"
    local = value.astimezone()
    return f"{local.day} {local:%b %Y}"


def _provenance(item: MemoryItem) -> str:
    """Where a memory came from, in words: the file and lines, or the kind of source."""
    for ref in item.sources:
        if ref.doc_path:
            lines = f", lines {ref.start_line}–{ref.end_line}" if ref.start_line is not None else ""
            return f"file {ref.doc_path}{lines}"
    return item.source


class ClickableText(QLabel):
    """The memory text of a card: clicking it (or Enter/Space when focused) opens the memory."""

    activated = Signal()

    def __init__(self, text: str, parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("Open this memory in the browser (click, or Enter)")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.activated.emit()
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.activated.emit()
            return
        super().keyPressEvent(event)


class MemoryCard(QFrame):
    """One side of a conflict: text, key, dates, source and a pinned badge."""

    def __init__(self, item: MemoryItem, caption: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.item = item
        self.setObjectName("conflictCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setBackgroundRole(QPalette.ColorRole.Base)  # a card stands out from the window
        self.setAutoFillBackground(True)
        layout = QVBoxLayout(self)

        header = QHBoxLayout()
        layout.addLayout(header)  # attach first: widgets added below are parented at once
        title = QLabel(f"{caption} · <b>{html.escape(item.key)}</b>" if item.key else f"<b>{caption}</b>")
        title.setObjectName("conflictCardTitle")
        title.setToolTip(f"{caption} memory, {item.memory_type}")
        header.addWidget(title, 1)
        if item.pinned:
            header.addWidget(self._badge("Pinned", "pinnedBadge", "You pinned this memory"))
        if item.version > 1:
            header.addWidget(self._badge("Edited", "editedBadge",
                                         f"Changed {item.version - 1} time(s); see its history"))

        self.text = ClickableText(item.memory)
        self.text.setObjectName("conflictCardText")
        layout.addWidget(self.text, 1)

        dates = f"Created {_date(item.created_at)}"
        if item.updated_at and _date(item.updated_at) != _date(item.created_at):
            dates += f" · updated {_date(item.updated_at)}"
        if item.event_time is not None:
            dates += f" · happened {_date(item.event_time)}"
        meta = QLabel(f"{dates}\nFrom {_provenance(item)} · {item.memory_type}")
        meta.setObjectName("conflictCardMeta")
        meta.setTextFormat(Qt.TextFormat.PlainText)
        meta.setWordWrap(True)
        meta.setEnabled(False)  # the disabled palette greys it: secondary information
        layout.addWidget(meta)

    @staticmethod
    def _badge(text: str, name: str, tip: str) -> QLabel:
        badge = QLabel(text)
        badge.setObjectName(name)
        badge.setToolTip(tip)
        badge.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 6px; padding: 0 6px;"
                            " background: palette(alternate-base); }")
        return badge


class ConflictRow(QFrame):
    """Both cards of one conflict and the four ways to settle it."""

    chosen = Signal(object, str)  # (Conflict, Resolution value)
    openRequested = Signal(str)

    def __init__(self, conflict: Conflict, parent: QWidget | None = None):
        super().__init__(parent)
        self.conflict = conflict
        self.setObjectName("conflictRow")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)

        since = QLabel(f"In conflict since {_date(conflict.since)}")
        since.setObjectName("conflictSince")
        since.setEnabled(False)
        layout.addWidget(since)

        cards = QHBoxLayout()
        layout.addLayout(cards)  # attach first: widgets added below are parented at once
        self.first_card = MemoryCard(conflict.first, "Older")
        self.second_card = MemoryCard(conflict.second, "Newer")
        versus = QLabel("vs")
        versus.setAlignment(Qt.AlignmentFlag.AlignCenter)
        versus.setToolTip("These two memories contradict each other")
        cards.addWidget(self.first_card, 1)
        cards.addWidget(versus)
        cards.addWidget(self.second_card, 1)
        for card in (self.first_card, self.second_card):
            card.text.activated.connect(lambda card=card: self.openRequested.emit(card.item.id))

        style = self.style()
        pix = QStyle.StandardPixmap
        actions = QHBoxLayout()
        layout.addLayout(actions)  # attach first: widgets added below are parented at once
        actions.addStretch(1)
        self.buttons: dict[Resolution, QPushButton] = {}
        for resolution, label, icon, tip in (
                (Resolution.KEEP_FIRST, "Keep &first", pix.SP_ArrowBack,
                 "Keep the older memory and archive the newer one (it stays in history)"),
                (Resolution.KEEP_SECOND, "Keep &second", pix.SP_ArrowForward,
                 "Keep the newer memory and archive the older one (it stays in history)"),
                (Resolution.KEEP_BOTH, "Keep &both", pix.SP_DialogApplyButton,
                 "Both are right (for example about different times): keep both, linked as related"),
                (Resolution.MERGE, "&Merge…", pix.SP_FileDialogDetailedView,
                 "Write one memory that says both; the older one takes the text, the newer is archived")):
            button = QPushButton(style.standardIcon(icon), label)
            button.setObjectName(f"conflict_{resolution.value}")
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, r=resolution: self.chosen.emit(self.conflict, r.value))
            actions.addWidget(button)
            self.buttons[resolution] = button

    def set_busy(self, busy: bool) -> None:
        """While a resolution is being written, a second click must not resolve it twice."""
        for button in self.buttons.values():
            button.setEnabled(not busy)


class MergeDialog(QDialog):
    """Edit the text that replaces both memories; prefilled with both texts."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.conflict: Conflict | None = None
        self.setObjectName("mergeDialog")
        self.setWindowTitle("Merge two memories")
        layout = QVBoxLayout(self)
        hint = QLabel("Write the one memory that should remain. The older memory takes this text "
                      "(its earlier text stays in its history); the newer one is archived.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.editor = QPlainTextEdit()
        self.editor.setObjectName("mergeText")
        self.editor.setTabChangesFocus(True)
        layout.addWidget(self.editor, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Merge")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.editor.textChanged.connect(self._update_ok)
        self.resize(self.fontMetrics().averageCharWidth() * 70, self.fontMetrics().height() * 16)

    def set_conflict(self, conflict: Conflict) -> None:
        """Reused for every merge (one dialog per view): load this pair's texts."""
        self.conflict = conflict
        self.editor.setPlainText(f"{conflict.first.memory}\n{conflict.second.memory}")
        self.editor.setFocus()

    def text(self) -> str:
        return self.editor.toPlainText().strip()

    def set_text(self, text: str) -> None:
        self.editor.setPlainText(text)

    @Slot()
    def _update_ok(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(self.text()))


class ConflictsView(QWidget):
    """Unresolved conflicts, newest first, each with Keep first / Keep second / Keep both / Merge…."""

    openMemoryRequested = Signal(str)
    memoriesChanged = Signal(list)  # ids of both sides after a resolution
    count_changed = Signal(int)
    loaded = Signal()

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.mem = mem
        self.runner = runner
        self.setObjectName("conflictsView")
        self.conflicts: list[Conflict] = []
        self.rows: list[ConflictRow] = []
        self.merge_dialog: MergeDialog | None = None
        self.count: int | None = None
        self.is_loaded = False
        self._generation = 0
        self._exercise: dict[str, object] | None = None

        layout = QVBoxLayout(self)
        header = QHBoxLayout()
        layout.addLayout(header)  # attach first: widgets added below are parented at once
        self.title = QLabel("Conflicts")
        self.title.setObjectName("conflictsTitle")
        header.addWidget(self.title, 1)
        self.refresh_action = QAction(self.style().standardIcon(QStyle.StandardPixmap.SP_BrowserReload),
                                      "Reload conflicts", self)
        self.refresh_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        self.refresh_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.refresh_action.setToolTip("Reload conflicts (F5)")
        self.refresh_action.triggered.connect(self.refresh)
        self.addAction(self.refresh_action)
        reload_button = QToolButton()
        reload_button.setDefaultAction(self.refresh_action)
        header.addWidget(reload_button)

        self.message = message_label("conflictsMessage")
        layout.addWidget(self.message)

        self.stack = QStackedWidget()
        self.empty = empty_label(EMPTY_TEXT, "conflictsEmpty")
        self.stack.addWidget(self.empty)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.list_widget = QWidget()
        self.list_widget.setObjectName("conflictsList")
        self.list_layout = QVBoxLayout(self.list_widget)
        self.list_layout.addStretch(1)
        self.scroll.setWidget(self.list_widget)
        self.stack.addWidget(self.scroll)
        layout.addWidget(self.stack, 1)

    # ------------------------------------------------------------------ loading
    @Slot()
    def refresh(self) -> None:
        """Reload the conflicts off the GUI thread; an older load still running is ignored."""
        self._generation += 1
        generation = self._generation
        mem = self.mem
        self.runner.read(lambda: conflicts(mem), on_done=weakly(self._on_loaded, generation),
                         on_error=weakly(self._on_load_failed, generation))

    def _on_loaded(self, generation: int, found: list[Conflict]) -> None:
        if generation != self._generation:
            return
        self.conflicts = list(found)
        self._rebuild()
        self.is_loaded = True
        self.title.setText(f"Conflicts ({len(found)})" if found else "Conflicts")
        if self.count != len(found):
            self.count = len(found)
            self.count_changed.emit(self.count)
        self.loaded.emit()
        if self._exercise is not None and self.rows and "merge_prefill" not in self._exercise:
            # Smoke path: open the merge dialog of the first pair and cancel it; nothing is written.
            dialog = self.open_merge(self.rows[0].conflict)
            self._exercise["merge_prefill"] = dialog.text()
            dialog.reject()

    def _on_load_failed(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self._show_message(f"Could not load conflicts: {exc}", error=True)

    def _rebuild(self) -> None:
        for row in self.rows:
            self.list_layout.removeWidget(row)
            row.deleteLater()
        self.rows = []
        for conflict in self.conflicts:
            row = ConflictRow(conflict)
            row.chosen.connect(self._on_chosen)
            row.openRequested.connect(self.openMemoryRequested)
            self.list_layout.insertWidget(self.list_layout.count() - 1, row)
            self.rows.append(row)
        self.stack.setCurrentWidget(self.scroll if self.rows else self.empty)

    # --------------------------------------------------------------- resolving
    @Slot(object, str)
    def _on_chosen(self, conflict: Conflict, resolution: str) -> None:
        if Resolution(resolution) is Resolution.MERGE:
            self.open_merge(conflict)
        else:
            self.resolve(conflict, Resolution(resolution))

    def open_merge(self, conflict: Conflict) -> MergeDialog:
        """Open the merge dialog (window-modal, not blocking); OK resolves with its text.
        One dialog is reused: a deleteLater()'d dialog crashed PySide when its view was torn down."""
        if self.merge_dialog is None:
            self.merge_dialog = MergeDialog(self)
            self.merge_dialog.accepted.connect(self._on_merge_accepted)
        self.merge_dialog.set_conflict(conflict)
        self.merge_dialog.open()
        return self.merge_dialog

    @Slot()
    def _on_merge_accepted(self) -> None:
        dialog = self.merge_dialog
        if dialog is not None and dialog.conflict is not None:
            self.resolve(dialog.conflict, Resolution.MERGE, dialog.text())

    def resolve(self, conflict: Conflict, resolution: Resolution, merged_text: str | None = None) -> None:
        """Write the decision on the write lane, then reload."""
        row = self._row_for(conflict)
        if row is not None:
            row.set_busy(True)
        mem, first_id, second_id = self.mem, conflict.first.id, conflict.second.id

        def work() -> list[MemoryItem]:
            return resolve(mem, first_id, second_id, resolution, merged_text)

        self.runner.write(work, on_done=weakly(self._on_resolved, [first_id, second_id], resolution),
                          on_error=weakly(self._on_resolve_failed, conflict))

    def _on_resolved(self, ids: list[str], resolution: Resolution, _kept: object) -> None:
        self._show_message(_DONE_TEXT[resolution])
        self.memoriesChanged.emit(ids)
        self.refresh()

    def _on_resolve_failed(self, conflict: Conflict, exc: BaseException) -> None:
        self._show_message(f"Could not resolve this conflict: {exc}", error=True)
        row = self._row_for(conflict)
        if row is not None:
            row.set_busy(False)
        self.refresh()  # it may have been resolved elsewhere; show the truth

    def _row_for(self, conflict: Conflict) -> ConflictRow | None:
        return next((r for r in self.rows if r.conflict is conflict), None)

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setProperty("error", error)
        self.message.setStyleSheet("color: palette(bright-text); background: #B00020; padding: 4px;" if error else "")
        self.message.setText(for_gui(text))
        self.message.show()

    # ------------------------------------------------------------------- smoke
    def exercise(self) -> None:
        """Load the conflicts and, if there are any, open and cancel a merge dialog (writes nothing)."""
        self._exercise = {}
        self.refresh()

    def check_exercised(self) -> None:
        if self._exercise is None:
            raise AssertionError("ConflictsView.check_exercised() called before exercise()")
        if not self.is_loaded:
            raise AssertionError(f"ConflictsView never loaded; message: {self.message.text()!r}")
        if self.message.property("error"):
            raise AssertionError(f"ConflictsView shows an error: {self.message.text()}")
        if len(self.rows) != len(self.conflicts) or self.count != len(self.conflicts):
            raise AssertionError(f"ConflictsView shows {len(self.rows)} rows and count {self.count} "
                                 f"for {len(self.conflicts)} conflicts")
        expected = self.scroll if self.conflicts else self.empty
        if self.stack.currentWidget() is not expected:
            raise AssertionError("ConflictsView shows the empty state with conflicts, or a list without any")
        if self.conflicts:
            prefill = str(self._exercise.get("merge_prefill", ""))
            first, second = self.conflicts[0].first.memory, self.conflicts[0].second.memory
            if first not in prefill or second not in prefill:
                raise AssertionError(f"the merge dialog was not prefilled with both texts: {prefill!r}")
