"""Reading a note file and cutting it into chunks (one memory each), deterministically.

Markdown is split at ATX headings (`#` .. `######`, not inside fenced code), keeping the
heading path ("Trip > Day 2"); each section is then split into paragraphs (blank-line
separated; a fenced code block stays whole) and paragraphs are packed into chunks of at
most `max_chars`. Plain text is split into paragraphs the same way. A chunk's text is
the exact span of lines it came from, so its 1-based, inclusive line numbers open the
file at the right place. Nothing here touches the vault.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAX_CHUNK_CHARS = 800
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd")
TEXT_SUFFIXES = (".txt", ".text")
SUFFIXES = MARKDOWN_SUFFIXES + TEXT_SUFFIXES
SNIFF_BYTES = 8192  # a NUL byte in here means the file is not text

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class NotText(ValueError):
    """The bytes are not a text file we can read; the message is the skip reason shown to the user."""


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str  # heading path, "Trip > Day 2"; "" before the first heading and in plain text
    start_line: int  # 1-based, inclusive
    end_line: int

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.heading}\x1f{self.text}".encode()).hexdigest()


def decode(data: bytes) -> str:
    """UTF-8 (with or without a byte-order mark) or NotText; other encodings are never guessed."""
    if not data:
        raise NotText("empty file")
    if b"\x00" in data[:SNIFF_BYTES]:
        raise NotText("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NotText(f"not valid UTF-8 (bad byte at offset {exc.start}); save it as UTF-8 to include it") from None
    if "\x00" in text:
        raise NotText("binary file (contains NUL bytes)")
    if not text.strip():
        raise NotText("no text (only whitespace)")
    return text


def chunk_file(name: str, text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of a file's decoded text; markdown or plain text by the file name's suffix."""
    lines = text.splitlines()
    if name.lower().endswith(MARKDOWN_SUFFIXES):
        return chunk_markdown(lines, max_chars)
    return _pack(_paragraphs(lines, 0, len(lines), fences=False), lines, "", max_chars)


def chunk_markdown(lines: list[str], max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    chunks: list[Chunk] = []
    stack: list[tuple[int, str]] = []  # (level, title) of the enclosing headings
    start = 0  # first line of the current section (its heading line, if any)
    heading = ""
    fence: str | None = None
    for index, line in enumerate(lines):
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        opened = _FENCE.match(line)
        if opened:
            fence = opened.group(1)[0] * 3
            continue
        match = _HEADING.match(line)
        if match is None:
            continue
        chunks.extend(_section(lines, start, index, heading, max_chars))
        level = len(match.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, (match.group(2) or "").strip()))
        heading = " > ".join(title for _, title in stack if title)
        start = index
    chunks.extend(_section(lines, start, len(lines), heading, max_chars))
    return chunks


def _section(lines: list[str], start: int, end: int, heading: str, max_chars: int) -> list[Chunk]:
    paragraphs = _paragraphs(lines, start, end, fences=True)
    # A heading with nothing under it is not worth a memory: its title is in its children's keys.
    if len(paragraphs) == 1 and _HEADING.match(lines[paragraphs[0][0]]) and paragraphs[0][1] == paragraphs[0][0] + 1:
        return []
    return _pack(paragraphs, lines, heading, max_chars)


def _paragraphs(lines: list[str], start: int, end: int, *, fences: bool) -> list[tuple[int, int]]:
    """[first, last) line index pairs of blank-line separated blocks; a heading is its own block."""
    out: list[tuple[int, int]] = []
    first: int | None = None
    fence: str | None = None
    for index in range(start, end):
        line = lines[index]
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
            continue
        if fences and (fence_match := _FENCE.match(line)):
            fence = fence_match.group(1)[0] * 3
            if first is None:
                first = index
            continue
        if not line.strip():
            if first is not None:
                out.append((first, index))
                first = None
            continue
        if fences and _HEADING.match(line):
            if first is not None:
                out.append((first, index))
            out.append((index, index + 1))
            first = None
            continue
        if first is None:
            first = index
    if first is not None:
        out.append((first, _trim_end(lines, first, end)))
    return out


def _trim_end(lines: list[str], first: int, end: int) -> int:
    while end > first + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _pack(paragraphs: list[tuple[int, int]], lines: list[str], heading: str, max_chars: int) -> list[Chunk]:
    """Greedily join consecutive paragraphs while the chunk stays within max_chars."""
    chunks: list[Chunk] = []
    current: tuple[int, int] | None = None
    for first, last in paragraphs:
        if current is not None and len(_join(lines, current[0], last)) <= max_chars:
            current = (current[0], last)
            continue
        if current is not None:
            chunks.extend(_emit(lines, current, heading, max_chars))
        current = (first, last)
    if current is not None:
        chunks.extend(_emit(lines, current, heading, max_chars))
    return chunks


def _join(lines: list[str], first: int, last: int) -> str:
    return "\n".join(lines[first:last]).strip()


def _emit(lines: list[str], span: tuple[int, int], heading: str, max_chars: int) -> list[Chunk]:
    text = _join(lines, *span)
    if not text:
        return []
    if len(text) <= max_chars:
        return [Chunk(text, heading, span[0] + 1, span[1])]
    # One paragraph over the cap: split at line ends, and a single over-long line at spaces.
    out: list[Chunk] = []
    first = span[0]
    for index in range(span[0], span[1]):
        if index > first and len(_join(lines, first, index + 1)) > max_chars:
            out.extend(_emit_lines(lines, first, index, heading, max_chars))
            first = index
    out.extend(_emit_lines(lines, first, span[1], heading, max_chars))
    return out


def _emit_lines(lines: list[str], first: int, last: int, heading: str, max_chars: int) -> list[Chunk]:
    text = _join(lines, first, last)
    if not text:
        return []
    if len(text) <= max_chars:
        return [Chunk(text, heading, first + 1, last)]
    return [Chunk(piece, heading, first + 1, last) for piece in _split_words(text, max_chars)]


def _split_words(text: str, max_chars: int) -> list[str]:
    pieces: list[str] = []
    rest = text
    while len(rest) > max_chars:
        cut = rest.rfind(" ", 0, max_chars + 1)
        if cut <= max_chars // 2:
            cut = max_chars  # no space near the end (a URL, base64): cut hard
        piece = rest[:cut].strip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces
