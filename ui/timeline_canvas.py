"""The timeline picture: one lane per memory type on a horizontal time axis.

A custom-painted widget rather than a QGraphicsScene: with 20,000 memories a scene item
each would make every zoom step slow, while painting straight from `TimelineData`'s sorted
arrays touches only what is visible. Where more memories fall under one marker than can be
told apart, the lane switches to a histogram (bar height and colour strength = how many),
and pinned memories are still drawn on top as markers.

Mouse: wheel zooms around the pointer, drag pans, Shift+drag selects a time range, click
opens a memory (or zooms into a crowded bar), hover shows the memory. Keys: arrows pan,
+/- zoom, Home fits everything, Escape clears the selection.
"""
from __future__ import annotations

import html
import math
from datetime import UTC, datetime

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontMetricsF,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QSizePolicy, QToolTip, QWidget

from memdesk.ui.timeline_data import (
    MAX_T,
    MIN_T,
    TimelineData,
    format_date,
    lane_colour,
    lane_label,
    local_offset,
    ticks,
    to_utc_datetime,
)
from memdesk.ui.timeline_paint import HIST_BIN, PINNED_SCALE, paint_timeline

MIN_SPAN = 3600.0  # an hour across the whole width
MAX_SPAN = 500 * 365.25 * 86400.0
DENSE_PER_DOT = 12  # more memories than this under one marker's width: the lane becomes a histogram
MAX_DOTS = 1500  # per lane; past this, markers would only be a smear
ZOOM_STEP = 1.25
_HASH = 2654435761  # Knuth's multiplicative hash: a fixed, even-looking vertical spread of markers



