"""English time expressions -> concrete time windows.

Two uses share one rule-based parser: `find_time_range` narrows a search to the window a
query talks about ("what did I do last May?"), and `resolve_event_time` stamps stored text
with when its event happened ("... yesterday", written on 2023-05-08 -> 2023-05-07).
Both run on every add and every search, so everything is precompiled regexes and plain date
arithmetic, and a dict look-up per word decides which patterns are worth trying at all.

The reference is an instant; days, weeks and months are the user's calendar: the reference is
converted to the user's time zone (`tz`, else `local_zone()`: $TZ, else the system's) before
anything is counted, and windows carry that zone. At 7 pm in UTC-7 "yesterday" is the user's
yesterday, not the UTC day before 2 am tomorrow. Callers store the windows in UTC.

A date that names no year or week ("on Friday", "in April", "12 June") can mean the last one or
the next one; the sentence's tense decides (`_tense`). Past tense ("I went ... on Friday") looks
back; plans, appointments and deadlines ("Dentist appointment on Friday", "by January", "I'm
flying to Rome in April", "I'll ...") look forward. With no tense at all, stored text (a note, a
chat turn) looks forward, since a dated note without a verb is nearly always a plan, and a
search looks back, since searches are mostly about what already happened.
"""
from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta

__all__ = ["TimeRange", "find_time_range", "resolve_event_time", "local_zone", "to_local"]


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # inclusive, timezone-aware (the user's zone)
    end: datetime  # exclusive, timezone-aware (the user's zone)
    text: str  # the matched expression as it appeared in the input
    span: tuple[int, int]  # character offsets of the match in the input
    # The sentence's tense around the expression: "past", "future" (a plan, appointment or
    # deadline), "present" ("my birthday is on 12 June") or "" (no verb to tell).
    tense: str = ""


# --- the user's time zone -------------------------------------------------------------------

@lru_cache(maxsize=8)
def _named_zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # a POSIX rule such as "<-07>7": left to the C library
        return None


@lru_cache(maxsize=1)
def _system_zone() -> tzinfo | None:
    # A real zone (not today's fixed offset) so that windows across a DST change stay whole days.
    link = Path("/etc/localtime")
    try:
        target = os.readlink(link)
    except OSError:
        return None  # Windows, or a copied file: the C library's local time is used
    marker = "zoneinfo/"
    return _named_zone(target[target.index(marker) + len(marker):]) if marker in target else None


def local_zone() -> tzinfo | None:
    """The user's time zone: $TZ when it names a zone ("Europe/Lisbon"), else the system's.
    None: only the C library knows it (`datetime.astimezone()` with no argument)."""
    name = os.environ.get("TZ", "").removeprefix(":")
    if name:
        return _named_zone(name)
    return _system_zone()


