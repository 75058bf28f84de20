"""The Memory API: plain data in, plain data out.

    with Memory.open(data_dir) as mem:
        mem.add("I moved to Porto in March", tags=["home"])
        hits = mem.search("where do I live?")

Writes are synchronous and durable when they return (the fast path); vectors follow a
moment later from the indexer thread. Fine extraction plugs in through `on_added`.
"""
from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from memdesk.engine.cube import (
    AddResult,
    ChatMessage,
    Edge,
    Filters,
    MemoryItem,
    MemoryType,
    Relation,
    SearchHit,
    Source,
    SourceRef,
    Status,
    Version,
    iso,
    new_id,
    to_utc,
    ts,
    utcnow,
)
from memdesk.engine.errors import CorruptStoreError, InvalidInputError, StaleVersionError
from memdesk.engine.parametric.registry import Adapter, AdapterRegistry
from memdesk.engine.scheduler.health import Health
from memdesk.engine.search.embed import Embedder
from memdesk.engine.search.indexer import Indexer
from memdesk.engine.search.preferences import MAX_PREFERENCES, Considerations, ScoredPreference, rank
from memdesk.engine.search.retrieval import QueryPlan, SearchParams, plan
from memdesk.engine.search.retrieval import search as hybrid_search
from memdesk.engine.search.timeparse import resolve_event_time
from memdesk.engine.text import MAX_KEY_CHARS, check_text, content_hash
from memdesk.engine.vault import items as vault
from memdesk.engine.vault import search_rows, vectors
from memdesk.engine.vault.changes import Changes
from memdesk.engine.vault.database import Database
from memdesk.engine.vault.feedback import Feedback, ReplyFeedback
from memdesk.engine.vault.keys import KdfParams, KeyManager, PassphraseProvider, env_passphrase_provider
from memdesk.engine.vault.maintenance import quick_check
from memdesk.engine.vault.paths import ProfilePaths, data_dir
from memdesk.engine.vault.private_files import make_private_dir
from memdesk.engine.vault.search_rows import sql_filters
from memdesk.engine.vault.sessions import Message, Session, Sessions

if TYPE_CHECKING:
    import numpy as np

    from memdesk.engine.vault.exchange import ImportReport

__all__ = ["Adapter", "Memory", "Message", "ReplyFeedback", "Session", "check_priority"]  # the types the UI is handed

log = logging.getLogger(__name__)

AddedHook = Callable[[list[MemoryItem]], None]
"""Called after a fast-path add commits, with the new items. Fine extraction plugs in here."""
SUPERSEDED = "superseded"  # how a version's reason starts when a newer value replaced it
ChangedHook = Callable[[list[str]], None]
"""Called after memories were edited, archived, deleted or purged, with their ids
(activation memory drops cached prefixes that rendered them)."""
CommitHook = Callable[[Changes], None]
"""Called after every committed write, whoever made it, with what it changed (engine/vault/changes.py).
Views refresh from it (the app relays it to the GUI thread as one signal)."""