class TimelineCanvas(QWidget):
    openMemoryRequested = Signal(str)
    rangeSelected = Signal(object, object)  # (since, until): timezone-aware UTC datetimes, since < until
    viewChanged = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("timelineCanvas")
        self.setAccessibleName("Timeline of memories")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.data = TimelineData()
        self.t0, self.t1 = 0.0, 1.0
        self.user_moved = False  # a reload keeps the view the person chose
        self.selection: tuple[float, float] | None = None
        self.offset = local_offset()
        self._drag: str | None = None  # "pan" | "select"
        self._press_x = 0.0
        self._press_range = (0.0, 1.0)
        self._moved = False
        self.hover_index: int | None = None
        self._label_width = 0.0
        self.fit_all()

    # ------------------------------------------------------------------- data
    def set_data(self, data: TimelineData) -> None:
        self.data = data
        self.hover_index = None
        fm = QFontMetricsF(self.font())
        widths = [max(fm.horizontalAdvance(lane_label(lane.memory_type)), fm.horizontalAdvance(f"{lane.size:,}"))
                  for lane in data.lanes]
        self._label_width = max(widths, default=0.0) + fm.height() * 3.0
        self.setMinimumHeight(int(fm.height() * (2.0 * max(1, len(data.lanes)) + 3)))
        if not self.user_moved:
            self.fit_all()
        self.update()

    # --------------------------------------------------------------- geometry
    def _fm(self) -> QFontMetricsF:
        return QFontMetricsF(self.font())

    def plot_rect(self) -> QRectF:
        """Where markers go: right of the lane labels, above the axis."""
        fm = self._fm()
        pad = fm.height() * 0.5
        left = max(self._label_width, pad)
        axis = fm.height() * 1.8
        lanes = max(1, len(self.data.lanes))
        lane_h = min(max((self.height() - pad - axis) / lanes, fm.height() * 2.0), fm.height() * 8.0)
        return QRectF(left, pad, max(10.0, self.width() - left - pad), lane_h * lanes)

    def lane_height(self) -> float:
        return self.plot_rect().height() / max(1, len(self.data.lanes))

    def marker_radius(self) -> float:
        return max(3.5, self._fm().height() * 0.28)

    def seconds_per_pixel(self) -> float:
        return (self.t1 - self.t0) / self.plot_rect().width()

    def x_for_t(self, t: float) -> float:
        plot = self.plot_rect()
        return plot.left() + (t - self.t0) / (self.t1 - self.t0) * plot.width()

    def t_for_x(self, x: float) -> float:
        plot = self.plot_rect()
        return self.t0 + (x - plot.left()) / plot.width() * (self.t1 - self.t0)

    def x_for_time(self, when: datetime) -> float:
        return self.x_for_t(when.timestamp())

    def time_at(self, x: float) -> datetime:
        return to_utc_datetime(self.t_for_x(x))

    def visible_range(self) -> tuple[datetime, datetime]:
        return to_utc_datetime(self.t0), to_utc_datetime(self.t1)

    def lane_at(self, y: float) -> int | None:
        plot = self.plot_rect()
        if not self.data.lanes or not plot.top() <= y < plot.bottom():
            return None
        return min(int((y - plot.top()) / self.lane_height()), len(self.data.lanes) - 1)

    def visible_slice(self, n: int) -> tuple[int, int, bool]:
        """Indices [lo, hi) of lane n's memories in view, and whether it is too crowded for markers."""
        lane = self.data.lanes[n]
        times = self.data.times[lane.start:lane.end]
        spp = self.seconds_per_pixel()
        diameter = 2 * self.marker_radius()
        lo, hi = (int(v) for v in np.searchsorted(times, [self.t0 - diameter * spp, self.t1 + diameter * spp]))
        dense = hi - lo > MAX_DOTS
        if 0 < hi - lo <= MAX_DOTS:
            bins = np.floor((times[lo:hi] - self.t0) / (spp * diameter)).astype(np.int64)
            dense = int(np.bincount(bins - bins[0]).max()) > DENSE_PER_DOT
        return lane.start + lo, lane.start + hi, dense

    def dot_positions(self, indices: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Marker centres; a small fixed vertical spread keeps near neighbours apart."""
        plot = self.plot_rect()
        lane_h = self.lane_height()
        r = self.marker_radius()
        amplitude = max(0.0, min(r * 0.6, (lane_h / 2 - r * PINNED_SCALE - 1) / 2))
        xs = plot.left() + (self.data.times[indices] - self.t0) / (self.t1 - self.t0) * plot.width()
        jitter = (indices.astype(np.int64) * _HASH) % 5 - 2
        ys = plot.top() + lane_h * (n + 0.5) + jitter * amplitude
        return xs, ys

    def marker_position(self, memory_id: str) -> QPointF | None:
        """Centre of a memory's marker in widget coordinates; None when it is off screen or in a bar."""
        try:
            index = self.data.index_of(memory_id)
        except ValueError:
            return None
        n = self.data.lane_of(index)
        lo, hi, dense = self.visible_slice(n)
        if not lo <= index < hi or (dense and not self.data.pinned[index]):
            return None
        xs, ys = self.dot_positions(np.array([index]), n)
        point = QPointF(float(xs[0]), float(ys[0]))
        return point if self.plot_rect().contains(point) else None

    def item_at(self, pos: QPointF) -> int | None:
        """The memory whose marker is under `pos` (the nearest one), if any."""
        n = self.lane_at(pos.y())
        if n is None or not self.plot_rect().contains(pos):
            return None
        lo, hi, dense = self.visible_slice(n)
        reach = self.marker_radius() * PINNED_SCALE + 3
        t = self.t_for_x(pos.x())
        a, b = np.searchsorted(self.data.times[lo:hi], [t - reach * self.seconds_per_pixel(),
                                                        t + reach * self.seconds_per_pixel()])
        candidates = np.arange(lo + int(a), lo + int(b))
        if dense:
            candidates = candidates[self.data.pinned[candidates]]
        if not len(candidates):
            return None
        xs, ys = self.dot_positions(candidates, n)
        distances = np.hypot(xs - pos.x(), ys - pos.y())
        best = int(np.argmin(distances))
        return int(candidates[best]) if distances[best] <= reach else None

    def bin_at(self, pos: QPointF) -> tuple[int, float, float] | None:
        """(count, start, end) of the histogram bar under `pos` in a crowded lane."""
        n = self.lane_at(pos.y())
        if n is None or not self.visible_slice(n)[2]:
            return None
        plot = self.plot_rect()
        b = math.floor((pos.x() - plot.left()) / HIST_BIN)
        start, end = self.t_for_x(plot.left() + b * HIST_BIN), self.t_for_x(plot.left() + (b + 1) * HIST_BIN)
        lane = self.data.lanes[n]
        lo, hi = np.searchsorted(self.data.times[lane.start:lane.end], [start, end])
        return (int(hi - lo), start, end) if hi > lo else None

    def tooltip_at(self, pos: QPointF) -> str:
        index = self.item_at(pos)
        if index is not None:
            data = self.data
            lane = data.lanes[data.lane_of(index)]
            when = format_date(float(data.times[index]), self.offset, with_time=True)
            notes = [when, lane_label(lane.memory_type)]
            if data.pinned[index]:
                notes.append("pinned")
            if not data.dated[index]:
                notes.append("no event date: placed when it was saved")
            title = f"<b>{html.escape(data.keys[index])}</b><br>" if data.keys[index] else ""
            return (f"{title}{html.escape(data.texts[index])}<br><i>{html.escape(' · '.join(notes))}</i>"
                    "<br>Click to open")
        crowded = self.bin_at(pos)
        if crowded is not None:
            count, start, end = crowded
            span = f"{format_date(start, self.offset, True)} – {format_date(end, self.offset, True)}"
            return f"<b>{count:,} memories</b><br>{span}<br>Click to zoom in"
        return ""

    # ------------------------------------------------------------ navigation
    def _set_range(self, t0: float, t1: float) -> None:
        span = min(max(t1 - t0, MIN_SPAN), MAX_SPAN)
        t0 = min(max(t0, MIN_T), MAX_T - span)
        self.t0, self.t1 = t0, t0 + span
        self.viewChanged.emit()
        self.update()

    def fit_all(self) -> None:
        """Show every loaded memory, and today too when that does not squash the picture."""
        now = datetime.now(UTC).timestamp()
        if self.data.shown:
            lo, hi = self.data.span()
            if lo <= now and now - hi < 0.3 * max(hi - lo, 86400.0):
                hi = max(hi, now)
        else:
            lo, hi = now - 365 * 86400.0, now
        span = max(hi - lo, 86400.0)
        middle = (lo + hi) / 2
        self._set_range(middle - span * 0.54, middle + span * 0.54)
        self.user_moved = False

    def zoom_by(self, factor: float, anchor_x: float | None = None) -> None:
        """factor < 1 zooms in; the time under `anchor_x` (default: the middle) stays put."""
        plot = self.plot_rect()
        x = plot.center().x() if anchor_x is None else anchor_x
        fraction = (x - plot.left()) / plot.width()
        anchor = self.t_for_x(x)
        span = min(max((self.t1 - self.t0) * factor, MIN_SPAN), MAX_SPAN)
        self._set_range(anchor - fraction * span, anchor + (1 - fraction) * span)
        self.user_moved = True

    def zoom_in(self) -> None:
        self.zoom_by(1 / ZOOM_STEP)

    def zoom_out(self) -> None:
        self.zoom_by(ZOOM_STEP)

    def pan_by_pixels(self, dx: float) -> None:
        shift = -dx * self.seconds_per_pixel()
        self._set_range(self.t0 + shift, self.t1 + shift)
        self.user_moved = True

    def clear_selection(self) -> None:
        self.selection = None
        self.update()

    # ----------------------------------------------------------------- input
    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta()
        if delta.x() or event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.pan_by_pixels((delta.x() or delta.y()) / 120 * self.plot_rect().width() / 10)
        elif delta.y():
            self.zoom_by(ZOOM_STEP ** (-delta.y() / 120), event.position().x())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        x = event.position().x()
        self._drag = "select" if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else "pan"
        self._press_x, self._press_range, self._moved = x, (self.t0, self.t1), False
        if self._drag == "select":
            self.selection = (self.t_for_x(x), self.t_for_x(x))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        if self._drag is not None:
            # Move events may be missed (or compressed); the release position settles the drag.
            self._drag_to(pos.x())
            return
        hover = self.item_at(pos)
        if hover != self.hover_index:
            self.hover_index = hover
            self.update()
        text = self.tooltip_at(pos)
        if text:
            QToolTip.showText(event.globalPosition().toPoint(), text, self)
        else:
            QToolTip.hideText()

    def _drag_to(self, x: float) -> None:
        dx = x - self._press_x
        if abs(dx) >= QApplication.startDragDistance():
            self._moved = True
        if self._drag == "pan" and self._moved:
            t0, t1 = self._press_range
            shift = -dx * (t1 - t0) / self.plot_rect().width()
            self._set_range(t0 + shift, t1 + shift)
            self.user_moved = True
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._drag == "select":
            self.selection = (self.t_for_x(self._press_x), self.t_for_x(x))
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._drag is None:
            return super().mouseReleaseEvent(event)
        pos = event.position()
        self._drag_to(pos.x())
        drag, self._drag = self._drag, None
        self.unsetCursor()
        if drag == "select":
            if self._moved and self.selection is not None:
                since, until = sorted(self.selection)
                self.selection = (since, until)
                self.rangeSelected.emit(to_utc_datetime(since), to_utc_datetime(until))
            else:
                self.selection = None
            self.update()
        elif not self._moved:
            self.click(pos)
        event.accept()

    def click(self, pos: QPointF) -> None:
        """Open the memory under `pos`, or zoom into a crowded bar."""
        index = self.item_at(pos)
        if index is not None:
            self.openMemoryRequested.emit(self.data.ids[index])
        elif self.bin_at(pos) is not None:
            self.zoom_by(1 / 4, pos.x())

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.item_at(event.position()) is None:
            self.zoom_by(1 / 2, event.position().x())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        step = self.plot_rect().width() / 8
        actions = {Qt.Key.Key_Left: lambda: self.pan_by_pixels(step),
                   Qt.Key.Key_Right: lambda: self.pan_by_pixels(-step),
                   Qt.Key.Key_Plus: self.zoom_in, Qt.Key.Key_Equal: self.zoom_in, Qt.Key.Key_Minus: self.zoom_out,
                   Qt.Key.Key_Home: self.fit_all, Qt.Key.Key_Escape: self.clear_selection}
        if key in actions and not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            actions[key]()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.hover_index is not None:
            self.openMemoryRequested.emit(self.data.ids[self.hover_index])
        else:
            super().keyPressEvent(event)

    def leaveEvent(self, event) -> None:
        if self.hover_index is not None:
            self.hover_index = None
            self.update()
        super().leaveEvent(event)

    # -------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            paint_timeline(self, painter)
        finally:
            painter.end()

    def colours(self) -> dict[str, QColor]:
        pal = self.palette()
        return {"base": pal.color(QPalette.ColorRole.Base), "alt": pal.color(QPalette.ColorRole.AlternateBase),
                "text": pal.color(QPalette.ColorRole.Text), "mid": pal.color(QPalette.ColorRole.Mid),
                "dim": pal.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text),
                "highlight": pal.color(QPalette.ColorRole.Highlight)}

    @staticmethod
    def lane_qcolour(memory_type: str) -> QColor:
        return QColor(lane_colour(memory_type))

    def tick_list(self) -> list:
        min_px = self._fm().horizontalAdvance("30 Sep 2024 ") + 12
        return ticks(self.t0, self.t1, self.plot_rect().width(), min_px, self.offset)

    def pen(self, colour: QColor, width: float = 1.0, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
        pen = QPen(colour, width)
        pen.setStyle(style)
        return pen
