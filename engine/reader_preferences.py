"""MemReader's preference rules: preferences however they are said.

The fact rules (engine.reader_rules) catch "I prefer X" and "my favourite X is Y" with a
precise key. People state most preferences otherwise:
- explicit:        "I'd rather go in spring than in peak summer", "Night trains are what I really like"
- dislike:         "Laugh tracks drive me crazy", "Small talk drains me", "I can't stand crowds"
- constraint:      "I'm allergic to wool", "Money's tight, so it has to be free", "I use a wheelchair"
- identity:        "I'm a light sleeper", "I'm the kind of cook who never measures anything"
- implicit choice: "Between the resort and the apartment I went with the apartment again"
- habit:           "I stretch for fifteen minutes before bed every night"
A sentence of the user's with one of these cues becomes a PreferenceMemory: the sentence in
the third person (with the sentence before it when it is short, for context), tagged with
how it was said. Questions, requests to the assistant and hypotheticals are skipped.
"""
from __future__ import annotations

import re

from engine.cube import MemoryType
from engine.reader_rules import _EXPAND, _EXPANSION, Extracted, Utterance, _third
from engine.reader_updates import corrections
from engine.text import SENTENCE_BREAK, keywords

PREF = MemoryType.PREFERENCE.value

_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((style, re.compile(pattern, re.I)) for style, pattern in (
    ("dislike", r"\b(?:hate|hated|can'?t stand|cannot stand|can'?t bear|detest|loathe|dislike|drives? me (?:crazy|nuts|mad"
                r"|up the wall|insane|bonkers)|makes? me (?:miserable|angry|furious|sick|anxious|cranky|want to)"
                r"|stress(?:es)? me out|unbearable|(?:my )?(?:personal )?nightmare|gives? me (?:a )?headaches?"
                r"|drains? me|annoy(?:s|ing)? me|bothers? me|refuse to|not a fan of|put(?:s)? me off|can'?t deal with"
                r"|the worst|sick of|tired of|never again)\b"),
    ("explicit", r"\b(?:prefer|prefers|preferred|(?:i'?d|i would) (?:much )?rather|really (?:like|love|enjoy)|i love"
                 r"|i adore|i enjoy|my favou?rite|my go-to|is my thing|are my thing|what i (?:really )?(?:like|love)"
                 r"|look forward to|can'?t get enough|i'?m (?:really |a (?:big |huge )?)?(?:into|fan of)"
                 r"|matters? (?:a lot |so much )?to me|(?:is|are) important to me|nothing beats|works (?:best )?for me"
                 r"|suits me|is magic|i swear by|i'?m happiest|i only ever)\b"),
    ("constraint", r"\b(?:allergic|allergy|intolerant|intolerance|celiac|coeliac|diabetic|diabetes|asthma|dyslexic"
                   r"|colou?r ?blind|pregnant|wheelchair|seasick|carsick|motion sick|vegan|vegetarian|pescatarian"
                   r"|kosher|halal|bad (?:back|knee|hip|shoulder)|can'?t (?:eat|have|drink|do|lift|afford|install|pay"
                   r"|use|walk|drive|freelance|travel|stand up)|don'?t (?:drink|eat|drive|own|have a)|has to be"
                   r"|have to be|needs? to be|only (?:have|has|reads?|speak|speaks)|no lift|no elevator|budget"
                   r"|money'?s tight|tight on money|on a (?:tight )?budget|prepaid|religious|objection|my visa"
                   r"|i'?m based in|work weekends|newborn|my kids are|stuck with|all i'?ve got is|limited"
                   r"|i can'?t do|i don'?t do|i need (?:a|an|my|to have)|i have to|i must|off the table|not allowed"
                   r"|doctor (?:says|told)|medication)\b"),
    ("identity", r"^(?:(?:honestly|frankly|well|so)[, ]+)?i'?m (?:the (?:kind|type|sort) of|a |an |not (?:a |an |very )?"
                 r"|very |pretty |quite |really |such a |a total |total |completely )"),
    ("implicit_choice", r"\b(?:went (?:with|for)|picked|chose|opted for|decided on|settled on|took the|kept my|skipped"
                        r"|turned down|signed (?:us|me) up|instead|over the|rather than|only do|asked for|stayed"
                        r"|between .{3,60}? and .{3,60}?,? (?:i|we)\b|\bor\b.{3,80}?,? and (?:i|we) \w+"
                        r"|\b(?:again|instead)[.!]?$)"),
    ("habit", r"\b(?:always|every (?:single )?(?:morning|night|evening|day|week|weekend|month|year|time|trip|winter"
              r"|summer|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|each (?:morning|night|day|week)"
              r"|whenever|first thing|once a (?:week|month|year)|before (?:bed|any|every)|ever since"
              r"|pretty much every|most (?:days|mornings|nights|evenings)|never (?:leave|go|buy|skip)|usually"
              r"|as soon as|every time|i never|i tend to|i often|most of the time|by default|without fail)\b"),
))
_SKIP = re.compile(r"^(?:can|could|would|will|should|what|which|who|where|when|why|how|do|does|did|is|are|please|tell"
                   r"|give|help|recommend|suggest|if|maybe|perhaps)\b", re.I)
_SELF = re.compile(r"\b(?:i|i'm|i'd|i've|i'll|me|my|mine|we|we're|our|us)\b", re.I)
# A preference has some content of its own, not just the cue ("I love that!").
_EMPTY = re.compile(r"^(?:i (?:really )?(?:love|like|hate|enjoy) (?:it|that|this|them|you)\b.{0,12})$", re.I)


def style_of(sentence: str) -> str | None:
    if sentence.rstrip().endswith("?") or _SKIP.match(sentence.strip()) or not _SELF.search(sentence):
        return None
    if corrections(sentence):  # "X isn't my favourite any more": current truth handles it (reader_updates)
        return None
    if _EMPTY.match(sentence.strip(" .!")):
        return None
    return next((style for style, cue in _CUES if cue.search(sentence)), None)


def preferences(utterances: list[Utterance], user_name: str | None = None) -> list[Extracted]:
    """Preference items the user states in `utterances` (assistant turns are never read)."""
    out: list[Extracted] = []
    for u in utterances:
        if not u.is_user or not u.text.strip():
            continue
        name = user_name or ("The user" if u.speaker.lower() in ("", "you", "user", "me") else u.speaker)
        sentences = [s.strip() for s in SENTENCE_BREAK.split(u.text.replace("’", "'")) if s.strip()]
        for i, sentence in enumerate(sentences):
            style = style_of(sentence)
            if style is None:
                continue
            # A short statement keeps the sentence before it: "The Louvre was shoulder to shoulder. I
            # really can't stand crowds." says more than the last sentence alone.
            said = sentence if i == 0 or len(sentence.split()) > 8 else f"{sentences[i - 1]} {sentence}"
            said = _EXPAND.sub(lambda m: f"{m[1]} {_EXPANSION[m[2].lower()]}", said)  # "I'm" -> "I am"
            text = re.sub(r"\s+", " ", _third(said, name)).strip()
            if len(keywords(text)) < 2:
                continue
            # Specific enough that two different preferences never share a key (a shared key versions).
            head = " ".join(keywords(sentence)[:6])
            out.append(Extracted(key=f"preference: {style}: {head}", memory=text[:1].upper() + text[1:],
                                 memory_type=PREF, confidence=0.7, tags=("preference", style), event_time=None,
                                 message_ids=(u.message_id,)))
    return out
