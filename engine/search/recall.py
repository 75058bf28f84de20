"""What one chat turn is given: memories that are currently true about the user, relevant, one per fact.

The query is planned and embedded once; one hybrid search finds memories, a second
(same vector) finds preferences. What search returns is then cut to what the model can
use as notes:
- the assistant's own earlier words are never facts about the user;
- a question the user once asked is not a fact about them either;
- turns of this very session are already in the prompt as conversation;
- superseded memories are not live, so search never returns them (engine.supersede);
- a memory must be relevant enough: a small model answers from whatever it is given, so
  an unrelated note is worse than none (the thresholds are calibrated in bench.answers).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from memdesk.engine.api import Memory
from memdesk.engine.chat.context import ContextProfile
from memdesk.engine.chat.notes import is_assistant_turn, is_question_only, spoken_text, statements
from memdesk.engine.cube import Filters, MemoryItem, MemoryType
from memdesk.engine.reader.updates import is_update, same_thing
from memdesk.engine.text import STOPWORDS, keywords

# A note is relevant when its meaning is close to the question's (MiniLM cosine) or when
# it holds most of the question's content words. Calibrated on the dev half of
# bench/data/personal_facts.json (docs/benchmarks.md).
MIN_COSINE = 0.40
MIN_COVERAGE = 0.5
COVERAGE_WEIGHT = 0.25
REQUEST_PREFERENCE_SCORE = 0.4  # a preference scoring this (engine.search.preferences) may govern a request
# A request for help with the person's own plans, choices or writing ("Plan my Saturday in
# Lisbon", "What's a good film for tonight?") is what preferences govern, and the one that
# governs it often shares little meaning with it ("I can't stand crowds"): the closest ones
# are given down to this lower score, the closest one down to 0.2 (both set on bench/data/preferences.json,
# each preference scored alone against its request; never on bench/data/preferences_holdout.json).
HELP_PREFERENCE_SCORE = 0.25
HELP_TOP_PREFERENCE_SCORE = 0.2  # the single closest one: a person with few preferences still gets theirs
# Of the relevant notes, those far below the best one are left out: a small model answers
# from the last or the most prominent note, not the right one.
RELATIVE_FLOOR = 0.15

STYLE_KEY = "preference: answer style"  # the key MemReader gives what the user says about answer length
_BRIEF = re.compile(r"\b(short|shorter|brief|briefly|concise|succinct|to the point|short version|one or two sentences"
                    r"|a sentence or two|few words|terse)\b", re.I)
_LONG = re.compile(r"\b(detailed|long|longer|in-depth|thorough|step-by-step)\b", re.I)
_ANSWERS = re.compile(r"\b(answers?|repl(?:y|ies)|responses?|explanations?|version|sentences?|summar(?:y|ies))\b", re.I)
_PERSONAL = re.compile(
    r"^(?:(?:so|and|but|ok|okay|hey|remind me)[,\s]+)*(?:what|what's|whats|which|who|who's|whose|where|where's|when"
    r"|when's|how\s+(?:old|much|many|far|long|often|tall|big)|do\s+i|did\s+i|am\s+i|have\s+i|was\s+i|is\s+my|are\s+my"
    r"|does\s+my|did\s+my|was\s+my|were\s+my)\b", re.I)
_ADVICE = re.compile(r"\b(?:should|could|would|shall|might|can)\s+(?:i|we|my|our)\b|\bwhat\s+(?:to|if)\b"
                     r"|\b(?:do|can|could|would)\s+you\b|\b(?:recommend|suggest|idea|ideas|tips|advice)\b"
                     r"|\b(?:a|an|some)\s+(?:good|nice|great|fun|new)\b", re.I)
_FIRST_PERSON = re.compile(r"\b(?:i|my|me|mine|myself|i'm|i've)\b", re.I)
_HELP = re.compile(r"^(?:(?:hey|ok|okay|so|also|please|now|right)[,\s]+)*(?:plan|suggest|recommend|pick|choose|find"
                   r"|help|write|draft|give me|book|organi[sz]e|make|create|put together|come up|design|build|sort out"
                   r"|set up|outline|map out|prepare|list|compose|propose|think of|host|arrange"
                   r"|what'?s (?:a|the) (?:good|best|right|nice|fun|great|smart|easiest|cheapest|quickest)|is it worth"
                   r"|which (?:\w+ )?(?:should|would|is best))\b"
                   r"|\b(?:any|some) (?:ideas|tips|advice|suggestions|recommendations)\b", re.I)
_ASKS_WHEN = re.compile(r"\b(?:when|what (?:date|day|year|month|time)|how long ago|which (?:day|year|month))\b", re.I)


@dataclass(frozen=True)
class Recalled:
    item: MemoryItem
    score: float  # the fused search score (ranking)
    cosine: float  # the query's similarity to the memory (0 when it was not a vector candidate)
    coverage: float  # share of the query's content words the memory holds
    hop: bool = False  # about the person the question names ("my brother" = Callum), found by that name

    @property
    def relevant(self) -> bool:
        return self.cosine >= MIN_COSINE or self.coverage >= MIN_COVERAGE

    @property
    def relevance(self) -> float:
        """Meaning first, shared words as a tie-break: the fused search score is tuned for recall
        over many candidates, not for choosing the two or three a small model can use."""
        return self.cosine + COVERAGE_WEIGHT * self.coverage


@dataclass
class Recall:
    memories: list[Recalled] = field(default_factory=list)  # best first, already cut to what may be given
    preferences: list[Recalled] = field(default_factory=list)
    standing: list[MemoryItem] = field(default_factory=list)  # preferences by priority (the full profile's prefix)
    brief: bool = False  # the user asked for short answers
    personal_question: bool = False  # asks for a fact about the user ("what is my ...?")
    asks_when: bool = False  # dates help the answer
    names: list[str] = field(default_factory=list)  # who "my brother" etc. are in memory (two hops)


def personal_question(text: str) -> bool:
    """"What is my blood type?" asks for something only memory can know; "How do I boil an egg?",
    "What should I cook for my sister?" and "Can you suggest..." ask for help instead."""
    first = text.strip().split("\n")[0].strip()
    asked = re.sub(r"^[^,?]{0,40},\s*", "", first) if not _PERSONAL.match(first) else first  # "Apart from English, ..."
    return bool(_PERSONAL.match(asked) and _FIRST_PERSON.search(asked) and not _ADVICE.search(first))


def asks_for_help(text: str) -> bool:
    """A request about the person's own life ("Plan my weekend", "Where should we eat?", "Suggest a
    film") rather than about the world ("How many ounces are in a cup?")."""
    first = text.strip().split("\n")[0].strip()
    return bool(_HELP.search(first) or (_FIRST_PERSON.search(first) or re.search(r"\b(?:we|our|us)\b", first, re.I))
                and not personal_question(first))


