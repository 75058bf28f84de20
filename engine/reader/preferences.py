"""MemReader's preference rules: preferences however they are said.

The fact rules (engine.reader.rules) catch "I prefer X" and "my favourite X is Y" with a
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
from collections.abc import Callable

from memdesk.engine.cube import MemoryType
from memdesk.engine.reader.rules import _EXPAND, _EXPANSION, Extracted, Utterance, _third
from memdesk.engine.reader.updates import corrections
from memdesk.engine.text import SENTENCE_BREAK, keywords

PREF = MemoryType.PREFERENCE.value

_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((style, re.compile(pattern, re.I)) for style, pattern in (
    ("dislike", r"\b(?:hate|hated|can'?t stand|cannot stand|can'?t bear|detest|loathe|dislike"
                r"|drives? me (?:crazy|nuts|mad"
                r"|up the wall|insane|bonkers)|makes? me (?:miserable|angry|furious|sick|anxious|cranky|want to)"
                r"|stress(?:es)? me out|unbearable|(?:my )?(?:personal )?nightmare|gives? me (?:a )?headaches?"
                r"|drains? me|annoy(?:s|ing)? me|bothers? me|refuse to|not a fan of|put(?:s)? me off|can'?t deal with"
                r"|the worst|sick of|tired of|never again|hard no|not for me|not my thing"
                r"|(?:gross|freak|stress|wear|put|throw|turn|bore)"
                r"(?:s|es)? me (?:out|off|down)|(?:bugs|irritates|bores|exhausts|overwhelms) me|makes? me nervous"
                r"|can'?t do (?:\w+ )?(?:\w+s|it|that)|(?:is|are) (?:a )?no-go|i avoid|i steer clear)\b"),
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
                   r"|doctor (?:says|told)|medication|can only"
                   r"|can'?t (?!wait|believe|remember|thank|tell|decide|find|stop|help)\w+"
                   r"|only (?:use|eat|get|do|work|travel|afford|go|have|wear)"
                   r"|(?:doesn'?t|don'?t|won'?t) work for me|put me on|my (?:doctor|gp|cardiologist|physio|therapist)"
                   r"|my \w+ (?:is|are) (?:only|just|too|almost|nearly|tiny|small)|so no \w+"
                   r"|i have (?:a |an )?(?:\w+ )?(?:condition|disorder|syndrome|sensitive skin|adhd|autism|asthma"
                   r"|arthritis|migraines?|skin|stomach|back|knees?)"
                   r"|impaired|disabled|disability|hard of hearing|deaf|blind|second language|paying off|i rent)\b"),
    ("identity", r"^(?:(?:honestly|frankly|well|so)[, ]+)?i'?m (?:the (?:kind|type|sort) of|a |an "
                 r"|not (?:a |an |very )?"
                 r"|very |pretty |quite |really |such a |a total |total |completely )"),
    ("implicit_choice", r"\b(?:went (?:with|for)|picked|chose|opted for|decided on|settled on|took the|kept my|skipped"
                        r"|turned down|signed (?:us|me) up|instead|over the|rather than|only do|asked for|stayed"
                        r"|between .{3,60}? and .{3,60}?,? (?:i|we)\b|\bor\b.{3,80}?,? and (?:i|we) \w+"
                        r"|\b(?:again|instead)[.!]?$|passed on|put back|switched|swapped|went back to"
                        r"|kept (?:just|only)|pushed for"
                        r"|same as (?:last time|always|usual)|ditched|traded)"),
    ("habit", r"\b(?:always|every (?:single )?(?:morning|night|evening|day|week|weekend|month|year|time|trip|winter"
              r"|summer|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|each (?:morning|night|day|week)"
              r"|whenever|first thing|once a (?:week|month|year)|before (?:bed|any|every)|ever since"
              r"|pretty much every|most (?:days|mornings|nights|evenings)|never (?:leave|go|buy|skip)|usually"
              r"|as soon as|every time|i never|i tend to|i often|most of the time|by default|without fail"
              r"|every (?:\w+ )?(?:\w+ )?(?:place|season|account|purchase|order|trip|year|january|new year|weekday)"
              r"|all day|each way|any (?:\w+ )?(?:time|trip|get-together|chance)|the morning after)\b"),
))
_SKIP = re.compile(r"^(?:can|could|would|will|should|what|which|who|where|why|how|do|does|did|is|are|please|tell"
                   r"|give|help|recommend|suggest|if|maybe|perhaps"
                   r"|when(?=\s+(?:is|are|was|were|do|does|did|will|can|should|would)\b))\b", re.I)
# Said in other ways, a lasting trait is still "I'm <what I am>" anywhere in the sentence ("Let's be
# real, I'm a lazy cook", "I'm frugal by nature", "I'm Muslim"), or a first-person verb in the present
# simple ("I rent", "I work four days a week", "I run a timer all day"). Passing states and one-off
# events are not: "I'm at the airport", "I'm so tired today", "I went bowling".
_I_AM = re.compile(r"\bi'?m (?:(?:very|pretty|quite|really|so|super|totally|completely|fairly|extremely|kind of"
                   r"|sort of|by nature|basically|definitely|honestly|such)\s+)*(?P<what>(?:an?|the)\s+[\w-]+|[\w-]+)",
                   re.I)
_PASSING = frozenset(
    "at in on off out about back home here there just still now not going sorry sure glad happy afraid tired "
    "exhausted excited late early ready busy free stuck lost confused curious new done fine ok okay good great "
    "thinking wondering trying looking planning hoping heading leaving working writing reading starting finishing "
    "sick bored hungry thirsty cold hot worried nervous stressed upset annoyed angry sad so also only "
    "proud thrilled grateful thankful stoked pumped honored honoured blessed lucky impressed amazed touched relieved "
    "interested keen eager gonna almost sold totally glad-to all-set all-good a-bit a-little a-few a-couple a-lot "
    "a-while a-moment a-second".split())
_PRESENT = re.compile(r"(?:^|[,;:]\s*|\b(?:so|and|but|because)\s+)(?:we|i)\s+(?:(?:basically|usually|mostly|generally"
                      r"|only|just|still|also|really|pretty much|tend to|like to)\s+)*(?P<verb>[a-z]+)\b", re.I)
_NOT_HABIT = frozenset(
    "am was were have had has do did does don't can can't could couldn't would will won't should shall may might "
    "must need want think guess wonder hope feel know mean suppose believe wish see agree bet say remember "
    "forget understand promise swear love hate like prefer just went got made took saw came bought found told "
    "said thought felt left met ran ate drank wrote gave kept lost paid sent spent sat slept won began brought "
    "caught chose drove flew forgot heard held hung knew led lent rode rang rose sang sold shot shut sank stood "
    "stole stuck struck swam taught tore threw understood woke wore meant let put read set cut hit quit became".split())
_TRANSIENT = re.compile(r"\b(?:today|tonight|tomorrow|yesterday|this (?:morning|afternoon|evening|week|weekend)"
                        r"|next (?:week|month|year|\w+day)|last (?:night|week|weekend)|right now|just now"
                        r"|at the moment|ago)\b", re.I)


def _lasting(sentence: str) -> str | None:
    """The style of a self-description said without a cue word, or None for a passing state."""
    if _TRANSIENT.search(sentence):
        return None
    for m in _I_AM.finditer(sentence):
        what = m["what"].lower().replace(" ", "-")
        if what not in _PASSING and not what.endswith("ing") and what.split("-")[-1] not in _PASSING:
            return "identity"
    for m in _PRESENT.finditer(sentence):
        verb = m["verb"].lower()
        if verb not in _NOT_HABIT and not verb.endswith("ed") and len(verb) > 2:
            return "habit"
    return None
_SELF = re.compile(r"\b(?:i|i'm|i'd|i've|i'll|me|my|mine|we|we're|our|us)\b", re.I)
# A preference has some content of its own, not just the cue ("I love that!").
_EMPTY = re.compile(r"^(?:i (?:really )?(?:love|like|hate|enjoy) (?:it|that|this|them|you)\b.{0,12})$", re.I)


def _said_of_self(sentence: str) -> bool:
    """A statement of the user's about themselves: not a question, a request or a correction."""
    if sentence.rstrip().endswith("?") or _SKIP.match(sentence.strip()) or not _SELF.search(sentence):
        return False
    if corrections(sentence):  # "X isn't my favourite any more": current truth handles it (reader_updates)
        return False
    return not _EMPTY.match(sentence.strip(" .!"))