class Memory:
    def __init__(self, db: Database, paths: ProfilePaths, embedder: Embedder | None, background: bool):
        self.db = db
        self.paths = paths
        self.embedder = embedder
        self.health = Health()  # what this vault's background loops report (engine/scheduler/health.py)
        self.indexer = Indexer(db, embedder, health=self.health) if embedder is not None else None
        self.on_added: list[AddedHook] = []
        self.on_changed: list[ChangedHook] = []
        self.on_commit: list[CommitHook] = db.on_commit
        self._background = background
        if self.indexer is not None and background:
            self.indexer.start()

    # ------------------------------------------- what the app shows besides the memories
    # The UI reads and changes sessions, feedback and adapters through these, never through
    # the database handle (tests/test_layout.py): the SQL stays in the vault package.
    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self.db)

    @cached_property
    def feedback(self) -> Feedback:
        return Feedback(self.db)

    @cached_property
    def adapters(self) -> AdapterRegistry:
        return AdapterRegistry(self.db)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, data_dir_path: str | os.PathLike | None = None, *, profile: str = "default",
             passphrase: PassphraseProvider = env_passphrase_provider, embedder: Embedder | None | bool = True,
             background: bool = True, kdf: KdfParams = KdfParams()) -> Memory:
        """Open (or create) a profile's vault. `embedder=False` gives a keyword-only vault."""
        paths = ProfilePaths.for_profile(data_dir(data_dir_path), profile)
        from memdesk.engine.vault.backup import recover_interrupted

        recover_interrupted(paths)  # a restore cut short between its two renames
        keys = KeyManager(paths.key_sidecar, passphrase, kdf)
        if keys.exists():
            key = keys.load()
            create = False
        else:
            if paths.vault.exists():
                raise CorruptStoreError(
                    f"{paths.vault} exists but its key file {paths.key_sidecar} is missing; "
                    "restore the key file from the same backup. The vault has not been modified.")
            make_private_dir(paths.root, owned_from=paths.data_dir / "profiles")
            key = keys.create(new_id())
            create = True
        try:
            db = Database(paths.vault, key, create=create)
        except BaseException:
            if create:  # a half-made vault (disk full, permissions) must not look like a real one
                for leftover in (paths.key_sidecar, *paths.root.glob("vault.db*")):
                    leftover.unlink(missing_ok=True)
            raise
        try:
            if embedder is True:
                embedder = Embedder()
            return cls(db, paths, embedder or None, background)
        except BaseException:
            db.close()  # the embedder could not load: the caller gets the error, not an open vault
            raise

    def close(self) -> None:
        if self.indexer is not None:
            self.indexer.stop()
        self.db.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def add(self, text: str, *, key: str = "", tags: Iterable[str] = (), memory_type: str = MemoryType.LONG_TERM,
            source: str = Source.CAPTURE, scope: str = "default", sources: Sequence[SourceRef] = (),
            event_time: datetime | None = None, reference_time: datetime | None = None,
            confidence: float = 1.0, priority: int = 0, pinned: bool = False, expires: datetime | None = None,
            visibility: str = "private", info: dict | None = None, embed_text: str | None = None) -> AddResult:
        """Store one memory now. Relative dates in the text resolve against `reference_time`.
        `embed_text`: what the embedder sees instead of the text (e.g. the text with its context)."""
        reference = to_utc(reference_time) or utcnow()
        item = self._new_item(text, key=key, tags=tags, memory_type=memory_type, source=source, scope=scope,
                              sources=list(sources) or [SourceRef(type=str(source), chat_time=iso(reference))],
                              event_time=event_time, reference=reference, confidence=confidence,
                              priority=priority, pinned=pinned, expires=expires, visibility=visibility, info=info)
        return self._store([(item, embed_text)])[0]

    def add_messages(self, messages: Sequence[ChatMessage], *, scope: str = "default",
                     tags: Iterable[str] = ()) -> list[AddResult]:
        """Store chat turns verbatim (one memory each), linked in order by FOLLOWS edges."""
        tags = list(tags)
        pending: list[tuple[MemoryItem, str | None]] = []
        for message in messages:
            text = check_text(message.text, "message")
            speaker = check_text(message.speaker, "speaker")
            when = to_utc(message.timestamp) or utcnow()
            ref = SourceRef(type="chat", message_id=message.message_id or new_id(), session_id=message.session_id,
                            role=speaker, chat_time=iso(when))
            resolved = resolve_event_time(text, when)
            item = self._new_item(f"{speaker}: {text}", key="", tags=tags, memory_type=MemoryType.RAW_CHAT,
                                  source=Source.CONVERSATION, scope=scope, sources=[ref],
                                  event_time=resolved.start if resolved else when, reference=when,
                                  event_end=resolved.end if resolved else None, info={"role": message.role})
            pending.append((item, None))
        return self._store(pending, link=Relation.FOLLOWS)

    def _new_item(self, text: str, *, key: str, tags: Iterable[str], memory_type: str, source: str, scope: str,
                  sources: list[SourceRef], event_time: datetime | None, reference: datetime,
                  event_end: datetime | None = None, confidence: float = 1.0, priority: int = 0,
                  pinned: bool = False, expires: datetime | None = None, visibility: str = "private",
                  info: dict | None = None) -> MemoryItem:
        text = check_text(text)
        priority = check_priority(priority)
        if not isinstance(key, str):
            raise InvalidInputError(f"The key must be text, not {type(key).__name__}.")
        if len(key) > MAX_KEY_CHARS:
            raise InvalidInputError(f"The key is {len(key)} characters; keep it under {MAX_KEY_CHARS}.")
        tag_list = _clean_tags(tags)
        if event_time is None:
            resolved = resolve_event_time(text, reference)
            if resolved is not None:
                event_time, event_end = resolved.start, resolved.end
        now = utcnow()
        return MemoryItem(memory=text, key=key, tags=tag_list, memory_type=str(memory_type), source=str(source),
                          scope=scope, sources=sources, created_at=now, updated_at=now,
                          event_time=to_utc(event_time), event_end=to_utc(event_end), confidence=confidence,
                          priority=priority, pinned=pinned, expires=to_utc(expires), visibility=visibility,
                          info=dict(info or {}))

    def _store(self, pending: list[tuple[MemoryItem, str | None]], link: Relation | None = None) -> list[AddResult]:
        results: list[AddResult] = []
        created: list[MemoryItem] = []
        changed: list[str] = []
        with self.db.write() as conn:
            previous_id: str | None = None
            for item, embed_text in pending:
                digest = content_hash(item.memory)
                duplicate = vault.find_live_duplicate(conn, item.scope, digest)
                if duplicate is not None:
                    merged, kept = _merge_repeat(conn, duplicate[0], item)
                    vault.merge_sources(conn, duplicate[0], item.sources)
                    results.append(AddResult(duplicate[1], created=False, merged=merged, kept=kept))
                    if merged:
                        changed.append(duplicate[1])
                    current_id = duplicate[1]
                else:
                    vault.insert(conn, item, digest, embed_text)
                    results.append(AddResult(item.id, created=True))
                    created.append(item)
                    current_id = item.id
                if link is not None and previous_id is not None and previous_id != current_id:
                    vault.add_edge(conn, previous_id, current_id, link.value)
                previous_id = current_id
        self.db.after_commit(lambda: self._added(created, changed))
        return results

    def _added(self, created: list[MemoryItem], changed: list[str]) -> None:
        if self.indexer is not None and created and self._background:
            self.indexer.notify()
        for hook in self.on_added:
            hook(created)
        self._changed(changed)

    def _changed(self, memory_ids: list[str]) -> None:
        if memory_ids:
            for hook in self.on_changed:
                hook(memory_ids)

    def update(self, memory_id: str, *, reason: str = "edited", expected_version: int | None = None,
               **changes) -> MemoryItem:
        """Change fields; the previous state is kept as a version in history. `expected_version`:
        the version the editor showed; a newer one (written meanwhile by someone else) is not
        overwritten, StaleVersionError is raised and nothing changes."""
        if "memory" in changes:
            changes["memory"] = check_text(changes["memory"])
        if "tags" in changes:
            changes["tags"] = _clean_tags(changes["tags"])
        if "priority" in changes:
            changes["priority"] = check_priority(changes["priority"])
        if "key" in changes and (not isinstance(changes["key"], str) or len(changes["key"]) > MAX_KEY_CHARS):
            raise InvalidInputError(f"The key must be text of at most {MAX_KEY_CHARS} characters.")
        if "status" in changes and changes["status"] not in {s.value for s in Status}:
            raise InvalidInputError(f"Unknown status {changes['status']!r}; use one of {[s.value for s in Status]}.")
        with self.db.write() as conn:
            rowid, _ = vault.resolve(conn, memory_id)
            if expected_version is not None:
                current = vault.fetch(conn, rowid)
                if current.version != expected_version:
                    raise StaleVersionError(
                        f"This memory changed while you edited it (you saw version {expected_version}, it is "
                        f"now version {current.version}); nothing was saved. Reload it, then make your "
                        "change again.")
            digest = content_hash(changes["memory"]) if "memory" in changes else None
            vault.update(conn, rowid, changes, reason, digest)
            item = vault.fetch(conn, rowid)
        if "memory" in changes and self.indexer is not None and self._background:
            self.db.after_commit(self.indexer.notify)
        self.db.after_commit(lambda: self._changed([item.id]))
        return item

    def archive(self, memory_id: str) -> MemoryItem:
        return self.update(memory_id, status=Status.ARCHIVED.value, reason="archived")

    def delete(self, memory_id: str) -> MemoryItem:
        """Soft delete: hidden from search, kept with its history until purged."""
        return self.update(memory_id, status=Status.DELETED.value, reason="deleted")

    def restore(self, memory_id: str) -> MemoryItem:
        return self.update(memory_id, status=Status.ACTIVATED.value, reason="restored")

    def purge(self, memory_id: str) -> str:
        """Hard delete of the item, its history and its edges. Explicit and irreversible."""
        with self.db.write() as conn:
            rowid, full_id = vault.resolve(conn, memory_id)
            vault.purge(conn, rowid)
        self.db.after_commit(lambda: self._changed([full_id]))
        return full_id

    def supersede(self, memory_ids: Sequence[str], by: str, why: str) -> list[str]:
        """Current truth: these memories state a value that `by` replaced. They are archived with
        the reason and a MERGED_TO edge to `by`, in one transaction: search (live memories only)
        stops giving them as current, while history, the browser and undo keep them."""
        changed: list[str] = []
        with self.db.write() as conn:
            _, by_id = vault.resolve(conn, by)
            for memory_id in dict.fromkeys(memory_ids):
                rowid, full_id = vault.resolve(conn, memory_id)
                if full_id == by_id or vault.fetch(conn, rowid).status not in (Status.ACTIVATED, Status.RESOLVING):
                    continue
                vault.update(conn, rowid, {"status": Status.ARCHIVED.value}, f"{SUPERSEDED}: {why}", None)
                vault.add_edge(conn, full_id, by_id, Relation.MERGED_TO.value)
                changed.append(full_id)
        self.db.after_commit(lambda: self._changed(changed))
        return changed

    def turns_of_messages(self, message_ids: Sequence[str]) -> list[MemoryItem]:
        """The live raw chat turns stored for these chat message ids."""
        with self.db.read() as conn:
            return vault.turns_of_messages(conn, list(message_ids))

    def link(self, src: str, dst: str, relation: Relation | str, weight: float = 1.0) -> None:
        with self.db.write() as conn:
            _, src_id = vault.resolve(conn, src)
            _, dst_id = vault.resolve(conn, dst)
            vault.add_edge(conn, src_id, dst_id, str(Relation(relation)), weight)

    # ------------------------------------------------------------------ reading
    def get(self, memory_id: str) -> MemoryItem:
        with self.db.read() as conn:
            rowid, _ = vault.resolve(conn, memory_id)
            return vault.fetch(conn, rowid)

    def get_many(self, memory_ids: Sequence[str]) -> dict[str, MemoryItem]:
        """Memories by full id, read at once; ids purged since are left out."""
        with self.db.read() as conn:
            return vault.fetch_by_ids(conn, memory_ids)

    def history(self, memory_id: str) -> list[Version]:
        """Earlier versions, oldest first; the current state is `get()`."""
        with self.db.read() as conn:
            rowid, _ = vault.resolve(conn, memory_id)
            return vault.history(conn, rowid)

    def edges(self, memory_id: str) -> list[Edge]:
        with self.db.read() as conn:
            _, full_id = vault.resolve(conn, memory_id)
            return vault.edges_of(conn, full_id)

    def search(self, query: str, *, k: int = 10, filters: Filters = Filters(), include_inactive: bool = False,
               reference_time: datetime | None = None, params: SearchParams = SearchParams(),
               fresh: bool = False, query_vector: np.ndarray | None = None,
               keep: Callable[[MemoryItem], bool] | None = None,
               query_plan: QueryPlan | None = None) -> list[SearchHit]:
        """Hybrid search. Memories whose vectors are still pending are found by keywords only:
        a search never waits for the embedding backlog (`embedding_progress` says how far it is).
        `fresh=True` first indexes every pending vector; it can take minutes after a big import.
        `query_vector` (from `embed_query`) and `query_plan` (from `plan`, for this query, filters
        and reference time) save embedding and parsing the same text twice; `keep` drops items
        from the results without letting them take one of the k places."""
        query = check_text(query, "query")
        if include_inactive:
            filters = replace(filters, statuses=())
        if fresh:
            self.wait_indexed()
        query_plan = query_plan or self.plan(query, filters, reference_time)
        qvec = query_vector if query_vector is not None else self.embed_query(query)
        with self.db.read() as conn:
            return hybrid_search(conn, query_plan, qvec, k, params, now=reference_time, keep=keep)

    def search_preferences(self, query: str, *, k: int = 5, scope: str | None = None,
                           query_vector: np.ndarray | None = None, bridge: bool = True) -> list[ScoredPreference]:
        """The user's preferences that most likely govern `query`, best first (engine.search.preferences).
        `bridge=False` ranks by meaning alone (the benchmark's comparison)."""
        qvec = query_vector if query_vector is not None else self.embed_query(check_text(query, "query"))
        if qvec is None:  # a keyword-only vault: what shares words is all that can be found
            only = Filters(scope=scope, memory_types=(MemoryType.PREFERENCE.value,))
            return [ScoredPreference(h.item, h.score, 0.0, 0.0) for h in self.search(query, k=k, filters=only)]
        with self.db.read() as conn:
            rows = vault.preference_candidates(conn, scope, MAX_PREFERENCES)
            stored = vectors.vectors_of(conn, [rowid for rowid, _ in rows])
        candidates = [(item, stored[rowid]) for rowid, item in rows if rowid in stored]
        return rank(qvec, candidates, Considerations.for_embedder(self.embedder) if bridge else None)[:k]

    def embed_query(self, query: str) -> np.ndarray | None:
        """The query's vector (None for a keyword-only vault), to pass to several searches."""
        if self.embedder is None:
            return None
        if self.indexer is not None:
            self.indexer.prepare()
        return self.embedder.encode([query])[0]

    def list(self, filters: Filters = Filters(), *, order: str = "updated", limit: int = 100,
             offset: int = 0, after: str | None = None) -> list[MemoryItem]:
        """Memories matching `filters`, newest first (or by "priority", "event_time", "usage",
        "created"). For paging, pass the id of the last memory shown as `after`: the next page
        then costs the same at row 50,000 as at row 0 (an offset has to skip every row before)."""
        if order not in vault.LIST_ORDERS:
            raise InvalidInputError(f"Unknown order {order!r}; use one of {sorted(vault.LIST_ORDERS)}.")
        where, args = sql_filters(filters, ts(filters.since), ts(filters.until), listing=True)
        with self.db.read() as conn:
            return vault.listing(conn, where, args, order, limit, offset, after)

    def count(self, filters: Filters = Filters()) -> int:
        """How many memories `list(filters)` would page through."""
        where, args = sql_filters(filters, ts(filters.since), ts(filters.until))
        with self.db.read() as conn:
            return vault.count(conn, where, args)

    def find_by_key(self, key: str, *, scope: str = "default", memory_types: Sequence[str] = (
            MemoryType.USER, MemoryType.PREFERENCE, MemoryType.LONG_TERM)) -> builtins.list[MemoryItem]:
        """Live memories with this exact key (how MemReader finds the fact a new one updates)."""
        with self.db.read() as conn:
            return vault.live_by_key(conn, scope, key, [str(t) for t in memory_types])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One user action, one transaction: the writes inside commit together or not at all
        (each becomes a savepoint), and what they trigger runs once it has committed."""
        with self.db.write():
            yield

    def mark_used(self, memory_ids: Sequence[str]) -> None:
        """Count that these memories were given to the model (usage statistics)."""
        if memory_ids:
            with self.db.write() as conn:
                vault.mark_used(conn, memory_ids, utcnow().timestamp())

    def plan(self, query: str, filters: Filters = Filters(), reference_time: datetime | None = None) -> QueryPlan:
        return plan(query, filters, reference_time)

    def embedding_progress(self) -> tuple[int, int]:
        """(memories with their vector, all memories): what a progress bar shows while the
        indexer works through a backlog. Searches never wait for it: what is not embedded yet
        is found by its keywords only."""
        with self.db.read() as conn:
            total = search_rows.memory_count(conn)
            return total - vault.count_pending(conn), total

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Until every memory has its vector (or the timeout passes)."""
        return True if self.indexer is None else self.indexer.wait_idle(timeout)

    def check(self) -> None:
        """Read and verify every page (SQLite quick_check; ChaCha20-Poly1305 authenticates each page)."""
        with self.db.read() as conn:
            problems = quick_check(conn)
        if problems != ["ok"]:
            raise CorruptStoreError(f"{self.paths.vault} is damaged: {'; '.join(problems[:3])}. "
                                    "Export what you can with `memdesk export`, then restore a backup.")

    def stats(self, *, by_part: bool = False) -> dict:
        """Counts and sizes; `by_part` adds the vault's bytes by what they hold (reads every page)."""
        with self.db.read() as conn:
            data = vault.stats(conn)
            if by_part:
                from memdesk.engine.vault.maintenance import storage_by_part

                data["vault_parts"] = storage_by_part(conn, self.paths.vault)
        data["vault"] = str(self.paths.vault)
        data["vault_bytes"] = sum(p.stat().st_size for p in self.paths.root.glob("vault.db*") if p.is_file())
        data["embedder"] = self.embedder.fingerprint if self.embedder is not None else None
        data["indexer_error"] = self.indexer.last_error if self.indexer is not None else None
        return data

    # --------------------------------------------------------------- exchange
    def export(self, path: str | os.PathLike, **kwargs) -> int:
        from memdesk.engine.vault.exchange import export_jsonl

        return export_jsonl(self, Path(path), **kwargs)

    def import_(self, path: str | os.PathLike) -> ImportReport:
        from memdesk.engine.vault.exchange import import_jsonl

        return import_jsonl(self, Path(path))