def _stem(word: str) -> str:
    word = re.sub(r"(?:'s|s)$", "", word) if len(word) > 3 else word
    return re.sub(r"(?:ing|ed)$", "", word) if len(word) > 5 else word


def coverage(query_words: list[str], text: str) -> float:
    if not query_words:
        return 0.0
    words = {_stem(w) for w in keywords(text)}
    return sum(_stem(w) in words for w in query_words) / len(query_words)


def usable(item: MemoryItem) -> bool:
    """Whether a memory can be given to the model as something known about the user."""
    return not is_assistant_turn(item) and not is_question_only(item)


def recall(mem: Memory, text: str, *, session_id: str | None, now: datetime, profile: ContextProfile,
           k: int = 10, preference_k: int = 5, scope: str | None = None) -> Recall:
    base = Filters(scope=scope)
    query_plan = mem.plan(text, base, now)  # the time it names, parsed once for the whole turn

    def keep(item: MemoryItem) -> bool:
        return usable(item) and not (session_id and _said_in_session(item, session_id))

    def search(query: str, qvec, filters: Filters, limit: int, planned=None) -> list[Recalled]:
        words = [w for w in keywords(query) if w not in _QUESTION_WORDS]
        hits = mem.search(query, k=limit, filters=filters, reference_time=now, query_vector=qvec, keep=keep,
                          query_plan=planned)
        return [Recalled(h.item, h.score, float(h.signals.get("vector", 0.0)), coverage(words, h.item.memory))
                for h in hits]

    qvec = mem.embed_query(text)
    found = search(text, qvec, base, k, query_plan)
    # Two hops: "my brother" is Callum in one memory, and what Callum does is in another. Ask again
    # with the name, and keep each memory's better reading.
    # Only for whom the question is about: "my sister's husband" asks about the husband, not Marisol.
    wanted = focus(text)
    names = [name for noun, name in aliases(text, [r.item for r in found]) if _norm(noun.split()[-1]) in wanted]
    # The words people use for what they asked in other words ("for a living" -> "work") join them.
    said = {_norm(w) for w in keywords(text)}
    extra = names + sorted(w for w in wanted if w in _SYNONYMS.values() and w not in {x.lower() for x in keywords(text)}
                           and w in said)
    if extra:
        expanded = f"{text} ({', '.join(extra)})"
        better = {r.item.id: r for r in search(expanded, mem.embed_query(expanded), base, k)}
        found = [max(r, better.pop(r.item.id, r), key=lambda x: x.relevance) for r in found] + list(better.values())
    only_prefs = Filters(scope=scope, memory_types=(MemoryType.PREFERENCE.value,))
    # Preferences on their own, by meaning (engine.search.preferences): what governs a request shares
    # few words with it.
    pref_words = [w for w in keywords(text) if w not in _QUESTION_WORDS]
    prefs = [Recalled(p.item, p.score, p.cosine, coverage(pref_words, p.item.memory))
             for p in mem.search_preferences(text, k=preference_k, scope=scope, query_vector=qvec)]
    out = Recall(personal_question=personal_question(text),
                 asks_when=bool(query_plan.window or _ASKS_WHEN.search(text)))
    # Standing preferences (in every turn, the full layout's cached prefix) are those the user
    # pinned or ranked; the rest must earn their place by governing the request.
    out.standing = [p for p in mem.list(only_prefs, order="priority", limit=preference_k) if p.pinned or p.priority > 0]
    style = mem.find_by_key(STYLE_KEY, scope=scope or "default", memory_types=(MemoryType.PREFERENCE.value,))
    out.brief = _wants_brief(style + out.standing + [p.item for p in prefs])
    pref_ids = {p.item.id for p in prefs}
    memories = [r for r in found if r.item.id not in pref_ids]
    out.names = names
    if profile.relevant_only:
        memories, prefs = _drop_replaced(memories), prefs
        if out.personal_question:
            # A personal question is answered only by a note about what it asks ("my grandmother's
            # name" is not answered by "an aunt called Fenella"), or about the person it names.
            memories = [_hop(r, names) if _names_in(r, names) else r for r in memories
                        if answers(r.item, wanted) or _names_in(r, names)]
            prefs = [r for r in prefs if answers(r.item, wanted)]
            prefs = _most_relevant(prefs)
        else:
            # A request ("suggest a dinner") is shaped by preferences that share few words with it:
            # the closest ones are given unless they are plainly unrelated.
            # Answer length is kept by the reply budget and the system line, not by a note.
            help_asked = asks_for_help(text)
            floor = HELP_PREFERENCE_SCORE if help_asked else REQUEST_PREFERENCE_SCORE
            prefs = [r for n, r in enumerate(p for p in prefs if p.item.key != STYLE_KEY)
                     if r.score >= (HELP_TOP_PREFERENCE_SCORE if help_asked and n == 0 else floor)]
        memories = _most_relevant(memories)
    out.memories, out.preferences = memories, prefs
    return out


