"""The conversation view: one bubble per message, markdown for the assistant, memory chips.

Bubbles are QLabels in MarkdownText format inside a scroll area: a QLabel sizes itself to
its wrapped text, so short messages get short bubbles without measuring documents by
hand. A streamed reply grows in place; its markdown is re-rendered at most every
`RENDER_INTERVAL_MS`, because re-parsing the whole reply for every token makes long
replies stutter. The chips under a reply are the memories the model was given; clicking
one asks the app (through `openMemoryRequested`) to open it in the memory browser.
A finished reply with a stored message id also gets feedback buttons: thumbs up/down
(toggles) and "Edit reply…"; the transcript asks for them through `rateRequested` and
`editReplyRequested`, and shows the stored state once the app calls `set_feedback`.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from PySide6.QtCore import QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QKeySequence, QPalette, QResizeEvent, QTextDocument
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QPlainTextEdit,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from memdesk.ui.links import confirm_and_open

RENDER_INTERVAL_MS = 50
BUBBLE_WIDTH = 0.78  # of the visible width: long replies wrap, the other side stays free
CHIP_CHARS = 42  # a chip shows about this many characters of the memory; the tooltip has all
EMPTY_TEXT = ("Start a conversation. MemDesk answers with what it remembers about you, "
              "and shows under each reply which memories it used.")
THINKING = "_Thinking…_"
EDITED_NOTE = "Edited — your preferred version will be learned overnight"
GOOD_TIP = "Good reply: MemDesk learns to answer like this overnight (click again to undo)"
BAD_TIP = "Poor reply: MemDesk learns to avoid answers like this (click again to undo)"
EDIT_TIP = "Write the reply you would have preferred; MemDesk learns from it overnight"

QWIDGETSIZE_MAX = (1 << 24) - 1  # Qt's "no maximum width"
MemoryRef = tuple[str, str]  # (memory id, memory text)


def describe_reply(info: dict) -> str:
    """One line under a reply: how it was made (activation memory, speed, time to first token)."""
    parts = []
    if info.get("stopped"):
        parts.append("stopped")
    if info.get("from_memory"):
        parts.append("from your memories, without the model")
    activation = info.get("activation")
    if activation == "hit":
        parts.append("memory prefix restored")
    elif activation == "stored":
        parts.append("memory prefix prepared")
    tokens = info.get("completion_tokens")
    if tokens:
        parts.append(f"{tokens} tokens")
    tps = info.get("tokens_per_s")
    if tps:
        parts.append(f"{tps:.1f} tokens/s")
    ttft = info.get("ttft_ms")
    if ttft:
        parts.append(f"first token {ttft:.0f} ms")
    return " · ".join(parts)


def info_from_stats(stats: dict) -> dict:
    """The `describe_reply` fields from a stored reply's stats (tokens, time to first token, total)."""
    info = {key: stats[key] for key in ("completion_tokens", "ttft_ms") if stats.get(key)}
    tokens, ttft, total = stats.get("completion_tokens") or 0, stats.get("ttft_ms") or 0, stats.get("total_ms") or 0
    if tokens > 1 and total > ttft:  # decoding speed: the first token's time is prefill
        info["tokens_per_s"] = (tokens - 1) / ((total - ttft) / 1000)
    return info


def _mix(a: QColor, b: QColor, amount: float) -> str:
    """`amount` of `a` over `b`, as a stylesheet colour (so bubbles follow the palette)."""
    return "rgb({}, {}, {})".format(*(round(x * amount + y * (1 - amount)) for x, y in (
        (a.red(), b.red()), (a.green(), b.green()), (a.blue(), b.blue()))))


def _dim(label: QLabel, scale: float = 0.92) -> None:
    """Secondary text: the palette's placeholder colour and a slightly smaller, relative size."""
    palette = label.palette()
    palette.setColor(QPalette.ColorRole.WindowText, palette.color(QPalette.ColorRole.PlaceholderText))
    label.setPalette(palette)
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)


class FlowLayout(QLayout):
    """Lays chips out left to right, wrapping to the next line (Qt's flow layout example)."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self.setSpacing(spacing)
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        return size

    def _arrange(self, rect: QRect, apply: bool) -> int:
        x, y, line = rect.x(), rect.y(), 0
        gap = self.spacing()
        for item in self._items:
            hint = item.sizeHint()
            if x + hint.width() > rect.right() + 1 and line > 0:
                x, y, line = rect.x(), y + line + gap, 0
            if apply:
                item.setGeometry(QRect(QPoint(x, y), hint))
            x += hint.width() + gap
            line = max(line, hint.height())
        return y + line - rect.y()


class MemoryChip(QToolButton):
    """A memory the reply used: its text, elided; a click opens it in the browser."""

    opened = Signal(str)

    def __init__(self, memory_id: str, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("memoryChip")
        self.memory_id = memory_id
        self.full_text = text
        metrics = self.fontMetrics()
        one_line = " ".join(text.split())
        self.setText(metrics.elidedText(one_line, Qt.TextElideMode.ElideRight, metrics.averageCharWidth() * CHIP_CHARS))
        self.setToolTip(f"{text}\n\nClick to open this memory.")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.clicked.connect(lambda: self.opened.emit(self.memory_id))


class FeedbackBar(QWidget):
    """Under a finished reply: thumbs up / down (toggles), "Edit reply…", and the note an edit leaves.
    The buttons show what is stored: a click asks (`rateRequested`), `show_state` confirms."""

    rateRequested = Signal(int)  # the rating wanted: +1, -1, or 0 when the checked one is clicked again
    editRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("replyFeedback")
        self.rating = 0
        self.edited_text: str | None = None
        SP = QStyle.StandardPixmap
        icon = lambda theme, fallback: QIcon.fromTheme(theme, self.style().standardIcon(fallback))  # noqa: E731
        # Qt has no thumbs icons; the words next to a plain yes/no icon say what each button means.
        self.up = self._button("thumbsUpButton", icon("face-smile", SP.SP_DialogYesButton), "Good", GOOD_TIP)
        self.down = self._button("thumbsDownButton", icon("face-sad", SP.SP_DialogNoButton), "Poor", BAD_TIP)
        self.edit = self._button("editReplyButton", QIcon(), "Edit reply…", EDIT_TIP, checkable=False)
        for button, style in ((self.up, Qt.ToolButtonStyle.ToolButtonTextBesideIcon),
                              (self.down, Qt.ToolButtonStyle.ToolButtonTextBesideIcon),
                              (self.edit, Qt.ToolButtonStyle.ToolButtonTextOnly)):
            button.setToolButtonStyle(style)
        self.note = QLabel(EDITED_NOTE, self)
        self.note.setObjectName("editedNote")
        self.note.setWordWrap(True)
        _dim(self.note, 0.85)
        self.note.hide()
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        for button in (self.up, self.down, self.edit):
            buttons.addWidget(button)
        buttons.addStretch(1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(buttons)
        column.addWidget(self.note)
        self.up.clicked.connect(lambda: self._rate(1))
        self.down.clicked.connect(lambda: self._rate(-1))
        self.edit.clicked.connect(self.editRequested)

    def _button(self, name: str, icon: QIcon, text: str, tip: str, checkable: bool = True) -> QToolButton:
        button = QToolButton(self)
        button.setObjectName(name)
        button.setIcon(icon)
        button.setText(text)
        button.setAccessibleName(tip.split(":")[0])
        button.setToolTip(tip)
        button.setCheckable(checkable)
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        return button

    def _rate(self, rating: int) -> None:
        self.show_state(self.rating, self.edited_text)  # undo Qt's own toggle until the app confirms
        self.rateRequested.emit(0 if rating == self.rating else rating)

    def show_state(self, rating: int, edited_text: str | None) -> None:
        self.rating, self.edited_text = rating, edited_text
        self.up.setChecked(rating > 0)
        self.down.setChecked(rating < 0)
        self.note.setVisible(bool(edited_text))
        self.note.setToolTip(f"Your preferred version:\n\n{edited_text}" if edited_text else "")


class EditReplyDialog(QDialog):
    """The reply's text to rewrite as the person would have liked it (the chat keeps the original)."""

    def __init__(self, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("editReplyDialog")
        self.setWindowTitle("Edit reply")
        intro = QLabel("Write the reply you would have preferred. MemDesk learns from it overnight; "
                       "this chat keeps the original.", self)
        intro.setWordWrap(True)
        self.editor = QPlainTextEdit(self)
        self.editor.setObjectName("editReplyText")
        self.editor.setPlainText(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.save_button.setToolTip("Save your preferred version (Ctrl+Enter)")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.editor.textChanged.connect(lambda: self.save_button.setEnabled(bool(self.preferred_text())))
        column = QVBoxLayout(self)
        column.addWidget(intro)
        column.addWidget(self.editor, 1)
        column.addWidget(buttons)
        self.resize(560, 320)
        self.editor.setFocus()

    def preferred_text(self) -> str:
        return self.editor.toPlainText().strip()


class MessageBubble(QFrame):
    """One message. Assistant bubbles also hold the memory chips, a line about the reply and,
    once stored, the feedback buttons."""

    rateRequested = Signal(str, int)  # message id, rating
    editRequested = Signal(str)  # message id

    def __init__(self, role: str, text: str = "", when: datetime | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.setObjectName(f"{role}Bubble")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(6)
        self.body = QLabel(self)
        self.body.setObjectName("messageText")
        self.body.setWordWrap(True)
        # The assistant writes markdown; what a person types is shown exactly as typed.
        self.body.setTextFormat(Qt.TextFormat.MarkdownText if role == "assistant" else Qt.TextFormat.PlainText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard
                                          | Qt.TextInteractionFlag.LinksAccessibleByMouse)
        # Never straight to the browser: a model may have invented the address (ui/links.py).
        self.body.setOpenExternalLinks(False)
        self.body.linkActivated.connect(lambda url: confirm_and_open(url, self.window()))
        layout.addWidget(self.body)
        self.chips_caption = QLabel(self)
        self.chips_caption.setObjectName("chipsCaption")
        _dim(self.chips_caption)
        self.chips_caption.hide()
        layout.addWidget(self.chips_caption)
        self.chips_box = QWidget(self)
        self.chips = FlowLayout(self.chips_box)
        self.chips_box.hide()
        layout.addWidget(self.chips_box)
        self.info = QLabel(self)
        self.info.setObjectName("replyInfo")
        _dim(self.info, 0.85)
        self.info.hide()
        layout.addWidget(self.info)
        self.text = ""
        self.message_id = ""
        self.feedback: FeedbackBar | None = None
        self.set_text(text)
        if when is not None:
            self.setToolTip(when.astimezone().strftime("%A %d %B %Y, %H:%M"))

    def set_text(self, text: str) -> None:
        self.text = text
        self.body.setText(text)
        if self.maximumWidth() < QWIDGETSIZE_MAX:
            self.fit(self.maximumWidth())

    def fit(self, max_width: int) -> None:
        """Be as wide as the text needs, up to `max_width`. (A word-wrapped QLabel guesses its
        width from a fixed ratio, which wraps even a short sentence onto several lines.)"""
        self.setMaximumWidth(max_width)
        margins = self.layout().contentsMargins()
        room = max_width - margins.left() - margins.right()
        if self.body.textFormat() == Qt.TextFormat.MarkdownText:
            document = QTextDocument()
            document.setDefaultFont(self.body.font())
            document.setMarkdown(self.text)
            ideal = document.idealWidth()
        else:
            metrics = self.body.fontMetrics()
            ideal = max((metrics.horizontalAdvance(line) for line in self.text.splitlines()), default=0)
        self.body.setMinimumWidth(min(int(ideal) + 4, room))

    def set_memories(self, memories: Sequence[MemoryRef]) -> list[MemoryChip]:
        chips = []
        for memory_id, text in memories:
            chip = MemoryChip(memory_id, text, self.chips_box)
            self.chips.addWidget(chip)
            chips.append(chip)
        count = len(chips)
        self.chips_caption.setText(f"Used {count} {'memory' if count == 1 else 'memories'}:")
        self.chips_caption.setVisible(bool(chips))
        self.chips_box.setVisible(bool(chips))
        return chips

    def set_info(self, text: str) -> None:
        self.info.setText(text)
        self.info.setVisible(bool(text))

    def memory_chips(self) -> list[MemoryChip]:
        return self.chips_box.findChildren(MemoryChip)

    def enable_feedback(self, message_id: str) -> FeedbackBar:
        """The stored reply's id: the bubble can now be rated and edited."""
        self.message_id = message_id
        if self.feedback is None:
            self.feedback = FeedbackBar(self)
            self.layout().addWidget(self.feedback)
            self.feedback.rateRequested.connect(lambda rating: self.rateRequested.emit(self.message_id, rating))
            self.feedback.editRequested.connect(lambda: self.editRequested.emit(self.message_id))
        return self.feedback

    def set_feedback(self, rating: int, edited_text: str | None) -> None:
        if self.feedback is not None:
            self.feedback.show_state(rating, edited_text)


class Transcript(QScrollArea):
    openMemoryRequested = Signal(str)
    rateRequested = Signal(str, int)  # assistant message id, +1 / -1 / 0
    editReplyRequested = Signal(str, str)  # assistant message id, the preferred text

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        content = QWidget(self)
        content.setObjectName("transcriptContent")
        self.column = QVBoxLayout(content)
        self.column.setContentsMargins(16, 16, 16, 16)
        self.column.setSpacing(10)
        self.empty = QLabel(EMPTY_TEXT, content)
        self.empty.setObjectName("transcriptEmpty")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        _dim(self.empty, 1.0)
        # [empty state] [message rows…] [stretch]: rows start at the top; the empty text, when
        # shown, takes the whole height and sits in its middle.
        self.column.addWidget(self.empty, 1)
        self.column.addStretch(1)
        self.setWidget(content)
        self._apply_style()
        self._bubbles: list[MessageBubble] = []
        self.edit_dialog: EditReplyDialog | None = None  # the open "Edit reply" dialog, if any
        self.live: MessageBubble | None = None  # the reply being streamed, if it is shown
        self._buffer = ""
        self._render = QTimer(self)
        self._render.setSingleShot(True)
        self._render.setInterval(RENDER_INTERVAL_MS)
        self._render.timeout.connect(self._render_live)
        self._stick = True  # follow new text while the view is scrolled to the bottom
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(lambda _lo, hi: bar.setValue(hi) if self._stick else None)
        bar.valueChanged.connect(lambda value: setattr(self, "_stick", value >= bar.maximum() - 8))

    def _apply_style(self) -> None:
        palette = self.palette()
        highlight = palette.color(QPalette.ColorRole.Highlight)
        base = palette.color(QPalette.ColorRole.Base)
        self.widget().setStyleSheet(f"""
            QWidget#transcriptContent {{ background: palette(window); }}
            QFrame#userBubble {{ background: {_mix(highlight, base, 0.16)}; border-radius: 10px; }}
            QFrame#assistantBubble {{ background: palette(base); border: 1px solid palette(midlight);
                                      border-radius: 10px; }}
            QFrame#errorBubble {{ background: #fdecea; border: 1px solid #f1b8b4; border-radius: 10px; }}
            QToolButton#memoryChip {{ background: palette(alternate-base); border: 1px solid palette(mid);
                                      border-radius: 9px; padding: 1px 8px; }}
            QToolButton#memoryChip:hover, QToolButton#memoryChip:focus {{ border-color: palette(highlight); }}
        """)

    # ------------------------------------------------------------ messages
    def clear(self, empty_text: str = EMPTY_TEXT) -> None:
        self._render.stop()
        self.live = None
        self._buffer = ""
        for bubble in list(self._bubbles):
            self._remove(bubble)
        self.empty.setText(empty_text)
        self.empty.show()
        self._stick = True

    def add_message(self, role: str, text: str, memories: Sequence[MemoryRef] = (), info: str = "",
                    when: datetime | None = None, message_id: str = "") -> MessageBubble:
        """A message row; an assistant message with its stored id gets the feedback buttons."""
        self.empty.hide()
        row = QWidget(self.widget())
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        bubble = MessageBubble(role, text, when, row)
        bubble.fit(self._bubble_width())
        if role == "user":
            line.addStretch(1)
        line.addWidget(bubble)
        if role != "user":
            line.addStretch(1)
        chips = bubble.set_memories(memories)
        for chip in chips:
            chip.opened.connect(self.openMemoryRequested)
        bubble.set_info(info)
        if role == "assistant":
            bubble.rateRequested.connect(self.rateRequested)
            bubble.editRequested.connect(self.edit_reply)
            if message_id:
                bubble.enable_feedback(message_id)
        # Rows go before the trailing stretch, so the conversation sits at the top.
        self.column.insertWidget(self.column.count() - 1, row)
        self._bubbles.append(bubble)
        return bubble

    def add_user(self, text: str) -> MessageBubble:
        self._stick = True  # what the person just sent is always brought into view
        return self.add_message("user", text)

    def add_error(self, text: str) -> MessageBubble:
        self._stick = True
        return self.add_message("error", text)

    def start_reply(self) -> MessageBubble:
        """The assistant's bubble, shown at once with a placeholder until the first piece arrives."""
        self._buffer = ""
        self.live = self.add_message("assistant", THINKING)
        return self.live

    def append_reply(self, piece: str) -> None:
        if self.live is None:  # the person switched to another chat meanwhile
            return
        self._buffer += piece
        if not self._render.isActive():
            self._render.start()

    def finish_reply(self, memories: Sequence[MemoryRef], info: str, failed: bool = False,
                     message_id: str = "") -> None:
        bubble, self.live = self.live, None
        self._render.stop()
        if bubble is None:
            return
        text = self._buffer.strip()
        bubble.set_text(text or ("_No reply._" if not failed else "_The reply was interrupted._"))
        for chip in bubble.set_memories(memories):
            chip.opened.connect(self.openMemoryRequested)
        bubble.set_info(info)
        if message_id:
            bubble.enable_feedback(message_id)

    # ------------------------------------------------------------ feedback
    def bubble_for(self, message_id: str) -> MessageBubble | None:
        return next((b for b in self._bubbles if message_id and b.message_id == message_id), None)

    def set_feedback(self, message_id: str, rating: int, edited_text: str | None) -> None:
        """Show the stored feedback on a reply (if that reply is shown)."""
        bubble = self.bubble_for(message_id)
        if bubble is not None:
            bubble.set_feedback(rating, edited_text)

    def edit_reply(self, message_id: str) -> None:
        """Open the "Edit reply" dialog on the reply (or on the person's earlier version of it)."""
        bubble = self.bubble_for(message_id)
        if bubble is None or bubble.feedback is None:
            return
        if self.edit_dialog is not None:
            self.edit_dialog.reject()
        dialog = EditReplyDialog(bubble.feedback.edited_text or bubble.text, self)
        dialog.accepted.connect(lambda: self.editReplyRequested.emit(message_id, dialog.preferred_text()))
        dialog.finished.connect(lambda _code: self._edit_closed(dialog))
        self.edit_dialog = dialog
        dialog.open()  # window-modal, without a nested event loop

    def _edit_closed(self, dialog: EditReplyDialog) -> None:
        if self.edit_dialog is dialog:
            self.edit_dialog = None
        dialog.deleteLater()

    def fail_reply(self, message: str) -> None:
        """End the streamed reply with an error: keep what was written, drop an empty bubble."""
        bubble, self.live = self.live, None
        self._render.stop()
        if bubble is not None:
            if self._buffer.strip():
                bubble.set_text(self._buffer.strip())
                bubble.set_info("interrupted")
            else:
                self._remove(bubble)
        self.add_error(message)

    def _remove(self, bubble: MessageBubble) -> None:
        row = bubble.parentWidget()
        self.column.removeWidget(row)
        row.deleteLater()
        self._bubbles.remove(bubble)

    def _render_live(self) -> None:
        if self.live is not None:
            self.live.set_text(self._buffer.lstrip() or THINKING)

    # ------------------------------------------------------------ queries (tests, smoke check)
    def bubbles(self) -> list[MessageBubble]:
        return list(self._bubbles)

    def live_text(self) -> str:
        return self._buffer

    # ------------------------------------------------------------ layout
    def _bubble_width(self) -> int:
        return max(240, int(self.viewport().width() * BUBBLE_WIDTH))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        width = self._bubble_width()
        for bubble in self._bubbles:
            bubble.fit(width)
