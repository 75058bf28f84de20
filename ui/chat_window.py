"""The main window: chats on the left, the conversation in the middle, a status line below.

It only shows things and says what the person asked for, through signals; the chat
controller (app/chat_controller.py) drives the model and calls the reply slots
(`begin_reply`, `append_reply_text`, `finish_reply`, `fail_reply`), and `show_feedback` once a
rating or an edited reply is stored. Reading a session's
transcript goes through the TaskRunner's read lane, like every other vault access.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from memdesk.engine.api import Memory, Message, ReplyFeedback
from memdesk.ui.messages import for_gui
from memdesk.ui.session_list import SessionList
from memdesk.ui.status_line import ERROR_COLOR, StatusLine
from memdesk.ui.tasks import TaskRunner
from memdesk.ui.transcript import MemoryRef, Transcript, describe_reply, info_from_stats

NEW_CHAT_TEXT = "New chat. Ask anything; MemDesk brings in what it remembers about you."
MESSAGE_SECONDS = 15000


class MessageInput(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line; it grows with its text up to a few lines."""

    submitted = Signal()
    MIN_LINES, MAX_LINES = 2, 8

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageInput")
        self.setPlaceholderText("Message MemDesk — Enter to send, Shift+Enter for a new line")
        self.setTabChangesFocus(True)
        self.document().documentLayout().documentSizeChanged.connect(lambda _size: self._fit_height())
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                # A real new line (QPlainTextEdit's own Shift+Enter inserts a soft line break, U+2028).
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            return
        super().keyPressEvent(event)

    def _fit_height(self) -> None:
        # A plain-text document's height is counted in lines.
        lines = int(self.document().size().height())
        lines = max(self.MIN_LINES, min(self.MAX_LINES, lines))
        margins = self.contentsMargins()
        frame = int(self.document().documentMargin() * 2) + margins.top() + margins.bottom()
        self.setFixedHeight(self.fontMetrics().lineSpacing() * lines + frame + 4)


