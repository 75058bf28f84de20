"""MemReader's deterministic half: chat turns and notes -> durable memory items, no model.

Regexes only (it runs on every user turn), tuned for precision: a wrong memory is worse than a missing
one. Rules are anchored at the start of first-person clauses; questions, hypotheticals, assistant turns
and plans are skipped. A memory is the user's words in the third person with relative times made
absolute; `key` names subject + attribute, so a later value for the same key reads as an update.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import NamedTuple

from memdesk.engine.cube import MemoryType
from memdesk.engine.search.timeparse import TimeRange, resolve_event_time
from memdesk.engine.text import SENTENCE_BREAK, normalise

__all__ = ["Utterance", "Extracted", "extract"]

USER, PREF, LONG = MemoryType.USER.value, MemoryType.PREFERENCE.value, MemoryType.LONG_TERM.value
EXPLICIT, IMPLICIT, FACT, GUESS, EVENT = 0.9, 0.6, 0.9, 0.8, 0.85


@dataclass(frozen=True)
class Utterance:
    text: str
    speaker: str  # display name, e.g. "Caroline" or "You"
    timestamp: datetime  # when it was said (aware, or naive = UTC)
    message_id: str
    is_user: bool = True  # statements by the assistant are never extracted as user facts


@dataclass(frozen=True)
class Extracted:
    key: str  # normalised subject + attribute, for conflict detection
    memory: str  # third person, pronouns resolved
    memory_type: str  # an engine.cube.MemoryType value
    confidence: float  # explicit statements 0.9, implicit preferences 0.6
    tags: tuple[str, ...]
    event_time: datetime | None  # absolute, when the sentence names a time
    message_ids: tuple[str, ...]
    polarity: str = "+"  # "+" likes/does, "-" dislikes/doesn't


class _Hit(NamedTuple):
    key: str
    memory_type: str
    confidence: float
    tags: tuple[str, ...]
    polarity: str = "+"
    memory: str | None = None  # None: the clause itself, in the third person
    timed: bool = True  # whether a time named in the clause dates this memory


# --- cleaning and splitting ------------------------------------------------------------------------
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D\u2190-\u21FF\u2B00-\u2BFF]+"
                    r"|(?<!\w)(?:[:;=]-?[)(DPp]|<3|xD|\^_\^)(?!\w)")
_LAUGH = re.compile(r"\b(?:lol|lmao|rofl|haha+|hehe+)\b[!.]*", re.I)
_FILLER = re.compile(
    r"^(?:(?:oh|ooh|yeah|yea|yep|yes|well|wow|hey|hi|hmm+|um+|uh+|ah+|aw+|so|ok|okay|honestly|actually|btw"
    r"|by the way|anyway|anyways|also|and|but|plus|omg|ugh|man|sure|right|totally|thanks|thank you"
    r"|you know|to be honest|tbh|fun fact|fyi|just so you know|guess what)\b[\s,!.:;-]*)+", re.I)
_HYPOTHETICAL = re.compile(
    r"^(?:if|would|maybe|perhaps|hopefully|suppose|imagine|unless|when|whenever|what if|i wish|i wonder"
    r"|i might|i may|i could|i should|i guess|i think|i hope|i bet|i suppose|i feel like)\b", re.I)
_VOCATIVE = re.compile(r"^[A-Z][a-z]+,\s+(?=[Ii]\b)")  # "Mel, I love pottery"
_CLAUSE = re.compile(r"\s*;\s*|,?\s+(?:and|but|so|plus|though)\s+(?=(?:i|my)\b)", re.I)
_TAIL = re.compile(r",\s+(?:it|that|this|which|they)(?:'s|'re|\s+is|\s+are|\s+was)\b.*$", re.I)
_EXPAND = re.compile(r"(?<![\w'])([Ii])'(m|ve|ll|d)\b")
_EXPANSION = {"m": "am", "ve": "have", "ll": "will", "d": "would"}


def _clauses(text: str) -> Iterator[str]:
    """First-person statement clauses, fillers trimmed and "I'm" spelt "I am"."""
    text = _LAUGH.sub("", _EMOJI.sub(" ", text.replace("’", "'").replace("‘", "'")))
    for sentence in SENTENCE_BREAK.split(text):
        sentence = sentence.strip(" \t\"'")
        if not sentence or sentence.rstrip(" )\"'").endswith("?"):
            continue
        for clause in _CLAUSE.split(sentence.strip(" .!…")):
            clause = _VOCATIVE.sub("", _FILLER.sub("", clause)).strip(" ,.!…-")
            if clause and not _HYPOTHETICAL.match(clause):
                clause = _EXPAND.sub(lambda m: f"{m[1]} {_EXPANSION[m[2].lower()]}", clause)
                yield _TAIL.sub("", clause)


# --- third person ----------------------------------------------------------------------------------
_ADV = (r"really|truly|absolutely|totally|just|also|genuinely|honestly|seriously|definitely|still|so"
        r"|actually|personally|kind of|sort of|always|generally|usually|much|now|currently|recently"
        r"|finally|officially|even")
_VERBS = ("live work like love enjoy adore hate dislike detest loathe prefer want need own eat come go teach "
          "study know feel think get make find keep play write use see miss watch try wish hope mean say read "
          "drink buy take check clear run walk cook stretch switch throw bring split end skip pick choose order "
          "avoid carry spend save need")
_CONJ = {"am": "is", "have": "has", "do": "does", "don't": "doesn't", "haven't": "hasn't"} | {
    v: v[:-1] + "ies" if v[-1] == "y" and v[-2] not in "aeiou"
    else v + "es" if v.endswith(("s", "sh", "ch", "o")) else v + "s" for v in _VERBS.split()}
_CONJ_RE = re.compile(rf"(?<![\w'-])([Ii])((?:\s+(?:{_ADV}|never))*)\s+("
                      + "|".join(sorted(map(re.escape, _CONJ), key=len, reverse=True)) + r")(?![\w'-])",
                      re.I)
_PRONOUN = re.compile(r"(?<![\w'.-])(?:(I|i)|([Mm]y|[Mm]ine)|([Mm]e|[Mm]yself))(?![\w'-]|\.\w)")


def _third(text: str, name: str) -> str:
    """I -> name, my -> name's, me/myself -> name; "I love" -> "name loves"."""
    text = _CONJ_RE.sub(lambda m: f"{m[1]}{m[2]} {_CONJ[m[3].lower()]}", text)
    return _PRONOUN.sub(lambda m: (name if m.start() == 0 or name != "The user" else "the user")
                        + ("'s" if m[2] else ""), text)


