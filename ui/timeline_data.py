"""What the timeline draws, as plain arrays, and where its axis ticks go.

Everything here runs off the GUI thread or is pure arithmetic: `load_timeline` reads the
vault on a reader thread and packs the memories into numpy arrays sorted by lane and time,
so that painting 20,000 markers is a few `searchsorted`/`bincount` calls per lane rather
than 20,000 objects. No Qt in this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from memdesk.engine.api import Memory
from memdesk.engine.cube import Filters, MemoryItem, MemoryType

DEFAULT_LIMIT = 20_000
TOOLTIP_CHARS = 280

# Lane order: what a person told us first, raw material last.
LANE_ORDER = (MemoryType.USER.value, MemoryType.PREFERENCE.value, MemoryType.LONG_TERM.value,
              MemoryType.WORKING.value, MemoryType.RAW_CHAT.value, MemoryType.RAW_FILE.value)
LANE_LABELS = {MemoryType.USER.value: "About you", MemoryType.PREFERENCE.value: "Preferences",
               MemoryType.LONG_TERM.value: "Facts & notes", MemoryType.WORKING.value: "Working",
               MemoryType.RAW_CHAT.value: "Chat turns", MemoryType.RAW_FILE.value: "Files"}
# Okabe–Ito: distinguishable with the common colour-vision deficiencies. Yellow is left out
# because it disappears on a light background; unknown types get grey.
LANE_COLOURS = {MemoryType.USER.value: "#D55E00", MemoryType.PREFERENCE.value: "#009E73",
                MemoryType.LONG_TERM.value: "#0072B2", MemoryType.WORKING.value: "#CC79A7",
                MemoryType.RAW_CHAT.value: "#56B4E9", MemoryType.RAW_FILE.value: "#E69F00"}
OTHER_COLOUR = "#7F7F7F"
# Curated kinds are worth more than raw turns when the vault holds more than we draw.
CURATED = (MemoryType.USER.value, MemoryType.PREFERENCE.value, MemoryType.LONG_TERM.value)

_EPOCH = datetime(1970, 1, 1)
MIN_T = (datetime(1, 1, 2) - _EPOCH).total_seconds()
MAX_T = (datetime(9999, 12, 30) - _EPOCH).total_seconds()


def lane_colour(memory_type: str) -> str:
    return LANE_COLOURS.get(memory_type, OTHER_COLOUR)


def lane_label(memory_type: str) -> str:
    return LANE_LABELS.get(memory_type, memory_type.removesuffix("Memory") or memory_type)


@dataclass(frozen=True)
class Lane:
    memory_type: str
    start: int  # this lane's items are [start, end) in TimelineData's arrays, sorted by time
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class TimelineData:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # shortened, for tooltips
    keys: list[str] = field(default_factory=list)
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # seconds since the epoch, UTC
    pinned: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    dated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # has an explicit event_time
    lanes: list[Lane] = field(default_factory=list)
    total: int = 0  # live memories in the vault; `len(ids)` of them are here

    @property
    def shown(self) -> int:
        return len(self.ids)

    def index_of(self, memory_id: str) -> int:
        return self.ids.index(memory_id)

    def lane_of(self, index: int) -> int:
        return next(n for n, lane in enumerate(self.lanes) if lane.start <= index < lane.end)

    def span(self) -> tuple[float, float]:
        return (float(self.times.min()), float(self.times.max())) if self.shown else (0.0, 0.0)

    @classmethod
    def from_items(cls, items: list[MemoryItem], total: int) -> TimelineData:
        def when(item: MemoryItem) -> datetime:
            return item.event_time or item.created_at

        known = {t: n for n, t in enumerate(LANE_ORDER)}
        types = sorted({i.memory_type for i in items}, key=lambda t: (known.get(t, len(known)), t))
        rank = {t: n for n, t in enumerate(types)}
        items = sorted(items, key=lambda i: (rank[i.memory_type], when(i)))
        lanes: list[Lane] = []
        start = 0
        for memory_type in types:
            end = start
            while end < len(items) and items[end].memory_type == memory_type:
                end += 1
            lanes.append(Lane(memory_type, start, end))
            start = end
        return cls(ids=[i.id for i in items], texts=[_shorten(i.memory) for i in items], keys=[i.key for i in items],
                   times=np.array([when(i).timestamp() for i in items], dtype=np.float64),
                   pinned=np.array([i.pinned for i in items], dtype=bool),
                   dated=np.array([i.event_time is not None for i in items], dtype=bool),
                   lanes=lanes, total=max(total, len(items)))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TOOLTIP_CHARS else text[:TOOLTIP_CHARS - 1] + "…"


def load_timeline(mem: Memory, limit: int = DEFAULT_LIMIT) -> TimelineData:
    """The `limit` most relevant live memories: pinned ones, then curated facts, then the
    most recent by event time (`Memory.list` orders by event_time, falling back to created_at)."""
    total = mem.count()
    picked: dict[str, MemoryItem] = {}
    for filters in (Filters(pinned=True), Filters(memory_types=CURATED), Filters()):
        if len(picked) >= limit:
            break
        # Each query asks for `limit`: after dropping the ones already picked, the rest still fills it.
        for item in mem.list(filters, order="event_time", limit=limit):
            if len(picked) >= limit:
                break
            picked.setdefault(item.id, item)
    return TimelineData.from_items(list(picked.values()), total)


# -------------------------------------------------------------------- axis ticks
@dataclass(frozen=True)
class Tick:
    t: float  # seconds since the epoch, UTC
    label: str
    major: bool  # the coarser unit changed here (a new year, month or day): drawn stronger


_STEPS = (("hour", 1), ("hour", 3), ("hour", 6), ("hour", 12), ("day", 1), ("day", 2), ("week", 1),
          ("month", 1), ("month", 3), ("month", 6), ("year", 1), ("year", 2), ("year", 5), ("year", 10),
          ("year", 20), ("year", 50), ("year", 100), ("year", 250), ("year", 500), ("year", 1000))
_APPROX = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "month": 30.44 * 86400.0, "year": 365.25 * 86400.0}


def local_offset() -> float:
    """The local UTC offset now, in seconds. Fixed for the whole axis: `datetime.fromtimestamp`
    fails before 1970 on Windows, and an hour of DST drift does not matter on a time axis."""
    offset = datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset else 0.0


def to_local(t: float, offset: float) -> datetime:
    return _EPOCH + timedelta(seconds=min(max(t + offset, MIN_T), MAX_T))


def to_utc_datetime(t: float) -> datetime:
    return (_EPOCH + timedelta(seconds=min(max(t, MIN_T), MAX_T))).replace(tzinfo=UTC)


def format_date(t: float, offset: float, with_time: bool = False) -> str:
    local = to_local(t, offset)
    text = f"{local.day} {local:%b} {local.year}"
    return f"{text} {local:%H:%M}" if with_time else text


def choose_step(t0: float, t1: float, width_px: float, min_px: float) -> tuple[str, int]:
    """The finest calendar step whose ticks are at least `min_px` apart."""
    px_per_second = width_px / max(t1 - t0, 1.0)
    for unit, n in _STEPS:
        if _APPROX[unit] * n * px_per_second >= min_px:
            return unit, n
    return _STEPS[-1]


def _floor(local: datetime, unit: str, n: int) -> datetime:
    if unit == "hour":
        return local.replace(hour=local.hour - local.hour % n, minute=0, second=0, microsecond=0)
    if unit == "day":
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "week":
        day = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())  # weeks start on Monday
    if unit == "month":
        return local.replace(month=1 + (local.month - 1) // n * n, day=1, hour=0, minute=0, second=0, microsecond=0)
    return local.replace(year=max(1, local.year // n * n), month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


def _advance(local: datetime, unit: str, n: int) -> datetime:
    if unit in ("hour", "day", "week"):
        return local + timedelta(**{unit + "s": n})
    if unit == "month":
        months = local.month - 1 + n
        return local.replace(year=local.year + months // 12, month=months % 12 + 1)
    return local.replace(year=local.year + n)


def _label(local: datetime, previous: datetime | None, unit: str) -> tuple[str, bool]:
    """Short labels, with the coarser part added where it changes (and on the first tick)."""
    if unit == "year":
        return str(local.year), True
    if unit == "month":
        major = previous is None or previous.year != local.year
        return (f"{local:%b} {local.year}" if major else f"{local:%b}"), major
    if unit in ("day", "week"):
        major = previous is None or previous.month != local.month
        text = f"{local.day} {local:%b}"
        if previous is None or previous.year != local.year:
            text += f" {local.year}"
        return text, major
    major = previous is None or previous.date() != local.date()
    return (f"{local.day} {local:%b} {local:%H:%M}" if major else f"{local:%H:%M}"), major


def ticks(t0: float, t1: float, width_px: float, min_px: float, offset: float | None = None) -> list[Tick]:
    """Calendar-aligned ticks (in local time) covering [t0, t1]."""
    if t1 <= t0 or width_px <= 0:
        return []
    offset = local_offset() if offset is None else offset
    unit, n = choose_step(t0, t1, width_px, min_px)
    current = _floor(to_local(t0, offset), unit, n)
    end = to_local(t1, offset)
    out: list[Tick] = []
    previous: datetime | None = None
    while current <= end and len(out) < 1000:
        t = (current - _EPOCH).total_seconds() - offset
        if t >= t0:
            label, major = _label(current, previous, unit)
            out.append(Tick(t, label, major))
            previous = current
        try:
            current = _advance(current, unit, n)
        except (OverflowError, ValueError):  # past year 9999
            break
    return out