def style_of(sentence: str, cue_only: bool = False) -> str | None:
    if not _said_of_self(sentence):
        return None
    cued = next((style for style, cue in _CUES if cue.search(sentence)), None)
    return cued if cued or cue_only else _lasting(sentence)


def preferences(utterances: list[Utterance], user_name: str | None = None,
                lasting: Callable[[list[str]], list[bool]] | None = None,
                with_facts: frozenset[str] = frozenset()) -> list[Extracted]:
    """Preference items the user states in `utterances` (assistant turns are never read).
    `lasting` (engine.search.disclosures) judges by meaning the statements about themselves that no cue
    word marks; messages in `with_facts` (ids) already gave a fact ("I live in Oslo"), and only a
    cue word makes a preference of them too."""
    said_by = [(u, [s.strip() for s in SENTENCE_BREAK.split(u.text.replace("’", "'")) if s.strip()])
               for u in utterances if u.is_user and u.text.strip()]
    styles = {(n, i): style_of(sentence, cue_only=u.message_id in with_facts)
              for n, (u, sentences) in enumerate(said_by) for i, sentence in enumerate(sentences)}
    if lasting is not None:
        unmarked = [(key, said_by[key[0]][1][key[1]]) for key, style in styles.items() if style is None
                    and said_by[key[0]][0].message_id not in with_facts
                    and _said_of_self(said_by[key[0]][1][key[1]]) and not _TRANSIENT.search(said_by[key[0]][1][key[1]])]
        for (key, _), judged in zip(unmarked, lasting([sentence for _, sentence in unmarked]) if unmarked else []):
            styles[key] = "stated" if judged else None
    out: list[Extracted] = []
    for n, (u, sentences) in enumerate(said_by):
        name = user_name or ("The user" if u.speaker.lower() in ("", "you", "user", "me") else u.speaker)
        for i, sentence in enumerate(sentences):
            style = styles[(n, i)]
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