# --- time ------------------------------------------------------------------------------------------
_HEDGE = re.compile(r"\b(?:about|around|roughly|approximately|almost|nearly|some|like)\s+$", re.I)
_MONTHS = "January February March April May June July August September October November December".split()


def _when(tr: TimeRange, clause: str) -> tuple[int, str] | None:
    """(start, absolute phrase) to put over a relative time expression; None keeps the words as said."""
    low, s, e = tr.text.lower(), tr.start, tr.end
    if re.search(r"\b(?:19|20)\d\d\b", low) or low.split()[0] in ("since", "until", "by", "from"):
        return None
    if s.time() != e.time() or s.hour or s.minute:
        return None  # a rolling window ("the past week"), not calendar days
    day, days = f"{s.day} {_MONTHS[s.month - 1]} {s.year}", (e.date() - s.date()).days
    phrase = ("on " + day if days == 1 else "on the weekend of " + day if days == 2 and s.weekday() == 5
              else "in the week of " + day if days == 7 and s.weekday() == 0
              else f"in {_MONTHS[s.month - 1]} {s.year}" if s.day == 1 and e.day == 1 and days <= 31
              else f"in {s.year}" if (s.month, s.day, e.month, e.day, e.year) == (1, 1, 1, 1, s.year + 1)
              else None)
    start = tr.span[0]
    if phrase and (hedge := _HEDGE.search(clause, 0, start)):  # "about 5 years ago" -> "around 2018"
        start, phrase = hedge.start(), "around " + phrase.split(" ", 1)[1]
    elif phrase and re.search(r"\b(?:on|in|during|at|of)\s+$", clause[:start], re.I):
        phrase = phrase.split(" ", 1)[1]  # "on 7 May" -> "on 7 May 2023", not "on on ..."
    return (start, phrase) if phrase else None


