"""One chat turn: recall, lay out for the model, fit the budget, stream, store.

    chat = Chat(mem, model)
    reply = chat.send("where does my sister live?")      # a lazy, streaming response
    for piece in reply: print(piece, end="")
    reply.result.memories                                  # what the model was given

What the model is given comes from engine.search.recall (current, relevant, one per fact); how
it is laid out from the model's context profile (engine.chat.context). Budget rule: the
prompt, counted exactly in the model's own tokenizer and chat template, never exceeds
the context window minus the reply's tokens. Pinned memories go in first; then
preferences, retrieved memories (best first) and the conversation so far, newest turns
first, so the oldest turns are what gets trimmed. The reply stops where the template
starts another turn, or where the model starts writing the user's part.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from memdesk.engine.activation.states import ActivationCache
from memdesk.engine.api import Memory
from memdesk.engine.chat.context import Note, choose_profile, compact_system, compact_user_turn, memory_block
from memdesk.engine.chat.notes import note_text, told_about_self
from memdesk.engine.cube import ChatMessage, Filters, MemoryItem, MemoryType, to_utc, utcnow
from memdesk.engine.errors import ModelError
from memdesk.engine.llm.base import ChatModel, ChatTurn, GenerationConfig, GenerationStats, StatefulModel, turn_markers
from memdesk.engine.reader.jobs import EXTRACT_JOB, extraction_payload
from memdesk.engine.resources import text as resource_text
from memdesk.engine.scheduler.queue import JobQueue
from memdesk.engine.search.recall import Recall, Recalled, recall
from memdesk.engine.search.timeparse import to_local
from memdesk.engine.text import check_text
from memdesk.engine.vault.sessions import Message

ASSISTANT = "MemDesk"
# The grounding guard's opening (engine.chat.context): the model only finishes this sentence.
UNKNOWN_PREFIX = "I don't know: you haven't told me"
ANSWER_MARGIN = 0.1  # a second note is quoted when it is this close to the best one


@dataclass(frozen=True)
class ChatConfig:
    max_reply_tokens: int = 256
    temperature: float = 0.0
    # Small models fall into loops ("I'm here to support you. I'm here to..."); a mild
    # penalty on the last 64 tokens keeps greedy replies readable.
    repeat_penalty: float = 1.15
    memory_k: int = 10
    preference_k: int = 5
    history_turns: int = 20  # at most; fewer when the budget is tight or the profile keeps fewer
    user_name: str = "User"
    extract: bool = True  # queue fine extraction of each user turn
    # When the user asked for short answers (a stored preference), replies stop sooner.
    brief_reply_tokens: int = 64
    profile: str = "auto"  # context profile: "auto" (by model size), "compact" or "full"
    # Personal questions answered with the notes that answer them, where the profile does so
    # (compact); off, the model answers from the notes itself (measured both ways in bench.answers).
    answer_from_memory: bool = True
    # Where the profile answers from memory (compact), a message that only tells something about
    # the person ("My sister Ana lives in Porto.") is acknowledged in their words: a tiny model
    # answers a statement with nonsense, and the telling is what gets remembered.
    acknowledge_telling: bool = True
    scope: str | None = None  # retrieve from this scope only (None: every scope)


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
    profile: str = ""  # the context profile the turn was laid out with
    memories: tuple[MemoryItem, ...] = ()  # what the model was given, as given
    preferences: tuple[MemoryItem, ...] = ()
    reply_prefix: str = ""  # the grounding guard's opening, when it spoke
    brief: bool = False  # a stored preference for short answers shortened the reply
    answered_from_memory: bool = False  # the reply quotes the memories that answer the question


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


@dataclass
class _Plan:
    """One turn laid out for the model, within the budget."""

    turns: list[ChatTurn]
    prompt: str
    prompt_tokens: int  # the prompt's and the reply opening's
    memories: list[MemoryItem]
    preferences: list[MemoryItem]
    history_used: int
    prefix_ids: list[str]
    reply_prefix: str = ""
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    direct: str = ""  # the reply, answered from memory without the model
    tokens: list[int] = field(default_factory=list)  # the prompt, tokenized once


class Chat:
    def __init__(self, mem: Memory, model: ChatModel, config: ChatConfig = ChatConfig(),
                 jobs: JobQueue | None = None, activation: ActivationCache | None = None):
        self.mem = mem
        self.model = model
        self.config = config
        self.profile = choose_profile(model.info, config.profile)
        self.sessions = mem.sessions
        self.jobs = jobs
        self.activation = activation
        # Next-scene prediction (the scheduler fills it): memories the next turn of a session
        # will likely need, rendered into that session's cacheable prefix.
        self.predicted: dict[str, list[MemoryItem]] = {}
        self.on_reply: list[Callable[[TurnResult], None]] = []  # "reply finished" trigger
        user = config.user_name
        self._stops = tuple(dict.fromkeys(
            turn_markers(model) + (f"\n{user}:", "\nUser:", "\nAssistant:", "\nQuestion:", "\nNotes about me")))

    def send(self, text: str, session_id: str | None = None, *, now: datetime | None = None) -> ChatResponse:
        text = check_text(text, "message")
        now = to_utc(now) or utcnow()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        session = self.sessions.get(session_id) if session_id else None
        history = self.sessions.messages(session.id, limit=min(self.config.history_turns,
                                                               self.profile.history_turns)) if session else []
        found = self.recall(text, session.id if session else None, now)
        timings["retrieve_ms"] = (time.perf_counter() - t0) * 1000
        plan = self._fit(text, now, found, history, session.id if session else None)
        # Stored only once the turn can go ahead (a message too long for the model is refused
        # first): a new chat and its first message in one transaction.
        with self.mem.transaction():
            if session is None:
                session = self.sessions.create(_title(text))
            user_message = self.sessions.append(session.id, "user", text, when=now)
        result = TurnResult(session_id=session.id, user_message=user_message,
                            memory_ids=tuple(m.id for m in plan.memories),
                            preference_ids=tuple(m.id for m in plan.preferences), prompt=plan.prompt,
                            history_used=plan.history_used, timings_ms=timings, profile=self.profile.name,
                            memories=tuple(plan.memories), preferences=tuple(plan.preferences),
                            reply_prefix=plan.reply_prefix, brief=found.brief)
        result.stats.prompt_tokens = plan.prompt_tokens
        if self.activation is not None and self.profile.cacheable_prefix and isinstance(self.model, StatefulModel):
            t0 = time.perf_counter()
            result.activation = self._activate(plan.turns[0], plan.tokens, plan.prefix_ids)
            timings["activation_ms"] = (time.perf_counter() - t0) * 1000
        config = GenerationConfig(max_tokens=plan.max_tokens, temperature=self.config.temperature,
                                  repeat_penalty=self.config.repeat_penalty, stop=plan.stop)
        if plan.direct:
            result.stats.stopped_by, result.answered_from_memory = "memory", True
            pieces: Iterator[str] = iter([plan.direct])
        else:
            pieces = self.model.stream(plan.prompt + plan.reply_prefix, config, result.stats)
        if plan.reply_prefix:
            pieces = _guarded(plan.reply_prefix, pieces, result.stats)
        elif found.brief and not plan.direct:
            pieces = _whole_sentences(pieces, result.stats)
        return ChatResponse(pieces, result, lambda reply: self._store(result, text, reply, now))

    def recall(self, text: str, session_id: str | None, now: datetime) -> Recall:
        """What this turn may be given (engine.search.recall); benchmarks override it to give gold evidence."""
        return recall(self.mem, text, session_id=session_id, now=now, profile=self.profile,
                      k=self.config.memory_k, preference_k=self.config.preference_k, scope=self.config.scope)

    # ------------------------------------------------------------ the prefix
    def _core(self, session_id: str | None) -> list[MemoryItem]:
        """What the memory prefix holds: pinned memories, then those predicted for this session."""
        core = self.mem.list(Filters(pinned=True, scope=self.config.scope), order="priority", limit=20)
        known = {m.id for m in core}
        predicted = self.predicted.get(session_id, []) if session_id else []
        return core + [m for m in predicted if m.id not in known]

    def prefix_for(self, session_id: str, now: datetime | None = None) -> tuple[ChatTurn, list[str]]:
        """The memory prefix the next turn of this session will start with (for precomputing)."""
        now = to_utc(now) or utcnow()
        if not self.profile.cacheable_prefix:
            return ChatTurn("system", compact_system(ASSISTANT, None, brief=False)), []
        standing = [p for p in self.mem.list(Filters(memory_types=(MemoryType.PREFERENCE.value,),
                                                     scope=self.config.scope), order="priority",
                                             limit=self.config.preference_k) if p.pinned or p.priority > 0]
        plan = self._fit("", now, Recall(standing=standing), [], session_id, prefix_only=True)
        return plan.turns[0], plan.prefix_ids

    # --------------------------------------------------------------- budget
    def _fit(self, text: str, now: datetime, found: Recall, history: list[Message], session_id: str | None,
             prefix_only: bool = False) -> _Plan:
        """Lay the turn out within the context: the reply's tokens are kept free, and the prompt
        is counted exactly (rendered in the model's chat template and tokenized), once when
        everything fits. When it does not, pieces are added by priority (pinned, preferences,
        memories, the newest conversation first) and the least important goes until it fits."""
        max_tokens = self.config.max_reply_tokens
        if found.brief:
            max_tokens = min(max_tokens, self.config.brief_reply_tokens)
        plan = _Plan([], "", 0, [], [], 0, [], max_tokens=max_tokens, stop=self._stops)
        answers = _answering(found) if found.personal_question and not prefix_only else []
        if self.profile.guard_unknown and found.personal_question and not answers and not prefix_only:
            # Nothing relevant is known: say so, and let the model only finish that sentence.
            plan.reply_prefix, plan.max_tokens = UNKNOWN_PREFIX, 24
            plan.stop = self._stops + (".", "!", "\n")
        elif self.profile.answer_from_memory and self.config.answer_from_memory and answers:
            plan.direct = _quote([note_text(r.item, self.config.user_name, second_person=True) for r in answers])
        elif (self.profile.answer_from_memory and self.config.acknowledge_telling and not prefix_only
              and not found.personal_question and (told := told_about_self(text))):
            plan.direct = f"Got it: {told} I'll remember that."
        budget = self.model.info.n_ctx - plan.max_tokens
        pieces = self._pieces(found, history, session_id)
        # Everything, counted once: a turn almost always fits.
        turns, plan_fields = self._layout(text, now, found, pieces, prefix_only)
        prompt = self.model.render_chat(turns, add_generation_prompt=not prefix_only)
        tokens = self.model.tokenize(prompt)
        if len(tokens) > budget:
            turns, plan_fields, prompt, tokens = self._trim(text, now, found, pieces, budget, plan.max_tokens,
                                                            prefix_only)
        plan.turns, plan.prompt, plan.tokens = turns, prompt, tokens
        plan.prompt_tokens = len(tokens) + (len(self.model.tokenize(plan.reply_prefix)) if plan.reply_prefix else 0)
        plan.memories, plan.preferences, plan.history_used, plan.prefix_ids = plan_fields
        if plan.direct:  # what was quoted is what was given
            plan.memories = [r.item for r in answers if r.item.memory_type != MemoryType.PREFERENCE.value]
            plan.preferences = [r.item for r in answers if r.item.memory_type == MemoryType.PREFERENCE.value]
        return plan

    def _trim(self, text: str, now: datetime, found: Recall, pieces: list[_Piece], budget: int, max_tokens: int,
              prefix_only: bool):
        """Over budget: pieces by priority while their estimated cost fits, then the least
        important goes until the exact count fits (a prefix alone is kept as estimated)."""
        count = lambda s: len(self.model.tokenize(s, special=False))  # noqa: E731
        chosen: list[_Piece] = []
        used = count(text) + count(compact_system(ASSISTANT, _today(now), found.brief))
        for piece in pieces:
            cost = count(piece.text) + piece.overhead
            if used + cost <= budget:
                chosen.append(piece)
                used += cost
        while True:
            turns, plan_fields = self._layout(text, now, found, chosen, prefix_only)
            prompt = self.model.render_chat(turns, add_generation_prompt=not prefix_only)
            tokens = self.model.tokenize(prompt)
            if len(tokens) <= budget or prefix_only:
                return turns, plan_fields, prompt, tokens
            droppable = [p for p in chosen if p.kind != "pinned"] or chosen
            if not droppable:
                raise ModelError(f"The message is too long for this model's {self.model.info.n_ctx}-token context "
                                 f"({len(tokens)} tokens with the reply's {max_tokens}); shorten it or choose a "
                                 "model with a larger context in Settings.")
            chosen.remove(min(droppable, key=lambda p: p.rank))

    def _pieces(self, found: Recall, history: list[Message], session_id: str | None) -> list[_Piece]:
        """Everything a turn could hold, most important first; `rank` orders what goes first when trimming."""
        user, second = self.config.user_name, self.profile.second_person
        pieces: list[_Piece] = []
        seen: set[str] = set()

        def add(item: MemoryItem, kind: str) -> None:
            if item.id not in seen:
                seen.add(item.id)
                when = (item.event_time or item.created_at) if found.asks_when else None
                pieces.append(_Piece(kind, note_text(item, user, second_person=second), item, when=when))

        if self.profile.cacheable_prefix:
            for item in self._core(session_id):
                add(item, "standing" if item.memory_type == MemoryType.PREFERENCE.value else "pinned")
            for item in found.standing:
                add(item, "standing")
        room = self.profile.max_preferences - (len(found.standing) if self.profile.cacheable_prefix else 0)
        for recalled in found.preferences[: max(0, room)]:
            add(recalled.item, "preference")
        for recalled in found.memories[: self.profile.max_notes]:
            add(recalled.item, "memory")
        for message in reversed(history):  # newest first: the oldest turns are what gets trimmed
            pieces.append(_Piece("history", message.content, None, message=message, overhead=8))
        for rank, piece in enumerate(reversed(pieces)):
            piece.rank = rank
        return pieces

    def _layout(self, text: str, now: datetime, found: Recall, chosen: list[_Piece], prefix_only: bool):
        user = self.config.user_name
        # Note pieces always carry an item, history pieces a message (see `_pieces`).
        notes = lambda kinds: [Note(p.item.id, p.text, p.when)  # noqa: E731
                               for p in chosen if p.kind in kinds and p.item is not None]
        history = sorted((p.message for p in chosen if p.kind == "history" and p.message is not None),
                         key=lambda m: m.seq)
        conversation = [ChatTurn(m.role, m.content) for m in history]
        given = [p.item for p in chosen if p.kind in ("pinned", "memory")]
        prefs = [p.item for p in chosen if p.kind in ("standing", "preference")]
        if not self.profile.cacheable_prefix:
            today = _today(now) if found.asks_when else None
            turns = [ChatTurn("system", compact_system(ASSISTANT, today, found.brief)), *conversation,
                     ChatTurn("user", compact_user_turn(text, notes(("memory",)), notes(("preference",))))]
            return turns, (given, prefs, len(history), [])
        # The first system turn is the memory prefix: stable across turns (pinned memories and
        # standing preferences), so its KV state can be cached. What this message retrieved
        # goes in a second block right before it.
        prefix = [p for p in chosen if p.kind in ("pinned", "standing")]
        system = resource_text("prompts/chat_system.txt").format(
            user=user, today=_today(now), memories=memory_block(user, notes(("standing",)), notes(("pinned",)))).strip()
        turns = [ChatTurn("system", system)]
        if prefix_only:
            return turns, (given, prefs, 0, [p.item.id for p in prefix if p.item is not None])
        turns += conversation
        block = memory_block(user, notes(("preference",)), notes(("memory",)))
        if block:
            turns.append(ChatTurn("system", block))
        turns.append(ChatTurn("user", text))
        return turns, (given, prefs, len(history), [p.item.id for p in prefix if p.item is not None])

    def _activate(self, prefix_turn: ChatTurn, tokens: list[int], memory_ids: list[str]) -> str:
        """Restore the KV state of the memory prefix, or compute and keep it. Returns what happened."""
        prefix = self.model.tokenize(self.model.render_chat([prefix_turn], add_generation_prompt=False))
        if tokens[: len(prefix)] != prefix:
            return "unaligned"
        activation = self.activation
        assert activation is not None  # only called when an activation cache is configured
        record = activation.find(self.model, tokens)
        if (record is not None and record.n_tokens == len(prefix)
                and activation.restore(self.model, record, tokens)):
            return "hit"
        activation.put(self.model, prefix, memory_ids=memory_ids, label="chat prefix")
        return "stored"

    # ---------------------------------------------------------------- store
    def _store(self, result: TurnResult, text: str, reply: str, now: datetime) -> None:
        stats = {"prompt_tokens": result.stats.prompt_tokens, "completion_tokens": result.stats.completion_tokens,
                 "ttft_ms": round(result.stats.prefill_ms, 1), "total_ms": round(result.stats.total_ms, 1)}
        given = result.memory_ids + result.preference_ids
        user = self.config.user_name
        # The reply, both turns as memories, the usage counts and the extraction job: one
        # transaction, so a reply is never kept without its memories or the other way round.
        with self.mem.transaction():
            result.reply_message = self.sessions.append(result.session_id, "assistant", reply.strip() or "…",
                                                        memory_ids=given, model=self.model.info.fingerprint,
                                                        stats=stats)
            turns = [ChatMessage(user, text, now, result.user_message.id, result.session_id, role="user")]
            if not result.answered_from_memory:
                # A reply made of what memory already holds (a quote, an acknowledgment) stays in the
                # transcript only: as a memory it would be a second copy of the facts, left behind
                # when they are corrected.
                turns.append(ChatMessage("Assistant", result.reply_message.content, utcnow(),
                                         result.reply_message.id, result.session_id, role="assistant"))
            added = self.mem.add_messages(turns)
            self.mem.mark_used(list(given))
            if self.config.extract and self.jobs is not None:
                self.jobs.enqueue(EXTRACT_JOB, extraction_payload([added[0].id], "default", result.session_id),
                                  dedup_key=result.user_message.id)
        for hook in self.on_reply:
            hook(result)


@dataclass
class _Piece:
    kind: str  # "pinned" | "standing" | "preference" | "memory" | "history"
    text: str
    item: MemoryItem | None
    message: Message | None = None
    when: datetime | None = None
    overhead: int = 2  # the list marker and newline around a note
    rank: int = 0  # lower = trimmed first


def _answering(found: Recall) -> list[Recalled]:
    """The notes that answer a personal question: the best one, and a second nearly as good; or,
    for two hops, the note that names the person and the best one about them ("your brother is
    called Callum", "Callum lives in Inverness")."""
    ranked = sorted(found.memories + found.preferences, key=lambda r: r.relevance, reverse=True)
    if not ranked:
        return []
    about = [r for r in ranked if any(n in r.item.memory for n in found.names)]
    naming = [r for r in about if re.search(r"\b(?:called|named|name is)\b", r.item.memory)
              or any(f"{w} {n}" in r.item.memory for n in found.names for w in ("my", "My", "your", "Your"))]
    hops = [r for r in about if r not in naming]
    if naming and hops:
        return [naming[0], hops[0]]
    return [r for r in ranked[:2] if r.relevance >= ranked[0].relevance - ANSWER_MARGIN]


def _quote(notes: list[str]) -> str:
    said = " ".join(n if n.endswith((".", "!", "?")) else n + "." for n in notes)
    if re.match(r"You(?:r\b|'|\b)", said):  # "From what you told me: your dog is called Pepper."
        said = said[:1].lower() + said[1:]
    return f"From what you told me: {said}"


def _whole_sentences(pieces: Iterator[str], stats: GenerationStats) -> Iterator[str]:
    """A short reply cut by its token budget ends on its last whole sentence, not mid-word.
    Text is held back from the last sentence end on, and let through when another one comes."""
    held, said = "", False
    for piece in pieces:
        held += piece
        end = max(held.rfind(". "), held.rfind("! "), held.rfind("? "), held.rfind("\n"))
        if end >= 0:
            yield held[:end + 1]
            held, said = held[end + 1:], True
    # The unfinished tail goes only when it is all there is (one long sentence) or was not cut.
    if stats.stopped_by != "length" or not said or held.rstrip().endswith((".", "!", "?")):
        yield held


def _guarded(prefix: str, pieces: Iterator[str], stats: GenerationStats) -> Iterator[str]:
    """The grounding guard's reply: its fixed opening, then the model's end of that one sentence."""
    yield prefix
    for piece in pieces:
        yield piece.replace("\n", " ")
    yield "."


def system_text(user: str, now: datetime, preferences: list[MemoryItem], memories: list[MemoryItem]) -> str:
    """The full layout's first system turn with these preferences and memories in it (what the
    preference adapter's training data starts with, engine.parametric.dataset)."""
    def notes(items: list[MemoryItem]) -> list[Note]:
        return [Note(m.id, m.memory) for m in items]

    return resource_text("prompts/chat_system.txt").format(
        user=user, today=_today(now), memories=memory_block(user, notes(preferences), notes(memories))).strip()


def _today(now: datetime) -> str:
    # The user's date, not UTC's: at 7 pm in UTC-7 it is still today for them.
    return to_local(now).strftime("%A %d %B %Y")


def _title(text: str) -> str:
    words = text.split()
    return " ".join(words[:8]) + ("…" if len(words) > 8 else "")
