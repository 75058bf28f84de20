"""Encrypted backups of a whole profile, restorable on any machine.

A copied data folder is useless without the vault key, and with the key in the OS keyring
that key never leaves the machine; `memdesk export` is plaintext and holds memories and
edges only. A backup is one file with the whole vault (every table: memories, history,
chats, feedback, datasets, adapters, activation states, ingestion state), encrypted under
a passphrase chosen when the backup is made, so it opens wherever that passphrase is known.

File layout (docs/design-notes.md, "Backups"):

    b"MEMDESK-BACKUP\\n"             magic, 15 bytes
    uint32 big-endian N              length of the header
    N bytes of UTF-8 JSON header     format, version, created_at, kdf, salt, check, payload size and sha256
    payload                          an SQLite3MultipleCiphers database (ChaCha20-Poly1305 pages, the
                                     vault's cipher) keyed with Argon2id(NFC passphrase, salt)

The header holds no memory content. `check` (HMAC-SHA256 of a label under the key) tells a
wrong passphrase from a damaged file before anything is written; `payload_sha256` catches a
truncated or altered file; each page is authenticated besides. The KDF cost in the header
is bounded before use (a tampered header must not hang the machine).

Restoring writes a new vault under a new vault key, kept the usual way on the machine that
restores (OS keyring, else a passphrase), in a staging folder that only replaces the profile
once it is complete and verified: a failure leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import struct
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import apsw

from memdesk.engine.cube import iso, new_id, parse_iso, utcnow
from memdesk.engine.errors import CorruptStoreError, InvalidInputError, WrongKeyError
from memdesk.engine.vault.connection import open_keyed
from memdesk.engine.vault.database import Database
from memdesk.engine.vault.keys import (
    KdfParams,
    KeyManager,
    PassphraseProvider,
    check_new_passphrase,
    derive_key,
    env_passphrase_provider,
    key_check,
)
from memdesk.engine.vault.migrations import MIGRATIONS
from memdesk.engine.vault.paths import ProfilePaths
from memdesk.engine.vault.private_files import fsync_dir, make_private_dir, replace_whole

MAGIC = b"MEMDESK-BACKUP\n"
FORMAT = "memdesk.backup"
VERSION = 1
BACKUP_PASSPHRASE_ENV = "MEMDESK_BACKUP_PASSPHRASE"
MAX_HEADER_BYTES = 64 * 1024
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupHeader:
    created_at: datetime
    kdf: KdfParams
    salt: str
    check: str
    payload_bytes: int
    payload_sha256: str
    offset: int  # where the payload starts in the file

    def to_json(self) -> bytes:
        data = {"format": FORMAT, "version": VERSION, "created_at": iso(self.created_at),
                "kdf": {"name": "argon2id", **asdict(self.kdf)}, "salt": self.salt, "check": self.check,
                "cipher": "sqlite3mc-chacha20", "payload_bytes": self.payload_bytes,
                "payload_sha256": self.payload_sha256}
        return json.dumps(data, sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int
    tables: dict[str, int]  # table -> rows (what the backup holds)


@dataclass(frozen=True)
class RestoreReport:
    profile: ProfilePaths
    created_at: datetime  # when the backup was made
    tables: dict[str, int]
    replaced: bool  # an existing profile was replaced (it was asked for)
    key_mode: str  # how the restored vault's key is kept here: "keyring" | "passphrase"


# ------------------------------------------------------------------ creating
def create_backup(mem, dest: str | os.PathLike, passphrase: str, *, kdf: KdfParams = KdfParams()) -> BackupReport:
    """Write the whole profile of the open vault `mem` to `dest`, encrypted under `passphrase`.
    `dest` is replaced whole or not at all (a symlink or device there is refused)."""
    dest = Path(dest)
    check_new_passphrase(passphrase, "backup passphrase")
    if str(dest) == "-":
        raise InvalidInputError("A backup is written to a file; give its path (not '-').")
    salt = secrets.token_bytes(16)
    key = derive_key(passphrase, salt, kdf)
    fd, scratch_name = tempfile.mkstemp(prefix=".memdesk-backup-", suffix=".db", dir=dest.parent)
    os.close(fd)
    scratch = Path(scratch_name)
    try:
        target = open_keyed(scratch, key)
        try:
            with mem.db.read() as source:
                # The online backup copies pages from one consistent read snapshot; the copy is
                # encrypted under the backup key as it is written, never in plaintext.
                with target.backup("main", source, "main") as copy:
                    copy.step(-1)
            target.pragma("journal_mode", "delete")  # one self-contained file, whatever the vault's mode
            tables = _row_counts(target)
            _verify(target, scratch)
        finally:
            target.close()
        size, digest = _digest(scratch)
        header = BackupHeader(utcnow(), kdf, salt.hex(), key_check(key), size, digest, 0).to_json()
        with replace_whole(dest) as out:
            out.write(MAGIC + struct.pack(">I", len(header)) + header)
            with open(scratch, "rb") as payload:
                shutil.copyfileobj(payload, out, _CHUNK)
    finally:
        for leftover in (scratch, *scratch.parent.glob(scratch.name + "-*")):
            leftover.unlink(missing_ok=True)
    return BackupReport(dest, dest.stat().st_size, tables)


# ------------------------------------------------------------------ reading
def read_header(path: str | os.PathLike) -> BackupHeader:
    """The header of a backup file, validated; raises InvalidInputError for a file that is not
    a MemDesk backup and CorruptStoreError for a damaged one."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(MAGIC))
            if magic != MAGIC:
                raise InvalidInputError(f"{path} is not a MemDesk backup (made by `memdesk backup create`).")
            raw_len = fh.read(4)
            if len(raw_len) != 4:
                raise CorruptStoreError(f"The backup {path} is truncated (no header). Use another copy.")
            (length,) = struct.unpack(">I", raw_len)
            if not 0 < length <= MAX_HEADER_BYTES:
                raise CorruptStoreError(f"The backup {path} has a damaged header. Use another copy.")
            raw = fh.read(length)
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the backup {path}: {exc.strerror}.") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError("not a MemDesk backup header")
        if not isinstance(data.get("version"), int) or data["version"] > VERSION:
            raise InvalidInputError(f"The backup {path} was made by a newer MemDesk (format "
                                    f"{data.get('version')!r}); upgrade MemDesk to restore it.")
        kdf_data = dict(data["kdf"])
        if kdf_data.pop("name", None) != "argon2id":
            raise ValueError("unknown key derivation")
        kdf = KdfParams.checked(kdf_data, f"The backup {path}")
        salt, check, digest = data["salt"], data["check"], data["payload_sha256"]
        if len(bytes.fromhex(salt)) < 16 or len(bytes.fromhex(check)) != 32 or len(bytes.fromhex(digest)) != 32:
            raise ValueError("bad salt, check or digest")
        payload = data["payload_bytes"]
        if isinstance(payload, bool) or not isinstance(payload, int):
            raise ValueError("bad payload size")
        created = parse_iso(data["created_at"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(f"The backup {path} has a damaged header ({exc}). Use another copy.") from exc
    offset = len(MAGIC) + 4 + length
    if size != offset + payload:
        raise CorruptStoreError(f"The backup {path} is {size} bytes, not the {offset + payload} its header "
                                "says: it was truncated or appended to. Use another copy.")
    return BackupHeader(created, kdf, salt, check, payload, digest, offset)


def unlock(header: BackupHeader, passphrase: str | None) -> bytes:
    """The backup key, or WrongKeyError (nothing is written before this succeeds)."""
    if not passphrase:
        raise WrongKeyError(f"This backup is protected by the passphrase chosen when it was made; give it "
                            f"(set {BACKUP_PASSPHRASE_ENV} or run in a terminal to be asked).")
    key = derive_key(passphrase, bytes.fromhex(header.salt), header.kdf)
    if not hmac.compare_digest(key_check(key), header.check):
        raise WrongKeyError("Wrong backup passphrase: it is the one chosen when the backup was made, not "
                            "necessarily the vault's. Nothing was written.")
    return key


# ------------------------------------------------------------------ restoring
def restore_backup(src: str | os.PathLike, data_dir: Path, profile: str, passphrase: str | None, *,
                   overwrite: bool = False, vault_passphrase: PassphraseProvider = env_passphrase_provider,
                   kdf: KdfParams = KdfParams()) -> RestoreReport:
    """Restore the backup `src` as profile `profile` under `data_dir`. An existing profile is
    replaced only with `overwrite`; the restored vault gets a new key, kept as a new vault's
    would be here (`vault_passphrase` is asked for one when there is no secure keyring)."""
    src = Path(src)
    header = read_header(src)
    key = unlock(header, passphrase)
    paths = ProfilePaths.for_profile(Path(data_dir), profile)
    exists = paths.vault.exists() or paths.key_sidecar.exists()
    if exists and not overwrite:
        raise InvalidInputError(
            f"A profile {profile!r} already exists in {paths.root}; restoring would replace it. Add "
            "--overwrite to replace it, or restore into another --profile or --data-dir. Nothing was written.")
    profiles = paths.data_dir / "profiles"
    staging = profiles / f".restore-{profile}-{secrets.token_hex(8)}"
    make_private_dir(staging, owned_from=profiles)
    new_keys = KeyManager(staging / paths.key_sidecar.name, vault_passphrase, kdf)
    try:
        copy = staging / "backup.db"
        _copy_payload(src, header, copy)
        tables = _check_backup_db(copy, key)
        vault_key = new_keys.create(new_id())
        target = staging / paths.vault.name
        _copy_database(copy, key, target, vault_key)
        for leftover in staging.glob("backup.db*"):
            leftover.unlink()
        Database(target, vault_key, create=False).close()  # migrations of an older backup; checkpointed
        mode = new_keys.info().mode
        replaced = _swap_in(staging, paths) if exists else False
        if not exists:
            os.rename(staging, paths.root)
            fsync_dir(profiles)
    except BaseException:
        new_keys.forget_keyring_entry()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RestoreReport(paths, header.created_at, tables, replaced, mode)


def _swap_in(staging: Path, paths: ProfilePaths) -> bool:
    """Put the staged profile where the old one is; the old one (and its keyring entry) goes."""
    profiles = staging.parent
    settings = paths.root / "settings.json"
    if settings.is_file():  # settings are not in the vault (so not in a backup): keep this machine's
        shutil.copy2(settings, staging / "settings.json")
    old = profiles / f".replaced-{paths.name}-{secrets.token_hex(8)}"
    os.rename(paths.root, old)
    try:
        os.rename(staging, paths.root)
    except BaseException:
        os.rename(old, paths.root)
        raise
    fsync_dir(profiles)
    KeyManager(old / paths.key_sidecar.name).forget_keyring_entry()
    shutil.rmtree(old, ignore_errors=True)
    return True


def recover_interrupted(paths: ProfilePaths) -> bool:
    """After a crash between the two renames of `_swap_in` the profile folder is missing and the
    old one waits under .replaced-NAME-*: put it back (the restore did not happen). Called when
    a vault is opened; True when something was put back. Staging folders of restores that never
    finished (.restore-NAME-*, encrypted) are removed."""
    profiles = paths.data_dir / "profiles"
    if not profiles.is_dir():
        return False
    recovered = False
    if not paths.root.exists():
        for old in sorted(profiles.glob(f".replaced-{paths.name}-*")):
            if (old / paths.key_sidecar.name).exists():
                os.rename(old, paths.root)
                fsync_dir(profiles)
                recovered = True
                break
    if not any(profiles.glob(f".replaced-{paths.name}-*")) or recovered:
        for staging in profiles.glob(f".restore-{paths.name}-*"):
            if staging.stat().st_mtime < datetime.now().timestamp() - 3600:  # not a restore running now
                shutil.rmtree(staging, ignore_errors=True)
    return recovered


def _copy_payload(src: Path, header: BackupHeader, dest: Path) -> None:
    digest = hashlib.sha256()
    remaining = header.payload_bytes
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with open(src, "rb") as fh, os.fdopen(fd, "wb") as out:
        fh.seek(header.offset)
        while remaining:
            chunk = fh.read(min(_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    if remaining or not hmac.compare_digest(digest.hexdigest(), header.payload_sha256):
        raise CorruptStoreError(f"The backup {src} is damaged (its content does not match its checksum). "
                                "Use another copy; nothing was restored.")


def _check_backup_db(path: Path, key: bytes) -> dict[str, int]:
    conn = open_keyed(path, key)
    try:
        _verify(conn, path)
        names = {r[0] for r in conn.execute("SELECT name FROM migrations")}
        unknown = names - {m.__name__ for m in MIGRATIONS}
        if unknown:
            raise InvalidInputError(f"The backup was made by a newer MemDesk (migrations {sorted(unknown)}); "
                                    "upgrade MemDesk to restore it. Nothing was restored.")
        return _row_counts(conn)
    except (apsw.CorruptError, apsw.NotADBError, apsw.SQLError) as exc:
        raise CorruptStoreError(f"The backup could not be read ({exc}). Use another copy; nothing was "
                                "restored.") from exc
    finally:
        conn.close()


def _copy_database(src: Path, src_key: bytes, dest: Path, dest_key: bytes) -> None:
    """Page copy from the backup key to the new vault key (re-encrypted page by page)."""
    source = open_keyed(src, src_key)
    try:
        target = open_keyed(dest, dest_key)
        try:
            with target.backup("main", source, "main") as copy:
                copy.step(-1)
        finally:
            target.close()
    finally:
        source.close()


def _verify(conn: apsw.Connection, path: Path) -> None:
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise CorruptStoreError(f"{path} did not verify: {'; '.join(problems[:3])}.")


def _row_counts(conn: apsw.Connection) -> dict[str, int]:
    """Rows per ordinary table (virtual tables are counted through their shadow tables)."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                        "AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name")]
    return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
