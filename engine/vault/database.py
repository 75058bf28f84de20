"""Connection ownership: one writer behind a lock; reader connections checked out one
thread at a time.

SQLite in WAL mode lets readers run beside the writer; sharing one connection between
threads at the same time is what the architecture forbids. Readers are pooled rather
than kept in thread-local storage: Qt's thread pools give each job a fresh Python thread
state, so a thread-local reader was opened (and kept, with its page cache) per job.
A pool holds as many readers as there were concurrent reads, and their caches stay warm.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from memdesk.engine.vault import changes as change_log
from memdesk.engine.vault.changes import Changes
from memdesk.engine.vault.connection import open_connection, translate_errors
from memdesk.engine.vault.migrations import migrate


class VaultClosed(RuntimeError):
    """The vault was closed; a background loop that meets this has nothing left to do."""


class Database:
    def __init__(self, path: Path, key: bytes, *, create: bool):
        self.path = path
        self._key = key
        self._writer = open_connection(path, key, create=create)
        try:
            with translate_errors(path):
                self.applied_migrations = migrate(self._writer)
                change_log.install(self._writer)
        except BaseException:
            self._writer.close()
            raise
        # Called after each committed write with what it changed, on the writing thread, outside
        # the write lock (engine/vault/changes.py). A listener must return quickly and not raise: the
        # write has already happened.
        self.on_commit: list[Callable[[Changes], None]] = []
        self._owner: int | None = None  # the thread whose write transaction is open
        self._after: list[Callable[[], None]] = []  # run once that transaction commits
        self._write_lock = threading.RLock()
        self._held: dict[int, apsw.Connection] = {}  # thread ident -> the reader it has checked out
        self._idle: list[apsw.Connection] = []
        self._readers: list[apsw.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @contextmanager
    def write(self) -> Iterator[apsw.Connection]:
        """One transaction on the writer; committed on success, rolled back on any error.

        It begins IMMEDIATE, taking the vault's write lock before its first read. A deferred
        transaction reads first and upgrades at its first write; if another process (the
        app, a `memdesk` command) committed in between, SQLite fails the upgrade at once with
        "database is locked" and never applies the busy timeout. Taking the lock up front
        makes a second process wait its turn (up to BUSY_TIMEOUT_MS, then VaultBusyError)."""
        changed, after = Changes(), []
        with self._write_lock, translate_errors(self.path):
            self._check_open()
            writer = self._writer
            if writer.in_transaction:  # nested on this thread: a savepoint inside the open transaction
                with writer:
                    yield writer
                return  # the outermost write reports it all, once committed
            writer.execute("BEGIN IMMEDIATE")
            self._owner = threading.get_ident()
            try:
                yield writer
                changed = change_log.collect(writer)
                writer.execute("COMMIT")
                after = self._after
            finally:
                self._owner, self._after = None, []
                if writer.in_transaction:  # an error in the block, or in COMMIT itself
                    writer.execute("ROLLBACK")
        if changed:
            for listener in list(self.on_commit):
                listener(changed)
        for callback in after:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the write transaction this thread has open commits (never, if it
        rolls back), or now when none is open. What follows a write (hooks that start more
        work) waits for the one transaction of a user action that holds it."""
        if self._owner == threading.get_ident():
            self._after.append(callback)
        else:
            callback()

    @contextmanager
    def exclusive(self) -> Iterator[apsw.Connection]:
        """The writer outside any transaction, for what cannot run inside one (wal_checkpoint,
        VACUUM); other writes wait until the block ends."""
        with self._write_lock, translate_errors(self.path):
            self._check_open()
            yield self._writer

    @contextmanager
    def read(self) -> Iterator[apsw.Connection]:
        """A reader connection inside a read transaction, for a consistent view."""
        self._check_open()
        ident = threading.get_ident()
        conn = self._held.get(ident)
        if conn is not None:  # a nested read on the same thread shares its transaction
            yield conn
            return
        with self._readers_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = open_connection(self.path, self._key, create=False)
            with self._readers_lock:
                self._readers.append(conn)
        self._held[ident] = conn
        try:
            with translate_errors(self.path):
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    conn.execute("COMMIT")
        finally:
            del self._held[ident]
            if conn.in_transaction:  # the COMMIT itself failed: never hand out a half-open reader
                conn.execute("ROLLBACK")
            with self._readers_lock:
                if not self._closed:
                    self._idle.append(conn)
                else:  # close() ran while this read was under way and left the reader to us
                    self._readers.remove(conn)
                    conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise VaultClosed("the vault is closed")

    def close(self) -> None:
        """Close the vault. A write under way finishes first (close waits for the write lock);
        a read under way keeps its connection until it ends, and that connection is closed then.
        Closing a connection another thread is using would fail that thread's read half-way."""
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._idle:
                    conn.close()
                    self._readers.remove(conn)
                self._idle.clear()
                reading = bool(self._readers)
            # TRUNCATE waits (busy timeout) for readers; one of ours still reading would only delay it.
            mode = "PASSIVE" if reading else "TRUNCATE"
            try:
                self._writer.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            except apsw.BusyError:
                pass  # another process is reading; the next close checkpoints
            self._writer.close()
