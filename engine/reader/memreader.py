"""MemReader: what a query asks for, and which durable memories a conversation holds.

Fine extraction runs after the fast path has stored the raw turns, as a job:
1. the deterministic rules (engine.reader.rules) always run — memory works without a model;
2. when a chat model is available, it proposes items too, constrained by a GBNF grammar
   so that even a 135M model emits valid JSON; anything that fails validation is dropped;
3. each item is applied against what the vault already knows: same key -> a new version
   of that memory (history keeps the old fact), unless the old one was pinned or edited
   by the user, in which case both stay, linked by a CONFLICT edge. Nothing is deleted.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from memdesk.engine.api import SUPERSEDED, Memory
from memdesk.engine.chat.notes import is_assistant_turn, is_question_only, note_text, spoken_text, statements
from memdesk.engine.cube import Filters, MemoryItem, MemoryType, Relation, Source, SourceRef, to_utc, utcnow
from memdesk.engine.errors import InvalidInputError, MemDeskError
from memdesk.engine.llm.base import ChatModel, ChatTurn, GenerationConfig
from memdesk.engine.reader.preferences import preferences
from memdesk.engine.reader.rules import Extracted, Utterance, extract
from memdesk.engine.reader.updates import (
    UPDATE_SIMILARITY,
    Correction,
    common_nouns,
    corrections,
    holds_all,
    is_update,
    same_thing,
    third_person,
)
from memdesk.engine.resources import text as resource_text
from memdesk.engine.search.disclosures import DisclosureClassifier
from memdesk.engine.search.preferences import Considerations
from memdesk.engine.search.timeparse import TimeRange, find_time_range, resolve_event_time
from memdesk.engine.text import keywords, normalise

log = logging.getLogger(__name__)

_TYPES = {MemoryType.USER.value, MemoryType.PREFERENCE.value, MemoryType.LONG_TERM.value}
_PREFERENCE_WORDS = re.compile(r"\b(prefer|preference|like|likes|love|favou?rite|hate|want|style|should you"
                               r"|how do i like)\b",
                               re.IGNORECASE)
# Two memories this close in MiniLM space say the same thing in other words.
NEAR_DUPLICATE = 0.92
# "Ana moved to Porto": a person the vault already knows by name, and a new place.
_PERSON_KEY = re.compile(r"^(?P<rel>[a-z][a-z ]*?) (?P<name>[a-z][\w'-]*) / location$")
_PERSON_MOVE = re.compile(
    r"\b(?P<name>[A-Z][\w'-]+)(?:,\s+my\s+[a-z ]+,)?\s+(?:has\s+)?(?:just\s+|recently\s+|finally\s+)?"
    r"(?:moved|relocated|lives|is living|now lives)\s+(?:to|in)\s+(?P<place>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")


@dataclass(frozen=True)
class QueryIntent:
    window: TimeRange | None
    topics: tuple[str, ...]
    memory_types: tuple[str, ...]  # empty = all


def parse_query(query: str, reference: datetime | None = None) -> QueryIntent:
    window = find_time_range(query, to_utc(reference) or utcnow())
    rest = query if window is None else query[:window.span[0]] + " " + query[window.span[1]:]
    types = (MemoryType.PREFERENCE.value,) if _PREFERENCE_WORDS.search(query) else ()
    return QueryIntent(window=window, topics=tuple(keywords(rest)), memory_types=types)


@dataclass(frozen=True)
class Applied:
    id: str
    action: str  # "added" | "merged" | "versioned" | "conflict"
    item: Extracted


def utterances_of(items: list[MemoryItem]) -> list[Utterance]:
    """Raw chat memories back into utterances (speaker prefix stripped, provenance kept)."""
    out = []
    for item in items:
        source = next((s for s in item.sources if s.type == "chat"), None)
        if source is None:
            continue
        speaker = source.role or "User"
        text = item.memory[len(speaker) + 2:] if item.memory.startswith(f"{speaker}: ") else item.memory
        when = datetime.fromisoformat(source.chat_time) if source.chat_time else item.created_at
        out.append(Utterance(text=text, speaker=speaker, timestamp=when, message_id=source.message_id or item.id,
                             is_user=item.info.get("role", "user") == "user"))
    return out


def llm_extract(model: ChatModel, utterances: list[Utterance], user_name: str,
                max_tokens: int = 320) -> list[Extracted]:
    """Items proposed by the chat model under the memories grammar; invalid ones are dropped."""
    if not utterances:
        return []
    last = max(u.timestamp for u in utterances)
    conversation = "\n".join(f"{u.speaker}: {u.text}" for u in utterances)
    prompt = model.render_chat([ChatTurn("user", resource_text("prompts/extract.txt").format(
        user=user_name, date=last.strftime("%d %B %Y"), conversation=conversation))])
    config = GenerationConfig(max_tokens=max_tokens, temperature=0.0,
                              grammar=resource_text("grammars/memories.gbnf"))
    raw = "".join(model.stream(prompt, config))
    try:
        proposals = json.loads(raw)
    except json.JSONDecodeError:
        log.info("model extraction was not valid JSON (cut by max_tokens?); rules only")
        return []
    ids = tuple(u.message_id for u in utterances)
    said = set(keywords(conversation))
    out: list[Extracted] = []
    for proposal in proposals if isinstance(proposals, list) else []:
        item = _validated(proposal, ids, last, said)
        if item is not None:
            out.append(item)
    return out


def _validated(proposal: object, ids: tuple[str, ...], when: datetime, said: set[str]) -> Extracted | None:
    if not isinstance(proposal, dict):
        return None
    memory, key, kind = proposal.get("memory"), proposal.get("key"), proposal.get("type")
    confidence = proposal.get("confidence", 0.5)
    if not (isinstance(memory, str) and isinstance(key, str) and kind in _TYPES):
        return None
    memory, key = memory.strip(), key.strip().lower()
    if not (8 <= len(memory) <= 400 and 2 <= len(key) <= 80) or not isinstance(confidence, (int, float)):
        return None
    if re.search(r"\b(I|my|me)\b", memory):  # not third person: the model did not follow the format
        return None
    if float(confidence) < 0.3 or re.search(r"Memory\b", memory):  # echoes of the instructions
        return None
    # Grounding: a fact must be made of words that were said; small models otherwise
    # paraphrase the prompt or invent. (Stemming is not needed: the words are copied.)
    words = set(keywords(memory))
    if len(words) < 2 or len(words & said) < 0.6 * len(words):
        return None
    resolved = resolve_event_time(memory, when)
    # A small model's guess counts for less than an explicit rule match.
    return Extracted(key=key, memory=memory if memory.endswith(".") else memory + ".", memory_type=kind,
                     confidence=round(min(float(confidence), 0.8), 2), tags=("extracted", "model"),
                     event_time=resolved.start if resolved else None, message_ids=ids)


class MemReader:
    def __init__(self, mem: Memory, model: ChatModel | None = None, *, user_name: str | None = "User",
                 use_model: bool = True):
        """`user_name=None`: each speaker is a person of their own (e.g. an imported transcript)."""
        self.mem = mem
        self.model = model
        self.user_name = user_name
        self.use_model = use_model and model is not None

    def extract_items(self, raw: list[MemoryItem]) -> list[Extracted]:
        utterances = utterances_of(raw)
        items = extract(utterances, user_name=self.user_name)
        items += self._known_people_moves(utterances, {i.key.lower() for i in items})
        # Preferences said any other way, for the messages the precise rules found none in.
        stated = {m for i in items if i.memory_type == MemoryType.PREFERENCE.value for m in i.message_ids}
        with_facts = frozenset(m for i in items for m in i.message_ids)
        items += preferences([u for u in utterances if u.message_id not in stated], self.user_name,
                             lasting=self._lasting(), with_facts=with_facts)
        if self.use_model:
            try:
                speakers = [u for u in utterances if u.is_user]
                items += llm_extract(self.model, speakers, self.user_name or speakers[0].speaker if speakers else "")
            except MemDeskError as exc:
                log.warning("model extraction skipped: %s", exc)
        seen: set[tuple[str, str]] = set()
        unique = []
        for item in items:
            marker = (item.key, normalise(item.memory))
            if marker not in seen:
                seen.add(marker)
                unique.append(item)
        return unique

    def _lasting(self):
        """The disclosure classifier's judgement, where the vault has an embedder to run it."""
        if self.mem.embedder is None:
            return None
        try:
            return DisclosureClassifier.for_embedder(self.mem.embedder).lasting
        except (OSError, ValueError, MemDeskError) as exc:  # a damaged resource costs recall, not the extraction
            log.warning("disclosure classifier unavailable: %s", exc)
            return None

    def _known_people_moves(self, utterances: list[Utterance], keys: set[str]) -> list[Extracted]:
        """A person named without "my sister" is still the sister the vault knows about."""
        people: dict[str, str] = {}
        for item in self.mem.list(Filters(memory_types=(MemoryType.USER.value,)), limit=500):
            match = _PERSON_KEY.match(item.key.lower())
            if match:
                people.setdefault(match["name"], match["rel"])
        out = []
        for u in utterances:
            if not u.is_user:
                continue
            for match in _PERSON_MOVE.finditer(u.text):
                name = match["name"]
                relation = people.get(name.lower())
                key = f"{relation} {name.lower()} / location" if relation else None
                if key is None or key in keys:
                    continue
                resolved = resolve_event_time(u.text, u.timestamp)
                out.append(Extracted(
                    key=key, memory=f"{self.user_name or u.speaker}'s {relation} {name} lives in {match['place']}.",
                    memory_type=MemoryType.USER.value, confidence=0.85, tags=("family", "location"),
                    event_time=resolved.start if resolved else None, message_ids=(u.message_id,)))
        return out

    def apply(self, items: list[Extracted], *, scope: str = "default", session_id: str | None = None) -> list[Applied]:
        return [self._apply_one(item, scope, session_id) for item in items]

    def _apply_one(self, item: Extracted, scope: str, session_id: str | None) -> Applied:
        sources = [SourceRef(type="chat", message_id=m, session_id=session_id) for m in item.message_ids]
        key = item.key.lower()  # keys compare case-insensitively: "sister Ana" is "sister ana"
        fields = dict(key=key, tags=list(item.tags), memory_type=item.memory_type, source=Source.CONVERSATION,
                      scope=scope, sources=sources, event_time=item.event_time, confidence=item.confidence)
        same_key = self.mem.find_by_key(key, scope=scope, memory_types=(item.memory_type,))
        if same_key:
            current = same_key[0]
            if normalise(current.memory) == normalise(item.memory):
                result = self.mem.add(item.memory, **fields)  # merges provenance into the same item
                return Applied(result.id, "merged", item)
            if current.pinned or any(v.reason == "edited" for v in self.mem.history(current.id)):
                # The user's own word wins until they decide: keep both, flag the pair.
                result = self.mem.add(item.memory, **fields)
                self.mem.link(result.id, current.id, Relation.CONFLICT)
                return Applied(result.id, "conflict", item)
            # The current sources are the turns that said the new value; history keeps the old ones,
            # and the turns that said only the old value stop being given as current.
            self.mem.update(current.id, memory=item.memory, event_time=item.event_time, sources=sources,
                            confidence=item.confidence,
                            reason=f"{SUPERSEDED} by conversation ({', '.join(item.message_ids)})")
            self._supersede_turns(current, set(item.message_ids), current.id, f"new value: {item.memory}")
            return Applied(current.id, "versioned", item)
        near = self._near_duplicate(item, scope)
        if near is not None:
            return Applied(near.id, "merged", item)
        result = self.mem.add(item.memory, **fields, info=self._about(item))
        return Applied(result.id, "merged" if not result.created else "added", item)

    def _about(self, item: Extracted) -> dict | None:
        """A preference's area and the kinds of request it applies to, stored on it (engine.search.preferences)."""
        if item.memory_type != MemoryType.PREFERENCE.value or self.mem.embedder is None:
            return None
        return Considerations.for_embedder(self.mem.embedder).describe(self.mem.embedder.encode([item.memory])[0])

    def _near_duplicate(self, item: Extracted, scope: str) -> MemoryItem | None:
        if self.mem.embedder is None:
            return None
        try:
            hits = self.mem.search(item.memory, k=3, filters=Filters(scope=scope, memory_types=(item.memory_type,)))
        except InvalidInputError:
            return None
        for hit in hits:
            if hit.signals.get("vector", 0.0) >= NEAR_DUPLICATE:
                return hit.item
        return None

    # ---------------------------------------------------------- current truth
    def current_truth(self, raw: list[MemoryItem], applied: list[Applied], *, scope: str = "default",
                      session_id: str | None = None) -> list[str]:
        """Corrections and updates in the user's turns supersede what they replace (engine.reader.updates).
        Returns the ids superseded. Only for a known user: an imported transcript has no "I"."""
        if self.user_name is None:
            return []
        done: list[str] = []
        for turn in raw:
            if turn.memory_type != MemoryType.RAW_CHAT.value or turn.info.get("role", "user") != "user":
                continue
            text = statements(spoken_text(turn))
            said_here = {s.message_id for s in turn.sources if s.message_id}
            stated = [a.id for a in applied if said_here & set(a.item.message_ids) and a.action != "conflict"]
            found = corrections(text)
            for correction in found:
                done += self._correct(correction, turn, said_here, scope, session_id)
            if not found and is_update(text):
                done += self._update(text, turn, said_here, stated[0] if stated else turn.id, scope)
        return done

    def _earlier_statements(self, query: str, turn: MemoryItem, said_here: set[str], scope: str):
        def keep(item: MemoryItem) -> bool:
            return (not is_assistant_turn(item) and not is_question_only(item) and not (said_here & _message_ids(item))
                    and item.created_at <= turn.created_at)

        kinds = (MemoryType.USER.value, MemoryType.PREFERENCE.value, MemoryType.LONG_TERM.value,
                 MemoryType.RAW_CHAT.value)
        try:
            return self.mem.search(query, k=10, filters=Filters(scope=scope, memory_types=kinds), keep=keep)
        except InvalidInputError:
            return []

    def _said(self, item: MemoryItem) -> str:
        return note_text(item, self.user_name or "User", second_person=True)

    def _correct(self, correction: Correction, turn: MemoryItem, said_here: set[str], scope: str,
                 session_id: str | None) -> list[str]:
        targets = [h.item for h in self._earlier_statements(correction.negated, turn, said_here, scope)
                   if holds_all(correction.words, self._said(h.item))]
        text = third_person(correction.current or correction.negated, self.user_name or "User")
        sources = [SourceRef(type="chat", message_id=m, session_id=session_id) for m in sorted(said_here)]
        keyed = next((t for t in targets if t.memory_type != MemoryType.RAW_CHAT.value and t.key), None)
        why = f"corrected: {correction.negated}"
        if keyed is not None:
            self.mem.update(keyed.id, memory=text, sources=sources, reason=f"{SUPERSEDED} by a correction")
            by, older = keyed.id, self.mem.turns_of_messages(sorted(_message_ids(keyed) - said_here))
        else:
            kind = next((t.memory_type for t in targets if t.memory_type != MemoryType.RAW_CHAT.value),
                        MemoryType.USER.value)
            # What the old statement was about ("my mobile network") names the new fact, so that
            # "Which mobile network am I on?" still finds "User switched to giffgaff".
            said = [self._said(t) for t in targets]
            about = sorted(set().union(*(common_nouns(x) for x in said)) - set(correction.words)) if said else []
            key = "current: " + " ".join((about or list(correction.words))[:4])
            by = self.mem.add(text, key=key, memory_type=kind, source=Source.CONVERSATION, scope=scope,
                              sources=sources, confidence=0.9, tags=["extracted", "correction"],
                              embed_text=" ".join([text, *said[:1]])).id
            older = []
        return self.mem.supersede([t.id for t in targets + older], by=by, why=why)

    def _update(self, text: str, turn: MemoryItem, said_here: set[str], by: str, scope: str) -> list[str]:
        if self.mem.embedder is None:
            return []
        candidates = [h.item for h in self._earlier_statements(text, turn, said_here, scope)]
        said = [spoken_text(c) for c in candidates]
        # The texts as said, without speaker labels: the threshold is calibrated on those.
        vectors = self.mem.embedder.encode([text, *said]) if candidates else []
        old = [c for c, s, v in zip(candidates, said, vectors[1:])
               if float(vectors[0] @ v) >= UPDATE_SIMILARITY and same_thing(text, s)]
        facts = [o for o in old if o.memory_type != MemoryType.RAW_CHAT.value]
        older = self.mem.turns_of_messages(sorted(set().union(*(_message_ids(f) for f in facts)) - said_here)) \
            if facts else []
        return self.mem.supersede([o.id for o in old + older], by=by, why=f"updated: {text[:120]}")

    def _supersede_turns(self, fact: MemoryItem, keep: set[str], by: str, why: str) -> None:
        """The raw turns that said the fact's earlier value (and not its new one)."""
        stale = _message_ids(fact) - keep
        if stale:
            self.mem.supersede([t.id for t in self.mem.turns_of_messages(sorted(stale))], by=by, why=why)

    # ----------------------------------------------------------------- jobs
    def handle_job(self, job, progress) -> None:
        """Job handler for EXTRACT_JOB: payload {"memory_ids": [...], "scope": ..., "session_id": ...}."""
        raw = [self.mem.get(i) for i in job.payload["memory_ids"]]
        progress(0.2)
        items = self.extract_items(raw)
        progress(0.7)
        scope, session_id = job.payload.get("scope", "default"), job.payload.get("session_id")
        applied = self.apply(items, scope=scope, session_id=session_id)
        self.current_truth(raw, applied, scope=scope, session_id=session_id)
        progress(1.0)


def _message_ids(item: MemoryItem) -> set[str]:
    return {s.message_id for s in item.sources if s.message_id}