# --- objects and keys ------------------------------------------------------------------------------
_CUT = re.compile(
    r"\s*[,;:(]|\s+[-–—]\s|\s+(?:because|but|since|when|whenever|while|though|although|if|as|so|than"
    r"|rather than|instead of|over|except|especially|in|on|at|with|during|for|from|after|before|about"
    r"|and (?=(?:it|i|we|they|he|she|my|that|this|then|so|you)\b))\b", re.I)
_TRAILING = re.compile(r"(?:\s+(?:so much|a lot|too|as well|very much|these days|nowadays|anymore|now"
                       r"|though|honestly|really|more|most|ever|itself|themselves))+$", re.I)
_DET = re.compile(r"^(?:(?:the|a|an|some|all|any|my|our)\s+)+", re.I)
_DEICTIC = frozenset("you your yours it that this those these them him her they u ur ya".split())
_BAD_FIRST = frozenset("how what when where why who which so such being seeing hearing my our his their "
                       "its everything anything nothing something both each myself not no".split())
_BAD_HEAD = frozenset("idea way sound vibe vibes look feeling energy thought photo photos pic pics "
                      "picture pictures one ones part thing things bit moment time".split())
_LIGHT = re.compile(r"(?:to\s+)?(?:go|get|do|have|make|take)|going|getting|doing|having|making|taking", re.I)
_BAD_TO = frozenset("think say believe hear see know imagine help chat talk".split())


def _head(obj: str, words: int = 5) -> str:
    """The normalised head of an object phrase: 'the mountains in spring' -> 'mountains'."""
    s = _CUT.split(obj, 1)[0].strip()
    if _LIGHT.fullmatch(s):  # "going on road trips" -> not just "going"
        s = re.split(r"\s*[,;:(]|\s+(?:[-–—]|because|but|since|when|while|and|with)\s", obj, maxsplit=1)[0]
    s = _DET.sub("", _TRAILING.sub("", s))
    return " ".join(normalise(s).split()[:words])


def _bad_object(obj: str) -> bool:
    """Pronouns and chit-chat objects ("I love that!", "I love the photos") say nothing durable."""
    words = re.findall(r"[\w'-]+", obj.lower())
    if (not words or _DEICTIC.intersection(words) or words[0] in _BAD_FIRST
            or (words[0] == "to" and (len(words) < 2 or words[1] in _BAD_TO))):
        return True
    head = _head(obj).split()
    return not head or head[-1] in _BAD_HEAD or head[0] in _BAD_HEAD


def _proper(obj: str) -> bool:
    """A place or employer: a capitalised name or a noun phrase, not "fear" or "night"."""
    return bool(re.match(r"(?:[A-Z0-9]|(?:a|an|the)\s)", obj.strip()))


# --- patterns (matched case-insensitively against clauses whose "I'm" reads "I am") -----------------
_I = rf"^i\s+(?:(?:{_ADV}|do)\s+)*"
_IM = (r"^i\s+am\s+(?:(?:also|now|still|actually|really|definitely|totally|seriously|kind of|so|very"
       r"|super|severely|mildly|highly|currently)\s+)*")
_LEN = (r"(?P<len>short|shorter|brief|briefer|concise|succinct|detailed|long|longer|in-depth|thorough"
        r"|simple|simpler|step-by-step)")
_ANS = r"(?P<ans>answers?|replies|reply|responses?|explanations?|summaries)"
_NAME = r"(?-i:[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)"
_REL = (r"(?P<rel>best\s+friend|boyfriend|girlfriend|grandmother|grandfather|grandma|grandpa|mother"
        r"|father|mom|mum|dad|sister|brother|wife|husband|partner|fianc[eé]e?|son|daughter|friend|boss"
        r"|colleague|coworker|co-worker|roommate|aunt|uncle|cousin|niece|nephew|kids|children|parents"
        r"|dog|cat|puppy|kitten)")
