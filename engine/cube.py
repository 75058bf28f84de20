"""The plaintext MemCube: one memory item and the small records around it.

Field names follow MemOS's TextualMemoryItem/metadata so that exports interoperate:
`memory`, `key`, `tags`, `memory_type`, `status`, `confidence`, `source`, `sources`,
`created_at`, `updated_at`, plus what a desktop assistant needs on top
(`event_time`, `expires`, `priority`, `pinned`, `visibility`, `scope`, `usage`, `version`).
Times are timezone-aware UTC datetimes in Python and ISO 8601 strings in exports.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class MemoryType(StrEnum):
    WORKING = "WorkingMemory"
    LONG_TERM = "LongTermMemory"
    USER = "UserMemory"
    PREFERENCE = "PreferenceMemory"
    RAW_FILE = "RawFileMemory"
    # A chat turn stored verbatim by the fast path; fine extraction derives the others from it.
    RAW_CHAT = "RawChatMemory"


class Status(StrEnum):
    ACTIVATED = "activated"
    RESOLVING = "resolving"
    ARCHIVED = "archived"
    DELETED = "deleted"


class Source(StrEnum):
    CONVERSATION = "conversation"
    FILE = "file"
    CAPTURE = "capture"
    SYSTEM = "system"


class Relation(StrEnum):
    PARENT = "PARENT"
    MERGED_TO = "MERGED_TO"
    FOLLOWS = "FOLLOWS"
    CONFLICT = "CONFLICT"
    RELATE = "RELATE"


LIVE_STATUSES = (Status.ACTIVATED.value, Status.RESOLVING.value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def to_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC: the engine never guesses a local zone."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def ts(value: datetime | None) -> float | None:
    value = to_utc(value)
    return None if value is None else value.timestamp()


def from_ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def iso(value: datetime | None) -> str | None:
    value = to_utc(value)
    return None if value is None else value.isoformat()


def parse_iso(value: str | None) -> datetime | None:
    return None if value in (None, "") else to_utc(datetime.fromisoformat(value))


@dataclass(frozen=True)
class SourceRef:
    """Provenance of a memory: the chat message or file span it came from."""

    type: str  # "chat" | "file" | "capture" | "import" | "system"
    message_id: str | None = None
    session_id: str | None = None
    role: str | None = None  # speaker name or "user"/"assistant"
    chat_time: str | None = None  # ISO 8601
    doc_path: str | None = None
    start_line: int | None = None
    end_line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceRef:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class ChatMessage:
    """One turn handed to `Memory.add_messages`."""

    speaker: str
    text: str
    timestamp: datetime | None = None
    message_id: str | None = None
    session_id: str | None = None
    role: str = "user"  # "user" | "assistant": only what people say is mined for facts about them


@dataclass
class MemoryItem:
    memory: str
    id: str = field(default_factory=new_id)
    key: str = ""
    tags: list[str] = field(default_factory=list)
    memory_type: str = MemoryType.LONG_TERM.value
    status: str = Status.ACTIVATED.value
    confidence: float = 1.0
    source: str = Source.CAPTURE.value
    sources: list[SourceRef] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    event_time: datetime | None = None
    event_end: datetime | None = None
    expires: datetime | None = None
    priority: int = 0
    pinned: bool = False
    visibility: str = "private"
    scope: str = "default"
    usage_count: int = 0
    last_used_at: datetime | None = None
    version: int = 1
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = iso(value)
            elif f.name == "sources":
                value = [s.to_dict() for s in value]
            elif isinstance(value, list):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryItem:
        """Inverse of to_dict; unknown keys are kept in `info` so nothing is lost."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                extra[name] = value
                continue
            if name in ("created_at", "updated_at", "event_time", "event_end", "expires", "last_used_at"):
                value = parse_iso(value)
            elif name == "sources":
                value = [SourceRef.from_dict(s) for s in (value or [])]
            kwargs[name] = value
        item = cls(**kwargs)
        if extra:
            item.info = {**item.info, **extra}
        return item


@dataclass(frozen=True)
class AddResult:
    """What one fast-path add did: the id, and whether it merged into an existing item.
    When it did, `merged` names the fields the add brought in (tags, pinned, ...) and `kept`
    the ones it asked for but the existing item kept (field -> the value asked for)."""

    id: str
    created: bool
    merged: tuple[str, ...] = ()
    kept: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    item: MemoryItem
    score: float
    # Per-signal evidence, so callers (and the UI) can show why a memory matched.
    signals: dict[str, float]


@dataclass(frozen=True)
class Version:
    version: int
    changed_at: datetime
    reason: str
    item: MemoryItem


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    relation: str
    created_at: datetime
    weight: float = 1.0


@dataclass(frozen=True)
class Filters:
    """Search/list filters. Empty means 'no restriction' except status (live only)."""

    memory_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = LIVE_STATUSES
    tags: tuple[str, ...] = ()  # all must match
    sources: tuple[str, ...] = ()
    scope: str | None = None
    since: datetime | None = None  # event time window, inclusive
    until: datetime | None = None  # exclusive
    pinned: bool | None = None
