"""Opening the encrypted vault: the one place where cipher and connection settings live.

Order matters for "a wrong key never modifies the file": the key is applied and verified
with a read before any pragma that writes (journal mode) or any migration runs.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import apsw

from memdesk.engine.errors import AccessError, CorruptStoreError, StorageFullError, VaultBusyError

# SQLite3MultipleCiphers configuration. ChaCha20-Poly1305 authenticates every page, so a
# tampered or truncated page is detected instead of decrypted to garbage.
CIPHER = "chacha20"
# Vector scans touch every vector page; decrypting them on each query would dominate
# search time, so readers keep up to this much decrypted in their page cache.
CACHE_KIB = 512 * 1024
BUSY_TIMEOUT_MS = 10_000


@cache
def vec_extension() -> str:
    """sqlite-vec's loadable extension (vec0.so/.dylib/.dll; SQLite adds the suffix), found next to
    its package without importing it: the package imports numpy and sqlite3, 0.1 s of a cold start
    spent before the first window (bench.bundle)."""
    spec = find_spec("sqlite_vec")
    if spec is None or not spec.submodule_search_locations:
        import sqlite_vec  # an unusual layout: let the package say where it is

        return sqlite_vec.loadable_path()
    return os.path.normpath(os.path.join(next(iter(spec.submodule_search_locations)), "vec0"))


def _apply_key(conn: apsw.Connection, key: bytes) -> None:
    conn.pragma("cipher", CIPHER)
    conn.pragma("hexkey", key.hex())


def open_keyed(path: Path, key: bytes) -> apsw.Connection:
    """A bare keyed connection (same cipher as the vault), for copies that are not a live
    vault: backup files and their staging copies. No WAL, no extension, no verification."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
    try:
        _apply_key(conn, key)
    except BaseException:
        conn.close()
        raise
    return conn


def _looks_truncated(path: Path, conn: apsw.Connection) -> bool:
    wal = Path(str(path) + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return False  # pages may legitimately live only in the WAL until a checkpoint
    size = path.stat().st_size
    page_size = conn.pragma("page_size")
    pages = conn.pragma("page_count")
    return size % page_size != 0 or pages * page_size > size


def open_connection(path: Path, key: bytes, *, create: bool) -> apsw.Connection:
    """A keyed, verified connection with sqlite-vec loaded. Raises WrongKeyError/CorruptStoreError."""
    exists = path.exists()
    if not exists and not create:
        raise CorruptStoreError(
            f"The vault file {path} is missing although its key file is there. Restore it from a "
            "backup; to start over with an empty vault, move the key file (vault.key.json) away.")
    if exists and path.stat().st_size == 0:
        raise CorruptStoreError(
            f"The vault file {path} is empty (0 bytes): it was truncated. Restore it from a backup; "
            "MemDesk will not create a new vault over it.")
    flags = apsw.SQLITE_OPEN_READWRITE | (apsw.SQLITE_OPEN_CREATE if not exists else 0)
    try:
        conn = apsw.Connection(str(path), flags=flags)
    except (apsw.CantOpenError, apsw.ReadOnlyError, apsw.PermissionsError) as exc:
        raise access_error(path, exc) from exc
    try:
        if not exists:
            # 0600 like every file MemDesk writes; SQLite gives its WAL and index files the same mode.
            os.chmod(path, 0o600)
        _apply_key(conn, key)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except apsw.NotADBError as exc:
            raise CorruptStoreError(
                f"{path} could not be decrypted although the key is right: the file is damaged "
                "or is not a MemDesk vault. It has not been modified; restore it from a backup.") from exc
        except apsw.CorruptError as exc:
            raise CorruptStoreError(f"{path} is damaged ({exc}). It has not been modified.") from exc
        if exists and _looks_truncated(path, conn):
            raise CorruptStoreError(
                f"{path} is shorter than its own header says: the file was truncated. "
                "It has not been modified; restore it from a backup.")
        conn.setbusytimeout(BUSY_TIMEOUT_MS)
        if not exists:
            # Before the first table, where it takes effect without a VACUUM: freed pages can then
            # be handed back to the file system (engine/vault/maintenance.py).
            conn.pragma("auto_vacuum", 2)
        conn.pragma("journal_mode", "wal")
        # NORMAL in WAL mode: a committed transaction survives a killed process; only a power
        # cut can lose the last commits, and never corrupts the file.
        conn.pragma("synchronous", "normal")
        conn.pragma("temp_store", "memory")
        # Deleted content is overwritten, not just unlinked: a forgotten memory leaves no words
        # in free pages or in the unused space of the pages it shared with others.
        conn.pragma("secure_delete", True)
        conn.pragma("cache_size", -CACHE_KIB)
        conn.pragma("foreign_keys", True)
        conn.enable_load_extension(True)
        conn.load_extension(vec_extension())
        conn.enable_load_extension(False)
        if conn.readonly("main"):  # SQLite silently falls back to read-only for a write-protected file
            raise apsw.ReadOnlyError("the vault file or its WAL files are read-only")
    except (apsw.CantOpenError, apsw.ReadOnlyError, apsw.PermissionsError) as exc:
        # Even reading a WAL vault creates its index (-shm) and log (-wal) next to it.
        conn.close()
        raise access_error(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def access_error(path: Path, exc: BaseException) -> AccessError:
    return AccessError(
        f"MemDesk cannot write in {path.parent} ({exc}). Even reading the vault needs to create SQLite's "
        "WAL files next to it: make the folder and its files writable by you, or copy the whole data folder "
        "somewhere writable and point --data-dir at the copy.")


def _in_chain(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first error of `kinds` behind `exc`: SQLite may roll a transaction back on its own
    after corruption, and the failed ROLLBACK that follows ("cannot rollback - no transaction is
    active") must not hide the error that matters."""
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kinds):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


@contextmanager
def translate_errors(path: Path):
    """Turn SQLite failures met during normal work into MemDesk errors that say what to do.
    The error that matters is looked for along the chain (see `_in_chain`)."""
    try:
        yield
    except apsw.Error as exc:
        full = _in_chain(exc, (apsw.FullError,))
        if full is not None:
            raise StorageFullError(
                f"The disk holding {path} is full; the last change was rolled back and nothing was lost. "
                "Free some space and try again.") from full
        corrupt = _in_chain(exc, (apsw.CorruptError, apsw.NotADBError))
        if corrupt is not None:
            raise CorruptStoreError(
                f"{path} is damaged ({corrupt}). Export what you can with `memdesk export`, then restore a "
                "backup.") from corrupt
        denied = _in_chain(exc, (apsw.ReadOnlyError, apsw.CantOpenError, apsw.PermissionsError))
        if denied is not None:
            raise access_error(path, denied) from denied
        if isinstance(exc, apsw.BusyError):
            raise VaultBusyError(
                f"{path} stayed locked by another MemDesk process for over {BUSY_TIMEOUT_MS / 1000:g} s, so "
                "the change was not made. Try again in a moment; if it keeps happening, quit the other "
                "MemDesk (its tray icon) or a `memdesk` command that is still running.") from exc
        raise
