"""Painting the timeline canvas: lanes and their legend, grid, today line, markers, axis.

Kept apart from `timeline_canvas` (geometry and input) so both stay small. Every call reads
the canvas's current range and arrays; nothing here keeps state.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter

from memdesk.ui.timeline_data import lane_label

if TYPE_CHECKING:
    from memdesk.ui.timeline_canvas import TimelineCanvas

MAX_PINNED_OVERLAY = 2000  # pinned markers drawn over a crowded lane's bars
HIST_BIN = 4  # pixels per histogram bar (3 drawn, 1 gap)
PINNED_SCALE = 1.45  # pinned markers are this much larger


def paint_timeline(canvas: TimelineCanvas, p: QPainter) -> None:
    colours = canvas.colours()
    p.fillRect(canvas.rect(), colours["base"])
    if not canvas.data.lanes:
        return
    plot = canvas.plot_rect()
    lane_h = canvas.lane_height()
    tick_list = canvas.tick_list()
    for n, _lane in enumerate(canvas.data.lanes):
        band = QRectF(0, plot.top() + n * lane_h, canvas.width(), lane_h)
        if n % 2:
            p.fillRect(band, colours["alt"])
        _lane_legend(canvas, p, n, band, colours)
    _grid(canvas, p, plot, tick_list, colours)
    _selection(canvas, p, plot, colours)
    p.save()
    p.setClipRect(plot)
    for n in range(len(canvas.data.lanes)):
        _markers(canvas, p, n, colours)
    p.restore()
    _today(canvas, p, plot, colours)
    _axis(canvas, p, plot, tick_list, colours)


def _lane_legend(canvas: TimelineCanvas, p: QPainter, n: int, band: QRectF, colours: dict) -> None:
    """Colour swatch, lane name and how many of its memories are loaded: the legend."""
    lane = canvas.data.lanes[n]
    fm = QFontMetricsF(canvas.font())
    pad = fm.height() * 0.5
    swatch = fm.height() * 0.8
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    p.setPen(canvas.pen(canvas.lane_qcolour(lane.memory_type).darker(130)))
    p.setBrush(canvas.lane_qcolour(lane.memory_type))
    p.drawRoundedRect(QRectF(pad, band.center().y() - swatch / 2, swatch, swatch), 3, 3)
    text_left = pad * 2 + swatch
    width = canvas.plot_rect().left() - text_left - pad
    label = fm.elidedText(lane_label(lane.memory_type), Qt.TextElideMode.ElideRight, width)
    two_lines = band.height() >= fm.height() * 2.4
    p.setPen(colours["text"])
    y = band.center().y() - (fm.height() / 2 if two_lines else 0) + fm.ascent() - fm.height() / 2
    p.drawText(QPointF(text_left, y), label)
    if two_lines:
        p.setPen(colours["dim"])
        p.drawText(QPointF(text_left, y + fm.height()), f"{lane.size:,}")


def _grid(canvas: TimelineCanvas, p: QPainter, plot: QRectF, tick_list: list, colours: dict) -> None:
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    minor = _mix_alpha(colours["mid"], 70)
    major = _mix_alpha(colours["mid"], 150)
    for tick in tick_list:
        x = round(canvas.x_for_t(tick.t))
        p.setPen(canvas.pen(major if tick.major else minor))
        p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))


def _mix_alpha(colour: QColor, alpha: int) -> QColor:
    out = QColor(colour)
    out.setAlpha(alpha)
    return out


def _selection(canvas: TimelineCanvas, p: QPainter, plot: QRectF, colours: dict) -> None:
    if canvas.selection is None:
        return
    a, b = sorted(canvas.x_for_t(t) for t in canvas.selection)
    band = QRectF(max(a, plot.left()), plot.top(), min(b, plot.right()) - max(a, plot.left()), plot.height())
    if band.width() <= 0:
        return
    p.fillRect(band, _mix_alpha(colours["highlight"], 50))
    p.setPen(canvas.pen(colours["highlight"]))
    p.drawLine(band.topLeft(), band.bottomLeft())
    p.drawLine(band.topRight(), band.bottomRight())


def _today(canvas: TimelineCanvas, p: QPainter, plot: QRectF, colours: dict) -> None:
    x = canvas.x_for_t(datetime.now(UTC).timestamp())
    if not plot.left() <= x <= plot.right():
        return
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    p.setPen(canvas.pen(colours["text"], 1.5, Qt.PenStyle.DashLine))
    p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
    fm = QFontMetricsF(canvas.font())
    label = "Today"
    width = fm.horizontalAdvance(label) + 6
    left = x + 3 if x + 3 + width <= plot.right() else x - 3 - width
    box = QRectF(left, plot.top() + 1, width, fm.height())
    p.fillRect(box, colours["base"])
    p.setPen(colours["text"])
    p.drawText(box, Qt.AlignmentFlag.AlignCenter, label)


def _markers(canvas: TimelineCanvas, p: QPainter, n: int, colours: dict) -> None:
    data = canvas.data
    lo, hi, dense = canvas.visible_slice(n)
    if lo >= hi:
        return
    colour = canvas.lane_qcolour(data.lanes[n].memory_type)
    if dense:
        _histogram(canvas, p, n, lo, hi, colour, colours)
        pinned = lo + np.flatnonzero(data.pinned[lo:hi])[:MAX_PINNED_OVERLAY]
        _dots(canvas, p, n, pinned, colour, colours)
    else:
        indices = np.arange(lo, hi)
        order = np.concatenate([indices[~data.pinned[lo:hi]], indices[data.pinned[lo:hi]]])  # pinned on top
        _dots(canvas, p, n, order, colour, colours)


def _histogram(canvas: TimelineCanvas, p: QPainter, n: int, lo: int, hi: int, colour: QColor,
               colours: dict) -> None:
    """One bar per few pixels: height and colour strength grow with the count (square root,
    so a lone memory next to a busy day still shows)."""
    plot = canvas.plot_rect()
    lane_h = canvas.lane_height()
    bins_total = max(1, math.ceil(plot.width() / HIST_BIN))
    bins = np.floor((canvas.data.times[lo:hi] - canvas.t0) / canvas.seconds_per_pixel() / HIST_BIN).astype(np.int64)
    bins = bins[(bins >= 0) & (bins < bins_total)]
    if not len(bins):
        return
    counts = np.bincount(bins, minlength=bins_total)
    peak = int(counts.max())
    bottom = round(plot.top() + lane_h * (n + 1) - 3)
    left = round(plot.left())
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    p.setPen(Qt.PenStyle.NoPen)
    for b in np.flatnonzero(counts):
        strength = math.sqrt(int(counts[b]) / peak)
        height = max(2, round((lane_h - 6) * strength))
        p.fillRect(QRectF(left + int(b) * HIST_BIN, bottom - height, HIST_BIN - 1, height),
                   _mix(colours["base"], colour, 0.3 + 0.7 * strength))


def _mix(a: QColor, b: QColor, f: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * f), round(a.green() + (b.green() - a.green()) * f),
                  round(a.blue() + (b.blue() - a.blue()) * f))


def _dots(canvas: TimelineCanvas, p: QPainter, n: int, indices: np.ndarray, colour: QColor,
          colours: dict) -> None:
    """Filled: the memory has an event date. Hollow: placed at the date it was saved.
    Pinned: larger, with a dark ring. The hovered one gets a highlight ring."""
    if not len(indices):
        return
    data = canvas.data
    r = canvas.marker_radius()
    xs, ys = canvas.dot_positions(indices, n)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    plain_pen = canvas.pen(colour.darker(125))
    hollow_pen = canvas.pen(colour, 2.0)
    pinned_pen = canvas.pen(colours["text"], 2.0)
    fill, hollow_fill = QBrush(colour), QBrush(colours["base"])
    for index, x, y in zip(indices.tolist(), xs.tolist(), ys.tolist()):
        pinned = bool(data.pinned[index])
        dated = bool(data.dated[index])
        p.setPen(pinned_pen if pinned else plain_pen if dated else hollow_pen)
        p.setBrush(fill if dated or pinned else hollow_fill)
        radius = r * PINNED_SCALE if pinned else r
        p.drawEllipse(QPointF(x, y), radius, radius)
        if index == canvas.hover_index:
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(canvas.pen(colours["highlight"], 2.0))
            p.drawEllipse(QPointF(x, y), radius + 3, radius + 3)


def _axis(canvas: TimelineCanvas, p: QPainter, plot: QRectF, tick_list: list, colours: dict) -> None:
    fm = QFontMetricsF(canvas.font())
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    p.setPen(canvas.pen(colours["mid"]))
    p.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()))
    bold = QFont(canvas.font())
    bold.setBold(True)
    last_right = -math.inf
    baseline = plot.bottom() + fm.height() * 0.3 + fm.ascent()
    for tick in tick_list:
        x = canvas.x_for_t(tick.t)
        p.setPen(canvas.pen(colours["mid"]))
        p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + fm.height() * 0.25))
        p.setFont(bold if tick.major else canvas.font())
        width = QFontMetricsF(p.font()).horizontalAdvance(tick.label)
        left = min(max(x - width / 2, plot.left()), canvas.width() - width - 2)
        if left < last_right + 6:
            continue  # would overlap its neighbour
        p.setPen(colours["text"] if tick.major else colours["dim"])
        p.drawText(QPointF(left, baseline), tick.label)
        last_right = left + width
    p.setFont(canvas.font())