def to_local(value: datetime, tz: tzinfo | None = None) -> datetime:
    """`value` (naive = UTC) on the user's clock: in `tz`, else in `local_zone()`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    zone = tz or local_zone()
    return value.astimezone(zone) if zone is not None else value.astimezone()


# --- vocabulary ---------------------------------------------------------------------------

_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_MONTH_NUM = {name[:3]: i + 1 for i, name in enumerate(_MONTHS)}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_NUM = {name: i for i, name in enumerate(_WEEKDAYS)}
_SEASON_START = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_NUM_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
              "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
              "fifteen": 15, "twenty": 20, "thirty": 30, "few": 3, "several": 3, "couple": 2}
_PART_INDEX = {"early": 0, "beginning": 0, "start": 0, "mid": 1, "middle": 1, "late": 2, "end": 2}

_MONTH_FULL = "|".join(_MONTHS)
# Abbreviations only inside day-number dates: alone, "mar", "jan" or "dec" are too often words.
_MONTH_ANY = (r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
              r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_YEAR = r"(?:19|20)\d{2}"
_NUM = (r"(?P<n>\d{1,3}|a\s+couple(?:\s+of)?|couple\s+of|a\s+few|few|several|an?|one|two|three"
        r"|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty)")
_PART = (r"(?:(?P<part>early|mid|late)(?:-|\s+)"
         r"|(?:the\s+)?(?P<part2>beginning|start|middle|end)\s+of\s+(?:the\s+)?)")
_PREP = r"in|during|since|until|by|of|from|throughout|around|over"

# Words that follow the modal verb "may" but not the month ("may be", "may I", "may have").
_MODAL_NEXT = re.compile(
    r"\s+(?:i|we|you|he|she|it|they|the|this|that|these|those|all|god|your|our|his|her|their"
    r"|my|there|be|not|have|also|well|just|never|still|need|want|help|take|get|go|come|seem"
    r"|look|feel|like|as|or)\b")
# Words that can follow the month "may" in lower-case text; anything else reads as the modal.
_MONTH_NEXT = re.compile(
    r"(?:\s*(?:$|[^\w\s])|\s+(?:and|or|but|when|while|i|we|you|he|she|they|my|our|the|a|to|of"
    r"|in|on|at|for|with|after|before|so|then|because|until|last|this|next|was|is|were|will"
    r"|too|as|if|where|that)\b)")
_PREP_BEFORE = re.compile(r"(?<!\w)(?:on|in|since|by|from|until|of|before|after)\s+$")
_SINCE_BEFORE = re.compile(r"(?<!\w)since\s+(?:the\s+)?$")
_WORD = re.compile(r"\w+")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _c(pattern: str) -> re.Pattern[str]:
    # Patterns run on lower-cased text because re.I roughly doubles their matching cost.
    return re.compile(pattern)


_RE_RELDAY = _c(r"\b(?P<w>the\s+day\s+before\s+yesterday|the\s+day\s+after\s+tomorrow"
                r"|today|tonight|this\s+(?:morning|afternoon|evening)|yesterday|last\s+night"
                r"|tomorrow)\b")
_RE_AGO = _c(rf"\b{_NUM}\s+(?P<unit>day|week|month|year)s?\s+ago\b")
_RE_UNIT = _c(rf"(?:\b{_PART})?\b(?P<rel>last|this|next|previous|past|coming)\s+(?:{_NUM}\s+)?"
              r"(?P<unit>day|week|month|year|weekend)(?P<pl>s)?\b")
_RE_WEEKDAY = _c(r"\b(?:(?P<rel>last|this|next|on|past|previous|coming)\s+)?"
                 rf"(?P<wd>{'|'.join(_WEEKDAYS)})\b")
_RE_MONTH = _c(rf"(?:\b(?P<prep>{_PREP})\s+)?(?:\b{_PART})?"
               r"(?:\b(?P<rel>last|this|next|past|previous|coming)\s+)?"
               rf"\b(?P<month>{_MONTH_FULL})\b(?!\s+(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?\b)"
               rf"(?:,?\s+(?:of\s+)?(?P<year>{_YEAR})\b)?")
_RE_YEAR = _c(rf"(?:\b(?P<prep>in|during|since|until|by|of|from|throughout)\s+"
              rf"(?:the\s+(?:year\s+)?)?)?(?:\b{_PART})?\b(?P<year>{_YEAR})\b(?![-/:.]\d)")
_RE_SEASON = _c(rf"(?:\b(?P<prep>{_PREP})\s+)?(?:\bthe\s+)?(?:\b{_PART})?"
                r"(?:\b(?P<rel>last|this|next|past|previous|coming)\s+)?"
                r"\b(?P<season>spring|summer|autumn|fall|winter)\b"
                rf"(?:,?\s+(?:of\s+)?(?P<year>{_YEAR})\b)?")
_RE_ISO = _c(rf"\b(?P<y>{_YEAR})-(?P<m>\d{{1,2}})-(?P<d>\d{{1,2}})(?!\d)")
_RE_MDY = _c(rf"\b(?P<month>{_MONTH_ANY})\.?\s+(?P<d>\d{{1,2}})(?P<ord>st|nd|rd|th)?\b"
             rf"(?:,?\s+(?P<y>{_YEAR})\b)?")
_RE_DMY = _c(rf"\b(?:the\s+)?(?P<d>\d{{1,2}})(?P<ord>st|nd|rd|th)?\s+(?P<of>of\s+)?"
             rf"(?P<month>{_MONTH_ANY})\b(?:\.?,?\s+(?P<y>{_YEAR})\b)?")
_RE_RECENT = _c(r"\b(?:recently|lately)\b")


# --- date arithmetic ---------------------------------------------------------------------

def _add_months(d: date, k: int) -> date:
    """First day of the month k months after d's month."""
    y, m = divmod(d.year * 12 + d.month - 1 + k, 12)
    return date(y, m + 1, 1)