class MainWindow(QMainWindow):
    sendRequested = Signal(str, str)  # text, session id ("" = a new chat)
    stopRequested = Signal()
    sessionSelected = Signal(str)  # the session now shown ("" = a new chat)
    openMemoryRequested = Signal(str)
    searchRequested = Signal(str)  # text to search the memories for (may be empty)
    openBrowserRequested = Signal()
    openConflictsRequested = Signal()
    openTimelineRequested = Signal()
    openSettingsRequested = Signal()
    captureRequested = Signal()
    aboutRequested = Signal()
    quitRequested = Signal()  # quit MemDesk (closing the window only hides it to the tray)
    rateRequested = Signal(str, int)  # assistant message id, +1 / -1 / 0 (thumbs up / down / none)
    editReplyRequested = Signal(str, str)  # assistant message id, the person's preferred version

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle("MemDesk")
        self.mem = mem
        self.runner = runner
        self._session_id = ""
        self._reply_session = ""
        self._replying = False
        self._pending_text = ""  # what was sent: back into the input if the send fails
        self._model_state = "loading"
        self._load_generation = 0

        self.sessions = SessionList(mem, runner, self)
        self.sessions.sessionSelected.connect(self._session_chosen)
        self.sessions.sessionDeleted.connect(self._session_deleted)
        self.sessions.sessionRenamed.connect(
            lambda sid, title: self._set_title(title) if sid == self._session_id else None)
        self.sessions.failed.connect(self.show_error)
        self.transcript = Transcript(self)
        self.transcript.openMemoryRequested.connect(self.openMemoryRequested)
        self.transcript.rateRequested.connect(self.rateRequested)
        self.transcript.editReplyRequested.connect(self.editReplyRequested)
        self.transcript.clear(NEW_CHAT_TEXT)

        # The model's error and its fix, right above the box the person types in.
        self.banner = QFrame(self)
        self.banner.setObjectName("modelErrorBanner")
        self.banner.setStyleSheet("QFrame#modelErrorBanner { background: #fdecea; border: 1px solid #f1b8b4; "
                                  "border-radius: 6px; }")
        self.banner_text = QLabel(self.banner)
        self.banner_text.setObjectName("modelErrorText")
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner_text.setStyleSheet(f"color: {ERROR_COLOR};")
        banner_settings = QPushButton("Settings…", self.banner)
        banner_settings.setObjectName("modelErrorSettingsButton")
        banner_settings.setToolTip("Choose another model file or folder")
        banner_settings.clicked.connect(self.openSettingsRequested)
        banner_row = QHBoxLayout(self.banner)
        banner_row.setContentsMargins(8, 6, 8, 6)
        banner_row.addWidget(self.banner_text, 1)
        banner_row.addWidget(banner_settings)
        self.banner.hide()
        self.input = MessageInput(self)
        self.input.submitted.connect(self.send_current)
        self.input.textChanged.connect(self._update_controls)
        style = self.style()
        self.send_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_ArrowForward), "Send", self)
        self.send_button.setObjectName("sendButton")
        self.send_button.clicked.connect(self.send_current)
        self.stop_button = QPushButton(style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop", self)
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the reply (Esc)")
        self.stop_button.clicked.connect(self.request_stop)
        self.stop_button.hide()

        composer = QHBoxLayout()
        composer.addWidget(self.input, 1)
        buttons = QVBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        composer.addLayout(buttons)
        centre = QWidget(self)
        column = QVBoxLayout(centre)
        column.setContentsMargins(0, 0, 8, 8)
        column.addWidget(self.transcript, 1)
        column.addWidget(self.banner)
        column.addLayout(composer)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.setObjectName("chatSplitter")
        splitter.addWidget(self.sessions)
        splitter.addWidget(centre)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 840])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

        self.status_line = StatusLine(self)
        self.setStatusBar(self.status_line)
        self.actions_by_name: dict[str, QAction] = {}
        self._build_actions()
        self.resize(1100, 720)
        self._update_controls()
        self.input.setFocus()
        self.sessions.reload()

    # ------------------------------------------------------------ menus and shortcuts
    def _action(self, name: str, text: str, slot: Callable[[], object], shortcut: QKeySequence | str | None = None,
                icon: QIcon | None = None, tip: str = "") -> QAction:
        action = QAction(icon or QIcon(), text, self)
        action.setObjectName(f"{name}Action")
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        shown = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip or text.rstrip('…')}" + (f" ({shown})" if shown else ""))
        action.triggered.connect(slot)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        style = self.style()
        icon = lambda theme, fallback: QIcon.fromTheme(theme, style.standardIcon(fallback))  # noqa: E731
        SP = QStyle.StandardPixmap
        new = self._action("newChat", "&New chat", self.new_session, QKeySequence.StandardKey.New,
                           icon("document-new", SP.SP_FileIcon), "Start a new chat")
        stop = self._action("stop", "&Stop reply", self.request_stop, Qt.Key.Key_Escape,
                            icon("process-stop", SP.SP_MediaStop))
        preferences = QKeySequence(QKeySequence.StandardKey.Preferences)
        settings = self._action("settings", "Se&ttings…", self.openSettingsRequested.emit,
                                preferences if not preferences.isEmpty() else "Ctrl+,",
                                icon("preferences-system", SP.SP_FileDialogDetailedView), "MemDesk settings")
        close = self._action("close", "&Close window", self.close, QKeySequence.StandardKey.Close)
        quit_ = self._action("quit", "&Quit MemDesk", self.quitRequested.emit, QKeySequence.StandardKey.Quit,
                             tip="Quit MemDesk, also from the tray (background work stops until the next start)")
        quit_.setMenuRole(QAction.MenuRole.QuitRole)
        about = self._action("about", "&About MemDesk", self.aboutRequested.emit,
                             tip="Version, where your data is, and licences")
        about.setMenuRole(QAction.MenuRole.AboutRole)
        browser = self._action("browser", "&Memories…", self.openBrowserRequested.emit, "Ctrl+Shift+M",
                               icon("folder-open", SP.SP_DirOpenIcon), "Browse and edit your memories")
        search = self._action("search", "&Search memories…", self.request_search, "Ctrl+K",
                              icon("edit-find", SP.SP_FileDialogContentsView), "Search your memories")
        # The app installs Ctrl+Shift+Space application-wide (ui.capture); the menu only names it.
        capture = self._action("capture", "Quick &capture…\tCtrl+Shift+Space", self.captureRequested.emit,
                               icon=icon("document-edit", SP.SP_FileDialogNewFolder),
                               tip="Write down something to remember (Ctrl+Shift+Space)")
        capture.setIconText("Quick capture")
        conflicts = self._action("conflicts", "C&onflicts…", self.openConflictsRequested.emit, "Ctrl+Shift+C",
                                 icon("dialog-warning", SP.SP_MessageBoxWarning),
                                 "Memories that contradict each other")
        timeline = self._action("timeline", "&Timeline…", self.openTimelineRequested.emit, "Ctrl+Shift+T",
                                icon("view-calendar", SP.SP_FileDialogListView), "Your memories over time")
        self.actions_by_name["rename"] = self.sessions.rename_action
        self.actions_by_name["delete"] = self.sessions.delete_action

        chat_menu = self.menuBar().addMenu("&Chat")
        chat_menu.addActions([new, self.sessions.rename_action, self.sessions.delete_action])
        chat_menu.addSeparator()
        chat_menu.addAction(stop)
        chat_menu.addSeparator()
        chat_menu.addActions([settings, close, quit_])
        memory_menu = self.menuBar().addMenu("&Memory")
        memory_menu.addActions([browser, search, capture])
        memory_menu.addSeparator()
        memory_menu.addActions([conflicts, timeline])
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(about)

        toolbar = QToolBar("Main", self)
        toolbar.setObjectName("mainToolBar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        size = style.pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        toolbar.setIconSize(QSize(size, size))
        toolbar.addAction(new)
        toolbar.addSeparator()
        toolbar.addActions([browser, search, capture, conflicts, timeline])
        toolbar.addSeparator()
        toolbar.addAction(settings)
        self.addToolBar(toolbar)
        # The menu bar holds the rename/delete actions too, so F2 works anywhere in the window.
        self.addAction(self.sessions.rename_action)

    # ------------------------------------------------------------ what the person does
    @Slot()
    def send_current(self) -> None:
        text = self.input.toPlainText()
        if not text.strip():
            return
        if self._replying:
            self.statusBar().showMessage("Wait for the reply to finish, or press Esc to stop it.", 5000)
            return
        if self._model_state != "ready":
            self.statusBar().showMessage(
                "The model is not ready yet; your message stays here. Press Enter again once it is.", 5000)
            return
        self._pending_text = text
        self._reply_session = self._session_id
        self.input.clear()
        self._replying = True
        self._update_controls()
        self.transcript.add_user(text.strip())
        self.transcript.start_reply()
        self.sendRequested.emit(text, self._session_id)

    @Slot()
    def request_stop(self) -> None:
        if self._replying:
            self.stop_button.setEnabled(False)  # until the controller confirms with finish_reply
            self.statusBar().showMessage("Stopping…", 3000)
            self.stopRequested.emit()

    @Slot()
    def request_search(self) -> None:
        selected = self.input.textCursor().selectedText()
        focused = QApplication.focusWidget()
        if not selected and isinstance(focused, QLabel):
            selected = focused.selectedText()
        self.searchRequested.emit(" ".join(selected.split()))

    @Slot()
    def new_session(self) -> None:
        self.sessions.new_session()
        self.input.setFocus()

    # ------------------------------------------------------------ sessions
    @Slot(str)
    def select_session(self, session_id: str) -> None:
        """Show a session (e.g. the browser's "open chat"); one not listed yet is shown once it is."""
        self.sessions.select(session_id)

    @Slot()
    def reload_sessions(self) -> None:
        self.sessions.reload()

    def current_session_id(self) -> str:
        return self._session_id

    def _session_chosen(self, session_id: str) -> None:
        if session_id and session_id == self._session_id:
            self._set_title(self._title_of(session_id))
            return  # already shown (e.g. the chat just created by the first message)
        self._session_id = session_id
        self._load_generation += 1
        if not session_id:
            self.transcript.clear(NEW_CHAT_TEXT)
            self._set_title("")
        else:
            self._set_title(self._title_of(session_id))
            self._load_transcript(session_id)
        self.sessionSelected.emit(session_id)

    def _session_deleted(self, session_id: str) -> None:
        if session_id == self._session_id:
            self._session_chosen("")

    def _title_of(self, session_id: str) -> str:
        ids = self.sessions.session_ids()
        return self.sessions.titles()[ids.index(session_id)] if session_id in ids else ""

    def _set_title(self, title: str) -> None:
        self.setWindowTitle(f"{title} — MemDesk" if title else "MemDesk")

    def _load_transcript(self, session_id: str) -> None:
        generation = self._load_generation
        mem = self.mem

        def fetch() -> tuple[list[Message], dict[str, str], dict[str, ReplyFeedback]]:
            messages = mem.sessions.messages(session_id)
            feedback = mem.feedback.for_session(session_id)
            # Purged memories are left out: nothing left to show or open.
            found = mem.get_many([memory_id for message in messages for memory_id in message.memory_ids])
            texts = {memory_id: item.memory for memory_id, item in found.items()}
            return messages, texts, feedback

        self.runner.read(fetch, on_done=lambda result: self._show_transcript(generation, session_id, *result),
                         on_error=lambda exc: self.show_error(str(exc)))

    def _show_transcript(self, generation: int, session_id: str, messages: list[Message],
                         texts: dict[str, str], feedback: dict[str, ReplyFeedback]) -> None:
        if generation != self._load_generation:
            return  # the person moved on to another chat
        self.transcript.clear("This chat has no messages.")
        for message in messages:
            memories = [(m, texts[m]) for m in message.memory_ids if m in texts]
            info = describe_reply(info_from_stats(message.stats)) if message.role == "assistant" else ""
            bubble = self.transcript.add_message(message.role, message.content, memories, info, message.created_at,
                                                 message.id if message.role == "assistant" else "")
            if message.id in feedback:
                bubble.set_feedback(feedback[message.id].rating, feedback[message.id].edited_text)
        if self._replying and self._reply_session == session_id:
            self.statusBar().showMessage("A reply in this chat is still being written; it appears when done.", 5000)

    # ------------------------------------------------------------ slots for the chat controller
    @Slot(str)
    def begin_reply(self, session_id: str) -> None:
        """The reply's session exists now; a new chat shown here becomes that session."""
        if not self._reply_session and not self._session_id and self.transcript.live is not None:
            self._session_id = session_id
        self._reply_session = session_id

    @Slot(str)
    def append_reply_text(self, piece: str) -> None:
        self.transcript.append_reply(piece)

    @Slot(list, dict)
    def finish_reply(self, memory_items: list[MemoryRef], info: dict, message_id: str = "") -> None:
        """The reply is stored; with its `message_id` the bubble can be rated and edited."""
        shown_elsewhere = self.transcript.live is None
        self.transcript.finish_reply(memory_items, describe_reply(info), message_id=message_id)
        self._end_reply()
        if info.get("stopped"):
            self.statusBar().showMessage("Reply stopped.", 5000)
        if shown_elsewhere and self._reply_session and self._reply_session == self._session_id:
            self._load_generation += 1
            self._load_transcript(self._session_id)  # came back to this chat mid-reply: show it whole

    @Slot(str)
    def fail_reply(self, message: str) -> None:
        """The send failed: say why in the conversation, and give the text back to edit or resend."""
        message = for_gui(message)
        self.transcript.fail_reply(message)
        if not self.input.toPlainText().strip() and self._pending_text:
            self.input.setPlainText(self._pending_text)
            self.input.moveCursor(self.input.textCursor().MoveOperation.End)
        self._end_reply()
        self.statusBar().showMessage(message.splitlines()[0] if message else "The reply failed.", MESSAGE_SECONDS)

    def _end_reply(self) -> None:
        self._replying = False
        self._pending_text = ""
        self._update_controls()
        self.input.setFocus()

    @Slot(str, int, object)
    def show_feedback(self, message_id: str, rating: int, edited_text: str | None) -> None:
        """The feedback on a reply was stored: its bubble shows it."""
        self.transcript.set_feedback(message_id, rating, edited_text)

    @Slot(str)
    def show_error(self, message: str) -> None:
        """An engine error outside a reply (a failed rename, a background task): the status line says it."""
        self.statusBar().showMessage(for_gui(message), MESSAGE_SECONDS)

    # ------------------------------------------------------------ status line
    @Slot(str, str)
    def set_model_status(self, state: str, text: str) -> None:
        text = for_gui(text)
        self._model_state = state
        self.status_line.set_model_status(state, text)
        self.banner_text.setText(text)
        self.banner.setVisible(state == "error")
        self._update_controls()

    @Slot(str)
    def set_scheduler_status(self, text: str) -> None:
        self.status_line.set_scheduler_status(text)

    @Slot(str)
    def set_ingest_status(self, text: str) -> None:
        self.status_line.set_ingest_status(text)

    def ingest_status_text(self) -> str:
        return self.status_line.ingest.text()

    @property
    def busy(self) -> bool:
        return self._replying

    @property
    def model_state(self) -> str:
        return self._model_state

    def _update_controls(self) -> None:
        ready = self._model_state == "ready"
        self.send_button.setEnabled(ready and not self._replying and bool(self.input.toPlainText().strip()))
        self.send_button.setToolTip({"loading": "The model is loading; you can type meanwhile.",
                                     "error": "The model could not be loaded; see the message above."}.get(
                                         self._model_state, "Send (Enter)"))
        self.send_button.setVisible(not self._replying)
        self.stop_button.setVisible(self._replying)
        self.stop_button.setEnabled(self._replying)
        stop = self.actions_by_name.get("stop")
        if stop is not None:  # not yet while the window is being built
            stop.setEnabled(self._replying)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._replying:
            self.stopRequested.emit()  # no reply keeps the model busy for a hidden window
        super().closeEvent(event)
