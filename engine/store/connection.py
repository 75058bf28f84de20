"""Opening the encrypted vault: the one place where cipher and connection settings live.

Order matters for "a wrong key never modifies the file": the key is applied and verified
with a read before any pragma that writes (journal mode) or any migration runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import apsw
import sqlite_vec

from engine.errors import CorruptStoreError, MemDeskError, StorageFullError

# SQLite3MultipleCiphers configuration. ChaCha20-Poly1305 authenticates every page, so a
# tampered or truncated page is detected instead of decrypted to garbage.
CIPHER = "chacha20"
# Vector scans touch every vector page; decrypting them on each query would dominate
# search time, so readers keep up to this much decrypted in their page cache.
CACHE_KIB = 512 * 1024
BUSY_TIMEOUT_MS = 10_000


def _apply_key(conn: apsw.Connection, key: bytes) -> None:
    conn.pragma("cipher", CIPHER)
    conn.pragma("hexkey", key.hex())


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
    except apsw.CantOpenError as exc:
        raise CorruptStoreError(f"Cannot open {path} ({exc}); check the folder's permissions.") from exc
    try:
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
        conn.pragma("journal_mode", "wal")
        # NORMAL in WAL mode: a committed transaction survives a killed process; only a power
        # cut can lose the last commits, and never corrupts the file.
        conn.pragma("synchronous", "normal")
        conn.pragma("temp_store", "memory")
        conn.pragma("cache_size", -CACHE_KIB)
        conn.pragma("foreign_keys", True)
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.enable_load_extension(False)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def translate_errors(path: Path):
    """Turn SQLite failures met during normal work into MemDesk errors that say what to do."""
    try:
        yield
    except apsw.FullError as exc:
        raise StorageFullError(
            f"The disk holding {path} is full; the last change was rolled back and nothing was lost. "
            "Free some space and try again.") from exc
    except (apsw.CorruptError, apsw.NotADBError) as exc:
        raise CorruptStoreError(
            f"{path} is damaged ({exc}). Export what you can with `memdesk export`, then restore a backup.") from exc
    except apsw.ReadOnlyError as exc:
        raise MemDeskError(f"{path} is read-only; check its permissions.") from exc