_RADJ = r"(?:(?:older|younger|little|big|baby|twin|eldest|oldest|youngest|new|old)\s+)?"
_PROF = (r"(?:teacher|nurse|doctor|physician|surgeon|engineer|developer|programmer|designer|architect"
         r"|lawyer|attorney|accountant|student|chef|writer|author|journalist|artist|painter|musician"
         r"|photographer|scientist|researcher|professor|lecturer|pharmacist|dentist|therapist"
         r"|counsell?or|psychologist|social worker|pilot|firefighter|police officer|paramedic|electrician"
         r"|plumber|carpenter|mechanic|farmer|consultant|manager|analyst|librarian|veterinarian|vet"
         r"|barista|waiter|waitress|cashier|translator|editor|tutor|entrepreneur|freelancer|banker"
         r"|receptionist|secretary|intern|midwife|pastor|soldier|judge)")
_NOT_ROLE = frozenset("terrible good great bad awful decent amazing horrible better worse big huge proud "
                      "lousy natural born wannabe aspiring fake bit real total".split())
_PETS = frozenset("dog dogs cat cats puppy puppies kitten kittens rabbit rabbits hamster hamsters parrot "
                  "parrots horse horses bird birds fish turtle turtles".split())


def _rel_tags(rel: str, attr_tag: str) -> tuple[str, ...]:
    kind = ("pets" if rel in _PETS else "work" if rel in ("boss", "colleague", "coworker", "co-worker")
            else "social" if rel in ("friend", "best friend", "roommate") else "family")
    return (kind,) if kind == attr_tag else (kind, attr_tag)


_STYLE = re.compile(
    r"^(?:i(?:\s+would\s+(?:like|prefer)|\s+(?:(?:really|just|also|much|generally|always)\s+)*"
    r"(?:want|need|like|prefer))\s+(?:you\s+to\s+(?:give|write|keep|make)\s+(?:me\s+)?)?"
    r"|please\s+(?:always\s+)?(?:give|write)\s+(?:me\s+)?)(?:(?:more|much|really|very|nice)\s+)*"
    + _LEN + r"\s+(?:(?:and|,)\s*[\w-]+\s+)?" + _ANS + r"\b"
    r"|^(?:please\s+)?(?:always\s+)?keep\s+(?:your|the|my)\s+" + _ANS.replace("ans>", "ans2>")
    + r"\s+(?:(?:very|really|nice and|more|fairly)\s+)*" + _LEN.replace("len>", "len2>") + r"\b", re.I)
_STYLE_WORDS = (re.compile(rf"\b{_LEN}\b", re.I), re.compile(rf"\b{_ANS}\b", re.I))
# "Please keep your replies brief", "Just give me the short version, always": said anywhere in the clause.
_BREVITY = re.compile(r"^(?=.*\b(?:short|shorter|brief|briefer|concise|succinct|to the point)\b)"
                      r"(?=.*\b(?:answers?|repl(?:y|ies)|responses?|version|explanations?)\b)"
                      r"(?=.*\b(?:prefer|like|want|please|keep|give me|always|rather)\b)(?!.*\b(?:not|don't|never)\b)",
                      re.I)
_DIRECTIVE = re.compile(r"^please,?\s+(?P<mode>always|never|don't ever|do not ever)\s+(?P<act>.+)$"
                        r"|^(?P<mode2>always|never)\s+(?P<act2>.+?),?\s+please$", re.I)
_DONT = re.compile(_I + r"(?P<neg>don't|do\s+not|cannot|can't|can\s+not)\s+(?:(?:really|much|particularly"
                   r"|even)\s+)*(?:like|enjoy|love|care\s+for|stand|bear)\s+(?P<obj>.+)$", re.I)
_LIKE = re.compile(_I + r"(?P<verb>like|love|enjoy|adore|hate|dislike|detest|loathe)\s+(?P<obj>.+)$", re.I)
_FAN = re.compile(_IM + r"(?P<neg>not\s+)?(?:(?:really|much\s+of|a|an|the|big|huge|massive|great|real"
                  r"|biggest)\s+)*fan\s+of\s+(?P<obj>.+)$", re.I)
_PREFER = re.compile(_I + r"(?:would\s+)?prefer\s+(?P<obj>.+?)(?:\s+(?:to|over|rather\s+than|instead\s+of)"
                     r"\s+.+)?$|^i\s+would\s+(?:much\s+)?rather\s+(?!not\b)(?P<obj2>.+?)(?:\s+than\s+.+)?$",
                     re.I)
_CHOICE = re.compile(
    r"^(?:i\s+will\s+(?:take|go\s+with|choose|pick|have)|let's\s+go\s+with|let\s+us\s+go\s+with"
    r"|i\s+(?:(?:just|finally|eventually|ended\s+up|actually)\s+)*(?P<verb>chose|picked|booked|went\s+with"
    r"|opted\s+for|decided\s+on|ordered|selected|settled\s+on|choosing|picking|booking|going\s+with))"
    r"\s+(?P<obj>the\s+(?:[\w'-]+\s+){0,4}?[\w'-]+)(?:\s+(?:instead|then|please|for\s+now|after\s+all))?$",
    re.I)
_DIET = re.compile(r"^i\s+(?:am|have\s+been)\s+(?:(?:also|now|still|actually|been)\s+)*(?:an?\s+)?"
                   r"(?:(?:strict|full|fully|mostly|lifelong)\s+)?(?P<diet>vegetarian|vegan|pescatarian"
                   r"|pescetarian|keto|gluten-free|kosher|halal|plant-based)"
                   r"(?=\s*$|\s*,|\s+(?:now|for|since|these\s+days|too|as\s+well)\b)", re.I)
_NO_EAT = re.compile(_I + r"(?:don't|do\s+not|never)\s+eat\s+(?P<obj>meat|red\s+meat|pork|beef|fish|seafood"
                     r"|shellfish|dairy|eggs|gluten|sugar|chicken)\s*$", re.I)
_ALLERGY = re.compile(_IM + r"allergic\s+to\s+(?P<obj>.+)$", re.I)
_CONDITION = re.compile(_IM + r"(?:an?\s+)?(?P<cond>lactose[ -]intolerant|gluten[ -]intolerant|celiac"
                        r"|coeliac|diabetic|asthmatic|colou?r[ -]blind)\s*$", re.I)
_RVERB = (r"(?P<verb>lives\s+in|lives\s+near|is\s+living\s+in|moved\s+(?:back\s+)?to|has\s+moved\s+to"
          r"|relocated\s+to|works\s+(?:at|for)|works\s+as|got\s+a\s+(?:new\s+)?job\s+(?:at|with)"
          r"|started\s+(?:a\s+new\s+job|working)\s+at|is\s+an?)")
_RSTEP = r"\s+(?:(?:just|recently|finally|also|still|now|actually|currently)\s+)*" + _RVERB
_RELATION = re.compile(r"^my\s+" + _RADJ + _REL + r"(?:,?\s+(?P<name>" + _NAME + r"),?)?" + _RSTEP
                       + r"\s+(?P<obj>.+)$|^(?P<name2>" + _NAME + r"),\s+my\s+" + _RADJ
                       + _REL.replace("rel>", "rel2>") + r"," + _RSTEP.replace("verb>", "verb2>")
                       + r"\s+(?P<obj2>.+)$", re.I)
_PROF_RE = re.compile(r"^(?P<pre>(?:[\w-]+\s+){0,2}?)" + _PROF + r"s?\b", re.I)
_PROFILE = (r"(?P<attr>(?:full\s+|first\s+|last\s+|middle\s+|nick)?name|birthday|email(?:\s+address)?"
            r"|phone\s+number|address|home\s*town|blood\s+type|(?:zodiac|star)\s+sign|native\s+language"
            r"|first\s+language|mother\s+tongue|pronouns|(?P<fav>favou?rite|fav)\s+[\w-]+(?:\s+[\w-]+)?)")
_MY_IS = re.compile(r"^my\s+(?:" + _RADJ + _REL + r"(?:\s+(?P<name>" + _NAME + r"))?'s\s+)?" + _PROFILE
                    + r"\s+(?:is|are)\s+(?P<val>.+)$|^my\s+" + _RADJ + _REL.replace("rel>", "rel2>")
                    + r"\s+is\s+(?:called|named)\s+(?P<val2>" + _NAME + r")$", re.I)
_BAD_VALUE = re.compile(r"^(?:not|so|very|really|too|kind|pretty|actually|probably|going|being|like|still"
                        r"|also|no|something|a\s+secret|hard|tough|the\s+same)\b", re.I)
