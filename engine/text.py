"""Text helpers shared by writes and searches: validation, dedup hashing, keyword queries."""
from __future__ import annotations

import hashlib
import re
import unicodedata

from memdesk.engine.errors import InvalidInputError

# A memory is a note, a fact or a chat turn. Whole documents go through ingestion, which
# chunks them; this limit keeps one item small enough to embed, show and edit.
MAX_MEMORY_BYTES = 64 * 1024
MAX_KEY_CHARS = 200

# Sentence ends, except after an initial ("Ursula K. Le Guin") or a title ("Dr. Lindqvist").
SENTENCE_BREAK = re.compile(r"(?<![\s(][A-Z]\.)(?<!\b(?:Dr|Mr|Ms|St|Mt|Jr|Sr|vs)\.)(?<!\bMrs\.)(?<=[.!?…])\s+|\n+")
_WORD = re.compile(r"[\w][\w'’-]*", re.UNICODE)
_SPACE = re.compile(r"\s+")
# Function words carry no topic; in an OR-query they would match nearly every memory.
STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below
between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself
him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't
my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd
she'll she's should shouldn't so some such than that that's the their theirs them themselves then there
there's these they they'd they'll they're they've this those through to too under until up very was wasn't
we we'd we'll we're we've were weren't what what's when when's where where's which while who who's whom why
why's with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
also just get got go goes going gone went like really yeah yes oh hey hi well thing things kind sort
ever still much many lot lots one ones would will shall may might must
""".split())


def check_text(text: object, what: str = "memory") -> str:
    """Reject what cannot be a memory, with a message that says what to do instead."""
    if not isinstance(text, str):
        raise InvalidInputError(f"The {what} must be text, not {type(text).__name__}.")
    if "\x00" in text:
        raise InvalidInputError(f"The {what} contains NUL bytes, so it looks binary. Store text only.")
    stripped = text.strip()
    if not stripped:
        raise InvalidInputError(f"The {what} is empty; write something to remember.")
    size = len(stripped.encode("utf-8", errors="surrogatepass"))
    if size > MAX_MEMORY_BYTES:
        raise InvalidInputError(
            f"The {what} is {size / 1e6:.1f} MB; one memory holds at most {MAX_MEMORY_BYTES // 1024} KB. "
            "Split it into smaller notes, or use `memdesk ingest` for whole documents.")
    try:
        stripped.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"The {what} is not valid Unicode text ({exc.reason}).") from exc
    return stripped


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", text).strip(" .!?,;:")


def content_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def keywords(text: str) -> list[str]:
    """Content words of a query, lower-cased, in order, without repeats."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text.casefold()):
        word = match.group().replace("’", "'").strip("'-")
        if word.endswith("'s"):
            word = word[:-2]
        if len(word) < 2 or word in STOPWORDS:
            continue
        seen.setdefault(word, None)
    return list(seen)


def fts_query(text: str) -> str | None:
    """An FTS5 OR-query of the content words (each quoted, so no user text is FTS syntax)."""
    words = keywords(text)
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def estimate_tokens(text: str) -> int:
    """Rough count for budgets and reports: ~0.75 words per token for English BPE vocabularies."""
    return max(1, round(len(_WORD.findall(text)) / 0.75))