# A repeated add may say more than the first one did; a generic type gives way to a specific one.
_GENERIC_TYPES = (MemoryType.LONG_TERM.value, MemoryType.WORKING.value)
_SPECIFIC_TYPES = (MemoryType.USER.value, MemoryType.PREFERENCE.value)


def _merge_repeat(conn, rowid: int, new: MemoryItem) -> tuple[tuple[str, ...], dict]:
    """Adding text that is already stored merges what the new add says into the stored item (as
    a new version, so it can be undone) instead of dropping it: tags are joined, pinned and a
    higher priority win, an empty key is filled, and a generic type becomes the specific one
    asked for. Returns (fields merged, {field: value asked for but kept as it was})."""
    old = vault.fetch(conn, rowid)
    changes: dict = {}
    kept: dict = {}
    tags = old.tags + [t for t in new.tags if t not in old.tags]
    if tags != old.tags:
        changes["tags"] = tags
    if new.pinned and not old.pinned:
        changes["pinned"] = True
    if new.priority > old.priority:
        changes["priority"] = new.priority
    elif new.priority < old.priority and new.priority != 0:  # 0 is what an add says when it says nothing
        kept["priority"] = new.priority
    if new.key and new.key != old.key:
        if not old.key:
            changes["key"] = new.key
        else:
            kept["key"] = new.key
    if new.memory_type != old.memory_type:
        if old.memory_type in _GENERIC_TYPES and new.memory_type in _SPECIFIC_TYPES:
            changes["memory_type"] = new.memory_type
        elif new.memory_type not in _GENERIC_TYPES:  # the default type asks for nothing
            kept["memory_type"] = new.memory_type
    if changes:
        vault.update(conn, rowid, changes, "merged a repeated add", None)
    return tuple(changes), kept


PRIORITY_LIMIT = 100  # priorities run from -100 to 100 (the memory browser's range)


def check_priority(value: object) -> int:
    """A whole number in range; anything else is refused before it reaches SQLite (whose integers
    stop at 2**63, where Python's do not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"The priority must be a whole number from {-PRIORITY_LIMIT} to {PRIORITY_LIMIT}, "
                                f"not {value!r}.")
    if not -PRIORITY_LIMIT <= value <= PRIORITY_LIMIT:
        raise InvalidInputError(f"The priority {value} is out of range; use {-PRIORITY_LIMIT} to {PRIORITY_LIMIT}.")
    return value


def _clean_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        tag = check_text(tag, "tag")
        if len(tag) > 100:
            raise InvalidInputError(f"The tag {tag[:20]!r}... is too long; keep tags under 100 characters.")
        if tag not in out:
            out.append(tag)
    return out

