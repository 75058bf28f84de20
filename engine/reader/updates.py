"""MemReader's current-truth rules: statements that replace what the user said before.

- A correction negates an earlier statement: "I'm not vegetarian anymore, I eat meat now",
  "I don't bank with Barclays any more", "my favourite colour isn't yellow any more, it's
  teal", "I no longer play the violin". The earlier statements are the user's live
  memories that hold every content word of the negated part; what is true now is the
  rest of the message ("I eat meat now"), or the negated clause turned positive with the
  new value ("it's teal" -> "my favourite colour is teal").
- An update gives a new value without negating the old one: "I got a new phone, a Pixel 8"
  after "My phone is an iPhone 12". It carries a cue (new, now, from now on, again,
  switched, up to...) and is about the same thing as an earlier statement: close in
  meaning (MiniLM cosine >= UPDATE_SIMILARITY) *and* sharing a common noun ("phone").
  A shared name is not enough: "Callum lives in Inverness these days" adds to "My brother
  is called Callum", it does not replace it.
Pure text functions here; MemReader finds and supersedes the memories (engine.reader.memreader).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from memdesk.engine.reader.rules import _EXPAND, _EXPANSION, _FILLER, _third
from memdesk.engine.text import keywords

# Calibrated on the dev half of bench/data/personal_facts.json: the true update pairs there
# score 0.56-0.83, elaborations about the same person ("Callum lives in Inverness" after
# "My brother is called Callum") 0.46-0.66 but share no common noun.
UPDATE_SIMILARITY = 0.5

_NEGATION = re.compile(r"\b(?:not|never|no longer)\b|n't\b", re.I)
_NO_MORE = re.compile(r"\b(?:any\s?more|no longer|these days|nowadays)\b", re.I)
_UPDATE_CUE = re.compile(r"\b(?:new|now|from now on|these days|nowadays|again|switched|changed|up to|down to"
                         r"|replaced|upgraded|instead|no longer|any\s?more)\b", re.I)
_CLAUSE = re.compile(r"\s*;\s*|:\s+|,\s*(?=(?:and\s+|but\s+|so\s+)?(?:i|we|it|it's|its|they|they're|now|these days|"
                     r"nowadays|instead|actually)\b)|\s+(?:but|and)\s+(?=(?:i|we|now)\b)", re.I)
_COPULA = re.compile(r"^(?P<subj>.+?)\s+(?:is not|isn't|are not|aren't|was not|wasn't)\s+(?P<old>.+?)"
                     r"(?:\s+(?:any\s?more|now|no longer))+\s*$", re.I)
_IT_IS = re.compile(r"^(?:but\s+|and\s+|now\s+)?(?:it|they|that)(?:'s|\s+is|'re|\s+are)\s+(?P<new>.+?)(?:\s+now)?$",
                    re.I)
_SUBJECT = re.compile(r"^(?P<subj>.+?)\s+(?:does not|doesn't|do not|don't|is not|isn't|are not|aren't|am not|was not"
                      r"|wasn't|no longer|will not|won't|did not|didn't|cannot|can't)\s+(?P<rest>.+)$", re.I)
_PRONOUNS = frozenset("i we you he she they it".split())
_PREPOSITIONS = frozenset("with at to in on for from by of up out about the a an my our".split())
_STALE_WORDS = frozenset("anymore any more longer actually honestly now these days nowadays really".split())
# Words two statements may share without being about the same thing.
_GENERIC = frozenset("""new now today tonight yesterday week weekend weekends day days month months year years time
got get gets getting moved move started start finished finish took take put went go going came come live lives
living called name named lot bit little big old really again back home morning evening night user""".split())


@dataclass(frozen=True)
class Correction:
    negated: str  # the clause that negates ("my favourite colour isn't yellow any more")
    words: tuple[str, ...]  # its content words: an earlier statement of it holds all of them
    current: str | None  # what is true now, first person, if the message says it


def _clean(clause: str) -> str:
    clause = _FILLER.sub("", clause.replace("’", "'")).strip(" ,.!;:-")
    return _EXPAND.sub(lambda m: f"{m[1]} {_EXPANSION[m[2].lower()]}", clause)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]


def corrections(text: str) -> list[Correction]:
    out = []
    for sentence in _sentences(text):
        if sentence.rstrip().endswith("?"):
            continue
        clauses = [_clean(c) for c in _CLAUSE.split(sentence.strip(" .!")) if c and c.strip(" ,")]
        for i, clause in enumerate(clauses):
            if not (_NEGATION.search(clause) and _NO_MORE.search(clause)):
                continue
            words = tuple(w for w in keywords(_NEGATION.sub(" ", clause)) if w not in _STALE_WORDS)
            if not words:
                continue
            rest = [c for c in clauses[i + 1:] if c]
            out.append(Correction(clause, words, _current(clause, rest)))
    return out


def _current(negated: str, rest: list[str]) -> str | None:
    """What is true now: "it's teal" after "my favourite colour isn't yellow any more" is
    "my favourite colour is teal"; otherwise the clauses that follow, with "it" named
    ("we moved it to Thursdays" -> "we moved the book club to Thursdays")."""
    if not rest:
        return None
    first = rest[0]
    copula, it_is = _COPULA.match(negated), _IT_IS.match(first)
    if copula and it_is:
        subj, old, new = copula["subj"].strip(), copula["old"].strip(), it_is["new"].strip()
        if re.match(r"(?:my|our)\b", old, re.I):  # "summer isn't my favourite season, it's autumn"
            return f"{new} is {old}"
        return f"{subj} is {new}"
    current = ", ".join(rest)
    referent = _referent(negated)
    return re.sub(r"\bit\b(?!')", referent, current, count=1) if referent else current


def _referent(negated: str) -> str | None:
    """What "it" stands for after the negation: its subject ("The book club doesn't meet...") or,
    when the subject is a pronoun, its object ("I don't have Netflix any more" -> "Netflix")."""
    m = _SUBJECT.match(negated)
    if m is None:
        return None
    subj = m["subj"].strip()
    if subj.lower() not in _PRONOUNS:
        return subj[:1].lower() + subj[1:] if re.match(r"(?:The|My|Our)\b", subj) else subj
    words = re.sub(r"(?:\s+(?:any\s?more|no longer|now))+$", "", m["rest"].strip(), flags=re.I).split()
    if words and words[0].lower() not in _PREPOSITIONS:
        words = words[1:]  # the verb: "have Netflix", "bank with Barclays"
    while words and words[0].lower() in _PREPOSITIONS:
        words = words[1:]
    return " ".join(words) or None


def is_update(text: str) -> bool:
    return bool(_UPDATE_CUE.search(text)) and not text.rstrip().endswith("?")


def _stem(word: str) -> str:
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def common_nouns(text: str) -> set[str]:
    """Lower-case content words, stemmed (names, written capitalised, are left out)."""
    out = set()
    for match in re.finditer(r"[A-Za-z][\w'-]*", text):
        word = match.group()
        if word[0].isupper() and match.start() > 0:
            continue
        low = word.lower()
        if low in _GENERIC or not keywords(low):
            continue
        out.add(_stem(low))
    return out


def holds_all(words: tuple[str, ...], text: str) -> bool:
    have = {_stem(w) for w in keywords(text)}
    return all(_stem(w) in have for w in words)


def same_thing(new: str, old: str) -> bool:
    """Two statements about the same thing with different values ("My phone is an iPhone 12" /
    "I got a new phone, a Pixel 8"): a shared common noun, and words each has that the other lacks."""
    a, b = common_nouns(new), common_nouns(old)
    values_a, values_b = set(keywords(new)) - set(keywords(old)), set(keywords(old)) - set(keywords(new))
    return bool(a & b) and bool(values_a) and bool(values_b)


def third_person(text: str, name: str) -> str:
    text = re.sub(r"\s+", " ", _third(text, name)).strip(" ,;.")
    return text[:1].upper() + text[1:] + "."
