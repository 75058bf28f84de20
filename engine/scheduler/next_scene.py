"""Next-scene prediction: after each reply, guess what the next turn will need and build
that session's memory prefix (with its KV state) in the background.

The guess: memories retrieved for the last exchange (the conversation usually goes on
about the same thing), then the user's habitual memories: the most used, weighted by how
close the hour they were last used is to the hour now (what someone asks about at 8 am
is not what they ask about at 10 pm). They join the pinned ones in the session's prefix,
so the next turn starts from a restored state.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.chat.turn import Chat, TurnResult
from memdesk.engine.cube import MemoryItem, MemoryType
from memdesk.engine.llm.base import StatefulModel
from memdesk.engine.scheduler.memscheduler import MemScheduler

log = logging.getLogger(__name__)


HABITS = 3  # habitual memories added after the conversational ones


def hour_closeness(a: datetime, b: datetime) -> float:
    """1.0 at the same local hour of day, 0.0 twelve hours apart (circular)."""
    diff = abs((a.hour + a.minute / 60) - (b.hour + b.minute / 60)) % 24
    return 1.0 - min(diff, 24 - diff) / 12


def habitual(chat: Chat, now: datetime, k: int = HABITS) -> list[MemoryItem]:
    """Used memories ranked by usage count, boosted when last used near this time of day."""
    used = [m for m in chat.mem.list(order="usage", limit=50) if m.usage_count > 0]
    local_now = now.astimezone()

    def score(item: MemoryItem) -> float:
        closeness = hour_closeness(item.last_used_at.astimezone(), local_now) if item.last_used_at else 0.0
        return item.usage_count * (1.0 + closeness)

    return sorted(used, key=score, reverse=True)[:k]


def predict(chat: Chat, session_id: str, k: int = 12, now: datetime | None = None) -> list[MemoryItem]:
    recent = chat.sessions.messages(session_id, limit=2)
    text = " ".join(m.content for m in recent)[-2000:].strip()
    found: dict[str, MemoryItem] = {}
    if text:
        for hit in chat.mem.search(text, k=k * 2):
            item = hit.item
            own_turn = item.memory_type == MemoryType.RAW_CHAT.value and any(
                s.session_id == session_id for s in item.sources)
            if not own_turn:  # this session's turns are in the history already
                found.setdefault(item.id, item)
    habits = habitual(chat, now or datetime.now(UTC))
    conversational = list(found.values())[:max(0, k - len(habits))]
    chosen = {m.id: m for m in conversational}
    for item in habits:
        chosen.setdefault(item.id, item)
    return list(chosen.values())[:k]


class Preparer:
    """Wires the triggers: reply finished -> predict -> build prefix; memory changed -> invalidate."""

    def __init__(self, chat: Chat, scheduler: MemScheduler, activation: ActivationCache):
        self.chat = chat
        self.scheduler = scheduler
        self.activation = activation
        self.prefix_ids: dict[str, set[str]] = {}
        chat.on_reply.append(self.reply_finished)
        chat.mem.on_added.append(self.memories_added)
        chat.mem.on_changed.append(self.memories_changed)

    def reply_finished(self, result: TurnResult) -> None:
        self.session_opened(result.session_id, predict_first=True)

    def session_opened(self, session_id: str, predict_first: bool = False) -> None:
        def run(should_stop) -> None:
            if predict_first:
                self.chat.predicted[session_id] = predict(self.chat, session_id)
            self.build(session_id, should_stop)

        self.scheduler.submit("prefix_build", run, key=f"prefix:{session_id}")

    def build(self, session_id: str, should_stop=lambda: False) -> bool:
        """Compute and keep the prefix state for this session's next turn; False if it already exists."""
        model = self.chat.model
        if not isinstance(model, StatefulModel) or not self.chat.profile.cacheable_prefix:
            return False  # the compact profile has no memory prefix worth a KV state
        turn, ids = self.chat.prefix_for(session_id)
        tokens = model.tokenize(model.render_chat([turn], add_generation_prompt=False))
        self.prefix_ids[session_id] = set(ids)
        if self.activation.has(model, tokens):
            return False
        self.activation.put(model, tokens, memory_ids=ids, label=f"session {session_id[:8]}", should_stop=should_stop)
        return True

    def idle(self, sessions: int = 3) -> None:
        """Idle trigger: make sure the most recent sessions' next prefixes are ready."""
        for session in self.chat.sessions.list()[:sessions]:
            self.session_opened(session.id, predict_first=session.id not in self.chat.predicted)

    def memories_changed(self, memory_ids: list[str]) -> None:
        self.activation.invalidate_memories(memory_ids)
        changed = set(memory_ids)
        for session_id, ids in list(self.prefix_ids.items()):
            if ids & changed:
                self.chat.predicted.pop(session_id, None)
                self.session_opened(session_id, predict_first=True)

    def memories_added(self, items: list[MemoryItem]) -> None:
        """Memory-added trigger (chat extraction, capture, file ingestion). A pinned memory or
        a preference belongs in every prefix: rebuild them. Anything else may be what the
        next turn needs: re-predict the sessions that have a prefix."""
        if not items or not self.prefix_ids:
            return
        standing = any(m.pinned or m.memory_type == MemoryType.PREFERENCE.value for m in items)
        conversational = all(m.memory_type == MemoryType.RAW_CHAT.value for m in items)
        if conversational and not standing:
            return  # a chat turn being stored: reply_finished already re-predicts
        for session_id in list(self.prefix_ids):
            self.chat.predicted.pop(session_id, None)
            self.session_opened(session_id, predict_first=True)