_GENERIC_ASKED = frozenset("name names called call named kind type sort exactly usually currently current really "
                           "right now moment".split())
# Words people ask with for what they told in other words.
_SYNONYMS = {"mother": "mum", "mom": "mum", "mam": "mum", "father": "dad", "writer": "author", "movie": "film",
             "job": "work", "living": "work", "career": "work", "profession": "work", "employer": "work",
             "home": "house", "flat": "house",
             "mobile": "phone", "cellphone": "phone", "automobile": "car"}


def _norm(word: str) -> str:
    word = _SYNONYMS.get(word.lower(), word.lower())
    return _SYNONYMS.get(_stem(word), _stem(word))


def focus(question: str) -> set[str]:
    """What a personal question asks about: its content words, less whose it is ("my sister's
    husband" asks about a husband) and less the generic ("name", "called")."""
    owners = {_norm(w) for w in re.findall(r"\b([a-z-]+)'s\b", question.lower())}
    words = {_norm(w) for w in keywords(question) if w not in _QUESTION_WORDS and w not in _GENERIC_ASKED}
    return (words - owners) or words or owners


def answers(item: MemoryItem, wanted: set[str]) -> bool:
    said = {_norm(w) for w in keywords(spoken_text(item))} | {_norm(w) for w in keywords(item.key)}
    return bool(wanted & said) or not wanted