def _month_window(year: int, month: int) -> tuple[date, date]:
    start = date(year, month, 1)
    return start, _add_months(start, 1)


def _narrow(start: date, end: date, part: str | None, months: int = 0) -> tuple[date, date]:
    """early/mid/late = first/middle/last third; whole months where the window allows it."""
    if not part:
        return start, end
    i = _PART_INDEX[part]
    if months:
        k = months // 3
        return _add_months(start, k * i), _add_months(start, k * (i + 1))
    n = (end - start).days
    cuts = (start, start + timedelta(n // 3), start + timedelta(2 * n // 3), end)
    return cuts[i], cuts[i + 1]


def _part(m: re.Match[str]) -> str | None:
    return m.group("part") or m.group("part2")


def _num(raw: str) -> int:
    if raw.isdigit():
        return int(raw)
    for word in ("couple", "few", "several"):  # "a couple of", "a  few"
        if word in raw:
            return _NUM_WORDS[word]
    return _NUM_WORDS[raw]


def _rel(raw: str | None) -> str:
    """Fold synonyms so handlers see only '', 'last', 'this' or 'next' ('past' kept apart)."""
    r = raw or ""
    return {"previous": "last", "coming": "next"}.get(r, r)


def _recent_year(today: date, month: int, day: int = 1) -> int:
    """Year putting month/day at or before today; Feb 29 walks back to a leap year."""
    year = today.year if (month, day) <= (today.month, today.day) else today.year - 1
    for y in range(year, year - 8, -1):
        try:
            date(y, month, day)
            return y
        except ValueError:
            continue
    raise ValueError("no such day")


def _next_year(today: date, month: int, day: int = 1) -> int:
    """Year putting month/day at or after today; Feb 29 walks on to a leap year."""
    year = today.year if (month, day) >= (today.month, today.day) else today.year + 1
    for y in range(year, year + 8):
        try:
            date(y, month, day)
            return y
        except ValueError:
            continue
    raise ValueError("no such day")


# --- tense: whether an undated "Friday" or "April" is the last one or the next one ------------

_SENTENCE_END = re.compile(r"[.!?;\n]+(?:\s|$)|\s+but\s+")
_FUTURE = re.compile(
    r"\b(?:will|shall|won't|gonna|going\s+to|about\s+to|plan(?:s|ning|ned)?\s+(?:to|for|on)|intend\w*"
    r"|hop(?:e|es|ing)\s+to|wants?\s+to|would\s+like\s+to|needs?\s+to|ha(?:ve|s)\s+to|must|should"
    r"|can't\s+wait|cannot\s+wait|looking\s+forward|remind\w*|deadline|due|scheduled|booked|expected"
    r"|upcoming|coming\s+up)\b|\w'll\b")
_PAST = re.compile(
    r"\b(?:was|were|wasn't|weren't|did|didn't|had|hadn't|been|used\s+to|went|came|saw|got|met|made|took"
    r"|gave|bought|ran|ate|drank|flew|left|began|felt|found|told|said|spent|wrote|thought|brought|caught"
    r"|taught|sold|sent|built|lost|won|paid|heard|kept|slept|swam|drove|rode|wore|chose|fell|forgot|knew"
    r"|grew|threw|broke|spoke|stole|woke|sang|became|sat|stood|held|fed|fought|meant|lent|shook|hid"
    r"|struck|stuck|rang|froze)\b")
_ED = re.compile(r"\b(?P<before>\w+'?\w*\s+)?(?P<word>[a-z]{2,}ed)\b")
# "-ed" words that are not past tense, or are adjectives after "is", "feel", "so" ...
_NOT_PAST_ED = frozenset(
    "need feed seed speed weed bleed breed greed deed indeed proceed exceed succeed bed red shed wed shred sled"
    " hundred kindred sacred naked wicked beloved rugged ragged crooked aged tired excited interested married"
    " engaged worried scared bored pleased thrilled stressed supposed called named based related detailed"
    " limited advanced united talented dedicated experienced qualified skilled retired planned".split())
_ADJECTIVE_BEFORE = frozenset("am is are i'm we're you're they're he's she's it's 'm 're be being get gets"
                              " feel feels so very really too quite pretty more most not".split())
_PROGRESSIVE = re.compile(r"\b(?:am|is|are|i'm|we're|you're|they're|he's|she's)\s+(?:\w+\s+)?\w{2,}ing\b")
_PLAN_NOUN = re.compile(
    r"\b(?:appointments?|appt|meetings?|trips?|flights?|exams?|interviews?|party|wedding|concert|dinner|lunch"
    r"|reservation|visit|holiday|vacation|conference|dentist|doctor|surgery|checkup|check-up)\b")
_PRESENT = re.compile(r"\b(?:am|is|are|i'm|we're|you're|they're|do|does|don't|doesn't|have|has)\b|\w's\b")
_WORD_BEFORE = re.compile(r"(\w+)\s*$")


def _past_ed(sentence: str) -> bool:
    for m in _ED.finditer(sentence):
        word, before = m.group("word"), (m.group("before") or "").strip()
        if word not in _NOT_PAST_ED and before not in _ADJECTIVE_BEFORE:
            return True
    return False


def _tense(low: str, start: int, end: int) -> str:
    """The tense of the sentence around low[start:end] (the time expression itself left out)."""
    left = 0
    for m in _SENTENCE_END.finditer(low, 0, start):
        left = m.end()
    right = _SENTENCE_END.search(low, end)
    before = low[left:start].replace("’", "'")
    after = low[end:right.start() if right else len(low)].replace("’", "'")
    first = low[start:end].split(maxsplit=1)[0] if low[start:end].strip() else ""
    prep = first if first in ("since", "by", "until", "till", "before") else ""
    if not prep and (w := _WORD_BEFORE.search(before)):
        prep = w.group(1)
    if prep == "since":
        return "past"
    if prep in ("by", "for"):  # a deadline, or what something is for ("booked a table for Friday")
        return "future"
    sentence = f"{before} {after}"
    if _FUTURE.search(sentence):
        return "future"
    if _PAST.search(sentence) or _past_ed(sentence):
        return "past"
    if _PROGRESSIVE.search(sentence) or _PLAN_NOUN.search(sentence) or prep in ("until", "till", "before"):
        return "future"
    return "present" if _PRESENT.search(sentence) else ""


@dataclass
class _Ctx:
    """What handlers need besides their match: the reference, and which way undated dates go."""
    ref: datetime
    today: date
    src: str  # the original text (for capitals)
    stored: bool  # stored text (forward without a tense) or a search (backward without one)

    def forward(self, m: re.Match[str]) -> bool:
        tense = _tense(m.string, m.start(), m.end())
        return tense in ("future", "present") or (tense == "" and self.stored)


# --- handlers: match over the lower-cased text (plus the original, for capitals) ->
# (start, end) as dates (whole days) or datetimes, or None to reject the match ---------------

Window = tuple[date, date]
Handler = Callable[[re.Match[str], _Ctx], "Window | None"]


def _h_relday(m: re.Match[str], c: _Ctx) -> Window:
    w = " ".join(m.group("w").split())
    offset = {"yesterday": -1, "last night": -1, "tomorrow": 1,
              "the day before yesterday": -2, "the day after tomorrow": 2}.get(w, 0)
    d = c.today + timedelta(days=offset)
    return d, d + timedelta(days=1)


def _h_ago(m: re.Match[str], c: _Ctx) -> Window:
    n, unit, today = _num(m.group("n")), m.group("unit"), c.today
    if unit == "day":
        d = today - timedelta(days=n)
        return d, d + timedelta(days=1)
    if unit == "week":
        monday = today - timedelta(days=today.weekday() + 7 * n)
        return monday, monday + timedelta(days=7)
    if unit == "month":
        start = _add_months(today, -n)
        return start, _add_months(start, 1)
    return date(today.year - n, 1, 1), date(today.year - n + 1, 1, 1)


def _h_unit(m: re.Match[str], c: _Ctx) -> Window | None:
    rel, unit, raw_n, today, ref = _rel(m.group("rel")), m.group("unit"), m.group("n"), c.today, c.ref
    if rel == "past" and unit == "weekend":
        rel = "last"
    if raw_n is not None or rel == "past":
        # "past week", "last 3 days", "next two weeks": rolling windows anchored at the moment.
        if unit == "weekend" or rel == "this" or (raw_n is None and m.group("pl")):
            return None
        n = _num(raw_n) if raw_n is not None else 1
        delta = relativedelta(**{unit + "s": n})
        return (ref, ref + delta) if rel == "next" else (ref - delta, ref)
    if unit == "day" or m.group("pl"):  # "the next day" is relative to an unknown event
        return None
    step = {"last": -1, "this": 0, "next": 1}[rel]
    if unit in ("week", "weekend"):
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=step)
        if unit == "weekend":
            return monday + timedelta(days=5), monday + timedelta(days=7)
        return _narrow(monday, monday + timedelta(days=7), _part(m))
    if unit == "month":
        start = _add_months(today, step)
        return _narrow(start, _add_months(start, 1), _part(m))
    y = today.year + step
    return _narrow(date(y, 1, 1), date(y + 1, 1, 1), _part(m), months=12)


def _h_weekday(m: re.Match[str], c: _Ctx) -> Window:
    wd, rel, today = _WEEKDAY_NUM[m.group("wd")], _rel(m.group("rel")), c.today
    now = today.weekday()
    if rel == "this":  # the one in the current Monday-based week, past or not
        d = today + timedelta(days=wd - now)
    elif rel == "next" or (rel not in ("last", "past") and c.forward(m)):  # first one strictly after today
        d = today + timedelta(days=(wd - now - 1) % 7 + 1)
    else:  # "last", or a past "on Friday": the most recent one strictly before today
        d = today - timedelta(days=(now - wd - 1) % 7 + 1)
    return d, d + timedelta(days=1)


def _may_is_modal(m: re.Match[str], src: str, qualified: bool) -> bool:
    """Tell the month "May" from the verb "may", which is far more common in chat."""
    if m.group("month") != "may":
        return False
    capital = src[m.start("month")].isupper()
    if not qualified:  # bare: only a capitalised May not opening a question or a wish
        return not capital or _MODAL_NEXT.match(m.string, m.end("month")) is not None
    return not capital and _MONTH_NEXT.match(m.string, m.end("month")) is None


def _h_month(m: re.Match[str], c: _Ctx) -> Window | None:
    token, rel, year, part = m.group("month"), _rel(m.group("rel")), m.group("year"), _part(m)
    qualified = bool(m.group("prep") or rel or part or year)
    if _may_is_modal(m, c.src, qualified):
        return None
    if not qualified and token == "march" and c.src[m.start("month")].islower():  # "we march"
        return None
    month, today = _MONTH_NUM[token[:3]], c.today
    if year:
        y = int(year)
    elif rel in ("last", "past"):
        y = today.year if month < today.month else today.year - 1
    elif rel == "this":
        y = today.year
    elif rel == "next":
        y = today.year if month > today.month else today.year + 1
    elif c.forward(m):  # the current month counts either way
        y = today.year if month >= today.month else today.year + 1
    else:
        y = today.year if month <= today.month else today.year - 1
    return _narrow(*_month_window(y, month), part)


def _h_year(m: re.Match[str], c: _Ctx) -> Window | None:
    part = _part(m)
    if not (m.group("prep") or part):  # a bare 4-digit number is not reliably a year
        return None
    y = int(m.group("year"))
    return _narrow(date(y, 1, 1), date(y + 1, 1, 1), part, months=12)


def _h_season(m: re.Match[str], c: _Ctx) -> Window | None:
    rel, year, part, today = _rel(m.group("rel")), m.group("year"), _part(m), c.today
    if not (m.group("prep") or rel or year or part):  # "I love winter" names no time
        return None
    month = _SEASON_START[m.group("season")]

    def window(y: int) -> Window:
        start = date(y, month, 1)  # winter Y runs Dec Y .. Mar Y+1
        return start, _add_months(start, 3)

    # y0: the most recent occurrence that has started (it may still be running).
    y0 = today.year if date(today.year, month, 1) <= today else today.year - 1
    running = window(y0)[1] > today
    if year:
        y = int(year)
    elif rel in ("last", "past"):
        y = y0 - 1 if running else y0
    elif rel == "this":
        y = y0 if running else today.year
    elif rel == "next":
        y = y0 + 1
    elif not running and c.forward(m):  # the next one to begin
        y = y0 + 1
    else:
        y = y0
    return _narrow(*window(y), part, months=3)


def _day_window(c: _Ctx, m: re.Match[str], year: str | None, month: int, day: int) -> Window:
    if year:
        y = int(year)
    else:
        y = _next_year(c.today, month, day) if c.forward(m) else _recent_year(c.today, month, day)
    d = date(y, month, day)
    return d, d + timedelta(days=1)


def _h_iso(m: re.Match[str], c: _Ctx) -> Window:
    return _day_window(c, m, m.group("y"), int(m.group("m")), int(m.group("d")))


def _h_named_date(m: re.Match[str], c: _Ctx) -> Window | None:
    token = m.group("month")
    if (token == "may" and c.src[m.start("month")].islower() and not m.group("ord")
            and not m.group("y") and not m.groupdict().get("of")
            and not _PREP_BEFORE.search(m.string, max(0, m.start() - 8), m.start())):
        return None  # "3 may be", "may 1 day": lower-case may needs a stronger date signal
    return _day_window(c, m, m.group("y"), _MONTH_NUM[token[:3]], int(m.group("d")))


def _h_recent(m: re.Match[str], c: _Ctx) -> Window:
    return c.ref - timedelta(days=30), c.ref


_MONTH_WORDS = " ".join(_MONTHS) + " " + " ".join(_MONTH_NUM) + " sept"
# Each rule: the words that anchor it ("<year>" = a 4-digit 19xx/20xx), how many words a match
# may start before its anchor, the full pattern and its handler. Scanning every pattern over
# the whole text costs ~100us; looking words up in a dict and trying `match` at a few word
# starts costs a few.
_RULES: tuple[tuple[str, int, re.Pattern[str], Handler], ...] = (
    ("today tonight yesterday tomorrow night morning afternoon evening", 3, _RE_RELDAY,
     _h_relday),
    ("ago", 5, _RE_AGO, _h_ago),
    ("day week weekend month year", 8, _RE_UNIT, _h_unit),
    (" ".join(_WEEKDAYS), 1, _RE_WEEKDAY, _h_weekday),
    ("<year>", 0, _RE_ISO, _h_iso),
    (_MONTH_WORDS, 0, _RE_MDY, _h_named_date),
    (_MONTH_WORDS, 3, _RE_DMY, _h_named_date),
    (" ".join(_MONTHS), 6, _RE_MONTH, _h_month),
    ("spring summer autumn fall winter", 7, _RE_SEASON, _h_season),
    ("<year>", 7, _RE_YEAR, _h_year),
    ("recently lately", 0, _RE_RECENT, _h_recent),
)
_ANCHOR_RULES: dict[str, tuple[int, ...]] = {}
for _i, _rule in enumerate(_RULES):
    for _word in _rule[0].split():
        _ANCHOR_RULES[_word] = _ANCHOR_RULES.get(_word, ()) + (_i,)


def _anchor_rules(word: str) -> tuple[int, ...]:
    rules = _ANCHOR_RULES.get(word)
    if rules is not None:
        return rules
    if word[-1] == "s":  # "days", "weeks", "years"
        return _ANCHOR_RULES.get(word[:-1], ())
    if len(word) == 4 and word[:2] in ("19", "20") and word.isdigit():
        return _ANCHOR_RULES["<year>"]
    return ()


# --- driver ------------------------------------------------------------------------------

def _to_dt(value: date, ref: datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=ref.tzinfo)


def _parse(text: str, reference: datetime, tz: tzinfo | None, stored: bool) -> TimeRange | None:
    if not text:
        return None
    # ASCII-only lowering keeps offsets identical to the input ("İ".lower() is two chars).
    low = text.lower() if text.isascii() else text.translate(_ASCII_LOWER)
    hits: dict[int, list[int]] = {}  # rule index -> offsets of its anchor words, in order
    starts: list[int] = []
    for w in _WORD.finditer(low):
        starts.append(w.start())
        for i in _anchor_rules(w.group()):
            hits.setdefault(i, []).append(w.start())
    if not hits:
        return None
    ref = to_local(reference, tz)
    ctx = _Ctx(ref, ref.date(), text, stored)
    best: tuple[int, int, Window] | None = None
    for i in sorted(hits):
        _, back, pattern, handler = _RULES[i]
        for pos in hits[i]:
            if best is not None and pos > best[1]:
                break
            # Candidate starts: the anchor word and up to `back` words before it, furthest
            # first, so the longest match at the earliest start is tried first.
            k = bisect_right(starts, pos)
            window = None
            for s in starts[max(0, k - 1 - back):k]:
                if best is not None and s > best[0]:
                    break  # cannot beat the earlier match already found
                m = pattern.match(low, s)
                if m is None or m.end() <= pos:
                    continue
                try:
                    window = handler(m, ctx)
                except (ValueError, OverflowError):  # Feb 30, year 0 and the like
                    window = None
                if window is not None:
                    # Earliest wins; at the same offset the longer, more specific, one wins.
                    if best is None or (s, -m.end()) < (best[0], -best[1]):
                        best = (s, m.end(), window)
                    break
            if window is not None:
                break
    if best is None:
        return None
    start, end, (lo, hi) = best
    lo_dt, hi_dt = _to_dt(lo, ref), _to_dt(hi, ref)
    tense = _tense(low, start, end)
    # "since X" means from X's start until the moment of speaking.
    lead = _SINCE_BEFORE.search(low, max(0, start - 12), start)
    if lead:
        start = lead.start()
    if low.startswith("since", start) and ref > lo_dt:
        hi_dt = ref
    return TimeRange(lo_dt, hi_dt, text[start:end], (start, end), tense)


def find_time_range(text: str, reference: datetime, tz: tzinfo | None = None) -> TimeRange | None:
    """The time window a query refers to, relative to `reference` (the instant it was asked),
    on the calendar of `tz` (default: the user's zone, `local_zone()`)."""
    return _parse(text, reference, tz, stored=False)


def resolve_event_time(text: str, reference: datetime, tz: tzinfo | None = None) -> TimeRange | None:
    """For stored text written at the instant `reference`: the absolute time the text says an
    event happened or will happen, e.g. 'I went to a support group yesterday' written
    2023-05-08 -> 2023-05-07, 'Dentist appointment on Friday' written Tue 1 Dec -> Fri 4 Dec."""
    return _parse(text, reference, tz, stored=True)
