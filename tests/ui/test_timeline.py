"""The timeline view: memories placed by date in lanes, zoom/pan/select, crowded lanes as bars."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from memdesk.engine.cube import ChatMessage, MemoryType  # noqa: E402
from memdesk.ui.timeline import EMPTY_TEXT, TimelineView, image_has_colour  # noqa: E402
from memdesk.ui.timeline_data import lane_colour, ticks  # noqa: E402

UTC = UTC
TYPES = (MemoryType.USER, MemoryType.PREFERENCE, MemoryType.LONG_TERM)


def _two_years(mem) -> dict[str, datetime]:
    """24 memories, one a month through 2023 and 2024, over three types; one pinned."""
    placed = {}
    for month in range(24):
        when = datetime(2023 + month // 12, month % 12 + 1, 15, 12, tzinfo=UTC)
        item = mem.add(f"Event number {month} of the two years", memory_type=TYPES[month % 3], event_time=when,
                       pinned=month == 7)
        placed[item.id] = when
    return placed


def _view(qtbot, mem, runner, **kwargs) -> TimelineView:
    view = TimelineView(mem, runner, **kwargs)
    qtbot.addWidget(view)
    view.resize(1000, 440)
    view.show()
    qtbot.waitExposed(view)
    with qtbot.waitSignal(view.loaded, timeout=15000):
        view.refresh()
    return view


def _span(canvas) -> float:
    return canvas.t1 - canvas.t0


def test_memories_are_placed_by_date_and_open_on_click(qtbot, kw_mem, runner, settle):
    placed = _two_years(kw_mem)
    view = _view(qtbot, kw_mem, runner)
    canvas = view.canvas
    assert view.is_loaded and canvas.data.shown == 24
    assert view.summary.text() == "Showing all 24 memories"
    assert [lane.memory_type for lane in canvas.data.lanes] == [t.value for t in TYPES]

    by_time = sorted(placed, key=placed.get)
    xs = [canvas.x_for_time(placed[i]) for i in by_time]
    assert all(a < b for a, b in zip(xs, xs[1:]))
    for memory_id in by_time:
        pos = canvas.marker_position(memory_id)
        assert pos is not None and abs(pos.x() - canvas.x_for_time(placed[memory_id])) < 0.5
    assert canvas.time_at(xs[0]) - placed[by_time[0]] < timedelta(minutes=1)

    target = by_time[10]
    pos = canvas.marker_position(target)
    assert "Event number 10 of the two years" in canvas.tooltip_at(pos)
    assert "15 Nov 2023" in canvas.tooltip_at(pos)
    with qtbot.waitSignal(view.openMemoryRequested, timeout=3000) as opened:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=pos.toPoint())
    assert opened.args == [target]

    lane_top = canvas.plot_rect().top() + 2
    with qtbot.assertNotEmitted(view.openMemoryRequested):  # empty space opens nothing
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(xs[10]), int(lane_top)))


def test_zoom_pan_and_range_selection(qtbot, kw_mem, runner, settle):
    placed = _two_years(kw_mem)
    view = _view(qtbot, kw_mem, runner)
    canvas = view.canvas
    full = _span(canvas)
    assert full > 700 * 86400  # fits the two years

    anchor_x = canvas.x_for_time(datetime(2024, 1, 1, tzinfo=UTC))
    anchor_time = canvas.time_at(anchor_x)
    wheel = QWheelEvent(QPointF(anchor_x, 50), canvas.mapToGlobal(QPointF(anchor_x, 50)), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas, wheel)
    assert _span(canvas) < full * 0.7  # zoomed in around the pointer...
    assert abs((canvas.time_at(anchor_x) - anchor_time).total_seconds()) < 60  # ...which stays on the same date

    with qtbot.waitActive(view):  # shortcuts go to the active window only
        view.activateWindow()
    canvas.setFocus()
    ctrl = Qt.KeyboardModifier.ControlModifier
    zoomed = _span(canvas)
    qtbot.keyClick(canvas, Qt.Key.Key_Minus, ctrl)
    assert _span(canvas) > zoomed
    qtbot.keyClick(canvas, Qt.Key.Key_0, ctrl)  # fit everything
    assert _span(canvas) == pytest.approx(full)
    qtbot.keyClick(canvas, Qt.Key.Key_Equal, ctrl)
    assert _span(canvas) < full
    view.actions_by_name["zoom_out"].trigger()  # the toolbar buttons' actions
    assert _span(canvas) == pytest.approx(full)

    t0 = canvas.t0  # drag right: earlier dates come into view
    y = int(canvas.plot_rect().top() + 3)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(300, y))
    qtbot.mouseMove(canvas, QPoint(350, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(420, y))
    assert canvas.t0 < t0 and canvas.user_moved

    view.actions_by_name["fit"].trigger()
    shift = Qt.KeyboardModifier.ShiftModifier
    with qtbot.waitSignal(view.rangeSelected, timeout=3000) as selected:
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, shift, QPoint(600, y))
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, shift, QPoint(400, y))
    since, until = selected.args
    assert since.tzinfo is not None and since < until
    assert abs((since - canvas.time_at(400)).total_seconds()) < 60
    assert abs((until - canvas.time_at(600)).total_seconds()) < 60
    inside = [i for i, when in placed.items() if since <= when < until]
    assert 0 < len(inside) < 24
    assert canvas.selection is not None
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert canvas.selection is None


def test_the_picture_has_each_lane_colour_and_a_reload_keeps_the_zoom(qtbot, kw_mem, runner, settle):
    _two_years(kw_mem)
    view = _view(qtbot, kw_mem, runner)
    image = view.canvas.grab().toImage()
    for memory_type in TYPES:
        assert image_has_colour(image, lane_colour(memory_type)), memory_type
    assert not image_has_colour(image, lane_colour(MemoryType.RAW_FILE))  # no files: no orange

    view.canvas.zoom_by(0.25)
    span = _span(view.canvas)
    kw_mem.add("One more", event_time=datetime(2024, 6, 1, tzinfo=UTC))
    with qtbot.waitSignal(view.loaded, timeout=15000) as loaded:
        view.refresh()
    assert loaded.args == [25] and _span(view.canvas) == pytest.approx(span)


def test_a_crowded_lane_becomes_bars_and_the_limit_prefers_pinned(qtbot, kw_mem, runner, settle):
    start = datetime(2024, 3, 1, tzinfo=UTC)
    kw_mem.add_messages([ChatMessage("me", f"turn {i}", timestamp=start + timedelta(seconds=20 * i))
                         for i in range(2500)])
    pinned = kw_mem.add("Pinned long ago", pinned=True, event_time=datetime(2020, 1, 1, tzinfo=UTC)).id
    kw_mem.add("A pinned chat-day note", pinned=True, memory_type=MemoryType.RAW_CHAT,
               event_time=start + timedelta(hours=3))
    view = _view(qtbot, kw_mem, runner, limit=1000)
    canvas = view.canvas
    assert canvas.data.shown == 1000 and canvas.data.total == 2502
    assert "Showing 1,000 of 2,502 memories" in view.summary.text()
    assert pinned in canvas.data.ids  # the oldest memory, but pinned: loaded before recent chat turns

    canvas.zoom_by(1 / 40, canvas.x_for_time(start + timedelta(hours=11)))
    chat_lane = next(n for n, lane in enumerate(canvas.data.lanes) if lane.memory_type == MemoryType.RAW_CHAT)
    assert canvas.visible_slice(chat_lane)[2]  # dense: drawn as a histogram
    assert image_has_colour(canvas.grab().toImage(), lane_colour(MemoryType.RAW_CHAT))
    y = canvas.plot_rect().top() + canvas.lane_height() * (chat_lane + 0.9)
    bar = QPointF(canvas.x_for_time(start + timedelta(hours=11)), y)
    count, _, _ = canvas.bin_at(bar)
    assert count > 1 and "memories" in canvas.tooltip_at(bar)
    span = _span(canvas)
    canvas.click(bar)  # a click on a bar zooms into it
    assert _span(canvas) < span


def test_empty_vault_shows_the_empty_state(qtbot, kw_mem, runner, settle):
    view = _view(qtbot, kw_mem, runner)
    assert view.stack.currentWidget() is view.empty and view.empty.text() == EMPTY_TEXT
    view.exercise()
    settle()
    view.check_exercised()


def test_exercise_and_check(qtbot, kw_mem, runner, settle):
    _two_years(kw_mem)
    view = TimelineView(kw_mem, runner)  # never shown: the smoke run must still paint
    qtbot.addWidget(view)
    view.exercise()
    settle()
    view.check_exercised()
    assert view.canvas.data.shown == 24


def test_axis_ticks_follow_the_zoom():
    day = 86400.0
    start = datetime(2023, 1, 1, tzinfo=UTC).timestamp()
    months = ticks(start, start + 730 * day, 1000, 80, offset=0)
    assert months[0].label == "Jan 2023" and "Jan 2024" in [t.label for t in months]
    assert all(t.label.split()[0] in ("Jan", "Apr", "Jul", "Oct") for t in months)
    hours = ticks(start, start + 2 * day, 1000, 80, offset=0)
    assert hours[0].label == "1 Jan 00:00" and hours[1].label.endswith(":00") and len(hours) > 4
    years = ticks(start - 60 * 365 * day, start, 1000, 80, offset=0)
    assert [t.label for t in years][:2] == ["1965", "1970"]
    assert all(a.t < b.t for a, b in zip(months, months[1:]))
