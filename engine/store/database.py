"""Connection ownership: one writer behind a lock, one reader connection per thread.

SQLite in WAL mode lets readers run beside the writer; sharing one connection across
threads is what the architecture forbids, so each thread gets its own reader.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import apsw

from engine.store.connection import open_connection, translate_errors
from engine.store.migrations import migrate


class Database:
    def __init__(self, path: Path, key: bytes, *, create: bool):
        self.path = path
        self._key = key
        self._writer = open_connection(path, key, create=create)
        with translate_errors(path):
            self.applied_migrations = migrate(self._writer)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[apsw.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @contextmanager
    def write(self) -> Iterator[apsw.Connection]:
        """One transaction on the writer; committed on success, rolled back on any error."""
        with self._write_lock, translate_errors(self.path):
            self._check_open()
            with self._writer:
                yield self._writer

    @contextmanager
    def read(self) -> Iterator[apsw.Connection]:
        """This thread's reader connection, inside a read transaction for a consistent view."""
        self._check_open()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.path, self._key, create=False)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        with translate_errors(self.path):
            if conn.in_transaction:  # nested read on the same thread
                yield conn
                return
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the vault is closed")

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except apsw.BusyError:
                pass  # another process is reading; the next close checkpoints
            self._writer.close()
