"""The list of chat sessions, newest first: new, rename (inline), delete (with confirmation).

A "new chat" is not written to the vault until its first message (Chat.send creates the
session and titles it from that message), so pressing New twice leaves no empty chats
behind; while one is being written the list simply has no selection.
"""
from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.api import Memory, Session
from memdesk.ui.tasks import TaskRunner

ID_ROLE = Qt.ItemDataRole.UserRole
TITLE_ROLE = Qt.ItemDataRole.UserRole + 1  # the stored title, to revert an empty or failed rename
EMPTY_TEXT = "No chats yet.\nType a message to start one."


def _when(value: datetime) -> str:
    local = value.astimezone()
    today = datetime.now().astimezone().date()
    if local.date() == today:
        return f"today {local:%H:%M}"
    return f"{local.day} {local:%b %Y}, {local:%H:%M}"


class SessionList(QWidget):
    sessionSelected = Signal(str)  # "" = a new, not yet written chat
    sessionDeleted = Signal(str)
    sessionRenamed = Signal(str, str)
    failed = Signal(str)  # an engine error, for the status line

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sessionPanel")
        self.mem = mem
        self.runner = runner
        self._generation = 0
        self._filling = False
        self._wanted: str | None = None  # select this once the list holds it (after a reload)
        self.loaded = False

        header = QHBoxLayout()
        title = QLabel("Chats", self)
        title.setObjectName("sessionHeader")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.new_button = QToolButton(self)
        self.new_button.setObjectName("newSessionButton")
        self.new_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        self.new_button.setText("New")
        self.new_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.new_button.setToolTip("Start a new chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_session)
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.new_button)

        self.list = QListWidget(self)
        self.list.setObjectName("sessionList")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setUniformItemSizes(True)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        # Long titles are elided to the panel's width (their tooltip has them whole), not scrolled.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setStyleSheet("QListWidget#sessionList::item { padding: 5px 4px; }")
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_edited)
        self.empty = QLabel(EMPTY_TEXT, self)
        self.empty.setObjectName("sessionListEmpty")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.list)
        self.stack.addWidget(self.empty)

        self.rename_action = QAction("Rename", self)
        self.rename_action.setShortcut(QKeySequence(Qt.Key.Key_F2))
        self.rename_action.setToolTip("Rename the selected chat (F2)")
        self.rename_action.triggered.connect(self.rename_current)
        self.delete_action = QAction(self.style().standardIcon(QStyle.StandardPixmap.SP_TrashIcon), "Delete…", self)
        self.delete_action.setToolTip("Delete the selected chat's transcript (memories drawn from it stay)")
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        # Delete only while the list has focus: in the message box it must delete text.
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self.delete_current)
        self.list.addAction(self.delete_action)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)

    # ------------------------------------------------------------ loading
    def reload(self) -> None:
        self._generation += 1
        generation = self._generation
        sessions = self.mem.sessions
        self.runner.read(lambda: sessions.list(), on_done=lambda sessions: self._fill(generation, sessions),
                         on_error=lambda exc: self.failed.emit(str(exc)))

    def _fill(self, generation: int, sessions: list[Session]) -> None:
        if generation != self._generation:
            return  # a newer reload is on its way
        keep = self._wanted if self._wanted is not None else self.current_id()
        self._filling = True
        try:
            self.list.clear()
            for session in sessions:
                item = QListWidgetItem(session.title, self.list)
                item.setData(ID_ROLE, session.id)
                item.setData(TITLE_ROLE, session.title)
                item.setToolTip(f"{session.title}\nStarted {_when(session.created_at)}, "
                                f"last message {_when(session.updated_at)}")
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.stack.setCurrentWidget(self.list if sessions else self.empty)
            row = self._row_of(keep) if keep else -1
            self.list.setCurrentRow(row)
        finally:
            self._filling = False
        self.loaded = True
        if self._wanted is not None and row >= 0:
            self._wanted = None
            self.sessionSelected.emit(self.current_id())

    def _row_of(self, session_id: str) -> int:
        for row in range(self.list.count()):
            if self.list.item(row).data(ID_ROLE) == session_id:
                return row
        return -1

    # ------------------------------------------------------------ selection
    def current_id(self) -> str:
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item is not None else ""

    def session_ids(self) -> list[str]:
        return [self.list.item(row).data(ID_ROLE) for row in range(self.list.count())]

    def titles(self) -> list[str]:
        return [self.list.item(row).text() for row in range(self.list.count())]

    def select(self, session_id: str) -> None:
        """Select a session (emits sessionSelected); one not listed yet is selected after the next reload."""
        row = self._row_of(session_id) if session_id else -1
        if session_id and row < 0:
            self._wanted = session_id
            return
        self._wanted = None
        if row < 0:
            self.list.setCurrentRow(-1)
            self.sessionSelected.emit("")
        elif row == self.list.currentRow():
            self.sessionSelected.emit(session_id)
        else:
            self.list.setCurrentRow(row)  # -> _current_changed -> sessionSelected

    def new_session(self) -> None:
        self.select("")
        self.list.clearSelection()

    def _current_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if not self._filling:
            self.sessionSelected.emit(current.data(ID_ROLE) if current is not None else "")

    # ------------------------------------------------------------ rename
    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.setFocus()
            self.list.editItem(item)

    def _item_edited(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        session_id, old = item.data(ID_ROLE), item.data(TITLE_ROLE)
        title = " ".join(item.text().split())
        if not title or title == old:
            self._set_title(item, old)
            return
        self._set_title(item, title)
        sessions = self.mem.sessions

        def done(_none: None) -> None:
            self.sessionRenamed.emit(session_id, title)
            self.reload()

        def failed(exc: BaseException) -> None:
            self.failed.emit(str(exc))
            self.reload()  # shows the stored title again

        self.runner.write(lambda: sessions.rename(session_id, title), on_done=done, on_error=failed)

    def _set_title(self, item: QListWidgetItem, title: str) -> None:
        self._filling = True
        try:
            item.setText(title)
            item.setData(TITLE_ROLE, title)
        finally:
            self._filling = False

    # ------------------------------------------------------------ delete
    def delete_current(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        session_id, title = item.data(ID_ROLE), item.text()
        if not self._confirm_delete(title):
            return
        sessions = self.mem.sessions

        def done(_none: None) -> None:
            self.sessionDeleted.emit(session_id)
            if self.current_id() == session_id:
                self.new_session()
            self.reload()

        self.runner.write(lambda: sessions.delete(session_id), on_done=done,
                          on_error=lambda exc: self.failed.emit(str(exc)))

    def _confirm_delete(self, title: str) -> bool:
        answer = QMessageBox.question(
            self, "Delete chat",
            f"Delete the chat “{title}”?\n\nIts transcript is removed. Memories MemDesk drew from it stay "
            "in your memory browser, where you can delete them separately.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def _context_menu(self, pos: QPoint) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        self.list.setCurrentItem(item)
        menu = QMenu(self)
        menu.addAction(self.rename_action)
        menu.addAction(self.delete_action)
        menu.exec(self.list.viewport().mapToGlobal(pos))