_HAVE = re.compile(
    r"^i\s+(?:(?:also|now|still|actually)\s+)*(?:have(?:\s+got)?|own)\s+(?:a|an|one|two|three|four|five|six"
    r"|seven|eight|nine|ten|\d{1,2})\s+(?:(?:little|young|beautiful|adorable|lovely|wonderful|amazing|sweet"
    r"|older|younger|grown|new|rescue|pet|[a-z]+-year-old)\s+)*(?P<noun>kids?|children|child|sons?"
    r"|daughters?|dogs?|cats?|puppy|puppies|kittens?|grandchildren|grandkids|siblings?|brothers?|sisters?"
    r"|rabbits?|hamsters?|parrots?|horses?|birds?|fish|turtles?)(?:\s+(?:named|called)\s+(?P<names>"
    + _NAME + r"(?:(?:,\s*|,?\s+and\s+)" + _NAME + r")*))?(?=\s*$|\s*,|\s+(?:who|and|at|now|too)\b)", re.I)
_HOME = re.compile(_I + r"(?P<verb>live\s+in|live\s+near|am\s+living\s+in|moved\s+(?:back\s+)?to"
                   r"|relocated\s+to|have\s+moved\s+to|am\s+(?:originally\s+)?from|come\s+from"
                   r"|grew\s+up\s+in)\s+(?P<obj>.+)$", re.I)
_WORK = re.compile(_I + r"(?:am\s+)?(?P<verb>work(?:ing)?\s+(?:at|for)|work(?:ing)?\s+as"
                   r"|started\s+(?:a\s+(?:new\s+)?job|working)\s+(?:at|with|as)"
                   r"|got\s+a\s+(?:new\s+)?job\s+(?:at|with|as))\s+(?P<obj>.+)$", re.I)
_ROLE = re.compile(r"^i\s+am\s+(?:(?:now|currently|also|actually|still)\s+)*an?\s+(?P<obj>.+)$", re.I)
_EVENT = re.compile(_I + r"(?P<verb>went\s+to|went\s+on|visited|started|finished|joined|adopted|attended"
                    r"|completed|graduated\s+from|signed\s+up\s+for|took\s+up|got\s+back\s+from"
                    r"|travell?ed\s+to|flew\s+to|volunteered\s+at|participated\s+in|took\s+part\s+in"
                    r"|bought|painted)\s+(?P<obj>.+)$", re.I)
_BAD_EVENT = frozenset("bed sleep work school home there here bathroom toilet it that this".split())


# --- rules: (pattern, handler(match, clause, name, time) -> _Hit | None); the first hit wins ------------
_PREF_TAGS, _DIET_TAGS = ("preference", "explicit"), ("preference", "explicit", "diet")
_HATE = ("hate", "dislike", "detest", "loathe")


