"""Memories as notes a model reads: who said what, in the person the model answers in.

A chat model answering "What's my dog's name?" copies best from "Your dog is called
Pepper." (measured on the embedded 135M model: second-person notes were answered
17 of 20 times, the same facts in the first person 10 of 20, see docs/benchmarks.md).
So the notes given to small models are written to the user, in the second person:
- a fact MemReader wrote in the third person ("Sam's dog is called Pepper.") has the
  user's name turned into "you"/"your" and its verb agreed ("Sam lives" -> "You live");
- a raw chat turn the user typed ("Sam: I'm allergic to kiwi") loses its speaker label
  and has "I/my/me" turned into "you/your/you".
What cannot be a note about the user is recognised here too: the assistant's own words
and the questions the user asked.
"""
from __future__ import annotations

import re

from memdesk.engine.cube import MemoryItem, MemoryType
from memdesk.engine.text import SENTENCE_BREAK

# Verbs after the user's name that do not end in -s but still agree ("Sam is" -> "you are").
_IRREGULAR = {"is": "are", "was": "were", "has": "have", "does": "do", "doesn't": "don't", "isn't": "aren't",
              "wasn't": "weren't", "hasn't": "haven't"}
_ADVERB = (r"(?:(?:really|also|still|now|usually|always|often|never|no longer|currently|recently|just|mostly"
           r"|rarely|sometimes|only|actually|generally)\s+)*")
_QUESTION_START = re.compile(
    r"^(?:what|what's|whats|which|who|who's|whom|whose|where|where's|when|when's|why|how|is|are|am|was|were|do|does"
    r"|did|can|could|would|will|should|shall|have|has|may|might|any|tell me|remind me|explain|describe|give me"
    r"|suggest|recommend|help me|list|name|show me)\b", re.I)


def _agree(verb: str) -> str:
    """The second-person form of a third-person singular verb ("lives" -> "live")."""
    low = verb.lower()
    if low in _IRREGULAR:
        out = _IRREGULAR[low]
    elif re.search(r"[^aeiou]ies$", low):
        out = low[:-3] + "y"
    elif re.search(r"(?:ss|sh|ch|x|zz|o)es$", low):
        out = low[:-2]
    elif low.endswith("s") and not low.endswith(("ss", "us", "is")):
        out = low[:-1]
    else:
        return verb
    return out


def third_to_second(text: str, name: str) -> str:
    """'Sam's sister lives in Porto. Sam is vegetarian.' -> 'Your sister lives in Porto. You are vegetarian.'"""
    names = [re.escape(name)] + ([r"[Tt]he user"] if name.lower() != "the user" else [])
    who = "(?:" + "|".join(names) + ")"
    out = re.sub(rf"\b{who}'s\b", "your", text)
    out = re.sub(rf"\b{who}\b(\s+{_ADVERB})([A-Za-z']+)\b",
                 lambda m: "you" + m[1] + _agree(m[2]), out)
    out = re.sub(rf"\b{who}\b", "you", out)
    return _capitalise_sentences(out)


_FIRST_PERSON = (
    (re.compile(r"\bI\s+am\b"), "you are"), (re.compile(r"\bI'm\b|\bIm\b(?=\s)"), "you're"),
    (re.compile(r"\bI\s+was\b"), "you were"), (re.compile(r"\bI've\b"), "you've"),
    (re.compile(r"\bI'll\b"), "you'll"), (re.compile(r"\bI'd\b"), "you'd"),
    (re.compile(r"\bI\b"), "you"), (re.compile(r"\b[Mm]yself\b"), "yourself"),
    (re.compile(r"\b[Mm]ine\b"), "yours"), (re.compile(r"\b[Mm]y\b"), "your"), (re.compile(r"\b[Mm]e\b"), "you"),
)


def first_to_second(text: str) -> str:
    """'I'm allergic to kiwi, my doctor told me.' -> 'You're allergic to kiwi, your doctor told you.'"""
    text = text.replace("’", "'")
    for pattern, replacement in _FIRST_PERSON:
        text = pattern.sub(replacement, text)
    return _capitalise_sentences(text)


def _capitalise_sentences(text: str) -> str:
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m[1] + m[2].upper(), text)


def is_assistant_turn(item: MemoryItem) -> bool:
    return item.memory_type == MemoryType.RAW_CHAT.value and item.info.get("role") == "assistant"


def spoken_text(item: MemoryItem) -> str:
    """A raw chat turn without its "Speaker: " label; anything else as stored."""
    if item.memory_type == MemoryType.RAW_CHAT.value:
        speaker = speaker_of(item)
        if speaker and item.memory.startswith(f"{speaker}: "):
            return item.memory[len(speaker) + 2:]
    return item.memory


def statements(text: str) -> str:
    """The sentences of a message that state something: questions and requests dropped."""
    kept = []
    for sentence in SENTENCE_BREAK.split(text.strip()):
        s = sentence.strip()
        if not s or s.rstrip(" )\"'").endswith("?") or (_QUESTION_START.match(s) and not s.endswith((".", "!"))):
            continue
        kept.append(s)
    return " ".join(kept)


def is_question_only(item: MemoryItem) -> bool:
    """A chat turn in which the user only asked something: what they asked is not a fact about them."""
    return item.memory_type == MemoryType.RAW_CHAT.value and not statements(spoken_text(item))


def speaker_of(item: MemoryItem) -> str | None:
    return next((s.role for s in item.sources if s.type == "chat" and s.role), None)


def note_text(item: MemoryItem, user_name: str, *, second_person: bool) -> str:
    """How one memory reads in the prompt. Only the user's own words become "you"; another
    speaker in an imported conversation keeps their name."""
    if item.memory_type == MemoryType.RAW_CHAT.value:
        speaker = speaker_of(item) or user_name
        said = statements(spoken_text(item)) or spoken_text(item)
        if speaker != user_name:
            return f"{speaker} said: {said}"
        return first_to_second(said) if second_person else f"{user_name} said: {said}"
    if not second_person:
        return item.memory
    # Facts MemReader wrote name the user; a note the user typed ("I prefer short answers") says "I".
    return first_to_second(third_to_second(item.memory, user_name))


# A sentence that tells something about the person: it opens with them as the subject.
_TELLING = re.compile(r"^(?:I|I'm|I've|I'd|I was|My)\b", re.IGNORECASE)
# ...unless it asks for something ("I'd like a recipe", "I want ideas") or speaks to the assistant.
_ASKING = re.compile(r"\b(?:I'd like|I would like|I want|I wish|I wonder|I was wondering|I'm looking for|"
                     r"need (?:help|ideas|advice|some|a|an)|you|your|please|help me|tell me)\b", re.IGNORECASE)


def told_about_self(text: str) -> str | None:
    """The message in the second person when every sentence of it tells something about the
    person ("My sister Ana lives in Porto." -> "your sister Ana lives in Porto."), else None: a
    question, a request, or anything addressed to the assistant is not a telling."""
    text = " ".join(text.replace("’", "'").split())
    if not text or len(text) > 400:
        return None
    sentences = [s.strip() for s in SENTENCE_BREAK.split(text) if s.strip()]
    if not 1 <= len(sentences) <= 3 or statements(text) != " ".join(sentences):
        return None
    if not all(_TELLING.match(s) and not _ASKING.search(s) for s in sentences):
        return None
    said = " ".join(s if s.endswith((".", "!")) else s + "." for s in (first_to_second(s) for s in sentences))
    return said[:1].lower() + said[1:]
