"""Watched-folder ingestion: note files -> RawFileMemory chunks, incremental by content hash.

    ingestor = Ingestor(mem)
    report = ingestor.scan("~/Notes")        # first run reads everything; later runs only what changed
    watcher = FolderWatcher(ingestor, ["~/Notes"], on_report=print)   # engine.ingestion.watch
    watcher.start()

A file's state (size, mtime, content hash, chunk hashes -> memory ids, skip reason) is kept
in the vault (engine.vault.ingest_state) and written in the same transaction as the file's
memories, so an interrupted run is completed by the next scan and nothing is stored twice.
A changed file is re-chunked and only its changed chunks are touched: unchanged chunks keep
their memory ids, removed ones are archived, new ones are added. A moved file keeps its
memories, with their provenance pointing at the new path. A deleted file's memories are
archived (soft: restorable, never purged by ingestion).
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

import apsw

from memdesk.engine.cube import LIVE_STATUSES, MemoryItem, MemoryType, Source, SourceRef, Status, from_ts
from memdesk.engine.errors import InvalidInputError
from memdesk.engine.ingestion.chunks import MAX_CHUNK_CHARS, SUFFIXES, Chunk, NotText, chunk_file, decode
from memdesk.engine.search.timeparse import resolve_event_time
from memdesk.engine.text import MAX_KEY_CHARS, check_text, content_hash
from memdesk.engine.vault import ingest_state as state
from memdesk.engine.vault import items as vault
from memdesk.engine.vault.ingest_state import ChunkState, FileState

if TYPE_CHECKING:
    from memdesk.engine.api import Memory

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})  # plus every ".hidden" folder
# A file hashed less than this after its mtime is read again on the next scan even if its
# size and mtime look the same: a write in the same timestamp tick would be invisible.
RACY_NS = 2_000_000_000

Progress = Callable[[int, int, str], None]
# Paths are stored as text (SQLite TEXT, JSON provenance). A name that is not UTF-8 arrives
# from the OS with undecodable bytes escaped, and cannot be stored; it is skipped, never fatal.
NOT_UTF8 = "its name is not valid UTF-8, so MemDesk cannot record it; rename it to have it read"
"""on_progress(done, total, path): called after each file that needed work."""


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class FileResult:
    """What ingesting (or removing) one file did."""

    path: str
    action: str  # added | updated | unchanged | skipped | archived | ignored
    reason: str | None = None  # why it was skipped
    added_ids: tuple[str, ...] = ()
    archived_ids: tuple[str, ...] = ()
    kept: int = 0  # chunks whose memories were kept as they were


@dataclass
class IngestReport:
    path: str
    added: list[str] = field(default_factory=list)  # files ingested for the first time
    updated: list[str] = field(default_factory=list)  # files whose content changed
    unchanged: int = 0
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old, new): memories kept
    archived: list[str] = field(default_factory=list)  # files gone: their memories archived
    skipped: list[Skipped] = field(default_factory=list)
    chunks_added: int = 0
    chunks_archived: int = 0
    chunks_kept: int = 0
    added_ids: list[str] = field(default_factory=list)
    files: int = 0  # files looked at
    seconds: float = 0.0
    interrupted: bool = False  # stopped early (pause, stop): the next scan completes it

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.renamed or self.archived or self.chunks_archived)

    def record(self, result: FileResult) -> None:
        if result.action == "ignored":
            return
        self.files += result.action != "archived"
        if result.action in ("added", "updated"):
            getattr(self, result.action).append(result.path)
        elif result.action == "unchanged":
            self.unchanged += 1
        elif result.action == "skipped":
            self.skipped.append(Skipped(result.path, result.reason or "skipped"))
        elif result.action == "archived":
            self.archived.append(result.path)
        self.chunks_added += len(result.added_ids)
        self.chunks_archived += len(result.archived_ids)
        self.chunks_kept += result.kept
        self.added_ids.extend(result.added_ids)

    def merge(self, other: IngestReport) -> None:
        for name in ("added", "updated", "renamed", "archived", "skipped", "added_ids"):
            getattr(self, name).extend(getattr(other, name))
        for name in ("unchanged", "chunks_added", "chunks_archived", "chunks_kept", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.interrupted = self.interrupted or other.interrupted

    def to_dict(self) -> dict:
        data = asdict(self)
        data["renamed"] = [list(pair) for pair in self.renamed]
        data["files_per_s"] = round(self.files_per_s, 1)
        data["seconds"] = round(self.seconds, 3)
        return data


class Ingestor:
    """Reads note files into the vault. Thread-safe: each file is one write transaction."""

    def __init__(self, mem: Memory, *, max_bytes: int = DEFAULT_MAX_BYTES, max_chars: int = MAX_CHUNK_CHARS,
                 suffixes: Iterable[str] = SUFFIXES, scope: str = "default"):
        self.mem = mem
        self.max_bytes = max_bytes
        self.max_chars = max_chars
        self.suffixes = tuple(s.lower() for s in suffixes)
        self.scope = scope

    # ------------------------------------------------------------------ public
    def accepts(self, path: str | os.PathLike, root: str | os.PathLike | None = None) -> bool:
        """A note file we read: known suffix, not hidden, not inside a skipped folder below `root`."""
        path = os.fspath(path)
        name = os.path.basename(path)
        if name.startswith(".") or not name.lower().endswith(self.suffixes):
            return False
        if root is not None:
            relative = os.path.relpath(os.path.dirname(path), os.fspath(root))
            if relative.startswith(os.pardir):
                return False
            return not any(skipped_dir(part) for part in relative.split(os.sep) if part != os.curdir)
        return True

    def scan(self, path: str | os.PathLike, *, on_progress: Progress | None = None,
             should_stop: Callable[[], bool] | None = None) -> IngestReport:
        """Bring the vault in line with a folder (recursively) or one file; returns what changed."""
        started = time.perf_counter()
        root = absolute_path(path)
        report = IngestReport(shown(root))
        if not utf8_name(root):
            report.skipped.append(Skipped(shown(root), NOT_UTF8))
        elif os.path.isfile(root):
            if self.accepts(root):
                report.record(self.ingest_file(root))
            else:
                report.skipped.append(Skipped(root, f"not a note file (MemDesk reads {', '.join(self.suffixes)})"))
        elif not os.path.isdir(root):
            raise InvalidInputError(f"No folder {os.fspath(path)!r}: check the path (in settings, or on the "
                                    "command line) and choose a folder that exists.")
        else:
            self._scan_folder(root, report, on_progress, should_stop or (lambda: False))
        report.seconds = time.perf_counter() - started
        return report

    def ingest_file(self, path: str | os.PathLike) -> FileResult:
        """Read one file (new or changed); a file that no longer exists is removed."""
        path = absolute_path(path)
        if not self.accepts(path):
            return FileResult(path, "ignored")
        if not utf8_name(path):
            return FileResult(shown(path), "skipped", NOT_UTF8)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            removed = self.remove(path)
            return removed[0] if removed else FileResult(path, "ignored")
        except OSError as exc:
            return self._skip(path, None, f"cannot read: {exc.strerror}", retry=True)
        if stat.S_ISLNK(st.st_mode):
            return FileResult(path, "skipped", "symbolic link (not followed; add the folder it points to instead)")
        if not stat.S_ISREG(st.st_mode):
            return FileResult(path, "ignored")
        with self.mem.db.read() as conn:
            known = state.file_state(conn, path)
        if known is not None and _same_stat(known, st):
            if known.status == state.SKIPPED:
                return FileResult(path, "skipped", known.skip_reason)
            return FileResult(path, "unchanged")
        return self._ingest(path, st)

    def remove(self, path: str | os.PathLike) -> list[FileResult]:
        """A file (or every file under a folder) is gone: archive its memories, forget its state."""
        path = absolute_path(path)
        results: list[FileResult] = []
        if not utf8_name(path):
            return results  # nothing was ever stored under such a name
        with self.mem.db.write() as conn:
            known = state.file_state(conn, path)
            targets = [path] if known is not None else list(state.files_under(conn, path))
            for target in targets:
                chunks = state.chunks_of(conn, target)
                archived = self._archive(conn, target, [c.memory_id for c in chunks], "file deleted")
                state.forget_file(conn, target)
                results.append(FileResult(target, "archived", archived_ids=tuple(archived)))
        self._announce([], [i for r in results for i in r.archived_ids])
        return results

    def move(self, old: str | os.PathLike, new: str | os.PathLike) -> list[tuple[str, str]]:
        """A file (or folder) was renamed: its memories stay, their provenance follows the new path.
        Returns the (old, new) file pairs moved. Content changes are picked up by `ingest_file(new)`."""
        old, new = absolute_path(old), absolute_path(new)
        moved: list[tuple[str, str]] = []
        if old == new or not (utf8_name(old) and utf8_name(new)):
            return moved  # to a name we cannot record: the old path's removal archives its memories
        replaced: list[str] = []
        with self.mem.db.write() as conn:
            if state.file_state(conn, old) is not None:
                pairs = [(old, new)]
            else:
                pairs = [(p, new + p[len(old):]) for p in state.files_under(conn, old)]
            for src, dst in pairs:
                if state.file_state(conn, dst) is not None:  # moved over an ingested file
                    replaced += self._archive(conn, dst, [c.memory_id for c in state.chunks_of(conn, dst)],
                                              "file replaced")
                state.rename_file(conn, src, dst)
                self._repoint(conn, src, dst, state.chunks_of(conn, dst))
                moved.append((src, dst))
        self._announce([], replaced)
        return moved

    def files(self, folder: str | os.PathLike) -> list[FileState]:
        """The recorded state of every file under a folder (status, skip reason, chunk count)."""
        with self.mem.db.read() as conn:
            return list(state.files_under(conn, absolute_path(folder)).values())

    # ------------------------------------------------------------------- scanning
    def _scan_folder(self, root: str, report: IngestReport, on_progress: Progress | None,
                     should_stop: Callable[[], bool]) -> None:
        found, unreadable = self._walk(root, report)
        with self.mem.db.read() as conn:
            known = state.files_under(conn, root)
        work: list[str] = []
        for path, st in found.items():
            entry = known.get(path)
            if entry is not None and _same_stat(entry, st):
                report.files += 1
                if entry.status == state.SKIPPED:
                    report.skipped.append(Skipped(path, entry.skip_reason or "skipped"))
                else:
                    report.unchanged += 1
            else:
                work.append(path)
        # Files under a folder we could not read are not gone: we just cannot see them now.
        gone = [p for p in known if p not in found and not any(is_inside(p, d) for d in unreadable)]
        moved = self._find_moves(work, gone, known, report)
        total = len(work) + len(gone)
        for done, path in enumerate(work, start=1):
            if should_stop():
                report.interrupted = True
                return
            result = self._ingest(path, found[path])
            if path in moved and result.action == "unchanged":
                report.files += 1  # counted under `renamed`
            else:
                report.record(result)
            if on_progress is not None:
                on_progress(done, total, path)
        for done, path in enumerate(gone, start=len(work) + 1):
            if should_stop():
                report.interrupted = True
                return
            for result in self.remove(path):
                report.record(result)
            if on_progress is not None:
                on_progress(done, total, path)

    def _walk(self, root: str, report: IngestReport) -> tuple[dict[str, os.stat_result], list[str]]:
        """Every note file below root with its stat. Symbolic links are not followed (no loops);
        a folder that cannot be read is reported and skipped, and the walk goes on."""
        found: dict[str, os.stat_result] = {}
        unreadable: list[str] = []
        visited = {os.path.realpath(root)}
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    listing = sorted(entries, key=lambda e: e.name)
            except OSError as exc:
                unreadable.append(folder)
                report.skipped.append(Skipped(folder, f"folder not readable: {exc.strerror}"))
                continue
            subfolders = []
            for entry in listing:
                try:
                    if not utf8_name(entry.path):
                        if self.accepts(entry.path) or (entry.is_dir(follow_symlinks=False)
                                                        and not skipped_dir(entry.name)):
                            report.skipped.append(Skipped(shown(entry.path), NOT_UTF8))
                    elif entry.is_symlink():
                        if self.accepts(entry.path) or (entry.is_dir() and not skipped_dir(entry.name)):
                            report.skipped.append(Skipped(entry.path, "symbolic link (not followed; add the "
                                                                      "folder it points to instead)"))
                    elif entry.is_dir(follow_symlinks=False):
                        real = os.path.realpath(entry.path)
                        if not skipped_dir(entry.name) and real not in visited:
                            visited.add(real)
                            subfolders.append(entry.path)
                    elif self.accepts(entry.path) and entry.is_file(follow_symlinks=False):
                        found[entry.path] = entry.stat(follow_symlinks=False)
                except OSError as exc:
                    report.skipped.append(Skipped(entry.path, f"cannot read: {exc.strerror}"))
            stack.extend(reversed(subfolders))
        return found, unreadable

    def _find_moves(self, work: list[str], gone: list[str], known: dict[str, FileState],
                    report: IngestReport) -> set[str]:
        """A new path with the content of a vanished one is a move (made while we were not watching)."""
        moved: set[str] = set()
        by_hash: dict[str, list[str]] = {}
        for path in gone:
            entry = known[path]
            if entry.status == state.INGESTED and entry.content_hash:
                by_hash.setdefault(entry.content_hash, []).append(path)
        if not by_hash:
            return moved
        for path in [p for p in work if p not in known]:
            digest = _hash_file(path, self.max_bytes)
            candidates = by_hash.get(digest) if digest else None
            if candidates:
                old = candidates.pop(0)
                self.move(old, path)
                gone.remove(old)
                report.renamed.append((old, path))
                moved.add(path)
        return moved

    # ------------------------------------------------------------------ one file
    def _ingest(self, path: str, st: os.stat_result) -> FileResult:
        if st.st_size > self.max_bytes:
            return self._skip(path, st, f"too large ({st.st_size / 1e6:.1f} MB; the limit is "
                                        f"{self.max_bytes / 1e6:.1f} MB)")
        try:
            with open(path, "rb") as fh:
                data = fh.read(self.max_bytes + 1)
        except FileNotFoundError:
            removed = self.remove(path)
            return removed[0] if removed else FileResult(path, "ignored")
        except OSError as exc:
            return self._skip(path, None, f"cannot read: {exc.strerror}", retry=True)
        if len(data) > self.max_bytes:
            return self._skip(path, st, f"too large (over the {self.max_bytes / 1e6:.1f} MB limit)")
        digest = hashlib.sha256(data).hexdigest()
        try:
            text = decode(data)
        except NotText as exc:
            return self._skip(path, st, str(exc), digest=digest)
        chunks = chunk_file(os.path.basename(path), text, self.max_chars)
        if not chunks:
            return self._skip(path, st, "no text to remember (only headings)", digest=digest)
        return self._apply(path, st, digest, chunks)

    def _apply(self, path: str, st: os.stat_result, digest: str, chunks: list[Chunk]) -> FileResult:
        created: list[MemoryItem] = []
        archived: list[str] = []
        kept = 0
        hashed_at = time.time_ns()
        with self.mem.db.write() as conn:
            known = state.file_state(conn, path)
            if known is not None and known.status == state.INGESTED and known.content_hash == digest:
                state.save_file(conn, replace(known, size=st.st_size, mtime_ns=st.st_mtime_ns, hashed_at_ns=hashed_at))
                return FileResult(path, "unchanged")  # touched, or a racy stat re-checked
            old = state.chunks_of(conn, path) if known is not None else []
            existing = state.memory_rowids(conn, [c.memory_id for c in old])
            pool: dict[str, list[ChunkState]] = {}
            for chunk in old:
                if chunk.memory_id in existing:
                    pool.setdefault(chunk.chunk_hash, []).append(chunk)
            rows: list[ChunkState] = []
            for seq, chunk in enumerate(chunks):
                match = pool[chunk.hash].pop(0) if pool.get(chunk.hash) else None
                if match is not None:
                    kept += 1
                    memory_id = match.memory_id
                    if (match.start_line, match.end_line) != (chunk.start_line, chunk.end_line):
                        rowid, _, sources = existing[memory_id]
                        state.set_sources(conn, rowid, _with_file_ref(sources, path, path, chunk))
                else:
                    item = self._item(path, st, chunk, seq)
                    vault.insert(conn, item, content_hash(item.memory), _embed_text(chunk))
                    created.append(item)
                    memory_id = item.id
                rows.append(ChunkState(seq, chunk.hash, memory_id, chunk.start_line, chunk.end_line))
            leftover = [c.memory_id for group in pool.values() for c in group]
            archived = self._archive(conn, path, leftover, "removed from its file", existing)
            state.save_file(conn, FileState(path, st.st_size, st.st_mtime_ns, hashed_at, digest, state.INGESTED,
                                            None, len(rows)))
            state.save_chunks(conn, path, rows)
        self._announce(created, archived)
        action = "updated" if old else "added"
        return FileResult(path, action, added_ids=tuple(i.id for i in created), archived_ids=tuple(archived),
                          kept=kept)

    def _skip(self, path: str, st: os.stat_result | None, reason: str, *, digest: str = "",
              retry: bool = False) -> FileResult:
        """Record why a file is left out. Content we cannot use (binary, too large) archives what
        the file gave before; a read error (`retry`) keeps it and tries again on the next scan."""
        archived: list[str] = []
        with self.mem.db.write() as conn:
            known = state.file_state(conn, path)
            if retry:
                entry = FileState(path, -1, -1, 0, known.content_hash if known else "", state.SKIPPED, reason,
                                  known.chunks if known else 0)
            else:
                if known is not None:
                    chunks = state.chunks_of(conn, path)
                    archived = self._archive(conn, path, [c.memory_id for c in chunks], f"file skipped: {reason}")
                    state.save_chunks(conn, path, [])
                assert st is not None  # only a read error (`retry`) comes without a stat
                entry = FileState(path, st.st_size, st.st_mtime_ns, time.time_ns(), digest, state.SKIPPED, reason, 0)
            state.save_file(conn, entry)
        self._announce([], archived)
        log.info("skipped %s: %s", path, reason)
        return FileResult(path, "skipped", reason, archived_ids=tuple(archived))

    def _item(self, path: str, st: os.stat_result, chunk: Chunk, seq: int) -> MemoryItem:
        # Dates in a note ("yesterday") are relative to when it was written, not to now.
        written = from_ts(st.st_mtime)
        resolved = resolve_event_time(chunk.text, written)
        return MemoryItem(
            memory=check_text(chunk.text), key=_key(path, chunk), memory_type=MemoryType.RAW_FILE.value,
            source=Source.FILE.value, scope=self.scope, sources=[_file_ref(path, chunk)],
            event_time=resolved.start if resolved else written, event_end=resolved.end if resolved else None,
            info={"path": path, "heading": chunk.heading, "chunk": seq})

    def _archive(self, conn: apsw.Connection, path: str, memory_ids: list[str], reason: str,
                 existing: dict | None = None) -> list[str]:
        """Archive memories a file no longer gives. One that also came from elsewhere (the same
        text captured by hand) only loses this file from its provenance."""
        existing = existing if existing is not None else state.memory_rowids(conn, memory_ids)
        archived: list[str] = []
        for memory_id in dict.fromkeys(memory_ids):
            if memory_id not in existing:
                continue
            rowid, status, sources = existing[memory_id]
            others = [s for s in sources if not (s.get("type") == "file" and s.get("doc_path") == path)]
            if others:
                state.set_sources(conn, rowid, [SourceRef.from_dict(s) for s in others])
            elif status in LIVE_STATUSES:
                vault.update(conn, rowid, {"status": Status.ARCHIVED.value}, reason, None)
                archived.append(memory_id)
        return archived

    def _repoint(self, conn: apsw.Connection, old: str, new: str, chunks: list[ChunkState]) -> None:
        existing = state.memory_rowids(conn, [c.memory_id for c in chunks])
        old_stem, new_stem = _stem(old), _stem(new)
        for chunk in chunks:
            if chunk.memory_id not in existing:
                continue
            rowid, _, sources = existing[chunk.memory_id]
            item = vault.fetch(conn, rowid)
            changes: dict = {"sources": _with_file_ref(sources, old, new, chunk),
                             "info": {**item.info, "path": new}}
            if not item.info.get("heading") and item.key == old_stem[:MAX_KEY_CHARS]:
                changes["key"] = new_stem[:MAX_KEY_CHARS]
            vault.update(conn, rowid, changes, f"file moved from {old}", None)

    def _announce(self, created: list[MemoryItem], changed: list[str]) -> None:
        """After commit, as Memory.add does: wake the indexer and run the added/changed hooks."""
        if created:
            if self.mem.indexer is not None:
                self.mem.indexer.notify()
            for hook in list(self.mem.on_added):
                hook(created)
        if changed:
            for hook in list(self.mem.on_changed):
                hook(changed)


# ------------------------------------------------------------------ helpers
def absolute_path(path: str | os.PathLike) -> str:
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def utf8_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(path: str) -> str:
    """A path as text that can be printed and stored: undecodable bytes become U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def skipped_dir(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS


def is_inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _same_stat(entry: FileState, st: os.stat_result) -> bool:
    return (entry.size == st.st_size and entry.mtime_ns == st.st_mtime_ns
            and entry.hashed_at_ns - entry.mtime_ns >= RACY_NS)


def _hash_file(path: str, max_bytes: int) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    return None if len(data) > max_bytes else hashlib.sha256(data).hexdigest()


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _key(path: str, chunk: Chunk) -> str:
    return (chunk.heading or _stem(path))[:MAX_KEY_CHARS]


def _embed_text(chunk: Chunk) -> str | None:
    """The heading path gives a chunk its context for the embedder (keywords see it via the key)."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else None


def _file_ref(path: str, chunk: Chunk | ChunkState) -> SourceRef:
    return SourceRef(type="file", doc_path=path, start_line=chunk.start_line, end_line=chunk.end_line)


def _with_file_ref(sources: list[dict], old: str, new: str, chunk: Chunk | ChunkState) -> list[SourceRef]:
    """The sources with this file's reference replaced by one at `new` with the chunk's lines."""
    refs = [SourceRef.from_dict(s) for s in sources if not (s.get("type") == "file" and s.get("doc_path") == old)]
    return [_file_ref(new, chunk), *refs]
