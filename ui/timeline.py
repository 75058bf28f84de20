"""The timeline view: every memory placed at the date it happened, one lane per type.

The picture itself is `TimelineCanvas`; this widget adds the toolbar (zoom, fit, reload),
the line that says how many memories are shown of how many, the marker legend and the
empty state, and loads the data on a reader thread.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QStackedWidget, QStyle, QToolButton, QVBoxLayout, QWidget

from memdesk.engine.api import Memory
from memdesk.ui.labels import empty_label, message_label
from memdesk.ui.tasks import TaskRunner, weakly
from memdesk.ui.timeline_canvas import TimelineCanvas
from memdesk.ui.timeline_data import DEFAULT_LIMIT, TimelineData, format_date, lane_colour, load_timeline

EMPTY_TEXT = ("No memories yet — chat, capture a note or add a folder, and each memory appears here "
              "at the date it happened.")
LEGEND_TEXT = ("● has a date  ○ no date, placed when saved  ◉ pinned (ringed)  ▮ many memories: taller = more"
               "  ·  Wheel: zoom  Drag: pan  Shift+drag: select dates  Click: open")


class TimelineView(QWidget):
    """Memories on a time axis. Emits `rangeSelected(since, until)` (UTC datetimes) for the browser."""

    openMemoryRequested = Signal(str)
    rangeSelected = Signal(object, object)
    loaded = Signal(int)  # how many memories are drawn

    def __init__(self, mem: Memory, runner: TaskRunner, parent: QWidget | None = None, *,
                 limit: int = DEFAULT_LIMIT):
        super().__init__(parent)
        self.mem = mem
        self.runner = runner
        self.limit = limit
        self.setObjectName("timelineView")
        self.is_loaded = False
        self._generation = 0
        self._exercise: dict[str, object] | None = None

        self.canvas = TimelineCanvas()
        self.canvas.openMemoryRequested.connect(self.openMemoryRequested)
        self.canvas.rangeSelected.connect(self._on_range)
        self.canvas.viewChanged.connect(self._show_span)

        layout = QVBoxLayout(self)
        self._toolbar(layout)
        self.message = message_label("timelineMessage")
        layout.addWidget(self.message)

        self.stack = QStackedWidget()
        self.empty = empty_label(EMPTY_TEXT, "timelineEmpty")
        self.stack.addWidget(self.canvas)
        self.stack.addWidget(self.empty)
        layout.addWidget(self.stack, 1)

        self.legend = QLabel(LEGEND_TEXT)
        self.legend.setObjectName("timelineLegend")
        self.legend.setWordWrap(True)
        self.legend.setEnabled(False)  # secondary text, greyed by the palette
        layout.addWidget(self.legend)

    def _toolbar(self, layout: QVBoxLayout) -> None:
        bar = QHBoxLayout()
        layout.addLayout(bar)  # attach first: widgets added below are parented at once
        self.summary = QLabel("Loading…")
        self.summary.setObjectName("timelineSummary")
        bar.addWidget(self.summary)
        bar.addStretch(1)
        self.span_label = QLabel()
        self.span_label.setObjectName("timelineSpan")
        self.span_label.setToolTip("The dates in view")
        bar.addWidget(self.span_label)
        style = self.style()
        self.actions_by_name: dict[str, QAction] = {}
        for name, text, theme, fallback, keys, slot in (
                ("zoom_out", "Zoom out", "zoom-out", QStyle.StandardPixmap.SP_ArrowDown,
                 ["Ctrl+-", QKeySequence.StandardKey.ZoomOut], self.canvas.zoom_out),
                ("zoom_in", "Zoom in", "zoom-in", QStyle.StandardPixmap.SP_ArrowUp,
                 ["Ctrl+=", "Ctrl++", QKeySequence.StandardKey.ZoomIn], self.canvas.zoom_in),
                ("fit", "Show everything", "zoom-fit-best", QStyle.StandardPixmap.SP_TitleBarMaxButton,
                 ["Ctrl+0"], self.canvas.fit_all),
                ("reload", "Reload", "view-refresh", QStyle.StandardPixmap.SP_BrowserReload,
                 [QKeySequence.StandardKey.Refresh], self.refresh)):
            action = QAction(QIcon.fromTheme(theme, style.standardIcon(fallback)), text, self)
            sequences: list[QKeySequence] = []
            for key in keys:  # the platform's ZoomIn is often Ctrl++ already; a duplicate is an ambiguous shortcut
                sequences += [s for s in QKeySequence.keyBindings(key) if s not in sequences] \
                    if isinstance(key, QKeySequence.StandardKey) else [QKeySequence(key)]
            action.setShortcuts(sequences)
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.setToolTip(f"{text} ({sequences[0].toString(QKeySequence.SequenceFormat.NativeText)})")
            action.triggered.connect(slot)
            self.addAction(action)
            button = QToolButton()
            button.setObjectName(f"timeline_{name}")
            button.setDefaultAction(action)
            button.setAutoRaise(True)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            bar.addWidget(button)
            self.actions_by_name[name] = action

    # ------------------------------------------------------------------ loading
    @Slot()
    def refresh(self) -> None:
        """Reload off the GUI thread; the zoom the person chose is kept."""
        self._generation += 1
        generation = self._generation
        mem, limit = self.mem, self.limit
        if not self.is_loaded:
            self.summary.setText("Loading…")
        self.runner.read(lambda: load_timeline(mem, limit), on_done=weakly(self._on_loaded, generation),
                         on_error=weakly(self._on_failed, generation))

    def _on_loaded(self, generation: int, data: TimelineData) -> None:
        if generation != self._generation:
            return
        self.canvas.set_data(data)
        self.message.hide()
        if data.shown == data.total:
            self.summary.setText(f"Showing all {data.shown:,} memories" if data.shown != 1 else "Showing 1 memory")
        else:
            self.summary.setText(f"Showing {data.shown:,} of {data.total:,} memories "
                                 "(pinned and facts first, then the most recent)")
        self.stack.setCurrentWidget(self.canvas if data.shown else self.empty)
        self._show_span()
        self.is_loaded = True
        self.loaded.emit(data.shown)
        if self._exercise is not None and "spans" not in self._exercise:
            self._exercise_loaded()

    def _on_failed(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self.message.setText(f"Could not load the timeline: {exc}")
        self.message.setStyleSheet("color: palette(bright-text); background: #B00020; padding: 4px;")
        self.message.show()
        self.summary.setText("Not loaded")

    @Slot()
    def _show_span(self) -> None:
        offset = self.canvas.offset
        self.span_label.setText(f"{format_date(self.canvas.t0, offset)} – {format_date(self.canvas.t1, offset)}")

    @Slot(object, object)
    def _on_range(self, since: datetime, until: datetime) -> None:
        self.rangeSelected.emit(since, until)

    # ------------------------------------------------------------------- smoke
    def exercise(self) -> None:
        """Load, then zoom in, zoom out and fit (on load); `check_exercised` checks the picture."""
        self._exercise = {}
        self.refresh()

    def _exercise_loaded(self) -> None:
        assert self._exercise is not None
        canvas = self.canvas
        if canvas.width() < 300 or canvas.height() < 150:
            canvas.resize(900, 320)  # not shown yet: give the picture a size to be drawn at
        spans = [canvas.t1 - canvas.t0]
        canvas.zoom_in()
        spans.append(canvas.t1 - canvas.t0)
        canvas.zoom_out()
        canvas.fit_all()
        spans.append(canvas.t1 - canvas.t0)
        self._exercise["spans"] = spans

    def check_exercised(self) -> None:
        if self._exercise is None:
            raise AssertionError("TimelineView.check_exercised() called before exercise()")
        if not self.is_loaded:
            raise AssertionError(f"TimelineView never loaded; message: {self.message.text()!r}")
        data = self.canvas.data
        if data.shown > self.limit or data.shown > data.total:
            raise AssertionError(f"TimelineView shows {data.shown} memories of {data.total} (limit {self.limit})")
        if f"{data.shown:,}" not in self.summary.text():
            raise AssertionError(f"the summary {self.summary.text()!r} does not say {data.shown:,} are shown")
        if not data.shown:
            if self.stack.currentWidget() is not self.empty:
                raise AssertionError("an empty vault should show the empty state on the timeline")
            return
        spans = self._exercise.get("spans")
        if not isinstance(spans, list) or not spans[1] < spans[0]:
            raise AssertionError(f"zooming in did not narrow the timeline: spans {spans}")
        image = self.canvas.grab().toImage()
        missing = [lane.memory_type for lane in data.lanes
                   if not image_has_colour(image, lane_colour(lane.memory_type))]
        if missing:
            raise AssertionError(f"the timeline painted no markers for lanes {missing} "
                                 f"({data.shown} memories loaded)")


def image_has_colour(image: QImage, colour: str, step: int = 1) -> bool:
    """Whether some pixel is exactly `colour` (a marker's fill or the fullest histogram bar)."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB32)
    width, height = rgb.width(), rgb.height()
    pixels = np.frombuffer(rgb.constBits(), np.uint8).reshape(height, rgb.bytesPerLine())[:, :width * 4]
    words = pixels.reshape(height, width, 4)[::step, ::step]
    target = int(colour.lstrip("#"), 16)
    b, g, r = target & 0xFF, (target >> 8) & 0xFF, (target >> 16) & 0xFF
    return bool(np.any((words[..., 0] == b) & (words[..., 1] == g) & (words[..., 2] == r)))