def _style(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit:
    length, answers = (m["len"] or m["len2"]).lower(), (m["ans"] or m["ans2"]).lower()
    return _Hit("preference: answer style", PREF, EXPLICIT, _PREF_TAGS,
                memory=f"{name} prefers {length} {answers}", timed=False)


def _directive(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit:
    mode, act = (m["mode"] or m["mode2"]).lower(), m["act"] or m["act2"]
    mode = "always" if mode == "always" else "never"
    key = "answer style" if all(r.search(act) for r in _STYLE_WORDS) else " ".join(normalise(act).split()[:6])
    act = re.sub(r"\byour\b", "its", re.sub(r"\byourself\b", "itself", act, flags=re.I), flags=re.I)
    return _Hit(f"preference: {key}", PREF, EXPLICIT, _PREF_TAGS, "+" if mode == "always" else "-",
                memory=f"{name} wants the assistant to {mode} {_third(act, name)}", timed=False)


def _like(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit | None:
    groups = m.groupdict()
    group = "obj" if groups["obj"] else "obj2"
    obj = c[m.start(group):] if re.match(r"to\s", m[group], re.I) else m[group]  # "prefer to go to X"
    if _bad_object(obj):
        return None
    negative = groups.get("neg") or (groups.get("verb") or "").lower() in _HATE
    return _Hit("preference: " + _head(obj), PREF, EXPLICIT, _PREF_TAGS, "-" if negative else "+",
                timed=False)


def _choice(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit | None:
    verb = normalise(m["verb"] or "")
    verb = "booked" if verb.startswith("book") else "ordered" if verb == "ordered" else "chose"
    bare = re.sub(r"\s+(?:one|option)$", "", m["obj"], flags=re.I)
    if _bad_object(bare) or _CUT.search(bare):  # "the dog for a walk" is an errand, not a choice
        return None
    return _Hit("preference: " + _head(bare), PREF, IMPLICIT, ("preference", "implicit"),
                memory=f"{name} {verb} {_third(m['obj'], name)}", timed=False)


def _relation(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit | None:
    rel, who, obj = normalise(m["rel"] or m["rel2"]), m["name"] or m["name2"], m["obj"] or m["obj2"]
    verb = normalise(m["verb"] or m["verb2"])
    if verb.startswith(("lives", "is living", "moved", "has moved", "relocated")):
        attr, tag = ("location", "location") if _proper(obj) else ("", "")
    elif verb.startswith("is a") or verb.endswith(" as"):
        p = _PROF_RE.match(re.sub(r"^an?\s+", "", obj, flags=re.I))
        attr, tag = (("role", "work") if verb.endswith(" as") or (
            p and not _NOT_ROLE.intersection(p["pre"].lower().split())) else ("", ""))
    else:
        attr, tag = ("employer", "work") if _proper(obj) else ("", "")
    if not attr:
        return None
    return _Hit(f"{rel} {who} / {attr}" if who else f"{rel} / {attr}", USER, FACT, _rel_tags(rel, tag))


def _my_is(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit | None:
    if m["val2"]:
        return _Hit(f"{normalise(m['rel2'])} / name", USER, FACT, _rel_tags(normalise(m["rel2"]), "personal"),
                    timed=False)
    val, attr, rel = m["val"], normalise(m["attr"]), normalise(m["rel"] or "")
    if _BAD_VALUE.match(val) or _DEICTIC.intersection(re.findall(r"[\w']+", val.lower())):
        return None
    if m["fav"]:
        if attr.split()[-1] in _BAD_HEAD or rel:
            return None
        attr = re.sub(r"^(?:favou?rite|fav)\b", "favorite", attr)
        return _Hit(f"preference: {attr}", PREF, EXPLICIT, _PREF_TAGS, timed=False)
    owner = f"{rel} {m['name']} / " if m["name"] else f"{rel} / " if rel else ""
    return _Hit(owner + attr, USER, FACT, _rel_tags(rel, "personal") if rel else ("personal",), timed=False)


def _have(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit:
    noun = m["noun"].lower()
    kind = "pets" if noun in _PETS else "family"
    if not m["names"]:
        return _Hit(f"{kind} / {noun} count", USER, FACT, (kind,), timed=False)
    single = {"children": "child", "puppies": "puppy"}.get(noun, noun.rstrip("s") or noun)
    return _Hit(f"{kind} / {single} {' '.join(m['names'].split())}", USER, FACT, (kind,), timed=False)


def _self(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit | None:
    """Where the user lives or comes from; where and as what they work."""
    obj, verb = m["obj"], normalise(m.groupdict().get("verb") or "")
    if m.re is _HOME:
        origin = "from" in verb or verb.startswith("grew")
        if not _proper(obj) or (origin and not obj[0].isupper()):
            return None
        return _Hit("home / origin" if origin else "home / location", USER, FACT, ("location",))
    if m.re is _WORK and not verb.endswith(" as"):
        ok = _proper(obj) and not re.match(r"myself\b", obj, re.I)
        return _Hit("work / employer", USER, FACT, ("work",)) if ok else None
    if m.re is _WORK or re.match(r"[\w -]{2,40}?\s+by\s+(?:profession|trade)\b", obj, re.I):
        return _Hit("work / role", USER, FACT, ("work",))
    p = _PROF_RE.match(obj)
    if (p and not _NOT_ROLE.intersection(p["pre"].lower().split())
            and re.match(r"\s*$|\s+(?:at|in|for|with)\s", obj[p.end():])):
        return _Hit("work / role", USER, GUESS, ("work",))
    return None


def _event(m: re.Match[str], c: str, name: str, tr: TimeRange | None) -> _Hit | None:
    if tr is None:
        return None  # without a time an "I went to ..." is too noisy to keep
    obj = c[m.start("obj"):tr.span[0]]
    head = _head(re.sub(r"^\s*(?:my|our)\s+", "", obj, flags=re.I), 4)
    if not head or head.split()[0] in _BAD_EVENT or _DEICTIC.intersection(head.split()):
        return None
    return _Hit(f"event: {normalise(m['verb'])} {head}", LONG, EVENT, ("event",))


_RULES: tuple[tuple[re.Pattern[str], Callable[..., _Hit | None]], ...] = (
    (_STYLE, _style),
    (_BREVITY, lambda m, c, n, tr: _Hit("preference: answer style", PREF, EXPLICIT, _PREF_TAGS,
                                        memory=f"{n} prefers short answers", timed=False)),
    (_DIRECTIVE, _directive), (_DONT, _like), (_LIKE, _like), (_FAN, _like),
    (_PREFER, _like), (_CHOICE, _choice),
    (_DIET, lambda m, c, n, tr: _Hit("diet", PREF, EXPLICIT, _DIET_TAGS, timed=False)),
    (_NO_EAT, lambda m, c, n, tr: _Hit("diet: " + normalise(m["obj"]), PREF, EXPLICIT, _DIET_TAGS, "-",
                                       timed=False)),
    (_ALLERGY, lambda m, c, n, tr: None if _bad_object(m["obj"]) else _Hit(
        "allergy: " + _head(m["obj"]), USER, FACT, ("health",), timed=False)),
    (_CONDITION, lambda m, c, n, tr: _Hit("health: " + normalise(m["cond"].replace("-", " ")), USER, FACT,
                                          ("health",), timed=False)),
    (_RELATION, _relation), (_MY_IS, _my_is), (_HAVE, _have), (_HOME, _self), (_WORK, _self),
    (_ROLE, _self), (_EVENT, _event))


# --- driver ----------------------------------------------------------------------------------------
def _extract_clause(clause: str, name: str, u: Utterance) -> Extracted | None:
    ref = u.timestamp if u.timestamp.tzinfo else u.timestamp.replace(tzinfo=UTC)
    tr = resolve_event_time(clause, ref)
    if tr is not None and tr.start > ref and tr.tense != "present":
        # A plan ("I'm flying to Rome on Friday"), not something that is or was so. Undated
        # days now resolve forward when said as plans, so a future time alone is not enough:
        # "My birthday is on 12 June" (present tense) is a fact about the user.
        return None
    tr = None if tr is not None and tr.text.lower() in ("recently", "lately") else tr
    hits = (rule(m, clause, name, tr) for pattern, rule in _RULES if (m := pattern.match(clause)))
    if (hit := next((h for h in hits if h is not None), None)) is None:
        return None
    tr = tr if hit.timed else None
    text = hit.memory
    if text is None:
        when = _when(tr, clause) if tr is not None else None
        text = _third(clause if when is None or tr is None else clause[:when[0]] + when[1] + clause[tr.span[1]:], name)
    text = re.sub(r"\s+", " ", text).strip(" ,;:.!-")
    if not text:
        return None
    return Extracted(hit.key, text[:1].upper() + text[1:] + ".", hit.memory_type, hit.confidence, hit.tags,
                     tr.start if tr is not None else None, (u.message_id,), hit.polarity)


def extract(utterances: list[Utterance], user_name: str | None = None) -> list[Extracted]:
    """Memory items the user states in `utterances`, in order, deduplicated by (key, memory).

    `user_name` replaces first-person words ("I", "my", "me") in the third-person text; default:
    the utterance's speaker, or "The user" when the speaker is "You"/"user". Assistant turns
    (`is_user=False`) are never read.
    """
    found: dict[tuple[str, str], Extracted] = {}
    for u in utterances:
        if not u.is_user or not u.text or not u.text.strip():
            continue
        speaker = (u.speaker or "").strip()
        name = user_name or ("The user" if speaker.lower() in ("", "you", "user", "me", "i") else speaker)
        for clause in _clauses(u.text):
            if (item := _extract_clause(clause, name, u)) is None:
                continue
            seen = found.setdefault((item.key, item.memory), item)
            if seen is not item and u.message_id not in seen.message_ids:
                found[(item.key, item.memory)] = replace(seen, message_ids=seen.message_ids + (u.message_id,))
    return list(found.values())
