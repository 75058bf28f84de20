"""One chat turn: read the query, retrieve, fit the budget, stream, store.

    chat = Chat(mem, model)
    reply = chat.send("where does my sister live?")      # a lazy, streaming response
    for piece in reply: print(piece, end="")
    reply.result.memory_ids                                # what the model was given

Budget rule: the prompt never exceeds the context window minus the reply's tokens.
Pinned memories always go in; then preferences, retrieved memories (best first) and
the conversation so far, newest turns first, so the oldest turns are what gets trimmed.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from engine.api import Memory
from engine.cube import ChatMessage, Filters, MemoryItem, MemoryType, to_utc, utcnow
from engine.errors import ModelError
from engine.jobs import JobQueue
from engine.activation import ActivationCache
from engine.llm.base import ChatModel, ChatTurn, GenerationConfig, GenerationStats, StatefulModel
from engine.reader import EXTRACT_JOB, extraction_payload, parse_query
from engine.resources import text as resource_text
from engine.sessions import Message, Sessions
from engine.text import check_text

_SAFETY_TOKENS = 48  # template tokens around turns and the memory-block headers


@dataclass(frozen=True)
class ChatConfig:
    max_reply_tokens: int = 256
    temperature: float = 0.0
    # Small models fall into loops ("I'm here to support you. I'm here to..."); a mild
    # penalty on the last 64 tokens keeps greedy replies readable.
    repeat_penalty: float = 1.15
    memory_k: int = 10
    preference_k: int = 5
    history_turns: int = 20  # at most; fewer when the budget is tight
    user_name: str = "User"
    extract: bool = True  # queue fine extraction of each user turn


@dataclass
class TurnResult:
    session_id: str
    user_message: Message
    reply_message: Message | None = None
    memory_ids: tuple[str, ...] = ()
    preference_ids: tuple[str, ...] = ()
    stats: GenerationStats = field(default_factory=GenerationStats)
    prompt: str = ""
    history_used: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    activation: str = "off"  # "hit" | "stored" | "unaligned" | "off"


class ChatResponse:
    """Iterate for text pieces as the model writes them; `result` is complete afterwards."""

    def __init__(self, pieces: Iterator[str], result: TurnResult, finish: Callable[[str], None]):
        self._pieces = pieces
        self.result = result
        self._finish = finish
        self._text: list[str] = []
        self._done = False

    def __iter__(self) -> Iterator[str]:
        if self._done:
            yield from self._text
            return
        for piece in self._pieces:
            self._text.append(piece)
            yield piece
        self._done = True
        self._finish("".join(self._text))

    def text(self) -> str:
        for _ in self:
            pass
        return "".join(self._text)

    def stop(self) -> None:
        """End the reply early (a Stop button): the model's stream is closed and what was
        written so far is stored as the reply, so the session keeps both turns."""
        if self._done:
            return
        self._done = True
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        self._finish("".join(self._text))


class Chat:
    def __init__(self, mem: Memory, model: ChatModel, config: ChatConfig = ChatConfig(),
                 jobs: JobQueue | None = None, activation: ActivationCache | None = None):
        self.mem = mem
        self.model = model
        self.config = config
        self.sessions = Sessions(mem.db)
        self.jobs = jobs
        self.activation = activation
        # Next-scene prediction (the scheduler fills it): memories the next turn of a session
        # will likely need, rendered into that session's cacheable prefix.
        self.predicted: dict[str, list[MemoryItem]] = {}
        self.on_reply: list[Callable[[TurnResult], None]] = []  # "reply finished" trigger

    def send(self, text: str, session_id: str | None = None, *, now: datetime | None = None) -> ChatResponse:
        text = check_text(text, "message")
        now = to_utc(now) or utcnow()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        session = self.sessions.get(session_id) if session_id else self.sessions.create(_title(text))
        try:
            history = self.sessions.messages(session.id, limit=self.config.history_turns)
            intent = parse_query(text, now)
            hits = self.mem.search(text, k=self.config.memory_k, reference_time=now)
            # Turns of this very session are already in the history part of the prompt.
            memories = [h.item for h in hits if not _from_session(h.item, session.id)]
            preferences = self._preferences(text, intent.memory_types)
            timings["retrieve_ms"] = (time.perf_counter() - t0) * 1000
            turns, used_memories, used_prefs, used_history, prefix_ids = self._fit(
                text, now, self._core(session.id), preferences, memories, history)
        except BaseException:
            if not session_id:  # a message that cannot be sent leaves no empty session behind
                self.sessions.delete(session.id)
            raise
        # Stored only once the turn can go ahead (a message too long for the model is refused first).
        user_message = self.sessions.append(session.id, "user", text, when=now)
        prompt = self.model.render_chat(turns)
        result = TurnResult(session_id=session.id, user_message=user_message,
                            memory_ids=tuple(m.id for m in used_memories),
                            preference_ids=tuple(m.id for m in used_prefs), prompt=prompt,
                            history_used=used_history, timings_ms=timings)
        if self.activation is not None and isinstance(self.model, StatefulModel):
            t0 = time.perf_counter()
            result.activation = self._activate(turns[0], prompt, prefix_ids)
            timings["activation_ms"] = (time.perf_counter() - t0) * 1000
        config = GenerationConfig(max_tokens=self.config.max_reply_tokens, temperature=self.config.temperature,
                                  repeat_penalty=self.config.repeat_penalty)
        pieces = self.model.stream(prompt, config, result.stats)
        return ChatResponse(pieces, result, lambda reply: self._store(result, text, reply, now))

    # ------------------------------------------------------------ retrieval
    def _core(self, session_id: str) -> list[MemoryItem]:
        """What the memory prefix holds: pinned memories, then those predicted for this session."""
        core = self.mem.list(Filters(pinned=True), order="priority", limit=20)
        known = {m.id for m in core}
        return core + [m for m in self.predicted.get(session_id, []) if m.id not in known]

    def prefix_for(self, session_id: str, now: datetime | None = None) -> tuple[ChatTurn, list[str]]:
        """The memory prefix the next turn of this session will start with (for precomputing)."""
        standing = self.mem.list(Filters(memory_types=(MemoryType.PREFERENCE.value,)), order="priority",
                                 limit=self.config.preference_k)
        turns, _, _, _, ids = self._fit("", to_utc(now) or utcnow(), self._core(session_id), standing, [], [])
        return turns[0], ids

    def _preferences(self, text: str, wanted: tuple[str, ...]) -> list[MemoryItem]:
        """Standing preferences (highest priority first; they go into the cacheable prefix),
        then those relevant to this message; more of both when it is about preferences."""
        only_prefs = Filters(memory_types=(MemoryType.PREFERENCE.value,))
        k = self.config.preference_k * (2 if MemoryType.PREFERENCE.value in wanted else 1)
        standing = self.mem.list(only_prefs, order="priority", limit=k)
        found = {item.id: item for item in standing}
        for hit in self.mem.search(text, k=k, filters=only_prefs):
            found.setdefault(hit.item.id, replace(hit.item, info={**hit.item.info, "_relevant": True}))
        return list(found.values())

    # --------------------------------------------------------------- budget
    def _fit(self, text: str, now: datetime, core: list[MemoryItem], preferences: list[MemoryItem],
             memories: list[MemoryItem], history: list[Message]):
        budget = self.model.info.n_ctx - self.config.max_reply_tokens - _SAFETY_TOKENS
        count = lambda s: len(self.model.tokenize(s, special=False))  # noqa: E731
        user = self.config.user_name
        base = count(_system(user, now, [], [])) + count(text) + _SAFETY_TOKENS
        if base > budget:
            raise ModelError(f"The message is too long for this model's {self.model.info.n_ctx}-token context; "
                             "shorten it or choose a model with a larger context in Settings.")
        used = base
        chosen_prefs: list[MemoryItem] = []
        chosen: list[MemoryItem] = []
        for item in core:  # pinned (and predicted) memories go in first: cut only if they alone overflow
            cost = count(_line(item)) + 1
            if used + cost <= budget:
                (chosen_prefs if item.memory_type == MemoryType.PREFERENCE.value else chosen).append(item)
                used += cost
        for item in preferences:
            if item.id in {p.id for p in chosen_prefs}:
                continue
            cost = count(_line(item)) + 1
            if used + cost <= budget:
                chosen_prefs.append(item)
                used += cost
        # Memories may take at most 2/3 of what is left, so some conversation always fits.
        memory_budget = used + (budget - used) * 2 // 3
        for item in memories:
            if item.id in {c.id for c in chosen} or item.id in {p.id for p in chosen_prefs}:
                continue
            cost = count(_line(item)) + 1
            if used + cost <= memory_budget:
                chosen.append(item)
                used += cost
        kept: list[Message] = []
        for message in reversed(history):  # newest first: the oldest turns are trimmed
            cost = count(message.content) + 4
            if used + cost > budget:
                break
            kept.append(message)
            used += cost
        kept.reverse()
        # The first system turn is the memory prefix: stable across turns (pinned memories and
        # standing preferences), so its KV state can be cached. What this message retrieved
        # goes in a second block right before it.
        core_ids = {m.id for m in core}
        prefix_prefs = [m for m in chosen_prefs if "_relevant" not in m.info]
        prefix_memories = [m for m in chosen if m.id in core_ids]
        in_prefix = prefix_prefs + prefix_memories
        turn_prefs = [m for m in chosen_prefs if "_relevant" in m.info]
        turns = [ChatTurn("system", _system(user, now, prefix_prefs, prefix_memories))]
        turns += [ChatTurn(m.role, m.content) for m in kept]
        block = _memory_block(user, turn_prefs, [m for m in chosen if m.id not in core_ids])
        if block:
            turns.append(ChatTurn("system", block))
        turns.append(ChatTurn("user", text))
        return turns, chosen, chosen_prefs, len(kept), [m.id for m in in_prefix]

    def _activate(self, prefix_turn: ChatTurn, prompt: str, memory_ids: list[str]) -> str:
        """Restore the KV state of the memory prefix, or compute and keep it. Returns what happened."""
        prefix = self.model.tokenize(self.model.render_chat([prefix_turn], add_generation_prompt=False))
        tokens = self.model.tokenize(prompt)
        if tokens[: len(prefix)] != prefix:
            return "unaligned"
        record = self.activation.find(self.model, tokens)
        if record is not None and record.n_tokens == len(prefix) and self.activation.restore(self.model, record, tokens):
            return "hit"
        self.activation.put(self.model, prefix, memory_ids=memory_ids, label="chat prefix")
        return "stored"

    # ---------------------------------------------------------------- store
    def _store(self, result: TurnResult, text: str, reply: str, now: datetime) -> None:
        stats = {"prompt_tokens": result.stats.prompt_tokens, "completion_tokens": result.stats.completion_tokens,
                 "ttft_ms": round(result.stats.prefill_ms, 1), "total_ms": round(result.stats.total_ms, 1)}
        given = result.memory_ids + result.preference_ids
        result.reply_message = self.sessions.append(result.session_id, "assistant", reply.strip() or "…",
                                                    memory_ids=given, model=self.model.info.fingerprint,
                                                    stats=stats)
        user = self.config.user_name
        added = self.mem.add_messages([
            ChatMessage(user, text, now, result.user_message.id, result.session_id, role="user"),
            ChatMessage("Assistant", result.reply_message.content, utcnow(), result.reply_message.id,
                        result.session_id, role="assistant"),
        ])
        self.mem.mark_used(list(given))
        if self.config.extract and self.jobs is not None:
            self.jobs.enqueue(EXTRACT_JOB, extraction_payload([added[0].id], "default", result.session_id),
                              dedup_key=result.user_message.id)
        for hook in self.on_reply:
            hook(result)


def _from_session(item: MemoryItem, session_id: str) -> bool:
    return item.memory_type == MemoryType.RAW_CHAT.value and any(s.session_id == session_id for s in item.sources)


def _line(item: MemoryItem) -> str:
    when = (item.event_time or item.created_at).strftime("%d %b %Y")
    return f"- ({when}) {item.memory}"


def _memory_block(user: str, preferences: list[MemoryItem], memories: list[MemoryItem]) -> str:
    text = ""
    if preferences:
        text += f"\n{user}'s preferences. Your reply must respect them:\n" + "\n".join(
            f"- {p.memory}" for p in preferences) + "\n"
    if memories:
        text += f"\nWhat you remember about {user} (dated):\n" + "\n".join(_line(m) for m in memories) + "\n"
    return text.strip()


def _system(user: str, now: datetime, preferences: list[MemoryItem], memories: list[MemoryItem]) -> str:
    return resource_text("prompts/chat_system.txt").format(
        user=user, today=now.strftime("%A %d %B %Y"), memories=_memory_block(user, preferences, memories)).strip()


def _title(text: str) -> str:
    words = text.split()
    return " ".join(words[:8]) + ("…" if len(words) > 8 else "")