def _names_in(r: Recalled, names: list[str]) -> bool:
    text = spoken_text(r.item)
    return any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)


def _hop(r: Recalled, names: list[str]) -> Recalled:
    """A note about the person the question names counts as relevant: it was found by their name."""
    return Recalled(r.item, r.score, max(r.cosine, MIN_COSINE), r.coverage, hop=True)


_MY_NOUN = re.compile(r"\bmy\s+((?:[a-z-]+\s+){0,2}?[a-z-]+?)(?:'s\b|\s|\?|$)", re.I)
_NAME = r"(?P<name>(?:Dr\.?\s+)?[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?)"


def aliases(query: str, items: list[MemoryItem]) -> list[tuple[str, str]]:
    """(noun, name) for each "my <someone>" of the question named in memory: ("brother", "Callum") when a
    memory says "My brother is called Callum" (or "an aunt called Fenella", "my partner Idris")."""
    names: dict[tuple[str, str], None] = {}
    for match in _MY_NOUN.finditer(query):
        noun = match.group(1).strip().lower()
        if noun in STOPWORDS:
            continue
        pattern = re.compile(rf"\b{re.escape(noun)}(?:'s name)?,?\s+(?:is\s+(?:called|named)\s+|is\s+|called\s+"
                             rf"|named\s+)?{_NAME}")
        for item in items:
            for said in pattern.finditer(spoken_text(item)):
                name = said["name"]
                if name.split()[0] not in _NOT_NAMES:
                    names.setdefault((noun, name), None)
    return list(names)[:3]


_NOT_NAMES = frozenset("I The A An My Your His Her Our Their It This That Is And But So".split())


def _most_relevant(found: list[Recalled]) -> list[Recalled]:
    kept = sorted((r for r in found if r.relevant), key=lambda r: r.relevance, reverse=True)
    return [r for r in kept if r.hop or r.relevance >= kept[0].relevance - RELATIVE_FLOOR] if kept else []


def _drop_replaced(found: list[Recalled]) -> list[Recalled]:
    """Of two statements about the same thing, the older is left out when the newer says it changed
    ("We got a new manager, Anil" over "My manager is called Gwen"): extraction supersedes only
    what it is sure of, this catches the rest for the turn at hand."""
    out = []
    for r in found:
        text = statements(spoken_text(r.item)) or r.item.memory
        # The newer statement must answer the question about as well: "We got a new manager at the
        # clinic" shares "clinic" with "my working days at the clinic" but says nothing of them.
        newer = [o for o in found if o.item.created_at > r.item.created_at and o.relevance >= r.relevance - 0.05
                 and is_update(statements(spoken_text(o.item)) or o.item.memory)
                 and same_thing(statements(spoken_text(o.item)) or o.item.memory, text)]
        if not newer:
            out.append(r)
    return out


def _wants_brief(preferences: list[MemoryItem]) -> bool:
    """A stated preference for short answers (the newest statement about answer length wins)."""
    about_length = [p for p in preferences if _ANSWERS.search(p.memory) and (_BRIEF.search(p.memory)
                                                                            or _LONG.search(p.memory))]
    if not about_length:
        return False
    newest = max(about_length, key=lambda p: p.updated_at)
    return bool(_BRIEF.search(newest.memory)) and not re.search(r"\b(?:not|no longer|never)\b", newest.memory, re.I)


def _said_in_session(item: MemoryItem, session_id: str) -> bool:
    return item.memory_type == MemoryType.RAW_CHAT.value and any(s.session_id == session_id for s in item.sources)


_QUESTION_WORDS = frozenset("what which who whose where when why how tell remind know name called call".split())
